package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/store"
	"github.com/pancake-pos/pancake-webhooks/store/storetest"
)

// On PostgreSQL, pgx prepares every distinct statement text on each
// connection and keeps it, and so does the server's backend. Publishing,
// claiming and recording batches of new sizes must therefore reuse the
// texts already prepared, not add one per size.
func TestPostgresBatchSizesReuseTheirStatements(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, storetest.PostgresDSN(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	storetest.MustCreateShop(t, db, "s", now)
	var hooks []*webhooks.Webhook
	for i := range 3 {
		hooks = append(hooks, storetest.MustCreateWebhook(t, db, "s", fmt.Sprintf("https://s.example/%d", i), now, "order.created"))
	}
	data := json.RawMessage(`{"order_id":"ord_1"}`)
	round := func(n int) {
		t.Helper()
		batch := make([]webhooks.PublishInput, n)
		for i := range batch {
			batch[i] = webhooks.PublishInput{Event: "order.created", Data: data}
		}
		if _, err := db.Publish(ctx, "s", batch); err != nil {
			t.Fatal(err)
		}
		// Claim less than was queued, then the rest: claims of varying sizes,
		// by the head of the queue and by webhook.
		for _, c := range []webhooks.Claim{{Limit: n, LeaseFor: time.Minute, Exclude: []string{hooks[0].ID}},
			{Limit: 3 * n, LeaseFor: time.Minute, PerWebhook: n}} {
			jobs, err := db.ClaimDeliveries(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			at := time.Now()
			next := at.Add(time.Hour)
			res := make([]webhooks.AttemptResult, len(jobs))
			for k, j := range jobs {
				res[k] = webhooks.AttemptResult{DeliveryID: j.DeliveryID, WebhookID: j.WebhookID, Success: k%2 == 0,
					AttemptedAt: at, Duration: time.Millisecond, Response: webhooks.Response{StatusCode: 200, Body: "ok"}}
				if k%2 == 1 {
					res[k].Response.StatusCode, res[k].FailureReason, res[k].NextAttemptAt = 500, "HTTP 500", &next
				}
			}
			if err := db.RecordAttempts(ctx, res); err != nil {
				t.Fatal(err)
			}
		}
	}
	for n := 1; n <= 4; n++ {
		round(n)
	}
	before, err := db.PreparedStatementsForTest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) == 0 {
		t.Fatal("no statement prepared on the idle connections: the test cannot see what it checks")
	}
	for n := 5; n <= 12; n++ {
		round(n)
	}
	after, err := db.PreparedStatementsForTest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var added []string
	for s := range after {
		if !before[s] {
			s = strings.Join(strings.Fields(s), " ")
			added = append(added, s[:min(len(s), 160)])
		}
	}
	slices.Sort(added)
	if len(added) > 0 {
		t.Fatalf("batches of 5 to 12 prepared %d statement texts that batches of 1 to 4 had not (of %d before):\n%s",
			len(added), len(before), strings.Join(added, "\n"))
	}
}
