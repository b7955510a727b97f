package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fakeServer is a tiny stand-in for pancake-webhooks: it answers the few
// endpoints the benchmark uses and delivers each published event to every
// webhook of its shop from a small worker pool, signed like the real one.
type fakeServer struct {
	admin     string
	dropEvery int64 // when > 0, skip every n-th delivery
	dupEvery  int64 // when > 0, send every n-th delivery twice

	mu    sync.Mutex
	keys  map[string]string   // api key → shop
	hooks map[string][]fakeWH // shop → webhooks
	seq   atomic.Int64
	n     atomic.Int64 // deliveries made (each, before drop/dup)
	drops atomic.Int64
	dups  atomic.Int64

	jobs chan fakeJob
	wg   sync.WaitGroup
	hc   *http.Client
}

type fakeWH struct {
	url string
	key []byte
}

type fakeJob struct {
	wh   fakeWH
	id   string
	body []byte
}

func newFakeServer(admin string) *fakeServer {
	f := &fakeServer{admin: admin, keys: map[string]string{}, hooks: map[string][]fakeWH{},
		jobs: make(chan fakeJob, 1<<16), hc: newClient(16)}
	for range 4 {
		f.wg.Go(f.deliver)
	}
	return f
}

// close stops the workers after the queued jobs.
func (f *fakeServer) close() {
	close(f.jobs)
	f.wg.Wait()
	f.hc.CloseIdleConnections()
}

func (f *fakeServer) deliver() {
	for j := range f.jobs {
		n := f.n.Add(1)
		if f.dropEvery > 0 && n%f.dropEvery == 0 {
			f.drops.Add(1)
			continue
		}
		times := 1
		if f.dupEvery > 0 && n%f.dupEvery == 0 {
			f.dups.Add(1)
			times = 2
		}
		for range times {
			ts := time.Now().Unix()
			req, _ := http.NewRequest(http.MethodPost, j.wh.url, bytes.NewReader(j.body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("webhook-id", j.id)
			req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
			req.Header.Set("webhook-signature", sign(j.wh.key, j.id, ts, j.body))
			if resp, err := f.hc.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}
}

func (f *fakeServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"ok":true}`)) })
	mux.HandleFunc("POST /api/v1/admin/shops", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+f.admin {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var in struct {
			ShopID string `json:"shop_id"`
		}
		if json.NewDecoder(r.Body).Decode(&in) != nil || in.ShopID == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		key := "pk_" + strconv.FormatInt(f.seq.Add(1), 10)
		f.mu.Lock()
		f.keys[key] = in.ShopID
		f.mu.Unlock()
		writeJSON(w, http.StatusCreated, map[string]string{"shop_id": in.ShopID, "api_key": key})
	})
	mux.HandleFunc("POST /api/v1/shops/{shop}/webhooks", func(w http.ResponseWriter, r *http.Request) {
		shop, ok := f.auth(w, r)
		if !ok {
			return
		}
		var in struct {
			URL    string   `json:"url"`
			Events []string `json:"events"`
		}
		if json.NewDecoder(r.Body).Decode(&in) != nil || in.URL == "" || len(in.Events) == 0 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		key := make([]byte, 32)
		rand.Read(key)
		f.mu.Lock()
		f.hooks[shop] = append(f.hooks[shop], fakeWH{url: in.URL, key: key})
		f.mu.Unlock()
		writeJSON(w, http.StatusCreated, map[string]any{"id": "wh_" + strconv.FormatInt(f.seq.Add(1), 10),
			"url": in.URL, "secret_key": "whsec_" + base64.StdEncoding.EncodeToString(key)})
	})
	type event struct {
		Event string          `json:"event"`
		Data  json.RawMessage `json:"data"`
	}
	publish := func(shop string, e event) map[string]any {
		id := "evt_" + strconv.FormatInt(f.seq.Add(1), 10)
		f.mu.Lock()
		hooks := f.hooks[shop]
		f.mu.Unlock()
		body, _ := json.Marshal(map[string]any{"id": id, "event": e.Event, "shop_id": shop,
			"created_at": time.Now().UTC().Format(time.RFC3339Nano), "data": e.Data})
		for _, h := range hooks {
			f.jobs <- fakeJob{wh: h, id: id, body: body}
		}
		return map[string]any{"event_id": id, "deliveries": len(hooks)}
	}
	mux.HandleFunc("POST /api/v1/shops/{shop}/events", func(w http.ResponseWriter, r *http.Request) {
		shop, ok := f.auth(w, r)
		if !ok {
			return
		}
		var e event
		if json.NewDecoder(r.Body).Decode(&e) != nil || e.Event == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		writeJSON(w, http.StatusAccepted, publish(shop, e))
	})
	mux.HandleFunc("POST /api/v1/shops/{shop}/events/batch", func(w http.ResponseWriter, r *http.Request) {
		shop, ok := f.auth(w, r)
		if !ok {
			return
		}
		var in struct {
			Events []event `json:"events"`
		}
		if json.NewDecoder(r.Body).Decode(&in) != nil || len(in.Events) == 0 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var results []map[string]any
		for _, e := range in.Events {
			results = append(results, publish(shop, e))
		}
		writeJSON(w, http.StatusAccepted, map[string]any{"results": results})
	})
	return mux
}

func (f *fakeServer) auth(w http.ResponseWriter, r *http.Request) (string, bool) {
	key, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	shop, ok := f.keys[key]
	f.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		return "", false
	}
	if shop != r.PathValue("shop") {
		w.WriteHeader(http.StatusForbidden)
		return "", false
	}
	return shop, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// fakeEnv, when set, makes the test binary act as the server binary: the
// start mode of the benchmark runs it as "serve --addr ... --db ...".
const fakeEnv = "PANCAKE_BENCH_FAKE_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(fakeEnv) == "1" {
		os.Exit(fakeMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeMain(args []string) int {
	if len(args) >= 4 && args[0] == "bench" && args[1] == "relay" && args[2] == "--addr" {
		// "bench --relay" runs the binary's relay: the real one here.
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		logf := func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
		o := RelayOptions{Workers: DefaultRelayWorkers, Queue: 1000}
		if len(args) == 6 && args[4] == "--journal" {
			o.Journal = args[5]
		}
		if err := ServeRelay(ctx, args[3], o, logf); err != nil {
			fmt.Fprintln(os.Stderr, "relay:", err)
			return 1
		}
		return 0
	}
	if len(args) == 0 || args[0] != "serve" {
		fmt.Fprintln(os.Stderr, "fake: want serve")
		return 2
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addr := fs.String("addr", "", "")
	db := fs.String("db", "", "")
	admin := fs.String("admin-token", "", "")
	fs.Bool("allow-private-networks", false, "")
	fs.Bool("allow-http", false, "")
	if err := fs.Parse(args[1:]); err != nil || *addr == "" || *admin == "" || !strings.HasPrefix(*db, "sqlite:") {
		fmt.Fprintln(os.Stderr, "fake: bad arguments", args)
		return 2
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake:", err)
		return 1
	}
	f := newFakeServer(*admin)
	srv := &http.Server{Handler: f.handler()}
	go srv.Serve(ln)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return 1
	}
	return 0
}
