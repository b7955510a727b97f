package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	webhooks "github.com/pancake-pos/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/httpapi"
)

func TestEvents(t *testing.T) { t.Parallel(); forEachDB(t, testEvents) }

func testEvents(t *testing.T) {
	t.Parallel()

	t.Run("PublishQueuesForSubscribedActiveWebhooks", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		b.mustCreateWebhook(t, "order.created")
		b.mustCreateWebhook(t, "order.created", "order.updated")
		b.mustCreateWebhook(t, "product.created")
		b.createWebhook(t, map[string]any{"url": "https://example.com/off", "events": []string{"order.created"}, "is_active": false})

		res := b.call(t, "POST", shopPath(b.shopID, "/events"), `{"event":"order.created","data":{"order_id":"1001"}}`)
		var got webhooks.PublishResult
		res.Decode(t, &got)
		if res.Status != 202 || !webhooks.ValidID(webhooks.PrefixEvent, got.EventID) {
			t.Fatalf("publish: %d %s", res.Status, res.Body)
		}
		if diff := cmp.Diff(webhooks.PublishResult{EventID: got.EventID, Deliveries: 2}, got); diff != "" {
			t.Errorf("publish diff (-want +got):\n%s", diff)
		}
	})

	t.Run("PublishWaitingOnTheDatabaseIsAnswered503", func(t *testing.T) {
		t.Parallel()
		// A database that waits on a lock, and honours the deadline as
		// both stores do: the sender gets an answer, not a connection
		// cut by the server's write timeout with none.
		b := setupAPI(t, func(c *httpapi.Config) {
			c.Events = lockedEvents{}
			c.RequestTimeout = 100 * time.Millisecond
		})
		start := time.Now()
		res := b.call(t, "POST", shopPath(b.shopID, "/events"), `{"event":"order.created","data":{}}`)
		wantError(t, res, 503, "unavailable")
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("answered after %v, want soon after the 100ms request timeout", took)
		}
	})

	t.Run("PublishIsIdempotentOnID", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		b.mustCreateWebhook(t)
		body := `{"event":"order.created","data":{},"id":"order-1001-created"}`
		first := b.call(t, "POST", shopPath(b.shopID, "/events"), body)
		b.clock.Advance(time.Hour)
		second := b.call(t, "POST", shopPath(b.shopID, "/events"), body)
		if first.Status != 202 || second.Status != 202 || string(first.Body) != string(second.Body) {
			t.Fatalf("first %d %s, second %d %s", first.Status, first.Body, second.Status, second.Body)
		}
		// Keys that differ are two events, whatever they are escaped as; a
		// pair of surrogates is one character.
		answers := map[string]string{}
		for _, id := range []string{`k\ud83d\ude00`, `k\ufffd`, `k\\ud800`} {
			res := b.call(t, "POST", shopPath(b.shopID, "/events"), `{"event":"order.created","data":{},"id":"`+id+`"}`)
			if res.Status != 202 {
				t.Fatalf("id %s: %d %s", id, res.Status, res.Body)
			}
			answers[id] = string(res.Body)
		}
		if res := b.call(t, "POST", shopPath(b.shopID, "/events"), `{"event":"order.created","data":{},"id":"k😀"}`); res.Status != 202 || string(res.Body) != answers[`k\ud83d\ude00`] {
			t.Fatalf("the same key unescaped: %d %s; want the first answer %s", res.Status, res.Body, answers[`k\ud83d\ude00`])
		}
		var pending struct {
			TotalCount int `json:"total_count"`
		}
		b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries/pending"), nil).Decode(t, &pending)
		if pending.TotalCount != 4 {
			t.Errorf("queued %d deliveries, want 4", pending.TotalCount)
		}
	})

	t.Run("PublishValidation", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		path := shopPath(b.shopID, "/events")
		for _, tt := range []struct {
			name, body, code string
			fields           []string
		}{
			{"Empty", ``, "validation_failed", []string{"event", "data"}},
			{"UnknownEvent", `{"event":"order.shipped","data":{}}`, "validation_failed", []string{"event"}},
			{"NoData", `{"event":"order.created"}`, "validation_failed", []string{"data"}},
			{"NullData", `{"event":"order.created","data":null}`, "validation_failed", []string{"data"}},
			{"ArrayData", `{"event":"order.created","data":[1]}`, "validation_failed", []string{"data"}},
			{"StringData", `{"event":"order.created","data":"x"}`, "validation_failed", []string{"data"}},
			// 101 levels, data itself the first: past what the Go SDK can
			// decode once a delivery list nests it further.
			{"DataTooDeep", `{"event":"order.created","data":{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}}`, "validation_failed", []string{"data"}},
			{"EmptyID", `{"event":"order.created","data":{},"id":""}`, "validation_failed", []string{"id"}},
			{"LongID", `{"event":"order.created","data":{},"id":"` + strings.Repeat("k", 256) + `"}`, "validation_failed", []string{"id"}},
			{"ControlInID", `{"event":"order.created","data":{},"id":"a\u0001b"}`, "validation_failed", []string{"id"}},
			{"NumberID", `{"event":"order.created","data":{},"id":5}`, "validation_failed", []string{"id"}},
			// encoding/json would make both "k\uFFFD": two keys taken as one.
			{"LoneHighSurrogateInID", `{"event":"order.created","data":{},"id":"k\ud800"}`, "validation_failed", []string{"id"}},
			{"LoneLowSurrogateInID", `{"event":"order.created","data":{},"id":"k\udc00"}`, "validation_failed", []string{"id"}},
			{"Unknown", `{"event":"order.created","data":{},"type":"x"}`, "validation_failed", []string{"type"}},
			{"Malformed", `{"event":"order.created","data":{}`, "invalid_json", nil},
			{"MalformedInsideData", `{"event":"order.created","data":{"a":tru}}`, "invalid_json", nil},
			{"TrailingGarbage", `{"event":"order.created","data":{}} x`, "invalid_json", nil},
			{"NotUTF8InData", "{\"event\":\"order.created\",\"data\":{\"name\":\"\xc3\x28\"}}", "invalid_json", nil},
			{"ArrayBody", `[{"event":"order.created","data":{}}]`, "validation_failed", []string{"body"}},
			{"NullBody", `null`, "validation_failed", []string{"body"}},
			{"StringBody", `"order.created"`, "validation_failed", []string{"body"}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				wantError(t, b.call(t, "POST", path, tt.body), 400, tt.code, tt.fields...)
			})
		}
		res := b.call(t, "POST", path, `{"event":"nope","data":{}}`)
		for _, name := range webhooks.EventTypeNames() {
			if !strings.Contains(string(res.Body), name) {
				t.Errorf("error does not list %s: %s", name, res.Body)
			}
		}
	})

	t.Run("PublishDataAsDeepAsAllowed", func(t *testing.T) {
		// 100 levels are taken; brackets, quotes and escapes inside strings
		// nest nothing.
		t.Parallel()
		b := setupAPI(t)
		deep := `{"s":"[[{{\\\"[[","a":` + strings.Repeat("[", 99) + strings.Repeat("]", 99) + `}`
		res := b.call(t, "POST", shopPath(b.shopID, "/events"), `{"event":"order.created","data":`+deep+`}`)
		if res.Status != 202 {
			t.Fatalf("data 100 levels deep: %d %s", res.Status, res.Body)
		}
	})

	t.Run("PublishOversizeIs413", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t, func(c *httpapi.Config) { c.MaxBodyBytes = 1000 })
		body := `{"event":"order.created","data":{"x":"` + strings.Repeat("a", 1000) + `"}}`
		wantError(t, b.call(t, "POST", shopPath(b.shopID, "/events"), body), 413, "payload_too_large")
		// Without a Content-Length the limit holds while reading.
		r := request{Method: "POST", Path: shopPath(b.shopID, "/events"), Key: b.key, Body: io.MultiReader(strings.NewReader(body))}
		res := b.do(t, r)
		wantError(t, res, 413, "payload_too_large")
	})

	t.Run("PublishDefaultLimitIs256KiB", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		data := strings.Repeat("a", 250<<10)
		res := b.call(t, "POST", shopPath(b.shopID, "/events"), `{"event":"order.created","data":{"x":"`+data+`"}}`)
		if res.Status != 202 {
			t.Fatalf("250 KiB: %d %s", res.Status, res.Body)
		}
		data = strings.Repeat("a", 257<<10)
		wantError(t, b.call(t, "POST", shopPath(b.shopID, "/events"), `{"event":"order.created","data":{"x":"`+data+`"}}`), 413, "payload_too_large")
	})

	t.Run("Batch", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		b.mustCreateWebhook(t, "order.created")
		res := b.call(t, "POST", shopPath(b.shopID, "/events/batch"), `{"events":[
			{"event":"order.created","data":{"n":1}},
			{"event":"product.created","data":{"n":2},"id":"p-2"}]}`)
		var got struct {
			Results []webhooks.PublishResult `json:"results"`
		}
		res.Decode(t, &got)
		if res.Status != 202 || len(got.Results) != 2 {
			t.Fatalf("batch: %d %s", res.Status, res.Body)
		}
		want := []webhooks.PublishResult{{EventID: got.Results[0].EventID, Deliveries: 1}, {EventID: got.Results[1].EventID, Deliveries: 0}}
		if diff := cmp.Diff(want, got.Results); diff != "" {
			t.Errorf("batch diff (-want +got):\n%s", diff)
		}
	})

	t.Run("BatchOf500IsAcceptedAnd501IsNot", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		batch := func(n int) string {
			items := make([]string, n)
			for i := range items {
				items[i] = `{"event":"order.created","data":{}}`
			}
			return `{"events":[` + strings.Join(items, ",") + `]}`
		}
		res := b.call(t, "POST", shopPath(b.shopID, "/events/batch"), batch(500))
		if res.Status != 202 {
			t.Fatalf("500 events: %d %s", res.Status, res.Body)
		}
		wantError(t, b.call(t, "POST", shopPath(b.shopID, "/events/batch"), batch(501)), 400, "validation_failed", "events")
	})

	t.Run("BatchErrorsNameTheIndex", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		path := shopPath(b.shopID, "/events/batch")
		res := b.call(t, "POST", path, `{"events":[{"event":"order.created","data":{}},{"event":"x","data":{}},{"event":"order.created"},7,{"event":"order.created","data":{},"extra":1},`+
			`{"event":"order.created","data":{"a":1,"a":2},"data":{}}]}`)
		wantError(t, res, 400, "validation_failed", "events[1].event", "events[2].data", "events[3]", "events[4].extra", "events[5].data")
		if len(res.ErrorDetails(t)) != 5 {
			t.Errorf("details: %v", res.ErrorDetails(t))
		}
		wantError(t, b.call(t, "POST", path, `{"events":[]}`), 400, "validation_failed", "events")
		wantError(t, b.call(t, "POST", path, `{}`), 400, "validation_failed", "events")
		wantError(t, b.call(t, "POST", path, `{"events":{}}`), 400, "validation_failed", "events")
		wantError(t, b.call(t, "POST", path, `{"events":[],"x":1}`), 400, "validation_failed", "x")
		// Nothing of a bad batch was stored.
		var pending struct {
			TotalCount int `json:"total_count"`
		}
		b.mustCreateWebhook(t)
		b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries/pending"), nil).Decode(t, &pending)
		if pending.TotalCount != 0 {
			t.Errorf("pending after bad batches: %d", pending.TotalCount)
		}
	})

	t.Run("BatchOversizeIs413", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t, func(c *httpapi.Config) { c.MaxBodyBytes = 2048 })
		items := make([]string, 100)
		for i := range items {
			items[i] = fmt.Sprintf(`{"event":"order.created","data":{"i":%d}}`, i)
		}
		wantError(t, b.call(t, "POST", shopPath(b.shopID, "/events/batch"), `{"events":[`+strings.Join(items, ",")+`]}`), 413, "payload_too_large")
	})
}

// lockedEvents is an event store whose publishes wait until their context
// ends, as one behind a table lock does (or 3 s, when the lock goes).
type lockedEvents struct{}

func (lockedEvents) Publish(ctx context.Context, _ string, _ []webhooks.PublishInput) ([]webhooks.PublishResult, error) {
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("publish: %w", ctx.Err())
	case <-time.After(3 * time.Second):
		return nil, errors.New("publish: the lock went after 3s")
	}
}
