package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	webhooks "github.com/pancake-pos/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/httpapi"
)

// deliveryPage is the paginated list as a client sees it.
type deliveryPage struct {
	Data       []map[string]any `json:"data"`
	Total      int              `json:"total"`
	PageNumber int              `json:"page_number"`
	PageSize   int              `json:"page_size"`
	TotalPages int              `json:"total_pages"`
}

func ids(list []map[string]any) []string {
	out := []string{}
	for _, d := range list {
		out = append(out, d["id"].(string))
	}
	return out
}

func TestDeliveries(t *testing.T) { t.Parallel(); forEachDB(t, testDeliveries) }

func testDeliveries(t *testing.T) {
	t.Parallel()

	t.Run("PendingListsQueuedWithTheirShape", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		wh := b.mustCreateWebhook(t)
		evID := b.publish(t, "order.created", map[string]any{"order_id": "1001"})

		res := b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries/pending"), nil)
		var got struct {
			TotalCount int              `json:"total_count"`
			Deliveries []map[string]any `json:"deliveries"`
		}
		res.Decode(t, &got)
		if res.Status != 200 || got.TotalCount != 1 || len(got.Deliveries) != 1 {
			t.Fatalf("pending: %d %s", res.Status, res.Body)
		}
		d := got.Deliveries[0]
		want := map[string]any{
			"id": d["id"], "webhook_id": wh.ID, "event": "order.created",
			"payload": map[string]any{"id": evID, "event": "order.created", "shop_id": "shop-1",
				"created_at": "2026-11-26T12:00:00.000Z", "data": map[string]any{"order_id": "1001"}},
			"status":     "pending",
			"created_at": "2026-11-26T12:00:00.000Z", "duration_ms": float64(0),
			"event_id": evID, "attempt": float64(1), "trigger": "event",
			"scheduled_at": "2026-11-26T12:00:00.000Z",
		}
		if diff := cmp.Diff(want, d); diff != "" {
			t.Errorf("pending delivery diff (-want +got):\n%s", diff)
		}

		// The history list does not show it; status=pending does.
		var page deliveryPage
		b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries"), nil).Decode(t, &page)
		if page.Total != 0 || len(page.Data) != 0 {
			t.Errorf("history shows queued: %+v", page)
		}
		b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries?status=pending"), nil).Decode(t, &page)
		if page.Total != 1 {
			t.Errorf("status=pending: %+v", page)
		}
	})

	t.Run("AShopsListsReadSlowlyHoldOnlyItsOwnTurns", func(t *testing.T) {
		// A client that does not read its answer holds it until the write
		// timeout; a shop has MaxListsPerShop lists under way at once, so
		// its slow clients hold neither the server's memory nor the turns
		// of other shops. The next of the shop waits, then is a 429.
		t.Parallel()
		b := setupAPI(t, func(c *httpapi.Config) { c.ListWait = 300 * time.Millisecond })
		b.mustCreateWebhook(t)
		b.publish(t, "order.created", map[string]any{"order_id": "1001"})
		path := shopPath(b.shopID, "/webhook-deliveries/pending?api_key="+b.key)
		writing, release := make(chan struct{}, httpapi.MaxListsPerShop), make(chan struct{})
		open := sync.OnceFunc(func() { close(release) })
		t.Cleanup(open)
		var held sync.WaitGroup
		for range httpapi.MaxListsPerShop {
			held.Go(func() {
				w := &stuckWriter{ResponseRecorder: httptest.NewRecorder(), writing: writing, release: release}
				b.srv.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
				if w.Code != 200 {
					t.Errorf("a list read slowly: %d %s", w.Code, w.Body)
				}
			})
		}
		for range httpapi.MaxListsPerShop {
			<-writing
		}
		if n := httpapi.ListsUnderWay(b.srv, b.shopID); n != httpapi.MaxListsPerShop {
			t.Errorf("%d lists of the shop under way, want %d", n, httpapi.MaxListsPerShop)
		}
		res := b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries"), nil)
		wantError(t, res, 429, "rate_limited")
		if msg := string(res.Body); !strings.Contains(msg, "delivery lists") || res.Header.Get("Retry-After") != "1" {
			t.Errorf("the 429 does not say what is under way, or when to retry: %s %v", msg, res.Header)
		}
		if res := b.do(t, request{Method: "GET", Path: shopPath(b.otherShop, "/webhook-deliveries"), Key: b.otherKey}); res.Status != 200 {
			t.Errorf("another shop's list while the first's are read slowly: %d %s", res.Status, res.Body)
		}
		open()
		held.Wait()
		if res := b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries"), nil); res.Status != 200 {
			t.Errorf("the shop's list once its slow answers were read: %d %s", res.Status, res.Body)
		}
		if n := httpapi.ListsUnderWay(b.srv, b.shopID); n != 0 {
			t.Errorf("%d lists of the shop under way after all were answered", n)
		}
	})

	t.Run("ListFinishedNewestFirstWithPagination", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		b.mustCreateWebhook(t)
		for range 5 {
			b.publish(t, "order.created", map[string]any{})
			b.clock.Advance(time.Second)
		}
		attempted := b.attemptQueued(t, true, nil)
		if len(attempted) != 5 {
			t.Fatalf("attempted %d", len(attempted))
		}
		var page deliveryPage
		res := b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries?page_size=2&page_number=1"), nil)
		res.Decode(t, &page)
		if diff := cmp.Diff(deliveryPage{Data: page.Data, Total: 5, PageNumber: 1, PageSize: 2, TotalPages: 3}, page); diff != "" {
			t.Errorf("page diff (-want +got):\n%s", diff)
		}
		var all deliveryPage
		b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries"), nil).Decode(t, &all)
		if all.PageSize != 20 || all.PageNumber != 1 || all.TotalPages != 1 || len(all.Data) != 5 {
			t.Fatalf("defaults: %+v", all)
		}
		got := ids(all.Data)
		// All were attempted at the same instant: newest first is by id.
		want := append([]string{}, got...)
		for i := 1; i < len(want); i++ {
			if want[i-1] < want[i] {
				t.Errorf("not newest first: %v", got)
				break
			}
		}
		d := all.Data[0]
		if d["status"] != "success" || d["response"].(map[string]any)["status_code"] != float64(200) {
			t.Errorf("finished delivery: %v", d)
		}
		if _, ok := d["next_retry_at"]; ok {
			t.Errorf("success has next_retry_at: %v", d)
		}
		if diff := cmp.Diff(map[string]any{"headers": map[string]any{"webhook-id": d["event_id"]}}, d["request"]); diff != "" {
			t.Errorf("request diff (-want +got):\n%s", diff)
		}
		var last deliveryPage
		b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries?page_size=2&page_number=3"), nil).Decode(t, &last)
		if len(last.Data) != 1 || last.Data[0]["id"] != all.Data[4]["id"] {
			t.Errorf("last page: %v", ids(last.Data))
		}
		var beyond deliveryPage
		b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries?page_size=2&page_number=9"), nil).Decode(t, &beyond)
		if len(beyond.Data) != 0 || beyond.Data == nil {
			t.Errorf("beyond: %+v", beyond)
		}
		// However far: an empty page, with the totals.
		beyond = deliveryPage{}
		b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries?page_size=100&page_number=99999999"), nil).Decode(t, &beyond)
		if len(beyond.Data) != 0 || beyond.Data == nil || beyond.Total != 5 || beyond.PageNumber != 99999999 {
			t.Errorf("far beyond: %+v", beyond)
		}
	})

	t.Run("FailedHasNextRetryAt", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		b.mustCreateWebhook(t, "order.created", "order.updated")
		b.publish(t, "order.created", map[string]any{})
		b.publish(t, "order.updated", map[string]any{})
		next := testStart.Add(5 * time.Second)
		b.attemptQueued(t, false, &next)

		var page deliveryPage
		b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries?status=failed"), nil).Decode(t, &page)
		if page.Total != 2 {
			t.Fatalf("failed: %+v", page)
		}
		for _, d := range page.Data {
			if d["next_retry_at"] != "2026-11-26T12:00:05.000Z" || d["failure_reason"] != "HTTP 500" {
				t.Errorf("failed delivery: %v", d)
			}
		}
		// The retries are queued, attempt 2, trigger retry.
		var pending struct {
			Deliveries []map[string]any `json:"deliveries"`
		}
		b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries/pending"), nil).Decode(t, &pending)
		if len(pending.Deliveries) != 2 || pending.Deliveries[0]["attempt"] != float64(2) || pending.Deliveries[0]["trigger"] != "retry" {
			t.Errorf("queued retries: %v", pending.Deliveries)
		}
		// Failing for good: next_retry_at is null but present.
		b.clock.Advance(10 * time.Second)
		b.attemptQueued(t, false, nil)
		res := b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries?status=failed&page_size=1"), nil)
		if !strings.Contains(string(res.Body), `"next_retry_at":null`) {
			t.Errorf("final failure lacks next_retry_at null: %s", res.Body)
		}
	})

	t.Run("ListFilters", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		wh1 := b.mustCreateWebhook(t, "order.created", "product.created")
		wh2 := b.mustCreateWebhook(t, "order.created")
		b.publish(t, "order.created", map[string]any{})   // to both
		b.publish(t, "product.created", map[string]any{}) // to wh1
		b.attemptQueued(t, true, nil)
		b.clock.Advance(48 * time.Hour)
		b.publish(t, "order.created", map[string]any{}) // two days later, to both
		b.attemptQueued(t, false, nil)

		count := func(query string) int {
			t.Helper()
			var page deliveryPage
			res := b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries?"+query), nil)
			if res.Status != 200 {
				t.Fatalf("%s: %d %s", query, res.Status, res.Body)
			}
			res.Decode(t, &page)
			if page.Total != len(page.Data) {
				t.Fatalf("%s: total %d, data %d", query, page.Total, len(page.Data))
			}
			return page.Total
		}
		got := map[string]int{
			"all":         count(""),
			"wh1":         count("webhook_id=" + wh1.ID),
			"wh2":         count("webhook_id=" + wh2.ID),
			"success":     count("status=success"),
			"failed":      count("status=failed"),
			"product":     count("event=product.created"),
			"firstDay":    count("from_date=2026-11-26&to_date=2026-11-26"),
			"fromLater":   count("from_date=2026-11-27"),
			"toFirstDay":  count("to_date=2026-11-26"),
			"wh2Failed":   count("webhook_id=" + wh2.ID + "&status=failed"),
			"unknownWh":   count("webhook_id=" + webhooks.NewID(webhooks.PrefixWebhook, testStart)),
			"notAnID":     count("webhook_id=webhook-id"), // the product document's example
			"ignoredParm": count("colour=blue"),
		}
		want := map[string]int{
			"all": 5, "wh1": 3, "wh2": 2, "success": 3, "failed": 2, "product": 1,
			"firstDay": 3, "fromLater": 2, "toFirstDay": 3, "wh2Failed": 1, "unknownWh": 0, "notAnID": 0, "ignoredParm": 5,
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("filter counts diff (-want +got):\n%s", diff)
		}
	})

	t.Run("ListBadQueryParameters", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		for _, tt := range []struct{ query, param string }{
			{"page_size=abc", "page_size"},
			{"page_size=0", "page_size"},
			{"page_size=101", "page_size"},
			{"page_size=1.5", "page_size"},
			{"page_number=0", "page_number"},
			{"page_number=-1", "page_number"},
			{"status=ok", "status"},
			{"event=order.shipped", "event"},
			{"webhook_id=" + strings.Repeat("w", 256), "webhook_id"},
			{"webhook_id=wh%201", "webhook_id"},
			{"from_date=2024-13-01", "from_date"},
			{"to_date=2024-1-1", "to_date"},
			{"from_date=2026-11-20&to_date=2026-11-19", "to_date"},
			{"from_date=1960-01-01&to_date=1950-01-01", "to_date"}, // both before the epoch
			{"page_size=1&page_size=2", "page_size"},
			{"page_size=%zz", "query"},
		} {
			res := b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries?"+tt.query), nil)
			wantError(t, res, 400, "validation_failed", tt.param)
			if strings.Contains(string(res.Body), b.key) {
				t.Errorf("%s: error echoes the key: %s", tt.query, res.Body)
			}
		}
		wantError(t, b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries/pending?page_size=abc"), nil), 400, "validation_failed", "page_size")
		wantError(t, b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries/pending?webhook_id="+strings.Repeat("w", 256)), nil), 400, "validation_failed", "webhook_id")
	})

	t.Run("PendingFiltersByWebhookAndPages", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		wh1 := b.mustCreateWebhook(t)
		b.mustCreateWebhook(t)
		b.publish(t, "order.created", map[string]any{})
		b.publish(t, "order.created", map[string]any{})
		var got struct {
			TotalCount int              `json:"total_count"`
			Deliveries []map[string]any `json:"deliveries"`
		}
		b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries/pending?webhook_id="+wh1.ID+"&page_size=1"), nil).Decode(t, &got)
		if got.TotalCount != 2 || len(got.Deliveries) != 1 || got.Deliveries[0]["webhook_id"] != wh1.ID {
			t.Errorf("pending filtered: %+v", got)
		}
		got.TotalCount, got.Deliveries = -1, nil
		b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries/pending?webhook_id=webhook-id"), nil).Decode(t, &got)
		if got.TotalCount != 0 || got.Deliveries == nil || len(got.Deliveries) != 0 {
			t.Errorf("pending of a webhook_id that is no ID: %+v; want none", got)
		}
	})

	t.Run("GetAndNotFound", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		b.mustCreateWebhook(t)
		b.publish(t, "order.created", map[string]any{})
		id := b.attemptQueued(t, true, nil)[0]
		res := b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries/"+id), nil)
		got := res.JSON(t)
		if res.Status != 200 || got["id"] != id || got["status"] != "success" {
			t.Fatalf("get: %d %s", res.Status, res.Body)
		}
		wantError(t, b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries/"+webhooks.NewID(webhooks.PrefixDelivery, testStart)), nil), 404, "not_found")
		wantError(t, b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries/nope"), nil), 404, "not_found")
		res = b.do(t, request{Method: "GET", Path: shopPath(b.otherShop, "/webhook-deliveries/"+id), Key: b.otherKey})
		wantError(t, res, 404, "not_found")
	})

	t.Run("RetryMakesANewDelivery", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		b.mustCreateWebhook(t)
		b.publish(t, "order.created", map[string]any{"n": 1})
		id := b.attemptQueued(t, false, nil)[0]
		b.clock.Advance(time.Minute)

		res := b.call(t, "POST", shopPath(b.shopID, "/webhook-deliveries/"+id+"/retry"), map[string]any{})
		got := res.JSON(t)
		newID, _ := got["delivery_id"].(string)
		want := map[string]any{"delivery_id": newID, "status": "success", "response": map[string]any{"status_code": float64(200), "body": "ok"}}
		if res.Status != 200 {
			t.Fatalf("retry: %d %s", res.Status, res.Body)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("retry diff (-want +got):\n%s", diff)
		}
		d := b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries/"+newID), nil).JSON(t)
		if d["trigger"] != "manual_retry" || d["retry_of"] != id {
			t.Errorf("retry delivery: %v", d)
		}
		orig := b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries/"+id), nil).JSON(t)
		if diff := cmp.Diff(orig["payload"], d["payload"]); diff != "" {
			t.Errorf("retry payload diff (-want +got):\n%s", diff)
		}
	})

	t.Run("RetryErrors", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		wh := b.mustCreateWebhook(t)
		b.publish(t, "order.created", map[string]any{})
		id := b.attemptQueued(t, true, nil)[0]
		path := shopPath(b.shopID, "/webhook-deliveries/"+id+"/retry")
		wantError(t, b.call(t, "POST", path, `{"force":true}`), 400, "validation_failed", "force")
		wantError(t, b.call(t, "POST", path, `[]`), 400, "validation_failed", "body")
		wantError(t, b.call(t, "POST", shopPath(b.shopID, "/webhook-deliveries/dlv_x/retry"), `{}`), 404, "not_found")
		// A queued delivery is the Attempter's to refuse: 409.
		b.publish(t, "order.created", map[string]any{})
		var pending struct {
			Deliveries []map[string]any `json:"deliveries"`
		}
		b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries/pending"), nil).Decode(t, &pending)
		queued := pending.Deliveries[0]["id"].(string)
		wantError(t, b.call(t, "POST", shopPath(b.shopID, "/webhook-deliveries/"+queued+"/retry"), `{}`), 409, "conflict")
		// Once the webhook is gone, so is its history: 404.
		b.call(t, "DELETE", shopPath(b.shopID, "/webhooks/"+wh.ID), nil)
		wantError(t, b.call(t, "POST", path, `{}`), 404, "not_found")
	})

	t.Run("DeliveryJSONIsStable", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		b.mustCreateWebhook(t)
		b.publish(t, "order.created", map[string]any{})
		id := b.attemptQueued(t, true, nil)[0]
		res := b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries/"+id), nil)
		var keys map[string]json.RawMessage
		res.Decode(t, &keys)
		var got []string
		for k := range keys {
			got = append(got, k)
		}
		want := []string{"attempt", "created_at", "duration_ms", "event", "event_id", "id", "payload", "request", "response", "status", "trigger", "webhook_id"}
		if diff := cmp.Diff(want, got, cmpSortStrings); diff != "" {
			t.Errorf("keys diff (-want +got):\n%s", diff)
		}
	})
}

type countingDeliveries struct {
	webhooks.DeliveryService
	mu        sync.Mutex
	now, peak int
}

func (c *countingDeliveries) FindDeliveries(ctx context.Context, f webhooks.DeliveryFilter) ([]*webhooks.Delivery, int, error) {
	c.mu.Lock()
	c.now++
	c.peak = max(c.peak, c.now)
	c.mu.Unlock()
	time.Sleep(20 * time.Millisecond) // a page of large payloads takes a while
	c.mu.Lock()
	c.now--
	c.mu.Unlock()
	return c.DeliveryService.FindDeliveries(ctx, f)
}

// TestDeliveryListsAreReadFourAtATime: a page may hold ~30 MB of payloads
// and receiver bodies; the lists read at once, all shops together, are
// bounded, and the ones over the bound wait their turn and are answered.
func TestDeliveryListsAreReadFourAtATime(t *testing.T) {
	t.Parallel()
	forEachDB(t, testDeliveryListsAreReadFourAtATime)
}

func testDeliveryListsAreReadFourAtATime(t *testing.T) {
	t.Parallel()
	cd := &countingDeliveries{}
	b := setupAPI(t, func(c *httpapi.Config) { cd.DeliveryService = c.Deliveries; c.Deliveries = cd })
	var wg sync.WaitGroup
	for i := range 16 {
		path := "/webhook-deliveries"
		if i%2 == 1 {
			path += "/pending"
		}
		wg.Go(func() {
			if res := b.call(t, "GET", shopPath(b.shopID, path), nil); res.Status != http.StatusOK {
				t.Errorf("GET %s: %d %s", path, res.Status, res.Body)
			}
		})
	}
	wg.Wait()
	if cd.peak > 4 || cd.peak < 2 { // 2: a slow machine may not start all 4 within 20 ms
		t.Errorf("%d lists read at once at most; want 4", cd.peak)
	}
}

// stuckWriter is a client that does not read its answer: Write blocks
// until release, after saying so on writing.
type stuckWriter struct {
	*httptest.ResponseRecorder
	writing chan<- struct{}
	release <-chan struct{}
	once    sync.Once
}

func (w *stuckWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { w.writing <- struct{}{} })
	<-w.release
	return w.ResponseRecorder.Write(p)
}
