package egress_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pancake-pos/pancake-webhooks/egress"
)

func newClient(t *testing.T, cfg egress.Config) *egress.Client {
	t.Helper()
	c, err := egress.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func server(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func TestSend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	open := egress.Config{AllowPrivateNetworks: true, UserAgent: "PancakeWebhooks/test"}

	t.Run("SuccessKeepsStatusHeadersAndBody", func(t *testing.T) {
		t.Parallel()
		var got *http.Request
		var body []byte
		s := server(t, func(w http.ResponseWriter, r *http.Request) {
			got, body = r, must(io.ReadAll(r.Body))
			w.Header().Set("X-Reply", "yes")
			w.WriteHeader(201)
			io.WriteString(w, "created")
		})
		h := http.Header{}
		h.Set("webhook-id", "evt_1")
		res := newClient(t, open).Send(ctx, egress.Request{URL: s.URL + "/hook?x=1", Header: h, Body: []byte(`{"a":1}`)})
		if !res.Success() || res.StatusCode != 201 || res.Body != "created" || res.Header.Get("X-Reply") != "yes" || res.FailureReason != "" {
			t.Fatalf("result = %+v", res)
		}
		if got.Method != "POST" || got.Header.Get("Content-Type") != "application/json" || got.Header.Get("User-Agent") != "PancakeWebhooks/test" ||
			got.Header.Get("webhook-id") != "evt_1" || string(body) != `{"a":1}` {
			t.Fatalf("request = %s %v %s", got.Method, got.Header, body)
		}
	})

	t.Run("NonSuccessStatusIsAFailure", func(t *testing.T) {
		t.Parallel()
		s := server(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
		res := newClient(t, open).Send(ctx, egress.Request{URL: s.URL})
		if res.Success() || res.FailureReason != "HTTP 500" || res.StatusCode != 500 || res.Gone {
			t.Fatalf("result = %+v", res)
		}
	})

	t.Run("GoneIsFlagged", func(t *testing.T) {
		t.Parallel()
		s := server(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(410) })
		if res := newClient(t, open).Send(ctx, egress.Request{URL: s.URL}); !res.Gone || res.FailureReason != "HTTP 410" {
			t.Fatalf("result = %+v", res)
		}
	})

	t.Run("RetryAfterOn429And503", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct {
			status int
			header string
			want   time.Duration
		}{
			{429, "30", 30 * time.Second},
			{503, "7200", time.Hour},
			{500, "30", 0},
			{429, "soon", 0},
		} {
			s := server(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", c.header)
				w.WriteHeader(c.status)
			})
			if res := newClient(t, open).Send(ctx, egress.Request{URL: s.URL}); res.RetryAfter != c.want {
				t.Errorf("%d Retry-After %q: %v, want %v", c.status, c.header, res.RetryAfter, c.want)
			}
		}
	})

	t.Run("RedirectIsNotFollowed", func(t *testing.T) {
		t.Parallel()
		followed := false
		target := server(t, func(w http.ResponseWriter, r *http.Request) { followed = true })
		s := server(t, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, target.URL, 301) })
		res := newClient(t, open).Send(ctx, egress.Request{URL: s.URL})
		if followed || res.Success() || res.StatusCode != 301 || res.FailureReason != "redirect not followed (HTTP 301)" {
			t.Fatalf("result = %+v, followed %v", res, followed)
		}
	})

	t.Run("BodyIsCutAtTheLimit", func(t *testing.T) {
		t.Parallel()
		s := server(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, strings.Repeat("x", 5000)) })
		res := newClient(t, egress.Config{AllowPrivateNetworks: true, MaxResponseBody: 1000}).Send(ctx, egress.Request{URL: s.URL})
		if !res.Success() || len(res.Body) != 1000 || !res.BodyTruncated {
			t.Fatalf("body %d bytes, truncated %v", len(res.Body), res.BodyTruncated)
		}
	})

	t.Run("TimeoutIsBounded", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		s := server(t, func(w http.ResponseWriter, r *http.Request) { <-release })
		t.Cleanup(func() { close(release) })
		res := newClient(t, egress.Config{AllowPrivateNetworks: true, Timeout: 200 * time.Millisecond}).Send(ctx, egress.Request{URL: s.URL})
		if res.FailureReason != "timeout after 200ms" || res.StatusCode != 0 {
			t.Fatalf("result = %+v", res)
		}
	})

	t.Run("ConnectionRefused", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		res := newClient(t, open).Send(ctx, egress.Request{URL: "http://" + addr})
		if res.FailureReason != "connection refused" {
			t.Fatalf("result = %+v", res)
		}
	})

	t.Run("UnknownHost", func(t *testing.T) {
		t.Parallel()
		res := newClient(t, open).Send(ctx, egress.Request{URL: "https://no-such-host.invalid/hook"})
		if !strings.HasPrefix(res.FailureReason, "dns lookup failed") {
			t.Fatalf("result = %+v", res)
		}
	})

	t.Run("UntrustedCertificate", func(t *testing.T) {
		t.Parallel()
		s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		t.Cleanup(s.Close)
		res := newClient(t, open).Send(ctx, egress.Request{URL: s.URL})
		if !strings.HasPrefix(res.FailureReason, "tls handshake failed") {
			t.Fatalf("result = %+v", res)
		}
	})

	t.Run("LoopbackIsRefusedAtConnectTime", func(t *testing.T) {
		t.Parallel()
		hit := false
		s := server(t, func(w http.ResponseWriter, r *http.Request) { hit = true })
		res := newClient(t, egress.Config{}).Send(ctx, egress.Request{URL: s.URL})
		if hit || res.FailureReason != "destination not allowed: 127.0.0.1 is a loopback address" {
			t.Fatalf("result = %+v, hit %v", res, hit)
		}
		// A name that resolves to loopback is refused the same way.
		port := s.URL[strings.LastIndex(s.URL, ":"):]
		res = newClient(t, egress.Config{}).Send(ctx, egress.Request{URL: "http://localhost" + port})
		if hit || !strings.HasPrefix(res.FailureReason, "destination not allowed: ") {
			t.Fatalf("localhost: result = %+v", res)
		}
	})

	t.Run("AllowListOpensChosenRanges", func(t *testing.T) {
		t.Parallel()
		s := server(t, func(w http.ResponseWriter, r *http.Request) {})
		c := newClient(t, egress.Config{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
		if res := c.Send(ctx, egress.Request{URL: s.URL}); !res.Success() {
			t.Fatalf("allowed range refused: %+v", res)
		}
		c = newClient(t, egress.Config{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
		if res := c.Send(ctx, egress.Request{URL: s.URL}); res.Success() {
			t.Fatalf("range outside the allow-list reached")
		}
	})

	t.Run("BadURLs", func(t *testing.T) {
		t.Parallel()
		for _, u := range []string{"ftp://x.example/", "http://user:pw@x.example/", "://", "/relative"} {
			if res := newClient(t, open).Send(ctx, egress.Request{URL: u}); !strings.HasPrefix(res.FailureReason, "invalid URL") {
				t.Errorf("%q: %+v", u, res)
			}
		}
	})
}

// Not parallel: it changes the environment.
func TestProxyFromEnvironmentIsIgnored(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	t.Setenv("http_proxy", "http://127.0.0.1:1")
	s := server(t, func(w http.ResponseWriter, r *http.Request) {})
	res := newClient(t, egress.Config{AllowPrivateNetworks: true}).Send(context.Background(), egress.Request{URL: s.URL})
	if !res.Success() {
		t.Fatalf("went through the environment's proxy: %+v", res)
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	for ip, want := range map[string]string{
		"127.0.0.1":            "a loopback address",
		"::1":                  "a loopback address",
		"::ffff:127.0.0.1":     "a loopback address",
		"::ffff:10.1.2.3":      "a private address",
		"10.0.0.1":             "a private address",
		"172.16.5.4":           "a private address",
		"192.168.1.1":          "a private address",
		"169.254.169.254":      "a link-local address",
		"fe80::1":              "a link-local address",
		"100.64.0.1":           "a shared (carrier-grade NAT) address",
		"224.0.0.1":            "a multicast address",
		"ff02::1":              "a multicast address",
		"0.0.0.0":              `a "this network" address`,
		"::":                   "an unspecified address",
		"255.255.255.255":      "a broadcast address",
		"fd00::1":              "a private address",
		"64:ff9b::7f00:1":      "a loopback address",
		"2002:a9fe:a9fe::1":    "a link-local address",
		"::127.0.0.1":          "a loopback address",
		"8.8.8.8":              "",
		"2606:4700:4700::1111": "",
		"2002:808:808::1":      "",
		"93.184.216.34":        "",
	} {
		if got := egress.Classify(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Classify(%s) = %q, want %q", ip, got, want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"0":                             0,
		"-5":                            0,
		"120":                           2 * time.Minute,
		"999999999999":                  time.Hour,
		"Thu, 26 Nov 2026 12:10:00 GMT": 10 * time.Minute,
		"Thu, 26 Nov 2026 11:00:00 GMT": 0,
		"Fri, 27 Nov 2026 12:00:00 GMT": time.Hour,
		"garbage":                       0,
	} {
		if got := egress.ParseRetryAfter(v, now); got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1", "2002:7f00:1::", "8.8.8.8", "fe80::1%eth0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return
		}
		kind := egress.Classify(ip)
		// An IPv4-mapped address is judged exactly as its IPv4 form.
		if ip.Is4() {
			if mapped := egress.Classify(netip.AddrFrom16(ip.As16())); mapped != kind {
				t.Fatalf("Classify(%s) = %q but its mapped form gives %q", ip, kind, mapped)
			}
		}
		if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() {
			if kind == "" {
				t.Fatalf("Classify(%s) says public", ip)
			}
		}
	})
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"120", "Thu, 26 Nov 2026 12:10:00 GMT", "", "-1", "1e9"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		if d := egress.ParseRetryAfter(s, now); d < 0 || d > time.Hour {
			t.Fatalf("ParseRetryAfter(%q) = %v, outside [0, 1h]", s, d)
		}
	})
}

func BenchmarkSend(b *testing.B) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	defer s.Close()
	c, _ := egress.NewClient(egress.Config{AllowPrivateNetworks: true})
	body := []byte(strings.Repeat(`{"order_id":"o-1"}`, 50))
	h := http.Header{"Webhook-Id": {"evt_1"}}
	b.ReportAllocs()
	for b.Loop() {
		if res := c.Send(context.Background(), egress.Request{URL: s.URL, Header: h, Body: body}); !res.Success() {
			b.Fatal(res.FailureReason)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
