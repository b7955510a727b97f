package pancake_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pancake-pos/pancake-webhooks/pancake"
)

// failedDeliveryJSON is a failed attempt as the server sends it, with every
// extension; next_retry_at is null (no more attempts will come).
const failedDeliveryJSON = `{
	"id": "dlv_2",
	"webhook_id": "wh_1",
	"event": "order.created",
	"payload": {"id":"evt_1","event":"order.created","shop_id":"shop_1","created_at":"2024-04-02T10:00:00.000Z","data":{"order_id":"123","order_no":12345678901234567890,"n":9007199254740993}},
	"response": {"status_code": 500, "headers": {"Content-Type": "text/plain"}, "body": "boom", "body_truncated": true},
	"status": "failed",
	"failure_reason": "HTTP 500",
	"created_at": "2024-04-02T10:00:01.250Z",
	"duration_ms": 87,
	"event_id": "evt_1",
	"attempt": 8,
	"trigger": "manual_retry",
	"retry_of": "dlv_1",
	"next_retry_at": null,
	"request": {"headers": {"webhook-id": "evt_1", "User-Agent": "PancakeWebhooks/1.0"}}
}`

func wantFailedDelivery(t *testing.T) pancake.WebhookDelivery {
	return pancake.WebhookDelivery{
		ID:        "dlv_2",
		WebhookID: "wh_1",
		Event:     pancake.EventOrderCreated,
		// As sent, every digit kept (a float64 would make them
		// 12345678901234567000 and 9007199254740992).
		Payload: json.RawMessage(`{"id":"evt_1","event":"order.created","shop_id":"shop_1","created_at":"2024-04-02T10:00:00.000Z",` +
			`"data":{"order_id":"123","order_no":12345678901234567890,"n":9007199254740993}}`),
		Response: pancake.DeliveryResponse{
			StatusCode: 500, Headers: map[string]string{"Content-Type": "text/plain"}, Body: "boom", BodyTruncated: true,
		},
		Status:        pancake.StatusFailed,
		FailureReason: "HTTP 500",
		CreatedAt:     ts(t, "2024-04-02T10:00:01.25Z"),
		DurationMS:    87,
		EventID:       "evt_1",
		Attempt:       8,
		Trigger:       pancake.TriggerManualRetry,
		RetryOf:       "dlv_1",
		Request:       &pancake.DeliveryRequest{Headers: map[string]string{"webhook-id": "evt_1", "User-Agent": "PancakeWebhooks/1.0"}},
	}
}

// pendingDeliveryJSON is a queued delivery: no response yet, scheduled.
const pendingDeliveryJSON = `{
	"id": "dlv_3", "webhook_id": "wh_1", "event": "order.updated", "payload": {},
	"status": "pending", "created_at": "2024-04-02T10:00:00.000Z", "duration_ms": 0,
	"event_id": "evt_2", "attempt": 2, "trigger": "retry", "scheduled_at": "2024-04-02T10:05:00.000Z"
}`

func wantPendingDelivery(t *testing.T) pancake.WebhookDelivery {
	return pancake.WebhookDelivery{
		ID: "dlv_3", WebhookID: "wh_1", Event: pancake.EventOrderUpdated, Payload: json.RawMessage(`{}`),
		Status: pancake.StatusPending, CreatedAt: ts(t, "2024-04-02T10:00:00Z"),
		EventID: "evt_2", Attempt: 2, Trigger: pancake.TriggerRetry, ScheduledAt: tsp(t, "2024-04-02T10:05:00Z"),
	}
}

func TestWebhooksService_ListDeliveries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		params pancake.DeliveryListParams
		query  string
	}{
		{"EveryFilter", pancake.DeliveryListParams{
			WebhookID: "wh_1", PageSize: 5, PageNumber: 2, Status: pancake.StatusFailed,
			Event: pancake.EventOrderCreated, FromDate: "2024-04-01", ToDate: "2024-04-29",
		}, "event=order.created&from_date=2024-04-01&page_number=2&page_size=5&status=failed&to_date=2024-04-29&webhook_id=wh_1"},
		{"ZeroFieldsLeftOut", pancake.DeliveryListParams{}, ""},
		{"SomeFields", pancake.DeliveryListParams{WebhookID: "wh 1&x", Status: pancake.StatusPending},
			"status=pending&webhook_id=wh+1%26x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, bundle := setup(t)
			bundle.mux.HandleFunc(shopPath+"/webhook-deliveries", func(w http.ResponseWriter, r *http.Request) {
				testRequest(t, r, "GET")
				testQuery(t, r, tc.query)
				testNoBody(t, r)
				writeJSON(w, 200, `{"data":[`+failedDeliveryJSON+`,`+pendingDeliveryJSON+`],
					"total":7,"page_number":2,"page_size":5,"total_pages":2}`)
			})
			got, err := client.Webhooks.ListDeliveries(t.Context(), tc.params)
			if err != nil {
				t.Fatalf("Webhooks.ListDeliveries returned error: %v", err)
			}
			want := &pancake.DeliveryList{
				Data:  []pancake.WebhookDelivery{wantFailedDelivery(t), wantPendingDelivery(t)},
				Total: 7, PageNumber: 2, PageSize: 5, TotalPages: 2,
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Webhooks.ListDeliveries returned diff (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWebhooksService_GetDeliveryByID(t *testing.T) {
	t.Parallel()

	t.Run("FailedWithExtensions", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.mux.HandleFunc(shopPath+"/webhook-deliveries/dlv_2", func(w http.ResponseWriter, r *http.Request) {
			testRequest(t, r, "GET")
			writeJSON(w, 200, failedDeliveryJSON)
		})
		got, err := client.Webhooks.GetDeliveryByID(t.Context(), "dlv_2")
		if err != nil {
			t.Fatalf("Webhooks.GetDeliveryByID returned error: %v", err)
		}
		want := wantFailedDelivery(t)
		if diff := cmp.Diff(&want, got); diff != "" {
			t.Errorf("Webhooks.GetDeliveryByID returned diff (-want +got):\n%s", diff)
		}
	})

	t.Run("NextRetryAt", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.mux.HandleFunc(shopPath+"/webhook-deliveries/dlv_4", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, strings.Replace(failedDeliveryJSON, `"next_retry_at": null`, `"next_retry_at": "2024-04-02T10:05:01.250Z"`, 1))
		})
		got, err := client.Webhooks.GetDeliveryByID(t.Context(), "dlv_4")
		if err != nil {
			t.Fatalf("Webhooks.GetDeliveryByID returned error: %v", err)
		}
		if diff := cmp.Diff(tsp(t, "2024-04-02T10:05:01.25Z"), got.NextRetryAt); diff != "" {
			t.Errorf("NextRetryAt diff (-want +got):\n%s", diff)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.mux.HandleFunc(shopPath+"/webhook-deliveries/dlv_x", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, 404, "not_found", "Delivery not found")
		})
		if _, err := client.Webhooks.GetDeliveryByID(t.Context(), "dlv_x"); !errors.Is(err, pancake.ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	})
}

func TestWebhooksService_RetryDelivery(t *testing.T) {
	t.Parallel()
	client, bundle := setup(t)
	bundle.mux.HandleFunc(shopPath+"/webhook-deliveries/dlv_2/retry", func(w http.ResponseWriter, r *http.Request) {
		testRequest(t, r, "POST")
		testBody(t, r, `{}`)
		writeJSON(w, 200, `{"delivery_id":"dlv_9","status":"success","response":{"status_code":204}}`)
	})
	got, err := client.Webhooks.RetryDelivery(t.Context(), "dlv_2")
	if err != nil {
		t.Fatalf("Webhooks.RetryDelivery returned error: %v", err)
	}
	want := &pancake.DeliveryResult{DeliveryID: "dlv_9", Status: pancake.StatusSuccess, Response: &pancake.AttemptResponse{StatusCode: 204}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Webhooks.RetryDelivery returned diff (-want +got):\n%s", diff)
	}
}

func TestWebhooksService_GetPendingDeliveries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		params []pancake.PendingListParams
		query  string
	}{
		{"NoParamsSendsNoQuery", nil, ""},
		{"ZeroFieldsLeftOut", []pancake.PendingListParams{{}}, ""},
		{"EveryParam", []pancake.PendingListParams{{WebhookID: "wh_1", PageSize: 50, PageNumber: 3}},
			"page_number=3&page_size=50&webhook_id=wh_1"},
		{"WebhookIDEscaped", []pancake.PendingListParams{{WebhookID: "wh 1&x"}}, "webhook_id=wh+1%26x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, bundle := setup(t)
			bundle.mux.HandleFunc(shopPath+"/webhook-deliveries/pending", func(w http.ResponseWriter, r *http.Request) {
				testRequest(t, r, "GET")
				testQuery(t, r, tc.query)
				testNoBody(t, r)
				writeJSON(w, 200, `{"total_count":31,"deliveries":[`+pendingDeliveryJSON+`]}`)
			})
			got, err := client.Webhooks.GetPendingDeliveries(t.Context(), tc.params...)
			if err != nil {
				t.Fatalf("Webhooks.GetPendingDeliveries returned error: %v", err)
			}
			want := &pancake.PendingDeliveries{TotalCount: 31, Deliveries: []pancake.WebhookDelivery{wantPendingDelivery(t)}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Webhooks.GetPendingDeliveries returned diff (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("TwoParamsIsAnErrorWithoutRequest", func(t *testing.T) {
		t.Parallel()
		client, _ := setup(t) // any request fails the test
		_, err := client.Webhooks.GetPendingDeliveries(t.Context(), pancake.PendingListParams{}, pancake.PendingListParams{PageSize: 5})
		if err == nil || !strings.Contains(err.Error(), "at most one") {
			t.Errorf("err = %v, want an error saying at most one PendingListParams", err)
		}
	})
}

func TestWebhooksService_PendingDeliveries(t *testing.T) {
	t.Parallel()

	// setupPending serves a queue of total deliveries dlv_1…; failAt, when
	// > 0, makes that page a 500.
	setupPending := func(t *testing.T, total, failAt int) (*pancake.Client, *[]string) {
		return fakePages(t, "/webhook-deliveries/pending", pendingItem, total, failAt, func(items string, total, _, _ int) string {
			return fmt.Sprintf(`{"total_count":%d,"deliveries":[%s]}`, total, items)
		})
	}
	collect := func(t *testing.T, client *pancake.Client, params pancake.PendingListParams) ([]string, error) {
		t.Helper()
		return collectIDs(client.Webhooks.PendingDeliveries(t.Context(), params))
	}

	t.Run("WalksEveryPage", func(t *testing.T) {
		t.Parallel()
		client, queries := setupPending(t, 7, 0)
		ids, err := collect(t, client, pancake.PendingListParams{WebhookID: "wh_1", PageSize: 3})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(idRange(1, 7), ids); diff != "" {
			t.Errorf("Webhooks.PendingDeliveries yielded diff (-want +got):\n%s", diff)
		}
		want := []string{
			"page_number=1&page_size=3&webhook_id=wh_1",
			"page_number=2&page_size=3&webhook_id=wh_1",
			"page_number=3&page_size=3&webhook_id=wh_1",
		}
		if diff := cmp.Diff(want, *queries); diff != "" {
			t.Errorf("queries diff (-want +got):\n%s", diff)
		}
	})

	t.Run("StopsAfterAFullLastPage", func(t *testing.T) {
		t.Parallel()
		client, queries := setupPending(t, 6, 0)
		ids, err := collect(t, client, pancake.PendingListParams{PageSize: 3})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(idRange(1, 6), ids); diff != "" {
			t.Errorf("Webhooks.PendingDeliveries yielded diff (-want +got):\n%s", diff)
		}
		if len(*queries) != 2 {
			t.Errorf("requests = %d, want 2: %v", len(*queries), *queries)
		}
	})

	t.Run("DefaultsToPagesOf100FromPage1", func(t *testing.T) {
		t.Parallel()
		client, queries := setupPending(t, 150, 0)
		ids, err := collect(t, client, pancake.PendingListParams{})
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != 150 {
			t.Errorf("yielded %d deliveries, want 150", len(ids))
		}
		want := []string{"page_number=1&page_size=100", "page_number=2&page_size=100"}
		if diff := cmp.Diff(want, *queries); diff != "" {
			t.Errorf("queries diff (-want +got):\n%s", diff)
		}
	})

	t.Run("EmptyQueueMakesOneRequest", func(t *testing.T) {
		t.Parallel()
		client, queries := setupPending(t, 0, 0)
		ids, err := collect(t, client, pancake.PendingListParams{})
		if err != nil || len(ids) != 0 {
			t.Errorf("got %v, %v; want nothing", ids, err)
		}
		if len(*queries) != 1 {
			t.Errorf("requests = %d, want 1", len(*queries))
		}
	})

	t.Run("StopsAtAnEmptyPage", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		var calls atomic.Int32
		bundle.mux.HandleFunc(shopPath+"/webhook-deliveries/pending", func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			// The queue drained since total_count was counted.
			writeJSON(w, 200, `{"total_count":500,"deliveries":[]}`)
		})
		if _, err := collect(t, client, pancake.PendingListParams{}); err != nil {
			t.Fatal(err)
		}
		if got := calls.Load(); got != 1 {
			t.Errorf("requests = %d, want 1", got)
		}
	})
}

func TestWebhooksService_Deliveries(t *testing.T) {
	t.Parallel()

	// setupPages serves a list of total deliveries dlv_1…; failAt, when
	// > 0, makes that page a 500.
	setupPages := func(t *testing.T, total, failAt int) (*pancake.Client, *[]string) {
		return fakePages(t, "/webhook-deliveries", listedItem, total, failAt, func(items string, total, page, size int) string {
			return fmt.Sprintf(`{"data":[%s],"total":%d,"page_number":%d,"page_size":%d,"total_pages":%d}`,
				items, total, page, size, (total+size-1)/size)
		})
	}
	collect := func(t *testing.T, client *pancake.Client, params pancake.DeliveryListParams) ([]string, error) {
		t.Helper()
		return collectIDs(client.Webhooks.Deliveries(t.Context(), params))
	}

	t.Run("WalksEveryPage", func(t *testing.T) {
		t.Parallel()
		client, queries := setupPages(t, 7, 0)
		ids, err := collect(t, client, pancake.DeliveryListParams{WebhookID: "wh_1", Status: pancake.StatusSuccess, PageSize: 3})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(idRange(1, 7), ids); diff != "" {
			t.Errorf("Webhooks.Deliveries yielded diff (-want +got):\n%s", diff)
		}
		want := []string{
			"page_number=1&page_size=3&status=success&webhook_id=wh_1",
			"page_number=2&page_size=3&status=success&webhook_id=wh_1",
			"page_number=3&page_size=3&status=success&webhook_id=wh_1",
		}
		if diff := cmp.Diff(want, *queries); diff != "" {
			t.Errorf("queries diff (-want +got):\n%s", diff)
		}
	})

	t.Run("DefaultsToPagesOf100FromPage1", func(t *testing.T) {
		t.Parallel()
		client, queries := setupPages(t, 150, 0)
		ids, err := collect(t, client, pancake.DeliveryListParams{})
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != 150 {
			t.Errorf("yielded %d deliveries, want 150", len(ids))
		}
		want := []string{"page_number=1&page_size=100", "page_number=2&page_size=100"}
		if diff := cmp.Diff(want, *queries); diff != "" {
			t.Errorf("queries diff (-want +got):\n%s", diff)
		}
	})

	t.Run("StartsAtPageNumber", func(t *testing.T) {
		t.Parallel()
		client, _ := setupPages(t, 10, 0)
		ids, err := collect(t, client, pancake.DeliveryListParams{PageSize: 4, PageNumber: 2})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(idRange(5, 10), ids); diff != "" {
			t.Errorf("Webhooks.Deliveries yielded diff (-want +got):\n%s", diff)
		}
	})

	t.Run("EachRangeStartsAgain", func(t *testing.T) {
		t.Parallel()
		// One sequence ranged twice: the second started from the page the
		// first ended on (code review).
		client, _ := setupPages(t, 10, 0)
		seq := client.Webhooks.Deliveries(t.Context(), pancake.DeliveryListParams{PageSize: 4, PageNumber: 2})
		for i := range 2 {
			ids, err := collectIDs(seq)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(idRange(5, 10), ids); diff != "" {
				t.Errorf("range %d over one Webhooks.Deliveries yielded diff (-want +got):\n%s", i+1, diff)
			}
		}
	})

	t.Run("EmptyListMakesOneRequest", func(t *testing.T) {
		t.Parallel()
		client, queries := setupPages(t, 0, 0)
		ids, err := collect(t, client, pancake.DeliveryListParams{})
		if err != nil || len(ids) != 0 {
			t.Errorf("got %v, %v; want nothing", ids, err)
		}
		if len(*queries) != 1 {
			t.Errorf("requests = %d, want 1", len(*queries))
		}
	})

	t.Run("StopsAtAnEmptyPage", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		var calls atomic.Int32
		bundle.mux.HandleFunc(shopPath+"/webhook-deliveries", func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			// A server that claims more pages than it has.
			writeJSON(w, 200, `{"data":[],"total":500,"page_number":1,"page_size":100,"total_pages":5}`)
		})
		if _, err := collect(t, client, pancake.DeliveryListParams{}); err != nil {
			t.Fatal(err)
		}
		if got := calls.Load(); got != 1 {
			t.Errorf("requests = %d, want 1", got)
		}
	})

	t.Run("EarlyBreakStopsRequests", func(t *testing.T) {
		t.Parallel()
		client, queries := setupPages(t, 10, 0)
		var ids []string
		for d, err := range client.Webhooks.Deliveries(t.Context(), pancake.DeliveryListParams{PageSize: 3}) {
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, d.ID)
			if len(ids) == 2 {
				break
			}
		}
		if diff := cmp.Diff(idRange(1, 2), ids); diff != "" {
			t.Errorf("yielded diff (-want +got):\n%s", diff)
		}
		if len(*queries) != 1 {
			t.Errorf("requests = %d, want 1", len(*queries))
		}
	})

	t.Run("ErrorEndsTheWalk", func(t *testing.T) {
		t.Parallel()
		client, queries := setupPages(t, 10, 2)
		var ids []string
		var errs []error
		for d, err := range client.Webhooks.Deliveries(t.Context(), pancake.DeliveryListParams{PageSize: 3}) {
			if err != nil {
				errs = append(errs, err)
				if d.ID != "" {
					t.Errorf("delivery %q yielded with the error", d.ID)
				}
				continue // the iterator must end by itself
			}
			ids = append(ids, d.ID)
		}
		if diff := cmp.Diff(idRange(1, 3), ids); diff != "" {
			t.Errorf("yielded diff (-want +got):\n%s", diff)
		}
		var apiErr *pancake.Error
		if len(errs) != 1 || !errors.As(errs[0], &apiErr) || apiErr.StatusCode != 500 {
			t.Errorf("errors = %v, want one 500", errs)
		}
		if len(*queries) != 2 {
			t.Errorf("requests = %d, want 2", len(*queries))
		}
	})
}

// Items of the fake lists: a queued delivery (no response yet) and an
// attempt made; %d is the number in the id.
const (
	pendingItem = `{"id":"dlv_%d","webhook_id":"wh_1","event":"order.created","payload":{},"status":"pending",
		"created_at":"2024-04-02T10:00:00.000Z","duration_ms":0,"scheduled_at":"2024-04-02T10:05:00.000Z"}`
	listedItem = `{"id":"dlv_%d","webhook_id":"wh_1","event":"order.created","payload":{},
		"response":{"status_code":200,"headers":{}},"status":"success","created_at":"2024-04-02T10:00:00.000Z","duration_ms":1}`
)

// fakePages serves total deliveries dlv_1… (item, a format of the id's
// number) at the shop's path in the pages page_size and page_number ask
// for, each answered by page (the items' JSON, total, the page's number and
// size); it returns the raw queries it got. failAt, when > 0, makes that
// page a 500.
func fakePages(t *testing.T, path, item string, total, failAt int, page func(items string, total, number, size int) string) (*pancake.Client, *[]string) {
	t.Helper()
	client, bundle := setup(t)
	var queries []string
	bundle.mux.HandleFunc(shopPath+path, func(w http.ResponseWriter, r *http.Request) {
		testRequest(t, r, "GET")
		queries = append(queries, r.URL.RawQuery)
		q := r.URL.Query()
		size, _ := strconv.Atoi(q.Get("page_size"))
		number, _ := strconv.Atoi(q.Get("page_number"))
		if failAt > 0 && number == failAt {
			writeError(w, 500, "internal", "Internal error")
			return
		}
		var items []string
		for i := (number-1)*size + 1; i <= min(number*size, total); i++ {
			items = append(items, fmt.Sprintf(item, i))
		}
		writeJSON(w, 200, page(strings.Join(items, ","), total, number, size))
	})
	return client, &queries
}

// collectIDs walks seq to its end or its first error.
func collectIDs(seq iter.Seq2[pancake.WebhookDelivery, error]) ([]string, error) {
	var ids []string
	for d, err := range seq {
		if err != nil {
			return ids, err
		}
		ids = append(ids, d.ID)
	}
	return ids, nil
}

// idRange is dlv_from … dlv_to.
func idRange(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("dlv_%d", i))
	}
	return out
}
