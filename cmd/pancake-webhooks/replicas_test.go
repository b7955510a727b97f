package main_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to look at the queue directly

	"github.com/pancake-pos/pancake-webhooks/dispatch"
	"github.com/pancake-pos/pancake-webhooks/store/storetest"
)

// Figures of TestReplicasShareTheQueueAndSurviveSIGKILL.
const (
	replicaEvents     = 3000 // events to have accepted (202) in all
	replicaHooks      = 5    // webhooks of the shop, all on the one receiver
	replicaPublishers = 6    // concurrent publishers, spread over the live replicas
	replicaWorkers    = 32   // --workers of each replica
	replicaLease      = 3 * time.Second

	// The dispatcher's results channel holds 2*Workers results and its
	// recorder commits up to RecordBatch of them at once.
	replicaResultsBuffer = 2 * replicaWorkers
	replicaRecordBatch   = dispatch.DefaultRecordBatch
)

// TestReplicasShareTheQueueAndSurviveSIGKILL runs three `serve` replicas on
// one PostgreSQL database and one receiver, publishes a few thousand events
// spread over several webhooks and over the three replicas, SIGKILLs one
// replica a third of the way in and keeps publishing to the two others. It
// checks that:
//
//   - every event answered 202 reaches every webhook at least once;
//   - every duplicate is an attempt the killed replica had sent but not yet
//     recorded when it died, sent again by exactly one survivor after the
//     lease ran out (so no attempt was ever sent by two live replicas), and
//     there are no more of them than the killed engine can have in that state;
//   - no delivery is left pending or leased.
//
// Which process sent each request is read from /proc (the client end of the
// receiver's connection belongs to one replica), so on Linux the checks are
// per attempt, not only a count.
func TestReplicasShareTheQueueAndSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three real servers on PostgreSQL and kills one; skipped with -short")
	}
	// Not parallel: three servers and the publishers are plenty for a small machine.
	dsn := storetest.PostgresDSN(t)
	bin := buildBinary(t)
	start := time.Now()

	rcv := newReplicaReceiver()
	hs := httptest.NewUnstartedServer(rcv)
	hs.Config.ConnContext = rcv.connContext
	rcv.port = hs.Listener.Addr().(*net.TCPAddr).Port
	stopResolver := make(chan struct{})
	go rcv.resolver(stopResolver)
	defer close(stopResolver)
	hs.Start()
	defer hs.Close()

	args := []string{"--db", dsn, "--lease", replicaLease.String(), "--attempt-timeout", "2s", "--poll-interval", "200ms",
		"--workers", strconv.Itoa(replicaWorkers)}
	// Replica 1 alone first: it applies the migrations (and, asking first,
	// takes the housekeeping lead); then the two others on the same schema.
	replicas := []*child{startServer(t, bin, args...)}
	replicas = append(replicas, startServer(t, bin, args...), startServer(t, bin, args...))
	for _, r := range replicas {
		rcv.addPID(r.cmd.Process.Pid)
	}

	var shop struct {
		APIKey string `json:"api_key"`
	}
	if code := doJSON(t, "POST", replicas[0].url("/api/v1/admin/shops"), adminToken, map[string]string{"shop_id": "replicas"}, &shop); code != 201 {
		t.Fatalf("create shop: %d", code)
	}
	var hooks []string
	for i := range replicaHooks {
		path := fmt.Sprintf("/hook/%d", i)
		code := doJSON(t, "POST", replicas[i%len(replicas)].url("/api/v1/shops/replicas/webhooks"), shop.APIKey,
			map[string]any{"url": hs.URL + path, "events": []string{"order.created"}}, nil)
		if code != 201 {
			t.Fatalf("create webhook %d: %d", i, code)
		}
		hooks = append(hooks, path)
	}

	// Publish, SIGKILLing replica 1 once a third of the events were accepted.
	victim := replicas[0]
	var (
		live     atomic.Pointer[[]*child]
		accepted sync.Map // event id -> true
		nAcc     atomic.Int64
		nFailed  atomic.Int64 // requests that got no 202 (the victim dying under them)
		next     atomic.Int64
		killNow  = make(chan struct{})
		killOnce sync.Once
	)
	live.Store(&replicas)
	client := &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: replicaPublishers, DisableCompression: true},
	}
	defer client.CloseIdleConnections()
	publish := func(target *child, n int64) (string, error) {
		b, _ := json.Marshal(map[string]any{"event": "order.created", "data": map[string]any{"n": n}})
		req, _ := http.NewRequest("POST", target.url("/api/v1/shops/replicas/events"), bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+shop.APIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var res struct {
			EventID string `json:"event_id"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.StatusCode != http.StatusAccepted || res.EventID == "" {
			return "", fmt.Errorf("publish: %d %v", resp.StatusCode, err)
		}
		return res.EventID, nil
	}
	var wg sync.WaitGroup
	for range replicaPublishers {
		wg.Go(func() {
			for nAcc.Load() < replicaEvents {
				n := next.Add(1)
				rs := *live.Load()
				id, err := publish(rs[int(n)%len(rs)], n)
				if err != nil {
					// Not accepted: nothing is promised for it (it may
					// still have been committed, and then it is delivered).
					if nFailed.Add(1) > 100 {
						t.Errorf("too many failed publishes; last: %v", err)
						return
					}
					continue
				}
				accepted.Store(id, true)
				if nAcc.Add(1) >= replicaEvents/3 {
					killOnce.Do(func() { close(killNow) })
				}
			}
		})
	}
	publishDone := make(chan struct{})
	go func() { wg.Wait(); close(publishDone) }()

	var killedAt time.Time
	select {
	case <-killNow:
	case <-publishDone:
		t.Fatalf("publishers stopped before the kill (%d accepted)", nAcc.Load())
	}
	survivors := replicas[1:]
	live.Store(&survivors)
	inFlightAtKill := rcv.inFlight.Load()
	rcv.gone.Store(int64(victim.cmd.Process.Pid))
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt = time.Now()
	<-victim.done
	acceptedAtKill := nAcc.Load()
	<-publishDone
	if t.Failed() {
		t.FailNow()
	}
	publishedIn := time.Since(start)
	var ids []string
	accepted.Range(func(k, _ any) bool { ids = append(ids, k.(string)); return true })

	// Every accepted event reaches every webhook.
	deadline := time.Now().Add(90 * time.Second)
	for {
		missing := rcv.missing(hooks, ids)
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d deliveries of accepted events never arrived, e.g. %v\nsurvivor logs:\n%s\n%s",
				len(missing), len(hooks)*len(ids), missing[:min(5, len(missing))], survivors[0].logs(), survivors[1].logs())
		}
		select {
		case <-rcv.ch:
		case <-time.After(200 * time.Millisecond):
		}
	}
	allArrived, arrivedAfterKill := time.Since(start), time.Since(killedAt)

	// No row is left pending or leased. Events the victim committed without
	// answering (their publish failed) are delivered too, possibly a little
	// later: wait for the queue to drain, bounded.
	pg, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	var left int
	for {
		err := pg.QueryRow(`SELECT count(*) FROM deliveries WHERE status = 'pending' OR leased_until IS NOT NULL`).Scan(&left)
		if err != nil {
			t.Fatal(err)
		}
		if left == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if left > 0 {
		rows, _ := pg.Query(`SELECT id, webhook_id, status, attempt, scheduled_at, leased_until FROM deliveries
			WHERE status = 'pending' OR leased_until IS NOT NULL ORDER BY id LIMIT 10`)
		var b strings.Builder
		for rows != nil && rows.Next() {
			var id, wh, status string
			var attempt int
			var sched, lease sql.NullInt64
			rows.Scan(&id, &wh, &status, &attempt, &sched, &lease)
			fmt.Fprintf(&b, "  %s %s %s attempt=%d scheduled_at=%v leased_until=%v\n", id, wh, status, attempt, sched, lease)
		}
		t.Errorf("%d deliveries still pending or leased %v after the kill, e.g.:\n%s", left, time.Since(killedAt).Round(time.Second), b.String())
	}
	var statuses []string
	rows, err := pg.Query(`SELECT status, count(*) FROM deliveries GROUP BY status ORDER BY status`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		statuses = append(statuses, fmt.Sprintf("%s=%d", s, n))
	}
	rows.Close()
	// Why attempts failed, though the receiver never fails: what a kill
	// interrupted, and nothing else.
	var reasons []string
	if rows, err := pg.Query(`SELECT failure_reason, count(*) FROM deliveries WHERE status = 'failed'
		GROUP BY failure_reason ORDER BY count(*) DESC LIMIT 5`); err == nil {
		for rows.Next() {
			var r string
			var n int
			if rows.Scan(&r, &n) == nil {
				reasons = append(reasons, fmt.Sprintf("%q=%d", r, n))
			}
		}
		rows.Close()
	}

	// Duplicates: only attempts the victim had sent but not recorded, each
	// sent again by exactly one survivor once its lease ran out.
	victimPID := victim.cmd.Process.Pid
	st := rcv.analyze(victimPID)
	for _, p := range st.problems[:min(len(st.problems), 10)] {
		t.Error(p)
	}
	if len(st.problems) > 10 {
		t.Errorf("... and %d more", len(st.problems)-10)
	}
	// The bound. An attempt the victim had sent but not recorded when it
	// died is sent again; one it had recorded, or claimed but not sent, is
	// not. On the victim such an attempt is either being sent (at most
	// --workers), or its result waits in the results channel (2*workers) or
	// in the batch the recorder is committing (at most RecordBatch): that is
	// the most the engine can lose to a SIGKILL. --workers alone is not a
	// bound: a worker takes its next job as soon as its result is queued
	// for recording (runs here saw 0 to 43 duplicates with --workers 32).
	bound := replicaWorkers + replicaResultsBuffer + replicaRecordBatch
	if st.duplicates > bound {
		t.Errorf("%d duplicate arrivals; a killed replica with --workers %d can have at most %d attempts sent but not recorded",
			st.duplicates, replicaWorkers, bound)
	}
	t.Logf("%d events accepted (%d before the kill, %d publishes failed), %d webhooks, %d arrivals (%d for events not acknowledged), deliveries in the database: %s",
		len(ids), acceptedAtKill, nFailed.Load(), len(hooks), st.arrivals, st.unacknowledged(ids), strings.Join(statuses, " "))
	t.Logf("failed attempts by reason: %s", strings.Join(reasons, " "))
	t.Logf("arrivals by sender: %s; receiver requests in progress at the kill: %d", st.bySender(victimPID), inFlightAtKill)
	t.Logf("%d duplicate arrivals (bound %d, --workers %d); problems: %d", st.duplicates, bound, replicaWorkers, len(st.problems))
	t.Logf("published in %v, all arrived %v after the start (%v after the kill); %v in all",
		publishedIn.Round(time.Millisecond), allArrived.Round(time.Millisecond), arrivedAfterKill.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// replicaArrival is one request the receiver got.
type replicaArrival struct {
	delivery string // X-Pancake-Delivery
	pid      int    // the replica that sent it; 0 if unknown
	at       time.Time
}

// replicaReceiver records every arrival per webhook path and event id, and
// which replica sent it.
type replicaReceiver struct {
	port     int // the receiver's own port, to find the client end of a connection
	inFlight atomic.Int64
	// gone is the pid of the replica being killed, set just before the
	// SIGKILL. A connection it opened may still be in the accept queue when
	// it dies, its request readable, though its end of the socket is gone
	// from /proc: after the kill, a connection whose client end belongs to
	// no live replica is the killed one's.
	gone atomic.Int64
	ch   chan struct{}

	resolve chan struct{}

	mu      sync.Mutex
	pids    []int
	pending []*replicaConn              // accepted, sender not known yet
	got     map[string][]replicaArrival // path + " " + webhook-id
}

func newReplicaReceiver() *replicaReceiver {
	return &replicaReceiver{got: map[string][]replicaArrival{}, ch: make(chan struct{}, 1), resolve: make(chan struct{}, 1)}
}

func (a *replicaReceiver) addPID(pid int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pids = append(a.pids, pid)
}

type senderKey struct{}

// replicaConn is one accepted connection; pid is set before resolved is closed.
type replicaConn struct {
	port     int // the client's port
	pid      int
	resolved chan struct{}
}

// connContext hands each new connection to the resolver, off the accept
// path (reading /proc/net/tcp takes milliseconds: doing it in the accept
// loop would slow the receiver down enough to change what is measured).
func (a *replicaReceiver) connContext(ctx context.Context, c net.Conn) context.Context {
	rc := &replicaConn{resolved: make(chan struct{})}
	if ra, ok := c.RemoteAddr().(*net.TCPAddr); ok && runtime.GOOS == "linux" {
		rc.port = ra.Port
		a.mu.Lock()
		a.pending = append(a.pending, rc)
		a.mu.Unlock()
		select {
		case a.resolve <- struct{}{}:
		default:
		}
	} else {
		close(rc.resolved)
	}
	return context.WithValue(ctx, senderKey{}, rc)
}

// resolver finds which replica opened each pending connection, all those
// pending at once per read of /proc, until stop.
func (a *replicaReceiver) resolver(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-a.resolve:
		}
		for try := 0; ; try++ {
			a.mu.Lock()
			batch, pids := a.pending, slices.Clone(a.pids)
			a.pending = nil
			a.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			owners := socketOwners(a.port, pids)
			var again []*replicaConn
			for _, rc := range batch {
				if rc.pid = owners[rc.port]; rc.pid == 0 {
					if gone := int(a.gone.Load()); gone != 0 {
						rc.pid = gone
					} else if try < 3 {
						// /proc/net/tcp is not read atomically: look again.
						again = append(again, rc)
						continue
					}
				}
				close(rc.resolved)
			}
			if len(again) > 0 {
				a.mu.Lock()
				a.pending = append(a.pending, again...)
				a.mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		}
	}
}

func (a *replicaReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.inFlight.Add(1)
	defer a.inFlight.Add(-1)
	io.Copy(io.Discard, r.Body)
	// A little latency, so attempts are in flight when the kill comes.
	time.Sleep(time.Duration(rand.IntN(6)) * time.Millisecond)
	pid := 0
	if rc, ok := r.Context().Value(senderKey{}).(*replicaConn); ok {
		// Wait for the sender, but answer within the replicas' 2 s attempt
		// timeout: an answer held longer is a timeout and a retry, which
		// the analysis counts as a problem of the server's.
		select {
		case <-rc.resolved:
			pid = rc.pid
		case <-time.After(1500 * time.Millisecond):
		}
	}
	a.mu.Lock()
	k := r.URL.Path + " " + r.Header.Get("webhook-id")
	a.got[k] = append(a.got[k], replicaArrival{delivery: r.Header.Get("X-Pancake-Delivery"), pid: pid, at: time.Now()})
	a.mu.Unlock()
	select {
	case a.ch <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusNoContent)
}

// missing lists the (path, event) pairs that have not arrived yet.
func (a *replicaReceiver) missing(paths, ids []string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, id := range ids {
		for _, p := range paths {
			if len(a.got[p+" "+id]) == 0 {
				out = append(out, p+" "+id)
			}
		}
	}
	return out
}

type replicaStats struct {
	arrivals   int
	duplicates int // arrivals beyond the first, per webhook and event
	senders    map[int]int
	keys       map[string]bool
	problems   []string
}

func (s *replicaStats) unacknowledged(ids []string) int {
	n := 0
	acked := map[string]bool{}
	for _, id := range ids {
		acked[id] = true
	}
	for k := range s.keys {
		if !acked[k[strings.IndexByte(k, ' ')+1:]] {
			n++
		}
	}
	return n
}

func (s *replicaStats) bySender(victim int) string {
	var parts []string
	for pid, n := range s.senders {
		name := fmt.Sprintf("pid %d", pid)
		switch pid {
		case 0:
			name = "unknown"
		case victim:
			name += " (killed)"
		}
		parts = append(parts, fmt.Sprintf("%s: %d", name, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// analyze checks every duplicate: all arrivals of one webhook and event
// carry the same delivery id (no retry: the receiver never fails), the
// victim sent it once, first, and one survivor sent it once more.
func (a *replicaReceiver) analyze(victim int) *replicaStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	attributed := runtime.GOOS == "linux"
	s := &replicaStats{senders: map[int]int{}, keys: map[string]bool{}}
	for k, as := range a.got {
		s.keys[k] = true
		s.arrivals += len(as)
		for _, x := range as {
			s.senders[x.pid]++
		}
		if len(as) < 2 {
			continue
		}
		s.duplicates += len(as) - 1
		describe := func() string {
			var b strings.Builder
			for _, x := range as {
				fmt.Fprintf(&b, " [%s pid %d at %s]", x.delivery, x.pid, x.at.Format("15:04:05.000"))
			}
			return b.String()
		}
		for _, x := range as[1:] {
			if x.delivery != as[0].delivery {
				s.problems = append(s.problems, fmt.Sprintf("%s arrived under two delivery ids (a retry, though the receiver never fails):%s", k, describe()))
				break
			}
		}
		if !attributed {
			continue
		}
		fromVictim, fromSurvivors := 0, 0
		for _, x := range as {
			switch x.pid {
			case victim:
				fromVictim++
			case 0:
			default:
				fromSurvivors++
			}
		}
		// A live replica sending a delivery another process (or itself) had
		// sent means a lease ran out while its attempt was being sent or
		// recorded.
		switch {
		case len(as) != 2 || fromVictim != 1 || fromSurvivors != 1:
			s.problems = append(s.problems, fmt.Sprintf("%s arrived %d times, %d from the killed replica and %d from live ones: not one kill-interrupted attempt sent again:%s",
				k, len(as), fromVictim, fromSurvivors, describe()))
		case as[0].pid != victim:
			s.problems = append(s.problems, fmt.Sprintf("%s: a live replica sent it before the killed one did:%s", k, describe()))
		}
	}
	return s
}

// socketOwners maps the client port of every connection to port (the
// receiver's) to which of pids holds its client end: it finds each socket's
// inode in /proc/net/tcp, then among the processes' file descriptors.
func socketOwners(port int, pids []int) map[int]int {
	inodes := map[string]int{} // inode -> client port
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			fs := strings.Fields(line)
			// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
			if len(fs) < 10 || hexPort(fs[2]) != port || fs[9] == "0" {
				continue
			}
			inodes["socket:["+fs[9]+"]"] = hexPort(fs[1])
		}
	}
	owners := map[int]int{}
	for _, pid := range pids {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if l, err := os.Readlink(dir + "/" + e.Name()); err == nil {
				if p, ok := inodes[l]; ok {
					owners[p] = pid
				}
			}
		}
	}
	return owners
}

// hexPort reads the port of a /proc/net/tcp address ("0100007F:1F90").
func hexPort(addr string) int {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return -1
	}
	p, err := strconv.ParseUint(addr[i+1:], 16, 16)
	if err != nil {
		return -1
	}
	return int(p)
}
