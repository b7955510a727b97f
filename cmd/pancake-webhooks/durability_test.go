package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	pw "github.com/pancake-pos/pancake-webhooks/cmd/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/store/storetest"
)

const adminToken = "test-admin-token-0123456789"

// binDir holds the binary buildOnce built, removed by TestMain.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildBinary builds pancake-webhooks once per test binary run.
var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "pancake-webhooks-bin-")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "pancake-webhooks")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func buildBinary(t *testing.T) string {
	t.Helper()
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// child is a running `serve` process.
type child struct {
	cmd  *exec.Cmd
	addr string
	done chan error

	mu  sync.Mutex
	buf bytes.Buffer
}

// logs returns what the server logged so far.
func (c *child) logs() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

func startServer(t *testing.T, bin string, args ...string) *child {
	t.Helper()
	return startServerEnv(t, bin, os.Environ(), args...)
}

// startServerEnv is startServer with the environment env.
func startServerEnv(t *testing.T, bin string, env []string, args ...string) *child {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--admin-token", adminToken,
		"--allow-private-networks", "--allow-http", "--log-level", "info"}, args...)...)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan error, 1)}
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.buf.WriteString(line + "\n")
			c.mu.Unlock()
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving" {
				addrCh <- rec.Addr
			}
		}
		c.done <- cmd.Wait()
	}()
	select {
	case c.addr = <-addrCh:
	case err := <-c.done:
		t.Fatalf("server exited before serving: %v\n%s", err, c.logs())
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("server did not start within 30s\n%s", c.logs())
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

func (c *child) url(path string) string { return "http://" + c.addr + path }

// terminate sends SIGTERM and fails the test unless the server exits
// cleanly within 30 s.
func (c *child) terminate(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	c.waitExit(t)
}

// waitExit fails the test unless the server, sent SIGTERM, exits cleanly
// within 30 s.
func (c *child) waitExit(t *testing.T) {
	t.Helper()
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, c.logs())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit within 30s of SIGTERM\n%s", c.logs())
	}
}

func doJSON(t *testing.T, method, url, auth string, body any, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, r)
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// arrivals counts the event ids each of the two webhooks got. It takes 50 ms
// to answer, and a request whose sender went away meanwhile (a killed
// server) does not count: it was never acknowledged, so it must come again.
type arrivals struct {
	mu   sync.Mutex
	seen map[string]int
	ch   chan struct{}
}

func newArrivals() *arrivals { return &arrivals{seen: map[string]int{}, ch: make(chan struct{}, 1)} }

func (a *arrivals) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
		return
	case <-time.After(50 * time.Millisecond):
	}
	a.mu.Lock()
	a.seen[r.URL.Path+" "+r.Header.Get("webhook-id")]++
	a.mu.Unlock()
	select {
	case a.ch <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *arrivals) missing(want map[string]bool) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for id := range want {
		for _, hook := range []string{"/hook/0", "/hook/1"} {
			if a.seen[hook+" "+id] == 0 {
				n++
			}
		}
	}
	return n
}

// TestKillNineLosesNothing publishes while killing the server with SIGKILL
// at random moments, restarts it on the same database each time, and checks
// that every event answered 202 reaches the receiver at least once, soon:
// the leases are far longer than the test waits, so what a killed server
// had claimed comes back only because the next one frees it at start (on
// PostgreSQL: a server that starts while no other runs).
func TestKillNineLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a real server; skipped with -short")
	}
	t.Parallel()
	t.Run("SQLite", func(t *testing.T) {
		t.Parallel()
		killNineLosesNothing(t, "sqlite:"+filepath.Join(t.TempDir(), "kill.db"))
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		t.Parallel()
		killNineLosesNothing(t, storetest.PostgresDSN(t))
	})
}

func killNineLosesNothing(t *testing.T, db string) {
	bin := buildBinary(t)
	rcv := newArrivals()
	receiver := httptest.NewServer(rcv)
	defer receiver.Close()
	args := []string{"--db", db, "--lease", "10m", "--attempt-timeout", "1s", "--poll-interval", "200ms"}

	srv := startServer(t, bin, args...)
	var shop struct {
		APIKey string `json:"api_key"`
	}
	if code := doJSON(t, "POST", srv.url("/api/v1/admin/shops"), adminToken, map[string]string{"shop_id": "kill"}, &shop); code != 201 {
		t.Fatalf("create shop: %d", code)
	}
	for i := range 2 {
		code := doJSON(t, "POST", srv.url("/api/v1/shops/kill/webhooks"), shop.APIKey,
			map[string]any{"url": fmt.Sprintf("%s/hook/%d", receiver.URL, i), "events": []string{"order.created"}}, nil)
		if code != 201 {
			t.Fatalf("create webhook: %d", code)
		}
	}

	accepted := map[string]bool{}
	var mu sync.Mutex
	for round := range 4 {
		if round > 0 {
			srv = startServer(t, bin, args...)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for ctx.Err() == nil {
					b, _ := json.Marshal(map[string]any{"event": "order.created", "data": map[string]any{"round": round}})
					req, _ := http.NewRequestWithContext(ctx, "POST", srv.url("/api/v1/shops/kill/events"), bytes.NewReader(b))
					req.Header.Set("Authorization", "Bearer "+shop.APIKey)
					req.Header.Set("Content-Type", "application/json")
					resp, err := testClient.Do(req)
					if err != nil {
						return // the server died under us
					}
					var res struct {
						EventID string `json:"event_id"`
					}
					json.NewDecoder(resp.Body).Decode(&res)
					resp.Body.Close()
					if resp.StatusCode == http.StatusAccepted {
						mu.Lock()
						accepted[res.EventID] = true
						mu.Unlock()
					}
				}
			})
		}
		time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond) // a random moment to kill at
		if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-srv.done
		cancel()
		wg.Wait()
	}
	if len(accepted) == 0 {
		t.Fatal("no event was accepted")
	}

	srv = startServer(t, bin, args...)
	deadline := time.After(60 * time.Second)
	for rcv.missing(accepted) > 0 {
		select {
		case <-rcv.ch:
		case <-time.After(time.Second):
		case <-deadline:
			t.Fatalf("%d of %d deliveries of accepted events never arrived\n%s", rcv.missing(accepted), 2*len(accepted), srv.logs())
		}
	}
	t.Logf("%d events accepted across 4 kills; all arrived", len(accepted))
}

// TestOneServerPerSQLiteFile checks that a second server on the same SQLite
// database does not run beside the first: it waits for the first to stop
// (a restart), and gives up after --shutdown-timeout, saying why.
func TestOneServerPerSQLiteFile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real servers; skipped with -short")
	}
	t.Parallel()
	bin := buildBinary(t)
	db := "sqlite:" + filepath.Join(t.TempDir(), "one.db")
	first := startServer(t, bin, "--db", db)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "serve", "--db", db, "--addr", "127.0.0.1:0", "--admin-token", adminToken,
		"--shutdown-timeout", "500ms").CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("a second server on %s: %v, want it to exit with an error\n%s", db, err, out)
	}
	if !strings.Contains(string(out), "another pancake-webhooks server is running on this SQLite database") {
		t.Errorf("the second server's output does not say why:\n%s", out)
	}
	if code := doJSON(t, "GET", first.url("/healthz"), "", nil, nil); code != http.StatusOK {
		t.Errorf("the first server answers /healthz with %d", code)
	}

	// A restart that starts the new server while the old one still runs:
	// the new one waits, and serves once the old one stopped.
	next := exec.Command(bin, "serve", "--db", db, "--addr", "127.0.0.1:0", "--admin-token", adminToken)
	stderr, err := next.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	defer func() {
		next.Process.Kill()
		for range lines { // read to the end before Wait closes the pipe
		}
		next.Wait()
	}()
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	waitFor := func(msg string) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("the new server exited before logging %q", msg)
				}
				if strings.Contains(line, msg) {
					return
				}
			case <-timeout:
				t.Fatalf("the new server did not log %q within 20s", msg)
			}
		}
	}
	waitFor("waiting for it to stop")
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(`"msg":"serving"`)
	if err := <-first.done; err != nil {
		t.Errorf("the old server's exit: %v", err)
	}
}

// TestSIGTERMShutsDownGracefully checks that SIGTERM exits 0 and keeps
// queued work for the next start.
func TestSIGTERMShutsDownGracefully(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a real server; skipped with -short")
	}
	t.Parallel()
	bin := buildBinary(t)
	srv := startServer(t, bin, "--db", "sqlite:"+filepath.Join(t.TempDir(), "term.db"))
	srv.terminate(t)
	if !strings.Contains(srv.logs(), "shutting down") {
		t.Errorf("no shutdown log line:\n%s", srv.logs())
	}
}

// TestSIGTERMDrainsFirst: with --drain-delay, a SIGTERM makes /readyz
// answer 503 while the API still serves, so that a load balancer stops
// sending before the listener closes; without it, the first probe after
// the signal found the port closed (observability audit).
func TestSIGTERMDrainsFirst(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a real server; skipped with -short")
	}
	t.Parallel()
	bin := buildBinary(t)
	srv := startServer(t, bin, "--db", "sqlite:"+filepath.Join(t.TempDir(), "drain.db"), "--drain-delay", "3s")
	if code := doJSON(t, "GET", srv.url("/readyz"), "", nil, nil); code != 200 {
		t.Fatalf("/readyz before the signal: %d", code)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code := doJSON(t, "GET", srv.url("/readyz"), "", nil, nil); code == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz did not answer 503 within 2s of SIGTERM\n%s", srv.logs())
		}
	}
	// Still serving meanwhile: the admin API makes a shop.
	if code := doJSON(t, "POST", srv.url("/api/v1/admin/shops"), adminToken, map[string]string{"shop_id": "draining"}, nil); code != 201 {
		t.Errorf("create a shop while draining: %d, want 201", code)
	}
	srv.waitExit(t)
	if !strings.Contains(srv.logs(), "draining") {
		t.Errorf("no log line about draining:\n%s", srv.logs())
	}
}

// A receiver that hangs does not hold a stop beyond --shutdown-timeout
// (the attempt timeout here is a minute): the attempt is cut, not
// recorded, and its delivery is sent again by the next server.
func TestSIGTERMCutsAnAttemptThatOutlastsTheShutdownTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a real server; skipped with -short")
	}
	t.Parallel()
	bin := buildBinary(t)
	var hang atomic.Bool
	hang.Store(true)
	arrived := make(chan string, 10)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		arrived <- r.Header.Get("webhook-id")
		if hang.Load() {
			<-r.Context().Done() // until the sender goes away
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()
	args := []string{"--db", "sqlite:" + filepath.Join(t.TempDir(), "cut.db"), "--attempt-timeout", "1m", "--shutdown-timeout", "1s"}
	srv := startServer(t, bin, args...)
	var shop struct {
		APIKey string `json:"api_key"`
	}
	if code := doJSON(t, "POST", srv.url("/api/v1/admin/shops"), adminToken, map[string]string{"shop_id": "cut"}, &shop); code != 201 {
		t.Fatalf("create shop: %d", code)
	}
	var hook struct {
		ID string `json:"id"`
	}
	if code := doJSON(t, "POST", srv.url("/api/v1/shops/cut/webhooks"), shop.APIKey,
		map[string]any{"url": receiver.URL + "/hook", "events": []string{"order.created"}}, &hook); code != 201 {
		t.Fatalf("create webhook: %d", code)
	}
	var ev struct {
		EventID string `json:"event_id"`
	}
	if code := doJSON(t, "POST", srv.url("/api/v1/shops/cut/events"), shop.APIKey, map[string]any{"event": "order.created", "data": map[string]any{"order_id": "1"}}, &ev); code != 202 {
		t.Fatalf("publish: %d", code)
	}
	if got := <-arrived; got != ev.EventID {
		t.Fatalf("arrived %q, want %q", got, ev.EventID)
	}

	// A test send in flight too: its request is cut, and the stop is
	// still a clean one (exit 0; it was 1).
	testSent := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("POST", srv.url("/api/v1/shops/cut/webhooks/"+hook.ID+"/test"), strings.NewReader(`{"event":"order.created"}`))
		req.Header.Set("Authorization", "Bearer "+shop.APIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := testClient.Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("answered %d", resp.StatusCode)
		}
		testSent <- err
	}()
	<-arrived // the test send's

	srv.terminate(t) // within 30 s, not the attempt's minute, and exit 0
	if !strings.Contains(srv.logs(), "cutting the attempts in flight") {
		t.Errorf("no log line about the cut attempt:\n%s", srv.logs())
	}
	if !strings.Contains(srv.logs(), "closing the connections of the requests still in flight") {
		t.Errorf("no log line about the cut request:\n%s", srv.logs())
	}
	if err := <-testSent; err == nil || strings.Contains(err.Error(), "answered") {
		t.Errorf("the test send in flight at the stop: %v; want its connection closed", err)
	}

	hang.Store(false)
	srv = startServer(t, bin, args...)
	select {
	case got := <-arrived:
		if got != ev.EventID {
			t.Fatalf("after the restart, arrived %q, want %q again", got, ev.EventID)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the cut delivery was not sent again within 30s of the restart\n%s", srv.logs())
	}
	var list struct {
		Data []struct {
			Status        string `json:"status"`
			FailureReason string `json:"failure_reason"`
		} `json:"data"`
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		doJSON(t, "GET", srv.url("/api/v1/shops/cut/webhook-deliveries"), shop.APIKey, nil, &list)
		if len(list.Data) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(list.Data) != 1 || list.Data[0].Status != "success" {
		t.Fatalf("history %+v; want the one successful attempt (the cut one is not recorded)", list.Data)
	}
}

// cutProxy forwards TCP connections to target until cut, which ends those
// open and closes every later one at once: a database that went away.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { p.forward(c) })
		}
	})
	return p
}

func (p *cutProxy) forward(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
}

// cut ends every connection and refuses the next ones until restore.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *cutProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// TestAnUnreachableDatabaseIsAnswered503: while PostgreSQL cannot be
// reached, a publish is answered 503 unavailable with Retry-After, which
// tells its sender to send it again (it was answered 500 internal); once
// the database is back, the same publish is accepted.
func TestAnUnreachableDatabaseIsAnswered503(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startCutProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	b := setupE2E(t, func(c *pw.ServeConfig) { c.DB = u.String() })
	publish := func() *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.srv.apiURL+"/shops/"+b.shop+"/events",
			strings.NewReader(`{"event":"order.created","id":"evt-cut-1","data":{"order_id":"1"}}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+b.key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Error struct{ Code string } `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Header.Set("X-Test-Code", body.Error.Code)
		return resp
	}

	proxy.cut()
	resp := publish()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("X-Test-Code") != "unavailable" || resp.Header.Get("Retry-After") != "5" {
		t.Errorf("publish with the database unreachable: %d %q, Retry-After %q; want 503 unavailable, Retry-After 5",
			resp.StatusCode, resp.Header.Get("X-Test-Code"), resp.Header.Get("Retry-After"))
	}
	proxy.restore()
	deadline := time.Now().Add(15 * time.Second)
	for resp = publish(); resp.StatusCode != http.StatusAccepted && time.Now().Before(deadline); resp = publish() {
		time.Sleep(100 * time.Millisecond)
	}
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("publish with the database back: %d, want 202", resp.StatusCode)
	}
}

// TestServeRefusesPancakeDev: --dev has no environment variable (one left
// in production must not open private networks), but a server that
// started as if PANCAKE_DEV did not exist, with a database file in the
// working directory, misled an operator who set it (docs audit). A
// database named beside --dev was ignored without a word (lifecycle
// audit): --dev's is always a new temporary file.
func TestServeRefusesPancakeDev(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	for _, tt := range []struct {
		args []string
		env  string
		want []string
	}{
		{[]string{"serve", "--addr", "127.0.0.1:0"}, "PANCAKE_DEV=true", []string{"--dev"}},
		{[]string{"serve", "--dev", "--addr", "127.0.0.1:0", "--db", "sqlite:kept.db"}, "", []string{"--dev", "--db"}},
		{[]string{"serve", "--dev", "--addr", "127.0.0.1:0"}, "PANCAKE_DB=sqlite:kept.db", []string{"--dev", "PANCAKE_DB"}},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		cmd := exec.CommandContext(ctx, bin, tt.args...)
		cmd.Dir = t.TempDir()
		cmd.Env = os.Environ()
		if tt.env != "" {
			cmd.Env = append(cmd.Env, tt.env)
		}
		out, err := cmd.CombinedOutput()
		cancel()
		code := cmd.ProcessState.ExitCode()
		for _, w := range tt.want {
			if code != 2 || !strings.Contains(string(out), w) {
				t.Errorf("%s %v: exit %d (%v); want 2 naming %s\n%s", tt.env, tt.args, code, err, w, out)
			}
		}
		if entries, _ := os.ReadDir(cmd.Dir); len(entries) > 0 {
			t.Errorf("%s %v made %s", tt.env, tt.args, entries[0].Name())
		}
	}
}

// TestEveryLogLineIsJSON: what net/http logs through the standard logger (a
// receiver that sent bytes after its 204 makes the transport complain of
// an unsolicited response) goes through the server's JSON log too; it was
// printed as plain text among the JSON lines (receivers audit). Such a
// line is cut short: it quoted up to 4 KiB of what the receiver sent
// (observability audit).
func TestEveryLogLineIsJSON(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				r := bufio.NewReader(conn)
				req, err := http.ReadRequest(r)
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				io.WriteString(conn, "HTTP/1.1 204 No Content\r\n\r\nunsolicited bytes"+strings.Repeat("x", 4000)+"TAIL")
				r.ReadByte() // until the client closes
			}()
		}
	}()
	srv := startServer(t, bin, "--db", "sqlite:"+filepath.Join(t.TempDir(), "logs.db"))
	var shop struct {
		APIKey string `json:"api_key"`
	}
	if code := doJSON(t, "POST", srv.url("/api/v1/admin/shops"), adminToken, map[string]string{"shop_id": "logs"}, &shop); code != 201 {
		t.Fatalf("create shop: %d", code)
	}
	if code := doJSON(t, "POST", srv.url("/api/v1/shops/logs/webhooks"), shop.APIKey,
		map[string]any{"url": "http://" + ln.Addr().String() + "/hook", "events": []string{"order.created"}}, nil); code != 201 {
		t.Fatalf("create webhook: %d", code)
	}
	if code := doJSON(t, "POST", srv.url("/api/v1/shops/logs/events"), shop.APIKey, map[string]any{"event": "order.created", "data": map[string]any{}}, nil); code != 202 {
		t.Fatalf("publish: %d", code)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(srv.logs(), "Unsolicited response"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("net/http did not log the unsolicited response within 10s\n%s", srv.logs())
		}
	}
	srv.terminate(t)
	for _, line := range strings.Split(strings.TrimSpace(srv.logs()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("a log line is not JSON: %s", line)
		}
		if strings.Contains(line, "Unsolicited response") && (len(line) > 1000 || strings.Contains(line, "TAIL")) {
			t.Errorf("the unsolicited response's line is %d bytes, with the receiver's tail: %.200s…", len(line), line)
		}
	}
}
