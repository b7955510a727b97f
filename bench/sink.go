package bench

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxSinkBody bounds what the sink reads of one request.
const maxSinkBody = 1 << 20

// Sink is the receiver the server delivers to: a plain net/http server on
// loopback that reads each body, answers 200 at once and records the arrival
// with the Recorder of the shop named in the path /hook/<shop>/<index>.
type Sink struct {
	URL string // http://127.0.0.1:<port>

	ln    net.Listener
	srv   *http.Server
	mu    sync.RWMutex
	recs  map[string]*Recorder
	stray atomic.Int64 // arrivals for no registered shop
	bad   atomic.Int64 // requests that are not /hook/<shop>/<i>
	bufs  sync.Pool
	now   func() time.Time
}

// StartSink listens on 127.0.0.1 on a free port and serves until Close.
func StartSink() (*Sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Sink{
		URL:  "http://" + ln.Addr().String(),
		ln:   ln,
		recs: make(map[string]*Recorder),
		now:  time.Now,
	}
	s.bufs.New = func() any { return new(bytes.Buffer) }
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
	}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the sink, waiting at most 5 s for requests in flight.
func (s *Sink) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.srv.Close()
	}
	return err
}

// HookURL is the URL a webhook of shop with the given index points to.
func (s *Sink) HookURL(shop string, index int) string {
	return s.URL + "/hook/" + shop + "/" + strconv.Itoa(index)
}

// Register makes r record the arrivals for shop.
func (s *Sink) Register(shop string, r *Recorder) {
	s.mu.Lock()
	s.recs[shop] = r
	s.mu.Unlock()
}

// Unregister stops recording for shop; later arrivals for it count as stray.
func (s *Sink) Unregister(shop string) {
	s.mu.Lock()
	delete(s.recs, shop)
	s.mu.Unlock()
}

// Stray is the number of arrivals for shops no longer (or never) registered.
func (s *Sink) Stray() int64 { return s.stray.Load() }

func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	buf := s.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer s.bufs.Put(buf)
	_, err := buf.ReadFrom(io.LimitReader(r.Body, maxSinkBody))
	now := s.now().UnixNano()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	shop, idx, ok := parseHookPath(r.URL.Path)
	if !ok || r.Method != http.MethodPost {
		s.bad.Add(1)
		w.WriteHeader(http.StatusNotFound)
		return
	}
	s.mu.RLock()
	rec := s.recs[shop]
	s.mu.RUnlock()
	if rec == nil {
		s.stray.Add(1)
		w.WriteHeader(http.StatusOK)
		return
	}
	body := buf.Bytes()
	id := r.Header.Get("webhook-id")
	if id == "" {
		id = string(jsonStringField(body, "id"))
	}
	ts := int64(-1)
	if v := jsonStringField(body, tsField); v != nil {
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			ts = n
		}
	}
	rec.record(id, idx, now, ts, rec.verify(idx, id, r.Header, body))
	if rec.Delay > 0 {
		t := time.NewTimer(rec.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	w.WriteHeader(http.StatusOK)
}

// parseHookPath splits /hook/<shop>/<index>.
func parseHookPath(p string) (shop string, idx int, ok bool) {
	rest, ok := strings.CutPrefix(p, "/hook/")
	if !ok {
		return "", 0, false
	}
	shop, num, ok := strings.Cut(rest, "/")
	if !ok || shop == "" {
		return "", 0, false
	}
	idx, err := strconv.Atoi(num)
	if err != nil || idx < 0 || idx > 1<<16 {
		return "", 0, false
	}
	return shop, idx, true
}

// jsonStringField returns the value of the first "key": "value" pair in the
// JSON text b whose value is a string without escapes, or nil. It is a cheap
// scan, not a parser: good enough for the envelope we generate ourselves,
// whatever spacing or key order the server re-encodes it with.
func jsonStringField(b []byte, key string) []byte {
	pat := `"` + key + `"`
	for off := 0; off < len(b); {
		i := bytes.Index(b[off:], []byte(pat))
		if i < 0 {
			return nil
		}
		j := off + i + len(pat)
		off = j
		j = skipSpace(b, j)
		if j >= len(b) || b[j] != ':' {
			continue
		}
		j = skipSpace(b, j+1)
		if j >= len(b) || b[j] != '"' {
			continue
		}
		j++
		k := bytes.IndexAny(b[j:], `"\`)
		if k < 0 || b[j+k] != '"' {
			return nil
		}
		return b[j : j+k]
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// arrival is one request at the sink, its time as an offset from the
// scenario start and its end-to-end latency (-1 when unknown), in ns.
type arrival struct {
	at  int64
	lat int64
	dup bool
}

type evState struct {
	bits []uint64 // which webhook indexes this event reached
	last int64    // offset of its latest first arrival at a webhook
}

// Recorder accounts the arrivals of one scenario (one shop): per (event id,
// webhook index) pair whether it arrived and how often, and every arrival's
// time and latency for the timeline. It keeps at most max arrivals in its
// timeline (the accounting is kept for all).
type Recorder struct {
	// Delay is how long the sink waits before answering each arrival
	// (after its time is taken); set it before Register.
	Delay time.Duration

	start int64 // unix ns the offsets count from
	max   int

	mu       sync.Mutex
	events   map[string]*evState
	arrivals []arrival
	distinct int64 // distinct pairs arrived
	total    int64 // all arrivals
	dups     int64 // arrivals of a pair already seen
	badSig   int64
	noTS     int64
	noID     int64
	overflow int64
	keys     map[int][][]byte // webhook index → HMAC keys; nil: no verification
}

// NewRecorder returns a recorder whose offsets count from start.
func NewRecorder(start time.Time, max int) *Recorder {
	if max <= 0 {
		max = 1 << 30
	}
	return &Recorder{start: start.UnixNano(), max: max, events: make(map[string]*evState)}
}

// SetSecret makes the recorder verify the Standard Webhooks signature of the
// arrivals at webhook index with secret ("whsec_<base64>").
func (r *Recorder) SetSecret(index int, secret string) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys == nil {
		r.keys = make(map[int][][]byte)
	}
	r.keys[index] = append(r.keys[index], key)
	return nil
}

// verify checks the webhook-signature header; true when not verifying.
func (r *Recorder) verify(index int, id string, h http.Header, body []byte) bool {
	r.mu.Lock()
	keys := r.keys[index]
	verifying := r.keys != nil
	r.mu.Unlock()
	if !verifying {
		return true
	}
	return VerifySignature(keys, id, h.Get("webhook-timestamp"), body, h.Get("webhook-signature"))
}

// VerifySignature reports whether header (space-separated "v1,<base64>"
// entries) holds a valid Standard Webhooks signature of id.timestamp.body
// under one of keys.
func VerifySignature(keys [][]byte, id, timestamp string, body []byte, header string) bool {
	if id == "" || timestamp == "" || header == "" {
		return false
	}
	for _, key := range keys {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(id))
		m.Write([]byte{'.'})
		m.Write([]byte(timestamp))
		m.Write([]byte{'.'})
		m.Write(body)
		want := m.Sum(nil)
		for _, e := range strings.Fields(header) {
			v, sig, ok := strings.Cut(e, ",")
			if !ok || v != "v1" {
				continue
			}
			got, err := base64.StdEncoding.DecodeString(sig)
			if err == nil && hmac.Equal(got, want) {
				return true
			}
		}
	}
	return false
}

func (r *Recorder) record(id string, idx int, nowNS, tsNS int64, sigOK bool) {
	at := nowNS - r.start
	lat := int64(-1)
	if tsNS > 0 {
		lat = max(nowNS-tsNS, 0)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total++
	if !sigOK {
		r.badSig++
	}
	if lat < 0 {
		r.noTS++
	}
	dup := false
	if id == "" {
		r.noID++
	} else {
		ev := r.events[id]
		if ev == nil {
			ev = &evState{}
			r.events[id] = ev
		}
		w, bit := idx/64, uint64(1)<<(idx%64)
		for len(ev.bits) <= w {
			ev.bits = append(ev.bits, 0)
		}
		if ev.bits[w]&bit != 0 {
			dup = true
			r.dups++
		} else {
			ev.bits[w] |= bit
			r.distinct++
			ev.last = max(ev.last, at)
		}
	}
	if len(r.arrivals) < r.max {
		r.arrivals = append(r.arrivals, arrival{at: at, lat: lat, dup: dup})
	} else {
		r.overflow++
	}
}

// Distinct is the number of distinct (event, webhook) pairs arrived so far.
func (r *Recorder) Distinct() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.distinct
}

// Total is the number of arrivals so far, duplicates included.
func (r *Recorder) Total() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// Accounting is the outcome of comparing what arrived with what was expected.
type Accounting struct {
	Expected   int64 // expected (event, webhook) pairs
	Arrived    int64 // of those, how many arrived at least once
	Missing    int64 // expected pairs that never arrived
	Duplicates int64 // arrivals of a pair that had already arrived
	Unexpected int64 // distinct pairs arrived that were not expected
	Total      int64 // all arrivals
	BadSig     int64 // arrivals whose signature did not verify
	NoTS       int64 // arrivals without a readable publish time
	NoID       int64 // arrivals without an event id
	LastAt     int64 // offset (ns) of the last first arrival of an expected pair
}

// Account compares the arrivals with the expected pairs: every event id in ids
// at each webhook index 0..hooks-1.
func (r *Recorder) Account(ids []string, hooks int) Accounting {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := Accounting{
		Expected:   int64(len(ids)) * int64(hooks),
		Duplicates: r.dups,
		Total:      r.total,
		BadSig:     r.badSig,
		NoTS:       r.noTS,
		NoID:       r.noID,
	}
	seen := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		if _, ok := seen[id]; ok {
			continue // the same id answered twice: count it once
		}
		seen[id] = struct{}{}
		ev := r.events[id]
		if ev == nil {
			continue
		}
		for i := 0; i < hooks; i++ {
			if w := i / 64; w < len(ev.bits) && ev.bits[w]&(1<<(i%64)) != 0 {
				a.Arrived++
			}
		}
		a.LastAt = max(a.LastAt, ev.last)
	}
	a.Expected = int64(len(seen)) * int64(hooks)
	a.Missing = a.Expected - a.Arrived
	a.Unexpected = r.distinct - a.Arrived
	return a
}

// snapshot returns a copy of the arrivals recorded so far.
func (r *Recorder) snapshot() []arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]arrival(nil), r.arrivals...)
}
