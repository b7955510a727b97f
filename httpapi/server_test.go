package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	webhooks "github.com/pancake-pos/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/httpapi"
)

// fakeWebhooks wraps a WebhookService; set …Func fields to override.
type fakeWebhooks struct {
	webhooks.WebhookService
	ListWebhooksFunc func(ctx context.Context, shopID string) ([]*webhooks.Webhook, error)
}

func (f *fakeWebhooks) ListWebhooks(ctx context.Context, shopID string) ([]*webhooks.Webhook, error) {
	if f.ListWebhooksFunc != nil {
		return f.ListWebhooksFunc(ctx, shopID)
	}
	return f.WebhookService.ListWebhooks(ctx, shopID)
}

// fakeShops wraps a ShopService; set …Func fields to override.
type fakeShops struct {
	webhooks.ShopService
	AuthenticateFunc func(ctx context.Context, keyHash string) (string, error)
}

func (f *fakeShops) Authenticate(ctx context.Context, keyHash string) (string, error) {
	if f.AuthenticateFunc != nil {
		return f.AuthenticateFunc(ctx, keyHash)
	}
	return f.ShopService.Authenticate(ctx, keyHash)
}

func TestNewServer(t *testing.T) { t.Parallel(); forEachDB(t, testNewServer) }

func testNewServer(t *testing.T) {
	t.Parallel()

	valid := func() httpapi.Config {
		clock := newTestClock()
		db := mustOpenDB(t, clock.Now)
		return httpapi.Config{Shops: db, Webhooks: db, Deliveries: db, Events: db, Attempter: &testAttempter{db: db, now: clock.Now}}
	}

	t.Run("ValidateNamesTheField", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			field string
			mod   func(*httpapi.Config)
		}{
			{"Shops", func(c *httpapi.Config) { c.Shops = nil }},
			{"Webhooks", func(c *httpapi.Config) { c.Webhooks = nil }},
			{"Deliveries", func(c *httpapi.Config) { c.Deliveries = nil }},
			{"Events", func(c *httpapi.Config) { c.Events = nil }},
			{"Attempter", func(c *httpapi.Config) { c.Attempter = nil }},
			{"MaxWebhooksPerShop", func(c *httpapi.Config) { c.MaxWebhooksPerShop = -1 }},
			{"SecretOverlap", func(c *httpapi.Config) { c.SecretOverlap = -2 }}, // -1 is NoSecretOverlap
			{"MaxBodyBytes", func(c *httpapi.Config) { c.MaxBodyBytes = -1 }},
			{"RateLimit", func(c *httpapi.Config) { c.RateLimit = -1 }},
			{"RateBurst", func(c *httpapi.Config) { c.RateBurst = -1 }},
			{"PublishRateLimit", func(c *httpapi.Config) { c.PublishRateLimit = -1 }},
		} {
			cfg := valid()
			tt.mod(&cfg)
			_, err := httpapi.NewServer(cfg)
			if err == nil || !strings.HasPrefix(err.Error(), tt.field+" ") {
				t.Errorf("NewServer with bad %s: err = %v, want one naming it", tt.field, err)
			}
		}
	})

	t.Run("TwoServersShareOneRegistry", func(t *testing.T) {
		t.Parallel()
		reg := prometheus.NewRegistry()
		for range 2 {
			cfg := valid()
			cfg.Registerer = reg
			srv, err := httpapi.NewServer(cfg)
			if err != nil {
				t.Fatalf("NewServer: %v", err)
			}
			srv.Close()
			srv.Close() // idempotent
		}
	})
}

func TestRouting(t *testing.T) { t.Parallel(); forEachDB(t, testRouting) }

func testRouting(t *testing.T) {
	t.Parallel()

	t.Run("UnknownPathIsNotFoundJSON", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		for _, p := range []string{"/", "/nope", "/api/v1/shops/shop-1/nope", "/api/v1/shops/shop-1/webhooks/", "/api/v2/event-types"} {
			res := b.call(t, "GET", p, nil)
			if res.Status != http.StatusNotFound || res.ErrorCode(t) != "not_found" {
				t.Errorf("GET %s: %d %s, want 404 not_found", p, res.Status, res.Body)
			}
			if got := res.Header.Get("Content-Type"); got != "application/json; charset=utf-8" {
				t.Errorf("GET %s: Content-Type %q", p, got)
			}
		}
	})

	t.Run("UncleanPathIsNotFoundNotRedirect", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		for _, p := range []string{"/api/v1/shops/shop-1/../shop-2/webhooks", "/api/v1/./event-types", "/api/v1//shops/shop-1/./webhooks"} {
			res := b.call(t, "GET", p, nil)
			if res.Status != http.StatusNotFound || res.ErrorCode(t) != "not_found" {
				t.Errorf("GET %s: %d %s, want 404 not_found", p, res.Status, res.Body)
			}
		}
	})

	t.Run("DoubledSlashesCountAsOne", func(t *testing.T) {
		t.Parallel()
		// The TypeScript SDK with a base URL ending in "/" asks for
		// /api/v1//shops/….
		b := setupAPI(t)
		res := b.call(t, "POST", "/api/v1//shops/"+b.shopID+"//webhooks", `{"url":"https://example.com/h","events":["order.created"]}`)
		if res.Status != http.StatusCreated {
			t.Fatalf("POST with doubled slashes: %d %s, want 201", res.Status, res.Body)
		}
		var list struct{ Total int }
		b.call(t, "GET", "/api/v1//shops/"+b.shopID+"/webhooks", nil).Decode(t, &list)
		if list.Total != 1 {
			t.Errorf("GET with doubled slashes lists %d webhooks, want 1", list.Total)
		}
		if res := b.call(t, "GET", "//api/v1//event-types", nil); res.Status != http.StatusOK {
			t.Errorf("GET //api/v1//event-types: %d %s", res.Status, res.Body)
		}
	})

	t.Run("BrowsersMayCallFromAnyOrigin", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		origin := http.Header{"Origin": {"https://pos.example"}}
		// The preflight a browser sends before the SDK's JSON request.
		pre := b.do(t, request{Method: "OPTIONS", Path: shopPath(b.shopID, "/webhooks/wh_x"), Header: http.Header{
			"Origin": {"https://pos.example"}, "Access-Control-Request-Method": {"PUT"},
			"Access-Control-Request-Headers": {"content-type"},
		}})
		if pre.Status != http.StatusNoContent || len(pre.Body) != 0 {
			t.Fatalf("preflight: %d %s, want 204 and no body", pre.Status, pre.Body)
		}
		for k, want := range map[string]string{
			"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE",
			"Access-Control-Allow-Headers": "Authorization, Content-Type",
		} {
			if got := pre.Header.Get(k); got != want {
				t.Errorf("preflight %s = %q, want %q", k, got, want)
			}
		}
		if pre.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Error("preflight allows credentials; the API key authenticates, never a cookie")
		}
		// The request itself, and an error: the page may read both.
		res := b.do(t, request{Method: "GET", Path: shopPath(b.shopID, "/webhooks"), Key: b.key, Header: origin})
		if res.Status != 200 || res.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("GET from a browser: %d, Allow-Origin %q", res.Status, res.Header.Get("Access-Control-Allow-Origin"))
		}
		res = b.do(t, request{Method: "GET", Path: shopPath(b.shopID, "/webhooks"), Header: origin})
		if res.Status != 401 || res.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("401 from a browser: %d, Allow-Origin %q", res.Status, res.Header.Get("Access-Control-Allow-Origin"))
		}
		// Without an Origin, no CORS headers; a plain OPTIONS is still 405.
		res = b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil)
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("Allow-Origin %q on a request without Origin", got)
		}
		if res := b.call(t, "OPTIONS", shopPath(b.shopID, "/webhooks"), nil); res.Status != http.StatusMethodNotAllowed {
			t.Errorf("plain OPTIONS: %d, want 405", res.Status)
		}
	})

	t.Run("WrongMethodIs405WithAllow", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		res := b.call(t, "PATCH", shopPath(b.shopID, "/webhooks"), "{}")
		if res.Status != http.StatusMethodNotAllowed || res.ErrorCode(t) != "method_not_allowed" {
			t.Fatalf("PATCH webhooks: %d %s", res.Status, res.Body)
		}
		if got := res.Header.Get("Allow"); !strings.Contains(got, "GET") || !strings.Contains(got, "POST") {
			t.Errorf("Allow = %q, want GET and POST", got)
		}
		res = b.call(t, "DELETE", "/api/v1/event-types", nil)
		if res.Status != http.StatusMethodNotAllowed {
			t.Errorf("DELETE event-types: %d", res.Status)
		}
	})

	t.Run("SecurityHeadersOnEveryResponse", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		for _, res := range []*response{
			b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil),
			b.call(t, "GET", "/nope", nil),
			b.do(t, request{Method: "GET", Path: shopPath(b.shopID, "/webhooks")}),
			b.call(t, "GET", "/healthz", nil),
		} {
			want := map[string]string{
				"Content-Type":           "application/json; charset=utf-8",
				"X-Content-Type-Options": "nosniff",
				"Cache-Control":          "no-store",
			}
			got := map[string]string{}
			for k := range want {
				got[k] = res.Header.Get(k)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("headers diff (-want +got):\n%s", diff)
			}
		}
	})
}

func TestErrors(t *testing.T) { t.Parallel(); forEachDB(t, testErrors) }

func testErrors(t *testing.T) {
	t.Parallel()

	t.Run("InternalErrorIsHiddenAndLoggedWithoutKey", func(t *testing.T) {
		t.Parallel()
		fw := &fakeWebhooks{ListWebhooksFunc: func(ctx context.Context, shopID string) ([]*webhooks.Webhook, error) {
			return nil, errors.New("disk on fire at /var/lib/secret.db")
		}}
		b := setupAPI(t, func(c *httpapi.Config) { fw.WebhookService = c.Webhooks; c.Webhooks = fw })
		// The key also pasted into a parameter of another name, and as a
		// parameter's name.
		for _, q := range []string{"?x=1&note=" + b.key, "?x=1&" + b.key} {
			b.call(t, "GET", shopPath(b.shopID, "/webhooks")+q, nil)
		}
		res := b.call(t, "GET", shopPath(b.shopID, "/webhooks")+"?x=1", nil)
		want := `{"success":false,"error":{"code":"internal","message":"Internal error","details":{}}}` + "\n"
		if res.Status != http.StatusInternalServerError || string(res.Body) != want {
			t.Fatalf("got %d %s, want 500 %s", res.Status, res.Body, want)
		}
		logs := b.logs.String()
		if !strings.Contains(logs, "disk on fire") {
			t.Errorf("logs lack the internal error:\n%s", logs)
		}
		if strings.Contains(logs, b.key) {
			t.Errorf("logs contain the API key:\n%s", logs)
		}
		if !strings.Contains(logs, "api_key=REDACTED") {
			t.Errorf("logs lack the redacted URL:\n%s", logs)
		}
	})

	t.Run("ClientGoneIsNotAServerError", func(t *testing.T) {
		t.Parallel()
		// A caller that hangs up (a test send to a slow receiver, given
		// up): the request was logged at warn and counted as a 500 (soak
		// audit); 499, as nginx records it, at debug.
		reg := prometheus.NewRegistry()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		fw := &fakeWebhooks{ListWebhooksFunc: func(context.Context, string) ([]*webhooks.Webhook, error) {
			cancel() // the client leaves while the store works
			return nil, fmt.Errorf("list webhooks: %w", context.Canceled)
		}}
		b := setupAPI(t, func(c *httpapi.Config) {
			fw.WebhookService = c.Webhooks
			c.Webhooks = fw
			c.Registerer = reg
			c.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
		})
		r := httptest.NewRequest("GET", shopPath(b.shopID, "/webhooks")+"?api_key="+b.key, nil).WithContext(ctx)
		w := httptest.NewRecorder()
		b.srv.ServeHTTP(w, r)
		if w.Code != httpapi.StatusClientClosed {
			t.Errorf("recorded %d, want %d", w.Code, httpapi.StatusClientClosed)
		}
		text := string(b.do(t, request{Method: "GET", Path: "/metrics"}).Body)
		if !strings.Contains(text, `pancake_http_requests_total{code="499",route="GET /api/v1/shops/{shop_id}/webhooks"} 1`) || strings.Contains(text, `code="500"`) {
			t.Errorf("metrics do not count it as 499 alone:\n%s", text)
		}
		if logs := b.logs.String(); strings.Contains(logs, "level=WARN") {
			t.Errorf("logged at warn:\n%s", logs)
		}
	})

	t.Run("LoggedURLsAreCut", func(t *testing.T) {
		t.Parallel()
		// The client chooses the URL: a query of 50 KB made a log line of
		// 50 KB (observability audit).
		fw := &fakeWebhooks{ListWebhooksFunc: func(ctx context.Context, shopID string) ([]*webhooks.Webhook, error) {
			return nil, errors.New("disk on fire")
		}}
		b := setupAPI(t, func(c *httpapi.Config) { fw.WebhookService = c.Webhooks; c.Webhooks = fw })
		b.call(t, "GET", shopPath(b.shopID, "/webhooks")+"?x="+strings.Repeat("y", 50_000)+"TAIL", nil)
		for _, line := range strings.Split(b.logs.String(), "\n") {
			if strings.Contains(line, "disk on fire") && (len(line) > 2000 || strings.Contains(line, "TAIL")) {
				t.Errorf("the internal error's line is %d bytes, the whole URL in it", len(line))
			}
		}
	})

	t.Run("SecretsInThePathAreNotLogged", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		for _, req := range []request{
			{Method: "GET", Path: shopPath(b.key, "/webhooks")},                                     // a key as the shop
			{Method: "GET", Path: shopPath(b.shopID, "/webhook-deliveries/"+b.key), Key: b.key},     // as a delivery id
			{Method: "GET", Path: "/" + b.key},                                                      // no route
			{Method: "GET", Path: shopPath(b.shopID, "/webhooks/"+secret), Key: b.key},              // a signing secret
			{Method: "POST", Path: "/api/v1/admin/shops/admin-secret/keys", Bearer: "admin-secret"}, // the admin token
		} {
			if res := b.do(t, req); res.Status < 400 {
				t.Fatalf("%s %s: %d", req.Method, req.Path, res.Status)
			}
		}
		logs := b.logs.String()
		for _, leak := range []string{b.key, secret, "admin-secret"} {
			if strings.Contains(logs, leak) {
				t.Errorf("logs contain %q:\n%s", leak, logs)
			}
		}
		if n := strings.Count(logs, "REDACTED"); n < 5 {
			t.Errorf("%d REDACTED in the logs; want one a request:\n%s", n, logs)
		}
	})

	t.Run("PanicIs500AndLogged", func(t *testing.T) {
		t.Parallel()
		fw := &fakeWebhooks{ListWebhooksFunc: func(ctx context.Context, shopID string) ([]*webhooks.Webhook, error) {
			panic("nil map somewhere")
		}}
		b := setupAPI(t, func(c *httpapi.Config) { fw.WebhookService = c.Webhooks; c.Webhooks = fw })
		res := b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil)
		wantError(t, res, 500, "internal")
		if !strings.Contains(b.logs.String(), "nil map somewhere") {
			t.Errorf("panic not logged:\n%s", b.logs.String())
		}
	})

	t.Run("TimeoutIs503", func(t *testing.T) {
		t.Parallel()
		fw := &fakeWebhooks{ListWebhooksFunc: func(ctx context.Context, shopID string) ([]*webhooks.Webhook, error) {
			return nil, fmt.Errorf("list webhooks: %w", context.DeadlineExceeded)
		}}
		b := setupAPI(t, func(c *httpapi.Config) { fw.WebhookService = c.Webhooks; c.Webhooks = fw })
		wantError(t, b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil), 503, "unavailable")
	})

	t.Run("AuthenticateFailureIs500Not401", func(t *testing.T) {
		t.Parallel()
		fs := &fakeShops{AuthenticateFunc: func(ctx context.Context, keyHash string) (string, error) {
			return "", errors.New("database is locked")
		}}
		b := setupAPI(t, func(c *httpapi.Config) { fs.ShopService = c.Shops; c.Shops = fs })
		res := b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil)
		if res.Status != http.StatusInternalServerError || res.ErrorCode(t) != "internal" {
			t.Fatalf("got %d %s", res.Status, res.Body)
		}
	})

	t.Run("ErrorStatusMapsEveryCode", func(t *testing.T) {
		t.Parallel()
		want := map[string]int{
			"validation_failed": 400, "invalid_json": 400, "unauthorized": 401, "forbidden": 403,
			"not_found": 404, "method_not_allowed": 405, "conflict": 409, "payload_too_large": 413,
			"rate_limited": 429, "internal": 500, "unavailable": 503, "something_else": 500,
		}
		got := map[string]int{}
		for code := range want {
			got[code] = httpapi.ErrorStatus(code)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ErrorStatus diff (-want +got):\n%s", diff)
		}
	})
}

func TestMeta(t *testing.T) { t.Parallel(); forEachDB(t, testMeta) }

func testMeta(t *testing.T) {
	t.Parallel()

	t.Run("Healthz", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		res := b.do(t, request{Method: "GET", Path: "/healthz"})
		if res.Status != 200 || string(res.Body) != `{"status":"ok"}`+"\n" {
			t.Fatalf("healthz: %d %s", res.Status, res.Body)
		}
	})

	t.Run("ReadyzWhenReady", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		res := b.do(t, request{Method: "GET", Path: "/readyz"})
		if res.Status != 200 || string(res.Body) != `{"status":"ok"}`+"\n" {
			t.Fatalf("readyz: %d %s", res.Status, res.Body)
		}
	})

	t.Run("ReadyzWhenNotReadyIs503", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t, func(c *httpapi.Config) {
			c.Ready = func(ctx context.Context) error { return errors.New("schema at version 0") }
		})
		res := b.do(t, request{Method: "GET", Path: "/readyz"})
		if res.Status != 503 || res.ErrorCode(t) != "unavailable" {
			t.Fatalf("readyz: %d %s", res.Status, res.Body)
		}
		if strings.Contains(string(res.Body), "schema") {
			t.Errorf("readyz leaks the cause: %s", res.Body)
		}
	})

	t.Run("EventTypesNeedNoAuth", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		res := b.do(t, request{Method: "GET", Path: "/api/v1/event-types"})
		if res.Status != 200 {
			t.Fatalf("event-types: %d %s", res.Status, res.Body)
		}
		var got struct {
			Data []webhooks.EventTypeInfo `json:"data"`
		}
		res.Decode(t, &got)
		if diff := cmp.Diff(webhooks.EventTypes, got.Data); diff != "" {
			t.Errorf("event-types diff (-want +got):\n%s", diff)
		}
	})

	t.Run("MetricsByRoutePatternNeverByKey", func(t *testing.T) {
		t.Parallel()
		reg := prometheus.NewRegistry()
		b := setupAPI(t, func(c *httpapi.Config) {
			c.Registerer = reg
			c.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
		})
		b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil)
		b.call(t, "GET", shopPath(b.shopID, "/webhooks/wh_nope"), nil)
		b.call(t, "GET", "/nope/"+b.key, nil)
		res := b.do(t, request{Method: "GET", Path: "/metrics"})
		if res.Status != 200 {
			t.Fatalf("metrics: %d", res.Status)
		}
		text := string(res.Body)
		for _, want := range []string{
			`pancake_http_requests_total{code="200",route="GET /api/v1/shops/{shop_id}/webhooks"} 1`,
			`pancake_http_requests_total{code="404",route="GET /api/v1/shops/{shop_id}/webhooks/{webhook_id}"} 1`,
			`pancake_http_requests_total{code="404",route="unmatched"} 1`,
			`pancake_http_request_duration_seconds_count{route="GET /api/v1/shops/{shop_id}/webhooks"} 1`,
		} {
			if !strings.Contains(text, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		if strings.Contains(text, b.key) || strings.Contains(text, "shop-1") {
			t.Errorf("metrics contain a key or a shop id:\n%s", text)
		}
	})

	t.Run("MetricsNotServedUnlessConfigured", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		res := b.do(t, request{Method: "GET", Path: "/metrics"})
		if res.Status != 404 {
			t.Fatalf("metrics: %d", res.Status)
		}
	})
}
