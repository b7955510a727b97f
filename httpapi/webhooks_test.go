package httpapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	webhooks "github.com/pancake-pos/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/httpapi"
)

// wantError asserts an error envelope with status and code, and that each
// of fields is named in its details.
func wantError(t *testing.T, res *response, status int, code string, fields ...string) {
	t.Helper()
	if res.Status != status {
		t.Fatalf("status = %d, want %d: %s", res.Status, status, res.Body)
	}
	if got := res.ErrorCode(t); got != code {
		t.Fatalf("code = %q, want %q: %s", got, code, res.Body)
	}
	details := res.ErrorDetails(t)
	for _, f := range fields {
		if _, ok := details[f]; !ok {
			t.Errorf("details lack %q: %s", f, res.Body)
		}
	}
}

func TestWebhooks(t *testing.T) { t.Parallel(); forEachDB(t, testWebhooks) }

func testWebhooks(t *testing.T) {
	t.Parallel()

	now := webhooks.FormatTime(testStart)

	t.Run("ListEmpty", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		res := b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil)
		if res.Status != 200 || string(res.Body) != `{"data":[],"total":0}`+"\n" {
			t.Fatalf("list: %d %s", res.Status, res.Body)
		}
	})

	t.Run("CreateReturnsTheWebhookWithItsSecret", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		got := b.createWebhook(t, map[string]any{
			"url":         "https://example.com/hook",
			"events":      []string{"order.created", "order.updated", "order.created"},
			"description": "Order sync",
		})
		if !webhooks.ValidID(webhooks.PrefixWebhook, got.ID) {
			t.Errorf("id = %q", got.ID)
		}
		if !strings.HasPrefix(got.SecretKey, "whsec_") || len(got.SecretKey) != len("whsec_")+44 {
			t.Errorf("secret_key = %q", got.SecretKey)
		}
		want := webhookOut{
			ID: got.ID, URL: "https://example.com/hook", Events: []string{"order.created", "order.updated"},
			IsActive: true, SecretKey: got.SecretKey, Description: "Order sync", CreatedAt: now, UpdatedAt: now,
		}
		want.HealthStatus.Status = "healthy"
		want.HealthStatus.SuccessRate = 100
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("create diff (-want +got):\n%s", diff)
		}
	})

	t.Run("CreateInactive", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		got := b.createWebhook(t, map[string]any{"url": "https://example.com/h", "events": []string{"order.created"}, "is_active": false})
		if got.IsActive {
			t.Error("is_active = true, want false")
		}
	})

	t.Run("CreateValidation", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		path := shopPath(b.shopID, "/webhooks")
		for _, tt := range []struct {
			name   string
			body   any
			code   string
			fields []string
		}{
			{"EmptyBody", nil, "validation_failed", []string{"url", "events"}},
			{"EmptyObject", "{}", "validation_failed", []string{"url", "events"}},
			{"PlainHTTP", `{"url":"http://example.com","events":["order.created"]}`, "validation_failed", []string{"url"}},
			{"RelativeURL", `{"url":"/hook","events":["order.created"]}`, "validation_failed", []string{"url"}},
			{"UserInURL", `{"url":"https://u:p@example.com","events":["order.created"]}`, "validation_failed", []string{"url"}},
			// It went onto the request line as it was: every attempt refused.
			{"SpaceInURL", `{"url":"https://example.com/hook?a=b c","events":["order.created"]}`, "validation_failed", []string{"url"}},
			{"LongURL", `{"url":"https://example.com/` + strings.Repeat("a", 2048) + `","events":["order.created"]}`, "validation_failed", []string{"url"}},
			{"UnknownEvent", `{"url":"https://example.com","events":["order.shipped"]}`, "validation_failed", []string{"events"}},
			{"NoEvents", `{"url":"https://example.com","events":[]}`, "validation_failed", []string{"events"}},
			{"EventsNotArray", `{"url":"https://example.com","events":"order.created"}`, "validation_failed", []string{"events"}},
			{"EventNotString", `{"url":"https://example.com","events":[1]}`, "validation_failed", []string{"events"}},
			{"URLNotString", `{"url":5,"events":["order.created"]}`, "validation_failed", []string{"url"}},
			{"URLNull", `{"url":null,"events":["order.created"]}`, "validation_failed", []string{"url"}},
			{"IsActiveNotBool", `{"url":"https://example.com","events":["order.created"],"is_active":"yes"}`, "validation_failed", []string{"is_active"}},
			{"LongDescription", `{"url":"https://example.com","events":["order.created"],"description":"` + strings.Repeat("é", 1001) + `"}`, "validation_failed", []string{"description"}},
			{"UnknownFields", `{"url":"https://example.com","events":["order.created"],"secret":"x","colour":1}`, "validation_failed", []string{"secret", "colour"}},
			{"NotAnObject", `["https://example.com"]`, "validation_failed", []string{"body"}},
			{"Malformed", `{"url":`, "invalid_json", nil},
			{"TrailingGarbage", `{"url":"https://example.com","events":["order.created"]} x`, "invalid_json", nil},
			{"TwoValues", `{} {}`, "invalid_json", nil},
			// Which URL is meant is unknown: a check in front may read the first.
			{"DuplicateField", `{"url":"https://a.example/x","events":["order.created"],"url":"https://b.example/x"}`, "validation_failed", []string{"url"}},
			{"NotUTF8", "{\"url\":\"https://example.com/\xff\",\"events\":[\"order.created\"]}", "invalid_json", nil},
			// PostgreSQL's text refuses NUL: a 500 there, stored on SQLite.
			{"NULInDescription", `{"url":"https://example.com","events":["order.created"],"description":"a\u0000b"}`, "validation_failed", []string{"description"}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				res := b.call(t, "POST", path, tt.body)
				wantError(t, res, 400, tt.code, tt.fields...)
			})
		}
		// Nothing was created.
		res := b.call(t, "GET", path, nil)
		if string(res.Body) != `{"data":[],"total":0}`+"\n" {
			t.Errorf("list after failed creates: %s", res.Body)
		}
	})

	t.Run("CreateListsAllowedEventTypes", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		res := b.call(t, "POST", shopPath(b.shopID, "/webhooks"), `{"url":"https://example.com","events":["nope"]}`)
		if !strings.Contains(string(res.Body), "loyalty.points_redeemed") {
			t.Errorf("error does not list allowed values: %s", res.Body)
		}
	})

	t.Run("CreateHTTPWhenAllowed", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t, func(c *httpapi.Config) { c.URLPolicy.AllowHTTP = true })
		got := b.createWebhook(t, map[string]any{"url": "http://localhost:9000/h", "events": []string{"order.created"}})
		if got.URL != "http://localhost:9000/h" {
			t.Errorf("url = %q", got.URL)
		}
	})

	t.Run("CreateBeyondTheLimitIsConflict", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t, func(c *httpapi.Config) { c.MaxWebhooksPerShop = 2 })
		b.mustCreateWebhook(t)
		b.mustCreateWebhook(t)
		res := b.call(t, "POST", shopPath(b.shopID, "/webhooks"), map[string]any{"url": "https://example.com/3", "events": []string{"order.created"}})
		wantError(t, res, 409, "conflict")
	})

	t.Run("CreateOversizeBodyIs413", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		body := `{"url":"https://example.com","events":["order.created"],"description":"` + strings.Repeat("a", 70<<10) + `"}`
		res := b.call(t, "POST", shopPath(b.shopID, "/webhooks"), body)
		wantError(t, res, 413, "payload_too_large")
	})

	t.Run("ListOldestFirstWithoutSecrets", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		first := b.mustCreateWebhook(t)
		b.clock.Advance(time.Second)
		second := b.mustCreateWebhook(t, "product.created")
		res := b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil)
		var got struct {
			Data  []webhookOut `json:"data"`
			Total int          `json:"total"`
		}
		res.Decode(t, &got)
		first.SecretKey, second.SecretKey = "", ""
		want := struct {
			Data  []webhookOut `json:"data"`
			Total int          `json:"total"`
		}{Data: []webhookOut{first, second}, Total: 2}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("list diff (-want +got):\n%s", diff)
		}
		if strings.Contains(string(res.Body), "secret_key") {
			t.Errorf("list contains secret_key: %s", res.Body)
		}
	})

	t.Run("GetWithSecret", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		created := b.mustCreateWebhook(t)
		res := b.call(t, "GET", shopPath(b.shopID, "/webhooks/"+created.ID), nil)
		var got webhookOut
		res.Decode(t, &got)
		if diff := cmp.Diff(created, got); diff != "" {
			t.Errorf("get diff (-want +got):\n%s", diff)
		}
	})

	t.Run("GetNotFound", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		other := b.mustCreateWebhook(t)
		// Move it to look like another shop's by asking from shop-2's side.
		for _, p := range []string{
			shopPath(b.shopID, "/webhooks/"+webhooks.NewID(webhooks.PrefixWebhook, testStart)),
			shopPath(b.shopID, "/webhooks/not-an-id"),
			shopPath(b.shopID, "/webhooks/dlv_01jq0c9z7k3m4n5p6q7r8s9t0v"),
		} {
			wantError(t, b.call(t, "GET", p, nil), 404, "not_found")
		}
		res := b.do(t, request{Method: "GET", Path: shopPath(b.otherShop, "/webhooks/"+other.ID), Key: b.otherKey})
		wantError(t, res, 404, "not_found")
	})

	t.Run("UpdateKeepsAbsentFields", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		created := b.createWebhook(t, map[string]any{"url": "https://example.com/a", "events": []string{"order.created"}, "description": "d"})
		b.clock.Advance(time.Minute)
		res := b.call(t, "PUT", shopPath(b.shopID, "/webhooks/"+created.ID), map[string]any{"url": "https://example.com/b"})
		if res.Status != 200 {
			t.Fatalf("update: %d %s", res.Status, res.Body)
		}
		var got webhookOut
		res.Decode(t, &got)
		want := created
		want.URL = "https://example.com/b"
		want.UpdatedAt = webhooks.FormatTime(testStart.Add(time.Minute))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("update diff (-want +got):\n%s", diff)
		}

		res = b.call(t, "PUT", shopPath(b.shopID, "/webhooks/"+created.ID), map[string]any{
			"events": []string{"product.created", "product.deleted"}, "description": nil, "is_active": false,
		})
		got = webhookOut{}
		res.Decode(t, &got)
		if diff := cmp.Diff([]string{"product.created", "product.deleted"}, got.Events); diff != "" {
			t.Errorf("events diff (-want +got):\n%s", diff)
		}
		if got.Description != "" || got.IsActive || got.URL != "https://example.com/b" {
			t.Errorf("after second update: %+v", got)
		}
	})

	t.Run("UpdateEmptyBodyChangesNothing", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		created := b.mustCreateWebhook(t)
		for _, body := range []any{nil, "{}"} {
			res := b.call(t, "PUT", shopPath(b.shopID, "/webhooks/"+created.ID), body)
			var got webhookOut
			res.Decode(t, &got)
			if res.Status != 200 || got.URL != created.URL || got.SecretKey != created.SecretKey {
				t.Errorf("update %v: %d %s", body, res.Status, res.Body)
			}
		}
	})

	t.Run("UpdateValidation", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		created := b.mustCreateWebhook(t)
		path := shopPath(b.shopID, "/webhooks/"+created.ID)
		for _, tt := range []struct {
			name, body string
			fields     []string
		}{
			{"NullURL", `{"url":null}`, []string{"url"}},
			{"NullEvents", `{"events":null}`, []string{"events"}},
			{"EmptyEvents", `{"events":[]}`, []string{"events"}},
			{"BadURL", `{"url":"ftp://x"}`, []string{"url"}},
			{"NullIsActive", `{"is_active":null}`, []string{"is_active"}},
			{"Unknown", `{"id":"wh_x"}`, []string{"id"}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				wantError(t, b.call(t, "PUT", path, tt.body), 400, "validation_failed", tt.fields...)
			})
		}
		wantError(t, b.call(t, "PUT", path, `{"url":`), 400, "invalid_json")
		wantError(t, b.call(t, "PUT", shopPath(b.shopID, "/webhooks/"+webhooks.NewID(webhooks.PrefixWebhook, testStart)), `{}`), 404, "not_found")
	})

	t.Run("DeleteAnswersJSON", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		created := b.mustCreateWebhook(t)
		path := shopPath(b.shopID, "/webhooks/"+created.ID)
		res := b.call(t, "DELETE", path, nil)
		if res.Status != 200 || string(res.Body) != `{"success":true}`+"\n" {
			t.Fatalf("delete: %d %s", res.Status, res.Body)
		}
		wantError(t, b.call(t, "GET", path, nil), 404, "not_found")
		wantError(t, b.call(t, "DELETE", path, nil), 404, "not_found")
	})

	t.Run("SetActive", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		created := b.mustCreateWebhook(t)
		path := shopPath(b.shopID, "/webhooks/"+created.ID+"/set-active")
		for _, active := range []bool{false, true} {
			res := b.call(t, "PUT", path, map[string]any{"is_active": active})
			var got webhookOut
			res.Decode(t, &got)
			if res.Status != 200 || got.IsActive != active || got.SecretKey == "" {
				t.Errorf("set-active %v: %d %s", active, res.Status, res.Body)
			}
		}
		// true clears the failure streak of an active webhook too; an update
		// that only repeats is_active true (an edit form sending every field) keeps it.
		b.publish(t, "order.created", map[string]any{"n": 1})
		b.publish(t, "order.created", map[string]any{"n": 2})
		b.attemptQueued(t, false, nil)
		streak := func(res *response) int {
			t.Helper()
			var got webhookOut
			res.Decode(t, &got)
			return got.HealthStatus.ConsecutiveFailures
		}
		if n := streak(b.call(t, "PUT", shopPath(b.shopID, "/webhooks/"+created.ID), map[string]any{"description": "d", "is_active": true})); n != 2 {
			t.Errorf("an update repeating is_active true left a streak of %d; want the 2 failures kept", n)
		}
		if n := streak(b.call(t, "PUT", path, map[string]any{"is_active": true})); n != 0 {
			t.Errorf("set-active true left a streak of %d; want it cleared", n)
		}
		wantError(t, b.call(t, "PUT", path, `{}`), 400, "validation_failed", "is_active")
		wantError(t, b.call(t, "PUT", path, `{"is_active":"true"}`), 400, "validation_failed", "is_active")
		wantError(t, b.call(t, "PUT", path, `{"is_active":true,"x":1}`), 400, "validation_failed", "x")
		wantError(t, b.call(t, "PUT", shopPath(b.shopID, "/webhooks/wh_nope/set-active"), `{"is_active":true}`), 404, "not_found")
	})

	t.Run("TestSendsAndRecords", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		created := b.mustCreateWebhook(t)
		res := b.call(t, "POST", shopPath(b.shopID, "/webhooks/"+created.ID+"/test"), map[string]any{
			"event": "order.created", "payload": map[string]any{"order_id": 7},
		})
		if res.Status != 200 {
			t.Fatalf("test: %d %s", res.Status, res.Body)
		}
		got := res.JSON(t)
		id, _ := got["delivery_id"].(string)
		want := map[string]any{"delivery_id": id, "status": "success", "response": map[string]any{"status_code": float64(200), "body": "ok"}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("test diff (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(`{"order_id":7}`, string(b.attempter.lastPayload)); diff != "" {
			t.Errorf("payload diff (-want +got):\n%s", diff)
		}
		d := b.call(t, "GET", shopPath(b.shopID, "/webhook-deliveries/"+id), nil).JSON(t)
		if d["trigger"] != "test" || d["status"] != "success" {
			t.Errorf("recorded delivery: %v", d)
		}
		payload, _ := d["payload"].(map[string]any)
		if payload["test"] != true || payload["shop_id"] != "shop-1" {
			t.Errorf("recorded envelope: %v", payload)
		}
	})

	t.Run("TestFailingReceiverIs200", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		b.attempter.ResultFunc = func(w *webhooks.Webhook) (webhooks.DeliveryStatus, *webhooks.Response, string) {
			return webhooks.StatusFailed, &webhooks.Response{StatusCode: 0}, "connection refused"
		}
		created := b.mustCreateWebhook(t)
		res := b.call(t, "POST", shopPath(b.shopID, "/webhooks/"+created.ID+"/test"), `{"event":"order.created"}`)
		got := res.JSON(t)
		want := map[string]any{"delivery_id": got["delivery_id"], "status": "failed",
			"response": map[string]any{"status_code": float64(0)}, "failure_reason": "connection refused"}
		if res.Status != 200 {
			t.Fatalf("test: %d %s", res.Status, res.Body)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("test diff (-want +got):\n%s", diff)
		}
		if string(b.attempter.lastPayload) != "{}" {
			t.Errorf("default payload = %s, want {}", b.attempter.lastPayload)
		}
	})

	t.Run("SyncAttemptsBoundedPerShop", func(t *testing.T) {
		// Test sends and manual retries hold a connection each for up to
		// the attempt timeout: a shop has 2 here at once; a third waits
		// for one, then is a 429. Another shop has its own.
		t.Parallel()
		b := setupAPI(t, func(c *httpapi.Config) { c.MaxSyncAttemptsPerShop, c.SyncAttemptWait = 2, 500*time.Millisecond })
		entered, release := make(chan string, 10), make(chan struct{})
		open := sync.OnceFunc(func() { close(release) })
		t.Cleanup(open) // a test that fails early leaves nothing waiting
		b.attempter.TestFunc = func(ctx context.Context, w *webhooks.Webhook, event webhooks.EventType, payload json.RawMessage) (*webhooks.Delivery, error) {
			entered <- w.ShopID
			<-release
			return &webhooks.Delivery{ID: "dlv_1", Status: webhooks.StatusSuccess}, nil
		}
		created := b.mustCreateWebhook(t)
		path := shopPath(b.shopID, "/webhooks/"+created.ID+"/test")
		body := `{"event":"order.created","payload":{}}`
		var held sync.WaitGroup
		for range 2 {
			held.Go(func() {
				if res := b.call(t, "POST", path, body); res.Status != 200 {
					t.Errorf("a held test send: %d %s", res.Status, res.Body)
				}
			})
		}
		<-entered
		<-entered
		res := b.call(t, "POST", path, body)
		wantError(t, res, 429, "rate_limited")
		if got := res.Header.Get("Retry-After"); got != "1" {
			t.Errorf("Retry-After = %q, want 1", got)
		}
		wantError(t, b.call(t, "POST", shopPath(b.shopID, "/webhook-deliveries/"+webhooks.NewID(webhooks.PrefixDelivery, time.Now())+"/retry"), `{}`), 429, "rate_limited")

		res = b.do(t, request{Method: "POST", Path: shopPath(b.otherShop, "/webhooks"), Key: b.otherKey,
			Body: `{"url":"https://example.com/hook","events":["order.created"]}`})
		var other webhookOut
		res.Decode(t, &other)
		done := make(chan *response, 1)
		go func() {
			done <- b.do(t, request{Method: "POST", Path: shopPath(b.otherShop, "/webhooks/"+other.ID+"/test"), Key: b.otherKey, Body: body})
		}()
		if shop := <-entered; shop != b.otherShop {
			t.Errorf("entered %q, want the other shop", shop)
		}

		// One waiting for a slot gets the first one freed.
		waiting := make(chan *response, 1)
		go func() { waiting <- b.call(t, "POST", path, body) }()
		for deadline := time.Now().Add(5 * time.Second); httpapi.SyncAttemptsWaiting(b.srv, b.shopID) < 1; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the third test send is not waiting for a slot")
			}
		}
		open()
		if res := <-waiting; res.Status != 200 {
			t.Errorf("a test send that waited for a slot: %d %s", res.Status, res.Body)
		}
		if res := <-done; res.Status != 200 {
			t.Errorf("the other shop's test send: %d %s", res.Status, res.Body)
		}
		held.Wait()
	})

	t.Run("SyncAttemptsBoundedOnTheServer", func(t *testing.T) {
		// All shops together have 3 here: with shop-1 holding its 2 and
		// shop-2 one, shop-2's second is a 429 though its own bound is 2.
		t.Parallel()
		b := setupAPI(t, func(c *httpapi.Config) {
			c.MaxSyncAttemptsPerShop, c.MaxSyncAttempts, c.SyncAttemptWait = 2, 3, 300*time.Millisecond
		})
		entered, release := make(chan string, 10), make(chan struct{})
		open := sync.OnceFunc(func() { close(release) })
		t.Cleanup(open)
		b.attempter.TestFunc = func(ctx context.Context, w *webhooks.Webhook, event webhooks.EventType, payload json.RawMessage) (*webhooks.Delivery, error) {
			entered <- w.ShopID
			<-release
			return &webhooks.Delivery{ID: "dlv_1", Status: webhooks.StatusSuccess}, nil
		}
		body := `{"event":"order.created","payload":{}}`
		mine := b.mustCreateWebhook(t)
		var other webhookOut
		b.do(t, request{Method: "POST", Path: shopPath(b.otherShop, "/webhooks"), Key: b.otherKey,
			Body: `{"url":"https://example.com/hook","events":["order.created"]}`}).Decode(t, &other)
		mineTest := func() *response { return b.call(t, "POST", shopPath(b.shopID, "/webhooks/"+mine.ID+"/test"), body) }
		otherTest := func() *response {
			return b.do(t, request{Method: "POST", Path: shopPath(b.otherShop, "/webhooks/"+other.ID+"/test"), Key: b.otherKey, Body: body})
		}
		var held sync.WaitGroup
		for _, send := range []func() *response{mineTest, mineTest, otherTest} {
			held.Go(func() {
				if res := send(); res.Status != 200 {
					t.Errorf("a held test send: %d %s", res.Status, res.Body)
				}
			})
		}
		for range 3 {
			<-entered
		}
		over := make(chan *response, 1)
		go func() { over <- otherTest() }()
		var res *response
		select {
		case res = <-over:
		case <-time.After(5 * time.Second):
			open() // let it end
			t.Fatal("a fourth test send on the server was let through, not refused")
		}
		wantError(t, res, 429, "rate_limited")
		if !strings.Contains(string(res.Body), "on this server (3 at once)") {
			t.Errorf("%s does not name the server's bound", res.Body)
		}
		open()
		held.Wait()
		if res := otherTest(); res.Status != 200 {
			t.Errorf("after the others ended: %d %s", res.Status, res.Body)
		}
	})

	t.Run("TestValidation", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t, func(c *httpapi.Config) { c.MaxBodyBytes = 1024 })
		created := b.mustCreateWebhook(t)
		path := shopPath(b.shopID, "/webhooks/"+created.ID+"/test")
		wantError(t, b.call(t, "POST", path, `{}`), 400, "validation_failed", "event")
		wantError(t, b.call(t, "POST", path, `{"event":"nope"}`), 400, "validation_failed", "event")
		wantError(t, b.call(t, "POST", path, `{"event":"order.created","payload":[1]}`), 400, "validation_failed", "payload")
		wantError(t, b.call(t, "POST", path, `{"event":"order.created","payload":{},"x":1}`), 400, "validation_failed", "x")
		wantError(t, b.call(t, "POST", path, `{"event":"order.created","payload":{"a":"`+strings.Repeat("a", 2000)+`"}}`), 413, "payload_too_large")
		wantError(t, b.call(t, "POST", shopPath(b.shopID, "/webhooks/wh_01jq0c9z7k3m4n5p6q7r8s9t0v/test"), `{"event":"order.created"}`), 404, "not_found")
	})

	t.Run("RotateSecret", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		created := b.mustCreateWebhook(t)
		res := b.call(t, "POST", shopPath(b.shopID, "/webhooks/"+created.ID+"/rotate-secret"), map[string]any{})
		var got struct {
			SecretKey string `json:"secret_key"`
		}
		res.Decode(t, &got)
		if res.Status != 200 || !strings.HasPrefix(got.SecretKey, "whsec_") || got.SecretKey == created.SecretKey {
			t.Fatalf("rotate: %d %s", res.Status, res.Body)
		}
		var after webhookOut
		b.call(t, "GET", shopPath(b.shopID, "/webhooks/"+created.ID), nil).Decode(t, &after)
		if after.SecretKey != got.SecretKey {
			t.Errorf("secret after rotation = %q, want %q", after.SecretKey, got.SecretKey)
		}
		// An empty body is accepted too, unknown fields are not.
		if res := b.call(t, "POST", shopPath(b.shopID, "/webhooks/"+created.ID+"/rotate-secret"), nil); res.Status != 200 {
			t.Errorf("rotate without body: %d %s", res.Status, res.Body)
		}
		if res := b.call(t, "POST", shopPath(b.shopID, "/webhooks/"+created.ID+"/rotate-secret"), " \r\n\t"); res.Status != 200 {
			t.Errorf("rotate with a body of JSON whitespace: %d %s", res.Status, res.Body)
		}
		// Other spaces are not JSON's: such a body is malformed, not empty.
		for _, body := range []string{"\f", "\v", "\u00a0", "\u3000"} {
			wantError(t, b.call(t, "POST", shopPath(b.shopID, "/webhooks/"+created.ID+"/rotate-secret"), body), 400, "invalid_json")
		}
		wantError(t, b.call(t, "POST", shopPath(b.shopID, "/webhooks/"+created.ID+"/rotate-secret"), `{"secret":"x"}`), 400, "validation_failed", "secret")
		wantError(t, b.call(t, "POST", shopPath(b.shopID, "/webhooks/wh_01jq0c9z7k3m4n5p6q7r8s9t0v/rotate-secret"), `{}`), 404, "not_found")
	})

	t.Run("StatsEmptyHasObjectAndArray", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		created := b.mustCreateWebhook(t)
		res := b.call(t, "GET", shopPath(b.shopID, "/webhooks/"+created.ID+"/stats"), nil)
		want := `{"total_deliveries":0,"success_count":0,"failure_count":0,"average_duration_ms":0,"event_counts":{},"hourly_stats":[]}` + "\n"
		if res.Status != 200 || string(res.Body) != want {
			t.Fatalf("stats: %d %s", res.Status, res.Body)
		}
	})

	t.Run("StatsCountAttemptsInRange", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		created := b.mustCreateWebhook(t)
		testPath := shopPath(b.shopID, "/webhooks/"+created.ID+"/test")
		b.call(t, "POST", testPath, `{"event":"order.created"}`)
		b.attempter.ResultFunc = func(w *webhooks.Webhook) (webhooks.DeliveryStatus, *webhooks.Response, string) {
			return webhooks.StatusFailed, &webhooks.Response{StatusCode: 500}, "HTTP 500"
		}
		b.call(t, "POST", testPath, `{"event":"order.updated"}`)

		var got webhooks.WebhookStats
		b.call(t, "GET", shopPath(b.shopID, "/webhooks/"+created.ID+"/stats"), nil).Decode(t, &got)
		want := webhooks.WebhookStats{
			TotalDeliveries: 2, SuccessCount: 1, FailureCount: 1, AverageDurationMS: 12,
			EventCounts: map[string]int64{"order.created": 1, "order.updated": 1},
			HourlyStats: []webhooks.HourlyStat{{Hour: "2026-11-26T12:00:00.000Z", Total: 2, Success: 1, Failed: 1}},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("stats diff (-want +got):\n%s", diff)
		}

		// A range that ends the day before: nothing.
		b.call(t, "GET", shopPath(b.shopID, "/webhooks/"+created.ID+"/stats?from_date=2026-11-01&to_date=2026-11-25"), nil).Decode(t, &got)
		if got.TotalDeliveries != 0 {
			t.Errorf("stats before: %+v", got)
		}
		// to_date is inclusive of its whole day.
		b.call(t, "GET", shopPath(b.shopID, "/webhooks/"+created.ID+"/stats?from_date=2026-11-26&to_date=2026-11-26"), nil).Decode(t, &got)
		if got.TotalDeliveries != 2 {
			t.Errorf("stats on the day: %+v", got)
		}
		// From the first day there is: everything, not the default week.
		b.call(t, "GET", shopPath(b.shopID, "/webhooks/"+created.ID+"/stats?from_date=0001-01-01&to_date=2100-01-01"), nil).Decode(t, &got)
		if got.TotalDeliveries != 2 {
			t.Errorf("stats from 0001-01-01: %+v", got)
		}
	})

	t.Run("StatsValidation", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		created := b.mustCreateWebhook(t)
		path := shopPath(b.shopID, "/webhooks/"+created.ID+"/stats")
		wantError(t, b.call(t, "GET", path+"?from_date=2026-11-20&to_date=2026-11-19", nil), 400, "validation_failed", "to_date")
		wantError(t, b.call(t, "GET", path+"?from_date=1960-01-01&to_date=1950-01-01", nil), 400, "validation_failed", "to_date")
		wantError(t, b.call(t, "GET", path+"?from_date=2024-13-01", nil), 400, "validation_failed", "from_date")
		wantError(t, b.call(t, "GET", path+"?to_date=yesterday", nil), 400, "validation_failed", "to_date")
		wantError(t, b.call(t, "GET", path+"?from_date=2026-02-30", nil), 400, "validation_failed", "from_date")
		wantError(t, b.call(t, "GET", shopPath(b.shopID, "/webhooks/wh_01jq0c9z7k3m4n5p6q7r8s9t0v/stats"), nil), 404, "not_found")
	})

	t.Run("ClearHistory", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		created := b.mustCreateWebhook(t)
		testPath := shopPath(b.shopID, "/webhooks/"+created.ID+"/test")
		b.call(t, "POST", testPath, `{"event":"order.created"}`)
		b.attempter.ResultFunc = func(w *webhooks.Webhook) (webhooks.DeliveryStatus, *webhooks.Response, string) {
			return webhooks.StatusFailed, &webhooks.Response{StatusCode: 500}, "HTTP 500"
		}
		b.call(t, "POST", testPath, `{"event":"order.created"}`)
		path := shopPath(b.shopID, "/webhooks/"+created.ID+"/clear-history")

		// Before today: nothing older.
		res := b.call(t, "POST", path, `{"before_date":"2026-11-26"}`)
		if res.Status != 200 || string(res.Body) != `{"deleted_count":0}`+"\n" {
			t.Fatalf("clear before today: %d %s", res.Status, res.Body)
		}
		// The first day there is, and Go's zero time, are days like any
		// other: nothing is older, nothing is deleted.
		for _, body := range []string{`{"before_date":"0001-01-01"}`, `{"before_date":"0001-01-01T00:00:00Z"}`, `{"before_date":"1969-12-31"}`} {
			if res := b.call(t, "POST", path, body); res.Status != 200 || string(res.Body) != `{"deleted_count":0}`+"\n" {
				t.Fatalf("clear %s: %d %s", body, res.Status, res.Body)
			}
		}
		res = b.call(t, "POST", path, `{"status":"failed"}`)
		if string(res.Body) != `{"deleted_count":1}`+"\n" {
			t.Fatalf("clear failed: %d %s", res.Status, res.Body)
		}
		res = b.call(t, "POST", path, `{}`)
		if string(res.Body) != `{"deleted_count":1}`+"\n" {
			t.Fatalf("clear all: %d %s", res.Status, res.Body)
		}
		wantError(t, b.call(t, "POST", path, `{"status":"pending"}`), 400, "validation_failed", "status")
		wantError(t, b.call(t, "POST", path, `{"before_date":"26/11/2026"}`), 400, "validation_failed", "before_date")
		wantError(t, b.call(t, "POST", path, `{"before":"2026-11-26"}`), 400, "validation_failed", "before")
		wantError(t, b.call(t, "POST", shopPath(b.shopID, "/webhooks/wh_01jq0c9z7k3m4n5p6q7r8s9t0v/clear-history"), `{}`), 404, "not_found")
	})
}
