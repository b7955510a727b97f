package main_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	pw "github.com/pancake-pos/pancake-webhooks/cmd/pancake-webhooks"
)

// TestServeTakesAShortAdminTokenWithAWarning checks that an admin token
// shorter than the recommended 16 characters (the contract sets no length)
// starts the server and opens the admin API, with a warning that never
// shows the token.
func TestServeTakesAShortAdminTokenWithAWarning(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	const token = "tok-9x" // the later --admin-token wins
	srv := startServer(t, bin, "--admin-token", token, "--db", "sqlite:"+filepath.Join(t.TempDir(), "short.db"))
	var shop struct {
		APIKey string `json:"api_key"`
	}
	if code := doJSON(t, http.MethodPost, srv.url("/api/v1/admin/shops"), token, map[string]string{"shop_id": "short-token"}, &shop); code != http.StatusCreated || shop.APIKey == "" {
		t.Fatalf("create a shop with the short admin token: %d, key %q", code, shop.APIKey)
	}
	if code := doJSON(t, http.MethodPost, srv.url("/api/v1/admin/shops"), adminToken, map[string]string{"shop_id": "other"}, nil); code != http.StatusUnauthorized {
		t.Errorf("the overridden admin token: %d, want 401", code)
	}
	logs := srv.logs()
	if !strings.Contains(logs, "--admin-token is short") {
		t.Errorf("no warning about the short admin token in the logs:\n%s", logs)
	}
	if strings.Contains(logs, token) {
		t.Errorf("the logs show the admin token:\n%s", logs)
	}
}

// TestServeFailingAfterItsListenerStartsExitsCleanly: a --debug-addr that
// is taken fails serve after the API's server has started; it exits with
// the reason, not a panic of that server's goroutine.
func TestServeFailingAfterItsListenerStartsExitsCleanly(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for range 5 { // the race detector sees it in one; without it, a few give the panic a chance
		runCLI(t, "serve", "--addr", "127.0.0.1:0", "--db", "sqlite:"+filepath.Join(t.TempDir(), "debug.db"),
			"--debug-addr", taken.Addr().String()).
			wantCode(t, pw.ExitError).stderrContains(t, "--debug-addr")
	}
}

// TestDebugServerOffLoopbackIsWarnedOf: pprof on every interface has no
// key; it was taken with an info line only (observability audit).
func TestDebugServerOffLoopbackIsWarnedOf(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	cfg := pw.ServeConfig{Addr: "127.0.0.1:0", DB: "sqlite:" + filepath.Join(t.TempDir(), "debug.db"), LogLevel: "info", LogFormat: "json", DebugAddr: "0.0.0.0:0"}
	m := pw.NewMain(cfg, io.Discard, &logs)
	err := m.Run(t.Context())
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `"level":"WARN","msg":"--debug-addr is not on loopback`) {
		t.Errorf("no warning of pprof off loopback:\n%s", logs.String())
	}
}

// TestDebugServerStopsWithMain: --debug-addr serves Go's profiles, and
// Close stops that server and waits for it (its goroutine had no owner:
// code review), so its address is free once Close returns.
func TestDebugServerStopsWithMain(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := pw.ServeConfig{Addr: "127.0.0.1:0", DB: "sqlite:" + filepath.Join(t.TempDir(), "debug.db"), LogLevel: "error", LogFormat: "text", DebugAddr: addr}
	m := pw.NewMain(cfg, io.Discard, io.Discard)
	if err := m.Run(t.Context()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
		t.Errorf("GET goroutine profile: %d %.80q", resp.StatusCode, body)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the debug address is still taken after Close: %v", err)
	}
	again.Close()
}
