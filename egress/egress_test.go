package egress_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/pancake-pos/pancake-webhooks/egress"
)

// secret sits in every test URL's query; no FailureReason may show it.
const secret = "s3cret-token"

// received is what the test receiver saw of a request.
type received struct {
	Method     string
	RequestURI string
	Header     http.Header
	Body       string
}

// ignoreMeasured leaves out of a Result comparison what varies per run.
var ignoreMeasured = cmpopts.IgnoreFields(egress.Result{}, "Duration", "Header")

func mustNewClient(t testing.TB, cfg egress.Config) *egress.Client {
	t.Helper()
	c, err := egress.NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// checkResult compares res with want (Duration and Header aside) and checks
// that the reason does not leak the URL's query.
func checkResult(t *testing.T, want, res egress.Result) {
	t.Helper()
	if diff := cmp.Diff(want, res, ignoreMeasured); diff != "" {
		t.Errorf("Send returned diff (-want +got):\n%s", diff)
	}
	if strings.Contains(res.FailureReason, secret) {
		t.Errorf("FailureReason %q shows the URL's query", res.FailureReason)
	}
	if res.Duration < 0 {
		t.Errorf("Duration = %v, want >= 0", res.Duration)
	}
}

// blockUntilCleanup returns a channel that is closed when t ends, for
// handlers that must hang; it is registered after the server, so it is
// closed before the server waits for its handlers.
func blockUntilCleanup(t *testing.T) <-chan struct{} {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	return release
}

func TestClientSend(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		mux      *http.ServeMux
		server   *httptest.Server
		url      string // the server's /hook, with a token in the query
		received chan received
	}

	setup := func(t *testing.T) (*egress.Client, *testBundle) {
		t.Helper()
		mux := http.NewServeMux()
		server := httptest.NewServer(mux)
		t.Cleanup(server.Close)
		client := mustNewClient(t, egress.Config{AllowPrivateNetworks: true, UserAgent: "PancakeWebhooks/test"})
		return client, &testBundle{
			mux:      mux,
			server:   server,
			url:      server.URL + "/hook?token=" + secret,
			received: make(chan received, 10),
		}
	}

	// record returns a handler that reports each request on bundle.received,
	// then answers with answer.
	record := func(bundle *testBundle, answer http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			bundle.received <- received{Method: r.Method, RequestURI: r.RequestURI, Header: r.Header.Clone(), Body: string(body)}
			answer(w, r)
		}
	}

	hijack := func(t *testing.T, w http.ResponseWriter, reset bool) {
		t.Helper()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		if reset {
			conn.(*net.TCPConn).SetLinger(0) // close with RST
		}
		conn.Close()
	}

	t.Run("SuccessReturnsStatusHeadersAndBody", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.mux.HandleFunc("/hook", record(bundle, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Reply", "yes")
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, "created")
		}))

		header := http.Header{}
		header.Set("webhook-id", "evt_1")
		header.Set("Content-Type", "text/plain") // the client's own wins
		header.Set("User-Agent", "curl/8")
		res := client.Send(t.Context(), egress.Request{URL: bundle.url, Header: header, Body: []byte(`{"a":1}`)})

		checkResult(t, egress.Result{StatusCode: 201, Body: "created"}, res)
		if !res.Success() || res.Header.Get("X-Reply") != "yes" {
			t.Errorf("Success() = %v, X-Reply = %q; want true, yes", res.Success(), res.Header.Get("X-Reply"))
		}
		got := <-bundle.received
		want := received{
			Method:     http.MethodPost,
			RequestURI: "/hook?token=" + secret,
			Header: http.Header{
				"Content-Length": {"7"},
				"Content-Type":   {"application/json"},
				"User-Agent":     {"PancakeWebhooks/test"},
				"Webhook-Id":     {"evt_1"},
			},
			Body: `{"a":1}`,
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("receiver got diff (-want +got):\n%s", diff)
		}
	})

	t.Run("DefaultUserAgent", func(t *testing.T) {
		t.Parallel()
		_, bundle := setup(t)
		bundle.mux.HandleFunc("/hook", record(bundle, func(http.ResponseWriter, *http.Request) {}))
		res := mustNewClient(t, egress.Config{AllowPrivateNetworks: true}).Send(t.Context(), egress.Request{URL: bundle.url})
		checkResult(t, egress.Result{StatusCode: 200}, res)
		if ua := (<-bundle.received).Header.Get("User-Agent"); ua != "PancakeWebhooks" {
			t.Errorf("User-Agent = %q, want PancakeWebhooks", ua)
		}
	})

	t.Run("NonSuccessStatusIsAFailure", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "boom", http.StatusInternalServerError)
		})
		res := client.Send(t.Context(), egress.Request{URL: bundle.url})
		checkResult(t, egress.Result{StatusCode: 500, Body: "boom\n", FailureReason: "HTTP 500"}, res)
		if res.Success() {
			t.Error("Success() = true for HTTP 500")
		}
	})

	t.Run("GoneIsFlagged", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusGone) })
		res := client.Send(t.Context(), egress.Request{URL: bundle.url})
		checkResult(t, egress.Result{StatusCode: 410, FailureReason: "HTTP 410", Gone: true}, res)
	})

	t.Run("RetryAfterIsReadOn429And503", func(t *testing.T) {
		t.Parallel()
		const date = "Thu, 26 Nov 2026 12:00:00 GMT"
		for _, tt := range []struct {
			name       string
			status     int
			date       string // response Date header; "" sends none
			retryAfter string
			want       time.Duration
		}{
			{"Seconds429", 429, date, "120", 2 * time.Minute},
			{"Seconds503", 503, date, "5", 5 * time.Second},
			{"HTTPDate503", 503, date, "Thu, 26 Nov 2026 12:10:00 GMT", 10 * time.Minute},
			{"HTTPDate429", 429, date, "Thu, 26 Nov 2026 12:00:30 GMT", 30 * time.Second},
			{"HTTPDateWithoutDateUsesTheClock", 429, "", "Thu, 26 Nov 2026 12:05:00 GMT", 5 * time.Minute},
			{"HTTPDateInThePast", 503, date, "Thu, 26 Nov 2026 11:00:00 GMT", 0},
			{"SecondsCappedAtAnHour", 429, date, "86400", time.Hour},
			{"HTTPDateCappedAtAnHour", 503, date, "Fri, 27 Nov 2026 12:00:00 GMT", time.Hour},
			{"Unreadable", 429, date, "soon", 0},
			{"Absent", 503, date, "", 0},
			{"IgnoredOn500", 500, date, "30", 0},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				_, bundle := setup(t)
				bundle.mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
					w.Header()["Date"] = nil // no Date unless set
					if tt.date != "" {
						w.Header().Set("Date", tt.date)
					}
					if tt.retryAfter != "" {
						w.Header().Set("Retry-After", tt.retryAfter)
					}
					w.WriteHeader(tt.status)
				})
				client := mustNewClient(t, egress.Config{
					AllowPrivateNetworks: true,
					NowFunc:              func() time.Time { return time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC) },
				})
				res := client.Send(t.Context(), egress.Request{URL: bundle.url})
				if res.RetryAfter != tt.want || res.StatusCode != tt.status {
					t.Errorf("HTTP %d, Retry-After %q: got HTTP %d, RetryAfter %v; want %v", tt.status, tt.retryAfter, res.StatusCode, res.RetryAfter, tt.want)
				}
			})
		}
	})

	t.Run("RedirectIsNotFollowed", func(t *testing.T) {
		t.Parallel()
		for _, status := range []int{301, 302, 303, 307, 308} {
			client, bundle := setup(t)
			var followed atomic.Bool
			bundle.mux.HandleFunc("/elsewhere", func(http.ResponseWriter, *http.Request) { followed.Store(true) })
			bundle.mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Location", "/elsewhere")
				w.WriteHeader(status)
			})
			res := client.Send(t.Context(), egress.Request{URL: bundle.url})
			checkResult(t, egress.Result{StatusCode: status, FailureReason: "redirect not followed (HTTP " + strconv.Itoa(status) + ")"}, res)
			if followed.Load() {
				t.Errorf("HTTP %d: redirect followed", status)
			}
		}
		// A 3xx without a Location (304 Not Modified) is no redirect.
		client, bundle := setup(t)
		bundle.mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(304) })
		checkResult(t, egress.Result{StatusCode: 304, FailureReason: "HTTP 304"}, client.Send(t.Context(), egress.Request{URL: bundle.url}))
	})

	t.Run("BodyIsCutAtTheLimit", func(t *testing.T) {
		t.Parallel()
		_, bundle := setup(t)
		bundle.mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, strings.Repeat("x", 5000)) })
		client := mustNewClient(t, egress.Config{AllowPrivateNetworks: true, MaxResponseBody: 1000})
		res := client.Send(t.Context(), egress.Request{URL: bundle.url})
		checkResult(t, egress.Result{StatusCode: 200, Body: strings.Repeat("x", 1000), BodyTruncated: true}, res)
		if !res.Success() {
			t.Error("a cut body made the attempt fail")
		}
	})

	t.Run("BodyAtTheLimitIsWhole", func(t *testing.T) {
		t.Parallel()
		_, bundle := setup(t)
		bundle.mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, strings.Repeat("x", 1000)) })
		client := mustNewClient(t, egress.Config{AllowPrivateNetworks: true, MaxResponseBody: 1000})
		res := client.Send(t.Context(), egress.Request{URL: bundle.url})
		checkResult(t, egress.Result{StatusCode: 200, Body: strings.Repeat("x", 1000)}, res)
	})

	t.Run("EndlessBodyIsNotRead", func(t *testing.T) {
		t.Parallel()
		_, bundle := setup(t)
		bundle.mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
			chunk := []byte(strings.Repeat("y", 32<<10))
			for { // until the client hangs up
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		})
		client := mustNewClient(t, egress.Config{AllowPrivateNetworks: true, MaxResponseBody: 100, Timeout: 10 * time.Second})
		res := client.Send(t.Context(), egress.Request{URL: bundle.url})
		checkResult(t, egress.Result{StatusCode: 200, Body: strings.Repeat("y", 100), BodyTruncated: true}, res)
	})

	t.Run("BodyIsValidUTF8", func(t *testing.T) {
		t.Parallel()
		_, bundle := setup(t)
		bundle.mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.URL.Query().Get("reply"))
		})
		for _, tt := range []struct {
			reply string
			limit int64
			want  egress.Result
		}{
			{"abcdé!", 5, egress.Result{StatusCode: 200, Body: "abcd", BodyTruncated: true}}, // é cut in two by the limit
			{"ab\xffc", 100, egress.Result{StatusCode: 200, Body: "ab\uFFFDc"}},
			{"a\x00b", 100, egress.Result{StatusCode: 200, Body: "a\uFFFDb"}},                         // PostgreSQL's text refuses NUL
			{"a\xffb\xffc", 5, egress.Result{StatusCode: 200, Body: "a\uFFFDb", BodyTruncated: true}}, // the replacements grew it past the limit
		} {
			client := mustNewClient(t, egress.Config{AllowPrivateNetworks: true, MaxResponseBody: tt.limit})
			res := client.Send(t.Context(), egress.Request{URL: bundle.server.URL + "/hook?reply=" + url.QueryEscape(tt.reply)})
			checkResult(t, tt.want, res)
		}
	})

	t.Run("TimeoutWaitingForHeaders", func(t *testing.T) {
		t.Parallel()
		_, bundle := setup(t)
		release := blockUntilCleanup(t)
		bundle.mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) { <-release })
		client := mustNewClient(t, egress.Config{AllowPrivateNetworks: true, Timeout: 200 * time.Millisecond})
		res := client.Send(t.Context(), egress.Request{URL: bundle.url})
		checkResult(t, egress.Result{FailureReason: "timeout after 200ms"}, res)
	})

	t.Run("TimeoutWhileTheBodyTrickles", func(t *testing.T) {
		t.Parallel()
		_, bundle := setup(t)
		release := blockUntilCleanup(t)
		bundle.mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "partial")
			http.NewResponseController(w).Flush()
			<-release
		})
		client := mustNewClient(t, egress.Config{AllowPrivateNetworks: true, Timeout: 200 * time.Millisecond})
		res := client.Send(t.Context(), egress.Request{URL: bundle.url})
		// The 2xx came within the timeout: the receiver took the delivery.
		checkResult(t, egress.Result{StatusCode: 200, Body: "partial", BodyTruncated: true}, res)
		if !res.Success() {
			t.Error("Success() = false for a 2xx whose body the timeout cut")
		}
	})

	t.Run("ABodyEndedEarlyAfterA2xxIsCut", func(t *testing.T) {
		t.Parallel()
		res := rawReceiver(t, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
		checkResult(t, egress.Result{StatusCode: 200, Body: "short", BodyTruncated: true}, res)
		if !res.Success() {
			t.Error("Success() = false for a 2xx whose body ended early")
		}
	})

	t.Run("AGzipBodyIsKeptAsItCame", func(t *testing.T) {
		// Nothing asks for gzip; a receiver that sends it anyway (here not
		// even valid) is not unpacked, and its 2xx stands.
		t.Parallel()
		res := rawReceiver(t, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope")
		checkResult(t, egress.Result{StatusCode: 200, Body: "nope"}, res)
		if got := res.Header.Get("Content-Encoding"); got != "gzip" {
			t.Errorf("Content-Encoding = %q, want gzip kept", got)
		}
	})

	t.Run("AMalformedHeaderIsNamed", func(t *testing.T) {
		t.Parallel()
		for _, header := range []string{"X-Bad\x01: 1", "no colon here"} {
			res := rawReceiver(t, "HTTP/1.1 200 OK\r\n"+header+"\r\nContent-Length: 0\r\n\r\n")
			checkResult(t, egress.Result{FailureReason: "invalid HTTP response: malformed header"}, res)
		}
	})

	t.Run("AStatusOutsideHTTPsIsNoResponse", func(t *testing.T) {
		t.Parallel()
		for _, code := range []string{"000", "099", "600", "999"} {
			res := rawReceiver(t, "HTTP/1.1 "+code+" Odd\r\nContent-Length: 0\r\n\r\n")
			checkResult(t, egress.Result{FailureReason: "invalid HTTP response: status " + code}, res)
		}
	})

	t.Run("TLSHandshakeTimeout", func(t *testing.T) {
		t.Parallel()
		addr := silentListener(t)
		client := mustNewClient(t, egress.Config{AllowPrivateNetworks: true, ConnectTimeout: 100 * time.Millisecond, Timeout: 10 * time.Second})
		res := client.Send(t.Context(), egress.Request{URL: "https://" + addr + "/hook?token=" + secret})
		checkResult(t, egress.Result{FailureReason: "tls handshake timeout after 100ms"}, res)
	})

	t.Run("ConnectionRefused", func(t *testing.T) {
		t.Parallel()
		client, _ := setup(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		res := client.Send(t.Context(), egress.Request{URL: "http://" + addr + "/hook?token=" + secret})
		checkResult(t, egress.Result{FailureReason: "connection refused"}, res)
	})

	t.Run("ConnectionReset", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) { hijack(t, w, true) })
		res := client.Send(t.Context(), egress.Request{URL: bundle.url})
		checkResult(t, egress.Result{FailureReason: "connection reset"}, res)
	})

	t.Run("ConnectionClosedWithoutAnAnswer", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) { hijack(t, w, false) })
		res := client.Send(t.Context(), egress.Request{URL: bundle.url})
		checkResult(t, egress.Result{FailureReason: "connection closed by the receiver"}, res)
	})

	t.Run("KeptAliveConnectionIsReused", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		var peers []string
		bundle.mux.HandleFunc("/peer", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.RemoteAddr) })
		for range 3 {
			res := client.Send(t.Context(), egress.Request{URL: bundle.server.URL + "/peer"})
			checkResult(t, egress.Result{StatusCode: 200, Body: res.Body}, res)
			peers = append(peers, res.Body)
		}
		if peers[0] != peers[1] || peers[1] != peers[2] {
			t.Errorf("3 sequential sends came from %v, want one kept-alive connection", peers)
		}
	})

	t.Run("ARequestTheReceiverDroppedIsNotSentAgain", func(t *testing.T) {
		// One attempt is one request. A receiver that read the request and
		// dropped its kept-alive connection without an answer (a handler
		// that panicked) got it again on every other kept-alive connection,
		// unrecorded: up to ~30 times an attempt (audit).
		t.Parallel()
		client, bundle := setup(t)
		var hits atomic.Int32
		warm := make(chan struct{})
		bundle.mux.HandleFunc("/warm", func(w http.ResponseWriter, r *http.Request) { <-warm })
		bundle.mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			io.ReadAll(r.Body)
			hijack(t, w, false)
		})
		var wg sync.WaitGroup // 4 kept-alive connections in the pool
		for range 4 {
			wg.Go(func() { client.Send(t.Context(), egress.Request{URL: bundle.server.URL + "/warm"}) })
		}
		time.Sleep(50 * time.Millisecond)
		close(warm)
		wg.Wait()
		res := client.Send(t.Context(), egress.Request{URL: bundle.url, Body: []byte(`{"a":1}`)})
		checkResult(t, egress.Result{FailureReason: "connection closed by the receiver"}, res)
		if got := hits.Load(); got != 1 {
			t.Errorf("the receiver got the request %d times in one attempt, want 1", got)
		}
	})

	t.Run("AKeptAliveConnectionTheReceiverClosedIsNotUsed", func(t *testing.T) {
		// A receiver that closes idle connections (a keep-alive timeout)
		// costs no failed attempt: the next one goes on a new connection.
		t.Parallel()
		server := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		server.Config.IdleTimeout = 20 * time.Millisecond
		server.Start()
		t.Cleanup(server.Close)
		client := mustNewClient(t, egress.Config{AllowPrivateNetworks: true})
		for range 3 {
			checkResult(t, egress.Result{StatusCode: 200}, client.Send(t.Context(), egress.Request{URL: server.URL, Body: []byte(`{}`)}))
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("UnknownHostFailsTheDNSLookup", func(t *testing.T) {
		t.Parallel()
		client := mustNewClient(t, egress.Config{AllowPrivateNetworks: true, Timeout: 5 * time.Second})
		res := client.Send(t.Context(), egress.Request{URL: "https://no-such-host.invalid/hook?token=" + secret})
		if !strings.HasPrefix(res.FailureReason, "dns lookup failed") || res.StatusCode != 0 {
			t.Errorf("Send to an .invalid host = %+v, want a dns lookup failure", res)
		}
		checkResult(t, egress.Result{FailureReason: res.FailureReason}, res)
	})

	t.Run("UntrustedCertificateFailsTLS", func(t *testing.T) {
		t.Parallel()
		client, _ := setup(t)
		server := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		t.Cleanup(server.Close)
		res := client.Send(t.Context(), egress.Request{URL: server.URL + "/hook?token=" + secret})
		checkResult(t, egress.Result{FailureReason: "tls handshake failed: certificate signed by an unknown authority"}, res)
	})

	t.Run("OldTLSVersionFailsTLS", func(t *testing.T) {
		t.Parallel()
		client, _ := setup(t)
		server := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		server.TLS = &tls.Config{MaxVersion: tls.VersionTLS11}
		server.StartTLS()
		t.Cleanup(server.Close)
		res := client.Send(t.Context(), egress.Request{URL: server.URL + "/hook?token=" + secret})
		checkResult(t, egress.Result{FailureReason: "tls handshake failed: remote error: protocol version not supported"}, res)
	})

	t.Run("PlainHTTPReceiverOnAnHTTPSURLFailsTLS", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		res := client.Send(t.Context(), egress.Request{URL: "https://" + bundle.server.Listener.Addr().String() + "/hook?token=" + secret})
		checkResult(t, egress.Result{FailureReason: "tls handshake failed: the receiver answered plain HTTP"}, res)
	})

	t.Run("LoopbackIsRefusedAtConnectTime", func(t *testing.T) {
		t.Parallel()
		_, bundle := setup(t)
		var hit atomic.Bool
		bundle.mux.HandleFunc("/hook", func(http.ResponseWriter, *http.Request) { hit.Store(true) })
		_, port, _ := net.SplitHostPort(bundle.server.Listener.Addr().String())
		client := mustNewClient(t, egress.Config{}) // the default refuses non-public destinations

		res := client.Send(t.Context(), egress.Request{URL: bundle.url})
		checkResult(t, egress.Result{FailureReason: "destination not allowed"}, res)

		// Names are checked on the address they resolve to.
		res = client.Send(t.Context(), egress.Request{URL: "http://localhost:" + port + "/hook?token=" + secret})
		checkResult(t, egress.Result{FailureReason: "destination not allowed"}, res)

		for host, want := range map[string]string{
			"[::1]":              "destination not allowed",
			"[::ffff:127.0.0.1]": "destination not allowed",
		} {
			if host == "[::1]" && !hasIPv6() {
				continue
			}
			res = client.Send(t.Context(), egress.Request{URL: "http://" + host + ":" + port + "/hook?token=" + secret})
			checkResult(t, egress.Result{FailureReason: want}, res)
		}
		if hit.Load() {
			t.Error("the receiver on loopback was reached")
		}
	})

	t.Run("NonPublicDestinationsAreRefusedBeforeConnecting", func(t *testing.T) {
		t.Parallel()
		// The guard runs before connect(2), so these need no network.
		client := mustNewClient(t, egress.Config{})
		for host, want := range map[string]string{
			"10.0.0.1":                 "destination not allowed",
			"192.168.1.10:8080":        "destination not allowed",
			"169.254.169.254":          "destination not allowed",
			"100.64.0.1":               "destination not allowed",
			"0.0.0.0":                  "destination not allowed",
			"[::ffff:169.254.169.254]": "destination not allowed",
			"[fd00::1]:65535":          "destination not allowed",
			"[64:ff9b::a00:1]":         "destination not allowed",
		} {
			if strings.Contains(host, "::") && !strings.Contains(host, "ffff:") && !hasIPv6() {
				continue
			}
			res := client.Send(t.Context(), egress.Request{URL: "http://" + host + "/latest/meta-data?token=" + secret})
			checkResult(t, egress.Result{FailureReason: want}, res)
		}
	})

	t.Run("AllowCIDRsOpenChosenRanges", func(t *testing.T) {
		t.Parallel()
		_, bundle := setup(t)
		bundle.mux.HandleFunc("/hook", func(http.ResponseWriter, *http.Request) {})

		for _, prefix := range []string{"127.0.0.0/8", "127.0.0.1/32", "::ffff:127.0.0.0/104"} {
			client := mustNewClient(t, egress.Config{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix(prefix)}})
			if res := client.Send(t.Context(), egress.Request{URL: bundle.url}); !res.Success() {
				t.Errorf("AllowCIDRs %s: Send = %+v, want success", prefix, res)
			}
		}

		client := mustNewClient(t, egress.Config{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
		res := client.Send(t.Context(), egress.Request{URL: bundle.url})
		checkResult(t, egress.Result{FailureReason: "destination not allowed"}, res)
	})

	t.Run("RequireHTTPSRefusesPlainHTTP", func(t *testing.T) {
		t.Parallel()
		_, bundle := setup(t)
		bundle.mux.HandleFunc("/hook", record(bundle, func(http.ResponseWriter, *http.Request) {}))
		client := mustNewClient(t, egress.Config{AllowPrivateNetworks: true, RequireHTTPS: true})
		for _, raw := range []string{bundle.url, strings.Replace(bundle.url, "http://", "HTTP://", 1)} {
			res := client.Send(t.Context(), egress.Request{URL: raw})
			checkResult(t, egress.Result{FailureReason: "invalid URL: must use https"}, res)
		}
		select {
		case got := <-bundle.received:
			t.Errorf("the receiver got %s %s", got.Method, got.RequestURI)
		default:
		}
		// An https URL goes out as ever (here it meets a plain listener).
		res := client.Send(t.Context(), egress.Request{URL: strings.Replace(bundle.url, "http://", "https://", 1)})
		checkResult(t, egress.Result{FailureReason: "tls handshake failed: the receiver answered plain HTTP"}, res)
	})

	t.Run("InvalidURLsAreRefused", func(t *testing.T) {
		t.Parallel()
		client, _ := setup(t)
		for raw, want := range map[string]string{
			"ftp://x.example/":                 "invalid URL: scheme must be http or https",
			"file:///etc/passwd":               "invalid URL: scheme must be http or https",
			"/relative?token=" + secret:        "invalid URL: scheme must be http or https",
			"http://user:" + secret + "@x.ex/": "invalid URL: user and password are not allowed",
			"http://user@x.example/":           "invalid URL: user and password are not allowed",
			"http:///path":                     "invalid URL: no host",
			"http:x.example":                   "invalid URL: no host",
			"http://x.example:0/":              "invalid URL: bad port",
			"http://x.example:70000/":          "invalid URL: bad port",
			"http://x.example:12ab/":           "invalid URL",
			"http://x.example/hook?a=b c":      "invalid URL: a space in the query",
			"http://[::1/?token=" + secret:     "invalid URL",
			"":                                 "invalid URL: scheme must be http or https",
		} {
			res := client.Send(t.Context(), egress.Request{URL: raw})
			checkResult(t, egress.Result{FailureReason: want}, res)
			if err := egress.CheckURL(raw); err == nil || err.Error() != want {
				t.Errorf("CheckURL(%q) = %v, want %q", raw, err, want)
			}
		}
	})

	t.Run("SpaceInPathIsSentEscaped", func(t *testing.T) {
		// Only a space in the query is refused (see CheckURL): one in the
		// path reaches the receiver escaped, a fragment is never sent.
		t.Parallel()
		client, bundle := setup(t)
		uri := make(chan string, 1)
		bundle.mux.HandleFunc("/my%20hook", func(w http.ResponseWriter, r *http.Request) { uri <- r.RequestURI })
		res := client.Send(t.Context(), egress.Request{URL: bundle.server.URL + "/my hook#a b"})
		if !res.Success() {
			t.Fatalf("send to a path with a space: %+v", res)
		}
		if got := <-uri; got != "/my%20hook" {
			t.Errorf("request URI %q, want /my%%20hook", got)
		}
	})

	t.Run("InvalidRequestHeaderIsAFailure", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		res := client.Send(t.Context(), egress.Request{URL: bundle.url, Header: http.Header{"X-Bad": {"a\nb"}}})
		checkResult(t, egress.Result{FailureReason: "invalid request header"}, res)
	})

	t.Run("CancelledContextEndsTheAttempt", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		release := blockUntilCleanup(t)
		ctx, cancel := context.WithCancel(t.Context())
		bundle.mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
			cancel()
			<-release
		})
		res := client.Send(ctx, egress.Request{URL: bundle.url})
		checkResult(t, egress.Result{FailureReason: "cancelled"}, res)
	})

	t.Run("CallerDeadlineEndsTheAttempt", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		release := blockUntilCleanup(t)
		bundle.mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) { <-release })
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		res := client.Send(ctx, egress.Request{URL: bundle.url})
		if !strings.HasPrefix(res.FailureReason, "timeout after ") || res.FailureReason == "timeout after 15s" {
			t.Errorf("FailureReason = %q, want the time the caller allowed", res.FailureReason)
		}
		checkResult(t, egress.Result{FailureReason: res.FailureReason}, res)
	})

	t.Run("ConcurrentSendsShareTheClient", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) })
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				body := `{"n":` + strconv.Itoa(i) + `}`
				res := client.Send(t.Context(), egress.Request{URL: bundle.url, Body: []byte(body)})
				if !res.Success() || res.Body != body {
					t.Errorf("send %d: %+v", i, res)
				}
			})
		}
		wg.Wait()
	})
}

func TestNewClient(t *testing.T) {
	t.Parallel()

	t.Run("ZeroConfigIsValid", func(t *testing.T) {
		t.Parallel()
		if _, err := egress.NewClient(egress.Config{}); err != nil {
			t.Fatalf("NewClient(Config{}) = %v", err)
		}
	})

	t.Run("ErrorsNameTheField", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			cfg  egress.Config
			want string
		}{
			{egress.Config{Timeout: -1}, "egress: Timeout cannot be less than zero"},
			{egress.Config{ConnectTimeout: -time.Second}, "egress: ConnectTimeout cannot be less than zero"},
			{egress.Config{MaxResponseBody: -1}, "egress: MaxResponseBody cannot be less than zero"},
			{egress.Config{MaxIdleConnsPerHost: -1}, "egress: MaxIdleConnsPerHost cannot be less than zero"},
			{egress.Config{UserAgent: "x\r\nX-Injected: 1"}, "egress: UserAgent cannot contain a line break"},
			{egress.Config{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), {}}}, "egress: AllowCIDRs[1] is not a valid prefix"},
		} {
			_, err := egress.NewClient(tt.cfg)
			if err == nil || err.Error() != tt.want {
				t.Errorf("NewClient(%+v) = %v, want %q", tt.cfg, err, tt.want)
			}
		}
	})
}

// Not parallel: it changes the environment. The receiver listens on a
// non-loopback address, because net/http never proxies loopback anyway.
func TestProxyFromEnvironmentIsIgnored(t *testing.T) {
	var proxied atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	t.Cleanup(proxy.Close)

	ip := nonLoopbackIP(t)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	receiver := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	receiver.Listener.Close()
	receiver.Listener = ln
	receiver.Start()
	t.Cleanup(receiver.Close)
	target := receiver.URL + "/hook"

	// The recording proxy does catch a request sent through it.
	viaProxy := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(must(url.Parse(proxy.URL)))}}
	resp, err := viaProxy.Post(target, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	viaProxy.CloseIdleConnections()
	if proxied.Swap(0) != 1 {
		t.Fatal("the recording proxy did not see a proxied request")
	}

	for _, name := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"} {
		t.Setenv(name, proxy.URL)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	res := mustNewClient(t, egress.Config{AllowPrivateNetworks: true}).Send(t.Context(), egress.Request{URL: target})
	if !res.Success() || proxied.Load() != 0 {
		t.Errorf("Send = %+v, proxy saw %d requests; want a direct success", res, proxied.Load())
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	for ip, want := range map[string]string{
		"127.0.0.1":                "a loopback address",
		"127.255.255.254":          "a loopback address",
		"::1":                      "a loopback address",
		"::ffff:127.0.0.1":         "a loopback address",
		"::ffff:10.1.2.3":          "a private address",
		"10.0.0.1":                 "a private address",
		"172.16.5.4":               "a private address",
		"172.31.255.255":           "a private address",
		"192.168.1.1":              "a private address",
		"fd00::1":                  "a private address",
		"fc00::1":                  "a private address",
		"169.254.169.254":          "a link-local address",
		"::ffff:169.254.169.254":   "a link-local address",
		"fe80::1":                  "a link-local address",
		"fe80::1%eth0":             "a link-local address",
		"100.64.0.1":               "a shared (carrier-grade NAT) address",
		"100.127.255.255":          "a shared (carrier-grade NAT) address",
		"224.0.0.1":                "a multicast address",
		"239.255.255.250":          "a multicast address",
		"ff02::1":                  "a multicast address",
		"0.0.0.0":                  "an unspecified address",
		"0.1.2.3":                  `a "this network" address`,
		"::":                       "an unspecified address",
		"255.255.255.255":          "a broadcast address",
		"240.0.0.1":                "a reserved address",
		"192.0.2.1":                "a documentation address",
		"198.51.100.7":             "a documentation address",
		"203.0.113.9":              "a documentation address",
		"2001:db8::1":              "a documentation address",
		"198.18.0.1":               "a benchmarking address",
		"64:ff9b::7f00:1":          "a loopback address",
		"64:ff9b::a9fe:a9fe":       "a link-local address",
		"64:ff9b:1::1":             "a NAT64 local-use address",
		"2002:7f00:1::1":           "a loopback address",
		"2002:a9fe:a9fe::1":        "a link-local address",
		"2002:c0a8:101::1":         "a private address",
		"::127.0.0.1":              "a loopback address",
		"::10.0.0.1":               "a private address",
		"2001::1":                  "a reserved address", // Teredo
		"4000::1":                  "a reserved address", // outside 2000::/3
		"fec0::1":                  "a site-local address",
		"8.8.8.8":                  "",
		"1.1.1.1":                  "",
		"93.184.216.34":            "",
		"172.32.0.1":               "",
		"100.128.0.1":              "",
		"::ffff:8.8.8.8":           "",
		"2606:4700:4700::1111":     "",
		"2a00:1450:4001:80b::200e": "",
		"64:ff9b::808:808":         "", // NAT64 of 8.8.8.8
		"2002:808:808::1":          "", // 6to4 of 8.8.8.8
	} {
		if got := egress.Classify(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Classify(%s) = %q, want %q", ip, got, want)
		}
	}
	if got := egress.Classify(netip.Addr{}); got != "not an IP address" {
		t.Errorf("Classify(zero Addr) = %q", got)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                                 0,
		"0":                                0,
		"-5":                               0,
		" 120 ":                            2 * time.Minute,
		"3600":                             time.Hour,
		"3601":                             time.Hour,
		"999999999999999999999":            time.Hour, // beyond int64: the longest
		"-999999999999999999999":           0,
		"9223372036854775807":              time.Hour,
		"Thu, 26 Nov 2026 12:10:00 GMT":    10 * time.Minute,
		"Thursday, 26-Nov-26 12:10:00 GMT": 10 * time.Minute,
		"Thu Nov 26 12:10:00 2026":         10 * time.Minute,
		"Thu, 26 Nov 2026 11:00:00 GMT":    0,
		"Fri, 27 Nov 2026 12:00:00 GMT":    time.Hour,
		"1.5":                              0,
		"garbage":                          0,
	} {
		if got := egress.ParseRetryAfter(v, now); got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func FuzzClassify(f *testing.F) {
	f.Add("127.0.0.1")
	f.Add("::ffff:10.0.0.1")
	f.Fuzz(func(t *testing.T, s string) {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return
		}
		kind := egress.Classify(ip)
		if kind != "" && !strings.HasPrefix(kind, "a ") && !strings.HasPrefix(kind, "an ") {
			t.Fatalf("Classify(%s) = %q, not a phrase for the failure reason", ip, kind)
		}
		// The zone never matters, and IPv4-mapped forms mean their IPv4 address.
		if z := egress.Classify(ip.WithZone("")); z != kind {
			t.Fatalf("Classify(%s) = %q but without its zone %q", ip, kind, z)
		}
		if ip.Is4() {
			if mapped := egress.Classify(netip.AddrFrom16(ip.As16())); mapped != kind {
				t.Fatalf("Classify(%s) = %q but its mapped form gives %q", ip, kind, mapped)
			}
		}
		// Whatever the standard library calls non-public is never public here.
		if kind == "" && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
			ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() || !ip.IsGlobalUnicast()) {
			t.Fatalf("Classify(%s) says public", ip)
		}
	})
}

func FuzzCheckURL(f *testing.F) {
	f.Add("https://example.com/hook?token=x")
	f.Add("http://user:pw@example.com/")
	reasons := map[string]bool{
		"invalid URL": true,
		"invalid URL: scheme must be http or https":      true,
		"invalid URL: user and password are not allowed": true,
		"invalid URL: no host":                           true,
		"invalid URL: bad port":                          true,
		"invalid URL: a space in the query":              true,
	}
	f.Fuzz(func(t *testing.T, raw string) {
		err := egress.CheckURL(raw)
		if err != nil {
			if !reasons[err.Error()] {
				t.Fatalf("CheckURL(%q) = %q, not one of the fixed reasons", raw, err)
			}
			return
		}
		u, perr := url.Parse(raw)
		if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Hostname() == "" {
			t.Fatalf("CheckURL(%q) accepted %#v (parse error %v)", raw, u, perr)
		}
		if _, err := http.NewRequest(http.MethodPost, raw, nil); err != nil {
			t.Fatalf("CheckURL(%q) accepted a URL net/http refuses: %v", raw, err)
		}
	})
}

func FuzzParseRetryAfter(f *testing.F) {
	f.Add("120")
	f.Add("Thu, 26 Nov 2026 12:10:00 GMT")
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		if d := egress.ParseRetryAfter(v, now); d < 0 || d > egress.MaxRetryAfter {
			t.Fatalf("ParseRetryAfter(%q) = %v, outside [0, %v]", v, d, egress.MaxRetryAfter)
		}
	})
}

func BenchmarkSend(b *testing.B) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"ok":true}`)
	}))
	b.Cleanup(server.Close)
	client := mustNewClient(b, egress.Config{AllowPrivateNetworks: true, UserAgent: "PancakeWebhooks/bench"})
	body := []byte(`{"id":"evt_1","event":"order.created","shop_id":"shop_1","created_at":"2026-11-26T12:00:00Z","data":{"order_id":"o-1","total":"12.50"}}`)
	header := http.Header{
		"Webhook-Id":        {"evt_1"},
		"Webhook-Timestamp": {"1795694400"},
		"Webhook-Signature": {"v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="},
	}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if res := client.Send(ctx, egress.Request{URL: server.URL + "/hook", Header: header, Body: body}); !res.Success() {
			b.Fatal(res.FailureReason)
		}
	}
}

// silentListener accepts TCP connections and never says a word, until the
// test ends; it returns its address.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// nonLoopbackIP returns an address of this machine's that is not loopback,
// or skips the test.
func nonLoopbackIP(t *testing.T) netip.Addr {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("no interface addresses: %v", err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && !p.Addr().IsLoopback() {
			return p.Addr()
		}
	}
	t.Skip("no non-loopback IPv4 address to listen on")
	return netip.Addr{}
}

// hasIPv6 reports whether this machine can open IPv6 sockets (the guard runs
// after the socket is made, just before connect).
func hasIPv6() bool {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestOutcome(t *testing.T) {
	t.Parallel()
	for want, res := range map[string]egress.Result{
		"success":    {StatusCode: 204},
		"http_error": {StatusCode: 500, FailureReason: "HTTP 500"},
		"timeout":    {FailureReason: "timeout after 15s"},
		"refused":    {FailureReason: "connection refused"},
		"dns":        {FailureReason: "dns lookup failed: no such host"},
		"tls":        {FailureReason: "tls handshake failed: certificate is not valid for this host"},
		"blocked":    {FailureReason: "destination not allowed"},
		"other":      {FailureReason: "connection reset"},
	} {
		if got := res.Outcome(); got != want {
			t.Errorf("Outcome(%+v) = %q, want %q", res, got, want)
		}
	}
}

// rawReceiver sends one request to a receiver that reads it and answers
// answer, as written, then closes; it returns the result.
func rawReceiver(t *testing.T, answer string) egress.Result {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		req, err := http.ReadRequest(bufio.NewReader(conn))
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		io.WriteString(conn, answer)
	}()
	client := mustNewClient(t, egress.Config{AllowPrivateNetworks: true, Timeout: 5 * time.Second})
	res := client.Send(t.Context(), egress.Request{URL: "http://" + ln.Addr().String() + "/hook", Body: []byte(`{}`)})
	ln.Close() // Accept returns, had the request never come
	<-done
	return res
}
