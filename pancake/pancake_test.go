package pancake_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pancake-pos/pancake-webhooks/pancake"
)

const (
	testKey  = "pk_test_sEcReT-kEy-0123456789"
	testShop = "shop_1"
	// shopPath is where the fake API serves the test shop.
	shopPath = "/api/v1/shops/" + testShop
)

// testBundle is what setup gives a test besides the client.
type testBundle struct {
	// mux serves the API; register handlers on full paths
	// (shopPath + "/webhooks").
	mux    *http.ServeMux
	server *httptest.Server
}

// setup returns a client of testShop talking to an httptest server whose
// mux the test fills. Requests the test did not expect fail it. Retries
// are fast.
func setup(t *testing.T, opts ...pancake.Option) (*pancake.Client, *testBundle) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s %s", r.Method, r.URL)
		http.Error(w, "unexpected", http.StatusTeapot)
	})
	server := httptest.NewServer(mux)
	t.Cleanup(server.Close)
	opts = append([]pancake.Option{
		pancake.WithBaseURL(server.URL + "/api/v1"),
		pancake.WithRetry(3, time.Millisecond, 5*time.Millisecond),
	}, opts...)
	return pancake.NewClient(testKey, testShop, opts...), &testBundle{mux: mux, server: server}
}

// testRequest checks what every request of the SDK carries: the method,
// the bearer key (never the query parameter) and the JSON headers.
func testRequest(t *testing.T, r *http.Request, method string) {
	t.Helper()
	if r.Method != method {
		t.Errorf("Request method = %s, want %s", r.Method, method)
	}
	if got, want := r.Header.Get("Authorization"), "Bearer "+testKey; got != want {
		t.Errorf("Authorization = %q, want %q", got, want)
	}
	if r.URL.Query().Has("api_key") {
		t.Errorf("api_key sent in the query: %s", r.URL.RawQuery)
	}
	if got := r.Header.Get("Accept"); got != "application/json" {
		t.Errorf("Accept = %q, want application/json", got)
	}
	if r.ContentLength > 0 || r.Method == http.MethodPost || r.Method == http.MethodPut {
		if got := r.Header.Get("Content-Type"); got != "application/json" {
			t.Errorf("Content-Type = %q, want application/json", got)
		}
	}
}

// testQuery checks the raw query, which is sorted by key.
func testQuery(t *testing.T, r *http.Request, want string) {
	t.Helper()
	if got := r.URL.RawQuery; got != want {
		t.Errorf("query = %q, want %q", got, want)
	}
}

// testBody checks that the request body is the JSON want (compared as
// values, so key order and spacing do not matter).
func testBody(t *testing.T, r *http.Request, want string) {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	var got, wantV any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Errorf("body %q is not JSON: %v", b, err)
		return
	}
	if err := json.Unmarshal([]byte(want), &wantV); err != nil {
		t.Fatalf("want %q is not JSON: %v", want, err)
	}
	if diff := cmp.Diff(wantV, got); diff != "" {
		t.Errorf("request body diff (-want +got):\n%s", diff)
	}
}

// testNoBody checks that the request has no body.
func testNoBody(t *testing.T, r *http.Request) {
	t.Helper()
	b, _ := io.ReadAll(r.Body)
	if len(b) != 0 {
		t.Errorf("request body = %q, want none", b)
	}
}

// writeJSON answers status and body.
func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// writeError answers the contract's error envelope.
func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, fmt.Sprintf(`{"success":false,"error":{"code":%q,"message":%q,"details":{}}}`, code, message))
}

// ts parses an RFC 3339 time for expected values.
func ts(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func tsp(t *testing.T, s string) *time.Time {
	t.Helper()
	v := ts(t, s)
	return &v
}

// roundTripFunc is an http.RoundTripper, for tests without a network (and
// inside synctest bubbles).
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func response(status int, header http.Header, body string) *http.Response {
	if header == nil {
		header = http.Header{}
	}
	return &http.Response{
		StatusCode: status,
		Header:     header,
		Body:       io.NopCloser(strings.NewReader(body)),
	}
}

func TestNewClient(t *testing.T) {
	t.Parallel()

	// recordURL returns a client whose transport records the URLs asked.
	recordURL := func(t *testing.T, opts ...pancake.Option) (*pancake.Client, *[]string) {
		t.Helper()
		var urls []string
		hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			urls = append(urls, r.URL.String())
			return response(200, nil, `{"data":[],"total":0}`), nil
		})}
		return pancake.NewClient(testKey, testShop, append([]pancake.Option{pancake.WithHTTPClient(hc)}, opts...)...), &urls
	}

	t.Run("DefaultBaseURLIsPancakePOS", func(t *testing.T) {
		t.Parallel()
		client, urls := recordURL(t)
		if _, err := client.Webhooks.List(t.Context()); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"https://pos.pages.fm/api/v1/shops/shop_1/webhooks"}, *urls); diff != "" {
			t.Errorf("URLs diff (-want +got):\n%s", diff)
		}
	})

	t.Run("TrailingSlashOfBaseURLIsOptional", func(t *testing.T) {
		t.Parallel()
		for _, base := range []string{"http://example.test/api/v1", "http://example.test/api/v1/", "http://example.test/api/v1//"} {
			client, urls := recordURL(t, pancake.WithBaseURL(base))
			if _, err := client.Webhooks.List(t.Context()); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"http://example.test/api/v1/shops/shop_1/webhooks"}, *urls); diff != "" {
				t.Errorf("base %q: URLs diff (-want +got):\n%s", base, diff)
			}
		}
	})

	t.Run("InvalidBaseURLFailsEveryCallWithoutRequest", func(t *testing.T) {
		t.Parallel()
		for _, base := range []string{"", "api/v1", "ftp://example.test/api/v1", "http://example.test/api/v1?api_key=x", "http://u:p@%zz"} {
			client, urls := recordURL(t, pancake.WithBaseURL(base))
			_, err := client.Webhooks.List(t.Context())
			if err == nil || !strings.Contains(err.Error(), "invalid base URL") {
				t.Errorf("base %q: err = %v, want invalid base URL", base, err)
			}
			if len(*urls) != 0 {
				t.Errorf("base %q: requests made: %v", base, *urls)
			}
		}
	})

	t.Run("InvalidIDsFailWithoutRequest", func(t *testing.T) {
		t.Parallel()
		client, urls := recordURL(t)
		for _, id := range []string{"", ".", ".."} {
			if _, err := client.Webhooks.GetByID(t.Context(), id); err == nil {
				t.Errorf("GetByID(%q) = nil error", id)
			}
			if _, err := client.Webhooks.GetDeliveryByID(t.Context(), id); err == nil {
				t.Errorf("GetDeliveryByID(%q) = nil error", id)
			}
		}
		other := pancake.NewClient(testKey, "", pancake.WithHTTPClient(&http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
			t.Error("request made")
			return nil, errors.New("no")
		})}))
		if _, err := other.Webhooks.List(t.Context()); err == nil {
			t.Error("List with an empty shop ID = nil error")
		}
		if len(*urls) != 0 {
			t.Errorf("requests made: %v", *urls)
		}
	})

	t.Run("SendsUserAgent", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			opts []pancake.Option
			want string
		}{
			{nil, pancake.DefaultUserAgent},
			{[]pancake.Option{pancake.WithUserAgent("pancake-webhooks-cli/1")}, "pancake-webhooks-cli/1"},
		} {
			var got string
			hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				got = r.Header.Get("User-Agent")
				return response(200, nil, `{"data":[],"total":0}`), nil
			})}
			client := pancake.NewClient(testKey, testShop, append([]pancake.Option{pancake.WithHTTPClient(hc)}, tc.opts...)...)
			if _, err := client.Webhooks.List(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("User-Agent = %q, want %q", got, tc.want)
			}
		}
	})

	t.Run("EscapesPathSegments", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		var got []string
		bundle.mux.HandleFunc("/api/v1/shops/", func(w http.ResponseWriter, r *http.Request) {
			got = append(got, r.URL.EscapedPath())
			writeJSON(w, 200, `{}`)
		})
		weird := pancake.NewClient(testKey, "s p/x", pancake.WithBaseURL(bundle.server.URL+"/api/v1"))
		if _, err := weird.Webhooks.GetByID(t.Context(), "wh/1?x#y"); err != nil {
			t.Fatal(err)
		}
		if _, err := client.Webhooks.RetryDelivery(t.Context(), "../dlv 1"); err != nil {
			t.Fatal(err)
		}
		want := []string{
			"/api/v1/shops/s%20p%2Fx/webhooks/wh%2F1%3Fx%23y",
			"/api/v1/shops/shop_1/webhook-deliveries/..%2Fdlv%201/retry",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("paths diff (-want +got):\n%s", diff)
		}
	})
}

func TestPointerHelpers(t *testing.T) {
	t.Parallel()
	if got := pancake.String("x"); got == nil || *got != "x" {
		t.Errorf("String(x) = %v", got)
	}
	if got := pancake.Bool(false); got == nil || *got {
		t.Errorf("Bool(false) = %v", got)
	}
}

func TestEvents(t *testing.T) {
	t.Parallel()
	want := []pancake.WebhookEvent{
		"order.created", "order.updated", "order.status_changed", "order.cancelled",
		"customer.created", "customer.updated", "inventory.updated",
		"product.created", "product.updated", "product.deleted",
		"transaction.created", "loyalty.points_earned", "loyalty.points_redeemed",
	}
	if diff := cmp.Diff(want, pancake.AllEvents()); diff != "" {
		t.Errorf("AllEvents diff (-want +got):\n%s", diff)
	}
	consts := []pancake.WebhookEvent{
		pancake.EventOrderCreated, pancake.EventOrderUpdated, pancake.EventOrderStatusChanged, pancake.EventOrderCancelled,
		pancake.EventCustomerCreated, pancake.EventCustomerUpdated, pancake.EventInventoryUpdated,
		pancake.EventProductCreated, pancake.EventProductUpdated, pancake.EventProductDeleted,
		pancake.EventTransactionCreated, pancake.EventLoyaltyPointsEarned, pancake.EventLoyaltyPointsRedeemed,
	}
	if diff := cmp.Diff(want, consts); diff != "" {
		t.Errorf("constants diff (-want +got):\n%s", diff)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()

	sentinels := []error{pancake.ErrNotFound, pancake.ErrUnauthorized, pancake.ErrForbidden, pancake.ErrValidation, pancake.ErrRateLimited, pancake.ErrUnavailable}

	for _, tc := range []struct {
		name   string
		status int
		header http.Header
		body   string
		want   *pancake.Error
		is     error // the one sentinel it matches, or nil
	}{
		{
			name: "NotFound", status: 404,
			body: `{"success":false,"error":{"code":"not_found","message":"Webhook not found","details":{}}}`,
			want: &pancake.Error{StatusCode: 404, Code: "not_found", Message: "Webhook not found", Details: map[string]any{}},
			is:   pancake.ErrNotFound,
		},
		{
			name: "Unauthorized", status: 401,
			body: `{"success":false,"error":{"code":"unauthorized","message":"Missing or invalid API key"}}`,
			want: &pancake.Error{StatusCode: 401, Code: "unauthorized", Message: "Missing or invalid API key"},
			is:   pancake.ErrUnauthorized,
		},
		{
			name: "Forbidden", status: 403,
			body: `{"success":false,"error":{"code":"forbidden","message":"This API key does not belong to this shop","details":{}}}`,
			want: &pancake.Error{StatusCode: 403, Code: "forbidden", Message: "This API key does not belong to this shop", Details: map[string]any{}},
			is:   pancake.ErrForbidden,
		},
		{
			name: "ValidationWithDetails", status: 400,
			body: `{"success":false,"error":{"code":"validation_failed","message":"Invalid request","details":{"url":"must use https","events":"must be a non-empty list of event types"}}}`,
			want: &pancake.Error{StatusCode: 400, Code: "validation_failed", Message: "Invalid request",
				Details: map[string]any{"url": "must use https", "events": "must be a non-empty list of event types"}},
			is: pancake.ErrValidation,
		},
		{
			name: "InvalidJSONIsValidation", status: 400,
			body: `{"success":false,"error":{"code":"invalid_json","message":"Body is not JSON","details":{}}}`,
			want: &pancake.Error{StatusCode: 400, Code: "invalid_json", Message: "Body is not JSON", Details: map[string]any{}},
			is:   pancake.ErrValidation,
		},
		{
			name: "RateLimitedCarriesRetryAfter", status: 429, header: http.Header{"Retry-After": {"120"}},
			body: `{"success":false,"error":{"code":"rate_limited","message":"Too many requests; retry after 120 s","details":{"retry_after_seconds":120}}}`,
			want: &pancake.Error{StatusCode: 429, Code: "rate_limited", Message: "Too many requests; retry after 120 s",
				Details: map[string]any{"retry_after_seconds": float64(120)}, RetryAfter: 2 * time.Minute},
			is: pancake.ErrRateLimited,
		},
		{
			name: "Conflict", status: 409,
			body: `{"success":false,"error":{"code":"conflict","message":"Too many webhooks","details":{"limit":100}}}`,
			want: &pancake.Error{StatusCode: 409, Code: "conflict", Message: "Too many webhooks", Details: map[string]any{"limit": float64(100)}},
		},
		{
			name: "Internal", status: 500,
			body: `{"success":false,"error":{"code":"internal","message":"Internal error","details":{}}}`,
			want: &pancake.Error{StatusCode: 500, Code: "internal", Message: "Internal error", Details: map[string]any{}},
		},
		{
			name: "UnavailableCarriesRetryAfter", status: 503, header: http.Header{"Retry-After": {"5"}},
			body: `{"success":false,"error":{"code":"unavailable","message":"The database is unavailable for now; try again","details":{}}}`,
			want: &pancake.Error{StatusCode: 503, Code: "unavailable", Message: "The database is unavailable for now; try again",
				Details: map[string]any{}, RetryAfter: 5 * time.Second},
			is: pancake.ErrUnavailable,
		},
		{
			name: "NotTheEnvelope", status: 502,
			body: `<html>bad gateway</html>`,
			want: &pancake.Error{StatusCode: 502, Message: "Bad Gateway"},
		},
		{
			name: "NotFoundWithoutEnvelope", status: 404,
			body: `404 page not found`,
			want: &pancake.Error{StatusCode: 404, Message: "Not Found"},
			is:   pancake.ErrNotFound,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, bundle := setup(t, pancake.WithRetry(0, 0, 0))
			bundle.mux.HandleFunc(shopPath+"/webhooks/wh_1", func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header()[k] = v
				}
				writeJSON(w, tc.status, tc.body)
			})
			got, err := client.Webhooks.GetByID(t.Context(), "wh_1")
			if got != nil {
				t.Errorf("GetByID returned %+v with the error", got)
			}
			var apiErr *pancake.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %T %v, want *pancake.Error", err, err)
			}
			if diff := cmp.Diff(tc.want, apiErr); diff != "" {
				t.Errorf("Webhooks.GetByID error diff (-want +got):\n%s", diff)
			}
			for _, s := range sentinels {
				if got, want := errors.Is(err, s), s == tc.is; got != want {
					t.Errorf("errors.Is(err, %v) = %v, want %v", s, got, want)
				}
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("err.Error() contains the API key: %s", err)
			}
		})
	}

	t.Run("MessageFormat", func(t *testing.T) {
		t.Parallel()
		e := &pancake.Error{StatusCode: 429, Code: "rate_limited", Message: "Too many requests", RetryAfter: 3 * time.Second}
		if got, want := e.Error(), "pancake: 429 rate_limited: Too many requests (retry after 3s)"; got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
	})

	t.Run("RetryAfterFromHTTPDate", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t, pancake.WithRetry(0, 0, 0))
		bundle.mux.HandleFunc(shopPath+"/webhooks", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", time.Now().Add(90*time.Second).UTC().Format(http.TimeFormat))
			writeError(w, 503, "unavailable", "Try later")
		})
		_, err := client.Webhooks.List(t.Context())
		var apiErr *pancake.Error
		if !errors.As(err, &apiErr) {
			t.Fatalf("err = %v", err)
		}
		if apiErr.RetryAfter < 80*time.Second || apiErr.RetryAfter > 90*time.Second {
			t.Errorf("RetryAfter = %v, want about 90s", apiErr.RetryAfter)
		}
	})

	t.Run("APIKeyNeverInErrorString", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t, pancake.WithRetry(0, 0, 0))
		bundle.mux.HandleFunc(shopPath+"/webhooks", func(w http.ResponseWriter, r *http.Request) {
			// A careless server (or proxy) echoing the key.
			writeError(w, 401, "unauthorized", "unknown key "+testKey+" for "+r.URL.String())
		})
		_, err := client.Webhooks.List(t.Context())
		if err == nil || strings.Contains(err.Error(), testKey) {
			t.Errorf("err = %v, want an error without the key", err)
		}
		if !errors.Is(err, pancake.ErrUnauthorized) {
			t.Errorf("err = %v, want ErrUnauthorized", err)
		}

		// A network error.
		bundle.server.Close()
		_, err = client.Webhooks.List(t.Context())
		if err == nil || strings.Contains(err.Error(), testKey) {
			t.Errorf("err = %v, want an error without the key", err)
		}

		// A transport that puts the key in its error.
		leaky := pancake.NewClient(testKey, testShop, pancake.WithRetry(0, 0, 0), pancake.WithHTTPClient(&http.Client{
			Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				return nil, errors.New("proxy refused " + r.Header.Get("Authorization"))
			}),
		}))
		_, err = leaky.Webhooks.List(t.Context())
		if err == nil || strings.Contains(err.Error(), testKey) {
			t.Errorf("err = %v, want an error without the key", err)
		}
	})

	t.Run("UndecodableSuccessIsAnError", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		var calls atomic.Int32
		bundle.mux.HandleFunc(shopPath+"/webhooks", func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			writeJSON(w, 200, `{"data": nope}`)
		})
		if _, err := client.Webhooks.List(t.Context()); err == nil || !strings.Contains(err.Error(), "decode") {
			t.Errorf("err = %v, want a decode error", err)
		}
		if got := calls.Load(); got != 1 {
			t.Errorf("calls = %d, want 1 (not retried)", got)
		}
	})
}

func TestRetries(t *testing.T) {
	t.Parallel()

	// flaky answers status to the first n requests, then ok, and counts.
	flaky := func(n int, status int, ok string) (http.HandlerFunc, *atomic.Int32) {
		var calls atomic.Int32
		return func(w http.ResponseWriter, r *http.Request) {
			if int(calls.Add(1)) <= n {
				writeError(w, status, "unavailable", "try again")
				return
			}
			writeJSON(w, 200, ok)
		}, &calls
	}

	t.Run("IdempotentRequestsRetriedOnTransientStatuses", func(t *testing.T) {
		t.Parallel()
		for _, status := range []int{429, 502, 503, 504} {
			client, bundle := setup(t)
			h, calls := flaky(2, status, `{"data":[],"total":0}`)
			bundle.mux.HandleFunc(shopPath+"/webhooks", h)
			if _, err := client.Webhooks.List(t.Context()); err != nil {
				t.Errorf("status %d: List: %v", status, err)
			}
			if got := calls.Load(); got != 3 {
				t.Errorf("status %d: calls = %d, want 3", status, got)
			}
		}
	})

	t.Run("PutAndDeleteRetried", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		h, calls := flaky(1, 503, `{"id":"wh_1","success":true}`)
		bundle.mux.HandleFunc(shopPath+"/webhooks/wh_1", h)
		if _, err := client.Webhooks.Update(t.Context(), "wh_1", pancake.UpdateWebhookRequest{URL: pancake.String("https://x.test")}); err != nil {
			t.Fatal(err)
		}
		if err := client.Webhooks.Delete(t.Context(), "wh_1"); err != nil {
			t.Fatal(err)
		}
		if got := calls.Load(); got != 3 {
			t.Errorf("calls = %d, want 3", got)
		}
	})

	t.Run("RetriedBodyIsResent", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		var calls atomic.Int32
		bundle.mux.HandleFunc(shopPath+"/webhooks/wh_1/set-active", func(w http.ResponseWriter, r *http.Request) {
			testBody(t, r, `{"is_active":false}`)
			if calls.Add(1) == 1 {
				writeError(w, 502, "bad_gateway", "")
				return
			}
			writeJSON(w, 200, `{"id":"wh_1"}`)
		})
		if _, err := client.Webhooks.SetActive(t.Context(), "wh_1", false); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("OtherStatusesNotRetried", func(t *testing.T) {
		t.Parallel()
		for _, status := range []int{400, 401, 403, 404, 409, 500} {
			client, bundle := setup(t)
			h, calls := flaky(5, status, `{}`)
			bundle.mux.HandleFunc(shopPath+"/webhooks", h)
			if _, err := client.Webhooks.List(t.Context()); err == nil {
				t.Errorf("status %d: nil error", status)
			}
			if got := calls.Load(); got != 1 {
				t.Errorf("status %d: calls = %d, want 1", status, got)
			}
		}
	})

	t.Run("DeleteGoneAfterALostAnswerIsDone", func(t *testing.T) {
		t.Parallel()
		// firstThen answers the first request with first, the others with
		// then, and counts them.
		firstThen := func(first, then http.HandlerFunc) (http.HandlerFunc, *atomic.Int32) {
			var calls atomic.Int32
			return func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) == 1 {
					first(w, r)
					return
				}
				then(w, r)
			}, &calls
		}
		status := func(code int) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { writeError(w, code, "first", "first answer") }
		}
		notFound := func(w http.ResponseWriter, r *http.Request) { writeError(w, 404, "not_found", "Webhook not found") }
		hangUp := func(w http.ResponseWriter, r *http.Request) {
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
		}

		for _, tc := range []struct {
			name        string
			first, then http.HandlerFunc
			get         bool  // GetByID instead of Delete
			want        error // nil: done
		}{
			{name: "504", first: status(504), then: notFound}, // a gateway gave up: the delete may have happened
			{name: "502", first: status(502), then: notFound},
			{name: "hang-up", first: hangUp, then: notFound},                             // broken after the request went out
			{name: "503", first: status(503), then: notFound, want: pancake.ErrNotFound}, // not taken: the 404 is the answer
			{name: "429", first: status(429), then: notFound, want: pancake.ErrNotFound},
			{name: "404", first: notFound, then: notFound, want: pancake.ErrNotFound}, // no retry at all
			{name: "a proxy's 404", first: status(504), then: http.NotFound, want: pancake.ErrNotFound},
			{name: "a GET", first: status(504), then: notFound, get: true, want: pancake.ErrNotFound},
		} {
			client, bundle := setup(t)
			h, calls := firstThen(tc.first, tc.then)
			bundle.mux.HandleFunc(shopPath+"/webhooks/wh_1", h)
			var err error
			if tc.get {
				_, err = client.Webhooks.GetByID(t.Context(), "wh_1")
			} else {
				err = client.Webhooks.Delete(t.Context(), "wh_1")
			}
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("%s first: err = %v, want %v", tc.name, err, tc.want)
			}
			if want := map[bool]int32{true: 2, false: 1}[tc.name != "404"]; calls.Load() != want {
				t.Errorf("%s first: %d requests, want %d", tc.name, calls.Load(), want)
			}
		}
	})

	t.Run("DeleteNeverSentThenNotFoundIsNotFound", func(t *testing.T) {
		t.Parallel()
		// The first connection fails in ways that send nothing: a refused
		// dial, a dial that outlasts the client's timeout. The 404 that
		// follows is the answer.
		for _, tc := range []struct {
			name string
			dial func(ctx context.Context) error
		}{
			{"refused", func(context.Context) error {
				return &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
			}},
			{"timed out", func(ctx context.Context) error {
				<-ctx.Done() // the client's Timeout
				return ctx.Err()
			}},
		} {
			_, bundle := setup(t)
			bundle.mux.HandleFunc(shopPath+"/webhooks/wh_1", func(w http.ResponseWriter, r *http.Request) {
				writeError(w, 404, "not_found", "Webhook not found")
			})
			var dials atomic.Int32
			var d net.Dialer
			hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					if dials.Add(1) == 1 {
						return nil, tc.dial(ctx)
					}
					return d.DialContext(ctx, network, addr)
				},
			}}
			client := pancake.NewClient(testKey, testShop, pancake.WithBaseURL(bundle.server.URL+"/api/v1"),
				pancake.WithHTTPClient(hc), pancake.WithRetry(3, time.Millisecond, 5*time.Millisecond))
			if err := client.Webhooks.Delete(t.Context(), "wh_1"); !errors.Is(err, pancake.ErrNotFound) || dials.Load() != 2 {
				t.Errorf("%s: Delete = %v after %d dials, want ErrNotFound after 2", tc.name, err, dials.Load())
			}
		}
	})

	t.Run("InvalidIDsSendNothing", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
			t.Errorf("a request was sent: %s %s", r.Method, r.URL)
		})
		for _, id := range []string{"", ".", ".."} {
			if _, err := client.Webhooks.GetByID(t.Context(), id); !errors.Is(err, pancake.ErrInvalidID) {
				t.Errorf("GetByID(%q) = %v, want ErrInvalidID", id, err)
			}
			if _, err := client.Webhooks.GetDeliveryByID(t.Context(), id); !errors.Is(err, pancake.ErrInvalidID) {
				t.Errorf("GetDeliveryByID(%q) = %v, want ErrInvalidID", id, err)
			}
		}
		noShop := pancake.NewClient(testKey, "..", pancake.WithBaseURL(bundle.server.URL+"/api/v1"))
		if _, err := noShop.Webhooks.List(t.Context()); !errors.Is(err, pancake.ErrInvalidID) || !strings.Contains(err.Error(), `shop ID ".."`) {
			t.Errorf("List with shop %q = %v, want ErrInvalidID naming the shop ID", "..", err)
		}
	})

	t.Run("GivesUpAfterMaxWithLastError", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		h, calls := flaky(100, 503, `{}`)
		bundle.mux.HandleFunc(shopPath+"/webhooks", h)
		_, err := client.Webhooks.List(t.Context())
		var apiErr *pancake.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 503 {
			t.Errorf("err = %v, want the 503", err)
		}
		if got := calls.Load(); got != 4 {
			t.Errorf("calls = %d, want 4 (1 + 3 retries)", got)
		}
	})

	t.Run("PostsNotRetried", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		var calls atomic.Int32
		bundle.mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			writeError(w, 503, "unavailable", "try again")
		})
		ctx := t.Context()
		posts := map[string]func() error{
			"Create": func() error {
				_, err := client.Webhooks.Create(ctx, pancake.CreateWebhookRequest{URL: "https://x.test"})
				return err
			},
			"Test": func() error {
				_, err := client.Webhooks.Test(ctx, "wh_1", pancake.EventOrderCreated, nil)
				return err
			},
			"RotateSecret": func() error {
				_, err := client.Webhooks.RotateSecret(ctx, "wh_1")
				return err
			},
			"ClearDeliveryHistory": func() error {
				_, err := client.Webhooks.ClearDeliveryHistory(ctx, "wh_1", pancake.ClearHistoryParams{})
				return err
			},
			"RetryDelivery": func() error {
				_, err := client.Webhooks.RetryDelivery(ctx, "dlv_1")
				return err
			},
			"PublishWithoutID": func() error {
				_, err := client.Events.Publish(ctx, pancake.PublishRequest{Event: pancake.EventOrderCreated})
				return err
			},
		}
		for name, call := range posts {
			calls.Store(0)
			if err := call(); err == nil {
				t.Errorf("%s: nil error", name)
			}
			if got := calls.Load(); got != 1 {
				t.Errorf("%s: calls = %d, want 1", name, got)
			}
		}
	})

	t.Run("PublishWithIDRetried", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		h, calls := flaky(2, 503, `{"event_id":"evt_1","deliveries":2}`)
		bundle.mux.HandleFunc(shopPath+"/events", h)
		got, err := client.Events.Publish(t.Context(), pancake.PublishRequest{Event: pancake.EventOrderCreated, ID: "order-42"})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(&pancake.PublishResult{EventID: "evt_1", Deliveries: 2}, got); diff != "" {
			t.Errorf("Events.Publish returned diff (-want +got):\n%s", diff)
		}
		if n := calls.Load(); n != 3 {
			t.Errorf("calls = %d, want 3", n)
		}
	})

	t.Run("NetworkErrorsRetriedWhenIdempotent", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		var calls atomic.Int32
		hangUp := func(w http.ResponseWriter, r *http.Request) bool {
			if calls.Add(1) > 1 {
				return false
			}
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return true
			}
			conn.Close()
			return true
		}
		bundle.mux.HandleFunc(shopPath+"/webhooks", func(w http.ResponseWriter, r *http.Request) {
			if hangUp(w, r) {
				return
			}
			writeJSON(w, 200, `{"data":[],"total":0}`)
		})
		if _, err := client.Webhooks.List(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := calls.Load(); got != 2 {
			t.Errorf("GET calls = %d, want 2", got)
		}

		calls.Store(0)
		bundle.mux.HandleFunc(shopPath+"/webhooks/wh_1/rotate-secret", func(w http.ResponseWriter, r *http.Request) {
			if hangUp(w, r) {
				return
			}
			writeJSON(w, 200, `{"secret_key":"whsec_x"}`)
		})
		if _, err := client.Webhooks.RotateSecret(t.Context(), "wh_1"); err == nil {
			t.Error("POST after a hang-up: nil error")
		}
		if got := calls.Load(); got != 1 {
			t.Errorf("POST calls = %d, want 1", got)
		}
	})

	// The tests below run in a synctest bubble with a transport that needs
	// no network, so that waits take no real time and are measured exactly.
	bubbleClient := func(rt roundTripFunc, opts ...pancake.Option) *pancake.Client {
		return pancake.NewClient(testKey, testShop, append([]pancake.Option{
			pancake.WithHTTPClient(&http.Client{Transport: rt}),
		}, opts...)...)
	}

	t.Run("HonoursRetryAfter", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			var calls int
			client := bubbleClient(func(r *http.Request) (*http.Response, error) {
				calls++
				if calls == 1 {
					return response(429, http.Header{"Retry-After": {"7"}}, `{"success":false,"error":{"code":"rate_limited","message":"slow down"}}`), nil
				}
				return response(200, nil, `{"data":[],"total":0}`), nil
			}, pancake.WithRetry(3, time.Millisecond, 10*time.Millisecond))
			start := time.Now()
			if _, err := client.Webhooks.List(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := time.Since(start); got != 7*time.Second {
				t.Errorf("waited %v, want the 7s of Retry-After", got)
			}
		})
	})

	t.Run("BackOffGrowsAndIsCapped", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			var at []time.Duration
			start := time.Now()
			client := bubbleClient(func(r *http.Request) (*http.Response, error) {
				at = append(at, time.Since(start))
				return response(503, nil, `{}`), nil
			}, pancake.WithRetry(5, time.Second, 4*time.Second))
			if _, err := client.Webhooks.List(t.Context()); err == nil {
				t.Fatal("nil error")
			}
			if len(at) != 6 {
				t.Fatalf("attempts = %d, want 6", len(at))
			}
			// Waits are base·2ⁿ capped at 4s, each jittered into [d/2, d].
			for i, d := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second} {
				wait := at[i+1] - at[i]
				if wait < d/2 || wait > d {
					t.Errorf("wait %d = %v, want within [%v, %v]", i+1, wait, d/2, d)
				}
			}
		})
	})

	t.Run("LongRetryAfterNotWaitedFor", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			var calls int
			client := bubbleClient(func(r *http.Request) (*http.Response, error) {
				calls++
				return response(429, http.Header{"Retry-After": {"3600"}}, `{"success":false,"error":{"code":"rate_limited","message":"slow down"}}`), nil
			})
			start := time.Now()
			_, err := client.Webhooks.List(t.Context())
			var apiErr *pancake.Error
			if !errors.As(err, &apiErr) || apiErr.RetryAfter != time.Hour || !errors.Is(err, pancake.ErrRateLimited) {
				t.Errorf("err = %v, want rate limited with RetryAfter 1h", err)
			}
			if calls != 1 || time.Since(start) != 0 {
				t.Errorf("calls = %d after %v, want 1 at once", calls, time.Since(start))
			}
		})
	})

	t.Run("WaitBeyondDeadlineNotWaitedFor", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			client := bubbleClient(func(r *http.Request) (*http.Response, error) {
				return response(503, http.Header{"Retry-After": {"10"}}, `{}`), nil
			})
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			start := time.Now()
			_, err := client.Webhooks.List(ctx)
			var apiErr *pancake.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != 503 {
				t.Errorf("err = %v, want the 503", err)
			}
			if d := time.Since(start); d != 0 {
				t.Errorf("returned after %v, want at once", d)
			}
		})
	})

	t.Run("ContextCancelledDuringBackOff", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			client := bubbleClient(func(r *http.Request) (*http.Response, error) {
				return response(503, nil, `{}`), nil
			}, pancake.WithRetry(5, 10*time.Second, 10*time.Second))
			ctx, cancel := context.WithCancel(t.Context())
			go func() {
				time.Sleep(time.Second)
				cancel()
			}()
			start := time.Now()
			_, err := client.Webhooks.List(ctx)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
			if d := time.Since(start); d != time.Second {
				t.Errorf("returned after %v, want 1s", d)
			}
		})
	})

	t.Run("ContextCancelledDuringRequest", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		var calls atomic.Int32
		ctx, cancel := context.WithCancel(t.Context())
		bundle.mux.HandleFunc(shopPath+"/webhooks", func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			cancel()
			<-r.Context().Done()
		})
		_, err := client.Webhooks.List(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if got := calls.Load(); got != 1 {
			t.Errorf("calls = %d, want 1", got)
		}
	})
}
