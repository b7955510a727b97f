package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pancake-pos/pancake-webhooks/pancake"
)

// testClient is the tests' HTTP client. Not http.DefaultClient: closing an
// httptest.Server closes the idle connections of the default transport,
// which breaks a request another parallel test is sending on one of them
// ("http: CloseIdleConnections called").
var testClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}

func newSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// syncBuffer is a bytes.Buffer for logs written by server goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestSeenSet(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		now time.Time
	}
	setup := func(t *testing.T, size int) (*seenSet, *testBundle) {
		t.Helper()
		b := &testBundle{now: time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)}
		return newSeenSet(size, time.Hour, func() time.Time { return b.now }), b
	}

	t.Run("SecondAddIsDuplicate", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, 10)
		if !s.Add("evt_1") || s.Add("evt_1") || !s.Add("evt_2") {
			t.Error("Add answers wrong")
		}
	})

	t.Run("ForgetsAfterTTL", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t, 10)
		s.Add("evt_1")
		b.now = b.now.Add(59 * time.Minute)
		if s.Add("evt_1") {
			t.Error("forgotten within the TTL")
		}
		b.now = b.now.Add(61 * time.Minute) // the duplicate refreshed it
		if !s.Add("evt_1") {
			t.Error("remembered beyond the TTL")
		}
	})

	t.Run("ExpiredOnesAreDropped", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t, 10)
		for _, id := range []string{"a", "b", "c"} {
			s.Add(id)
		}
		b.now = b.now.Add(2 * time.Hour)
		s.Add("d")
		if got := s.Len(); got != 1 {
			t.Errorf("Len = %d, want 1", got)
		}
	})

	t.Run("BoundedLeastRecentlySeenGoesFirst", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t, 3)
		for _, id := range []string{"a", "b", "c"} {
			s.Add(id)
			b.now = b.now.Add(time.Second)
		}
		s.Add("a") // seen again: now the most recent
		s.Add("d") // evicts b
		if got := s.Len(); got != 3 {
			t.Errorf("Len = %d, want 3", got)
		}
		for id, want := range map[string]bool{"a": false, "c": false, "d": false} {
			if got := s.Add(id); got != want {
				t.Errorf("Add(%s) = %v, want %v", id, got, want)
			}
		}
		if !s.Add("b") {
			t.Error("b still remembered")
		}
	})

	t.Run("RemoveForgets", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, 10)
		s.Add("evt_1")
		s.Remove("evt_1")
		s.Remove("never")
		if !s.Add("evt_1") {
			t.Error("remembered after Remove")
		}
	})
}

func TestReceiver(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		secret  string
		server  *httptest.Server
		logs    *syncBuffer
		mu      sync.Mutex
		handled []string // envelope ids
		fail    error
	}
	setup := func(t *testing.T, secrets ...string) *testBundle {
		t.Helper()
		b := &testBundle{secret: newSecret(t), logs: &syncBuffer{}}
		rc := &receiver{
			Secrets: append([]string{b.secret}, secrets...),
			Seen:    newSeenSet(100, time.Hour, time.Now),
			Logger:  slog.New(slog.NewJSONHandler(b.logs, nil)),
			HandleFunc: func(ctx context.Context, e *pancake.Envelope) error {
				b.mu.Lock()
				defer b.mu.Unlock()
				if b.fail != nil {
					return b.fail
				}
				b.handled = append(b.handled, e.ID)
				return nil
			},
		}
		mux := http.NewServeMux()
		mux.Handle("POST /webhooks/pancake", rc)
		b.server = httptest.NewServer(mux)
		t.Cleanup(b.server.Close)
		return b
	}
	// deliver posts an attempt of event id signed with secret now, as the
	// server does, and returns the status.
	deliver := func(t *testing.T, b *testBundle, secret, id string) int {
		t.Helper()
		body := []byte(`{"id":"` + id + `","event":"order.created","shop_id":"shop_1","created_at":"2026-11-26T20:31:05.123Z","data":{"order_id":"1"}}`)
		now := time.Now()
		sig, err := pancake.Sign(secret, id, now, body)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, b.server.URL+"/webhooks/pancake", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("webhook-id", id)
		req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		req.Header.Set("webhook-signature", sig)
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	handled := func(b *testBundle) []string {
		b.mu.Lock()
		defer b.mu.Unlock()
		return append([]string(nil), b.handled...)
	}

	t.Run("DuplicatesHandledOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, id := range []string{"evt_1", "evt_2", "evt_1", "evt_1"} {
			if got := deliver(t, b, b.secret, id); got != http.StatusNoContent {
				t.Errorf("deliver %s: status %d, want 204", id, got)
			}
		}
		if diff := cmp.Diff([]string{"evt_1", "evt_2"}, handled(b)); diff != "" {
			t.Errorf("handled diff (-want +got):\n%s", diff)
		}
		if !strings.Contains(b.logs.String(), `"msg":"duplicate","webhook_id":"evt_1"`) {
			t.Errorf("no duplicate logged:\n%s", b.logs)
		}
	})

	t.Run("BadSignatureRejectedAndNotRemembered", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		if got := deliver(t, b, newSecret(t), "evt_1"); got != http.StatusBadRequest {
			t.Errorf("status %d, want 400", got)
		}
		if got := deliver(t, b, b.secret, "evt_1"); got != http.StatusNoContent {
			t.Errorf("status %d, want 204", got)
		}
		if diff := cmp.Diff([]string{"evt_1"}, handled(b)); diff != "" {
			t.Errorf("handled diff (-want +got):\n%s", diff)
		}
	})

	t.Run("FailureIs500AndRetryIsHandled", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.mu.Lock()
		b.fail = errors.New("database down")
		b.mu.Unlock()
		if got := deliver(t, b, b.secret, "evt_1"); got != http.StatusInternalServerError {
			t.Errorf("status %d, want 500", got)
		}
		b.mu.Lock()
		b.fail = nil
		b.mu.Unlock()
		if got := deliver(t, b, b.secret, "evt_1"); got != http.StatusNoContent {
			t.Errorf("retry: status %d, want 204", got)
		}
		if diff := cmp.Diff([]string{"evt_1"}, handled(b)); diff != "" {
			t.Errorf("handled diff (-want +got):\n%s", diff)
		}
	})

	t.Run("RotationBothSecretsAccepted", func(t *testing.T) {
		t.Parallel()
		next := newSecret(t)
		b := setup(t, next)
		if got := deliver(t, b, b.secret, "evt_old"); got != http.StatusNoContent {
			t.Errorf("old secret: status %d", got)
		}
		if got := deliver(t, b, next, "evt_new"); got != http.StatusNoContent {
			t.Errorf("new secret: status %d", got)
		}
	})

	t.Run("OtherMethodsRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		resp, err := testClient.Get(b.server.URL + "/webhooks/pancake")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET: status %d, want 405", resp.StatusCode)
		}
	})
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	s1, s2 := newSecret(t), newSecret(t)
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "PANCAKE_WEBHOOK_SECRET" {
				return v
			}
			return ""
		}
	}

	t.Run("DefaultsAndSecrets", func(t *testing.T) {
		t.Parallel()
		cfg, err := parseConfig(nil, env(" "+s1+" , "+s2+",,"), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		want := &config{Addr: defaultAddr, Path: defaultPath, Secrets: []string{s1, s2}, DedupMax: defaultDedupMax, DedupTTL: defaultDedupTTL}
		if diff := cmp.Diff(want, cfg); diff != "" {
			t.Errorf("parseConfig diff (-want +got):\n%s", diff)
		}
	})

	t.Run("Flags", func(t *testing.T) {
		t.Parallel()
		cfg, err := parseConfig([]string{"-addr", ":9000", "-path", "/in", "-dedup-max", "5", "-dedup-ttl", "1h"}, env(s1), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		want := &config{Addr: ":9000", Path: "/in", Secrets: []string{s1}, DedupMax: 5, DedupTTL: time.Hour}
		if diff := cmp.Diff(want, cfg); diff != "" {
			t.Errorf("parseConfig diff (-want +got):\n%s", diff)
		}
	})

	for _, tc := range []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"NoSecret", nil, "", "PANCAKE_WEBHOOK_SECRET is not set"},
		{"OnlyCommas", nil, " , ,", "PANCAKE_WEBHOOK_SECRET is not set"},
		{"BadSecret", nil, s1 + ",whsec_not*base64", "secret 2"},
		{"BadFlag", []string{"-nope"}, s1, "flag provided but not defined"},
		{"ExtraArgument", []string{"serve"}, s1, "unexpected arguments"},
		{"BadDedup", []string{"-dedup-max", "0"}, s1, "must be positive"},
		{"BadPath", []string{"-path", "in"}, s1, "must start with /"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseConfig(tc.args, env(tc.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), strings.TrimPrefix(s1, "whsec_")) {
				t.Errorf("error shows a secret: %v", err)
			}
		})
	}
}

func TestRun(t *testing.T) {
	t.Parallel()

	t.Run("ConfigErrorReturned", func(t *testing.T) {
		t.Parallel()
		err := run(t.Context(), nil, func(string) string { return "" }, io.Discard)
		if err == nil {
			t.Error("run without a secret: nil error")
		}
	})

	t.Run("HelpIsNotAnError", func(t *testing.T) {
		t.Parallel()
		var out bytes.Buffer
		if err := run(t.Context(), []string{"-h"}, func(string) string { return "" }, &out); err != nil {
			t.Errorf("run -h: %v", err)
		}
		if !strings.Contains(out.String(), "PANCAKE_WEBHOOK_SECRET") {
			t.Errorf("usage does not mention the secret:\n%s", out.String())
		}
	})

	t.Run("ServesUntilCancelled", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- serve(ctx, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNoContent)
			}))
		}()
		resp, err := testClient.Post("http://"+ln.Addr().String()+"/", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("status %d", resp.StatusCode)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
}
