package store_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	webhooks "github.com/pancake-pos/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/store"
	"github.com/pancake-pos/pancake-webhooks/store/storetest"
)

// pageFilters are the lists whose pages must be read from an index in its
// order: the pending lists of a shop and of one webhook, with an event
// type or not, and the history lists beside them.
var pageFilters = []struct {
	name  string
	f     webhooks.DeliveryFilter
	index string
}{
	{"pending of the shop", webhooks.DeliveryFilter{ShopID: "shop", Status: webhooks.StatusPending, Limit: 50, Offset: 1000}, "deliveries_pending_shop"},
	{"pending of a webhook", webhooks.DeliveryFilter{ShopID: "shop", WebhookID: "wh_1", Status: webhooks.StatusPending, Limit: 50, Offset: 1000}, "deliveries_pending_webhook"},
	{"pending of an event type", webhooks.DeliveryFilter{ShopID: "shop", Status: webhooks.StatusPending, Event: "order.created", Limit: 50, Offset: 1000}, "deliveries_pending_shop"},
	{"pending of a webhook and an event type", webhooks.DeliveryFilter{ShopID: "shop", WebhookID: "wh_1", Status: webhooks.StatusPending, Event: "order.created", Limit: 50, Offset: 1000}, "deliveries_pending_webhook"},
	{"failed of an event type", webhooks.DeliveryFilter{ShopID: "shop", Status: webhooks.StatusFailed, Event: "order.created", Limit: 50, Offset: 1000}, "deliveries_shop_created"},
	{"history of the shop", webhooks.DeliveryFilter{ShopID: "shop", Limit: 50, Offset: 1000}, "deliveries_shop_created"},
	{"failed of a webhook", webhooks.DeliveryFilter{ShopID: "shop", WebhookID: "wh_1", Status: webhooks.StatusFailed, Limit: 50, Offset: 1000}, "deliveries_webhook_created"},
}

// A page deep in a list must not sort what it skips, nor read a row of
// the table for each: its ids come from one index, in its order. The
// pending lists sorted each run of equal scheduled_at by id, reading the
// id (and the event type a filter asked for) from the table, until
// migration 0002 put them in their indexes.
func TestSQLiteDeliveryPagesReadAnIndexInOrder(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "pages.db")
	db, err := store.Open(ctx, "sqlite:"+path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, c := range pageFilters {
		query, args := db.DeliveryPageSQLForTest(c.f)
		rows, err := raw.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		if strings.Contains(p, "TEMP B-TREE") || !strings.Contains(p, "COVERING INDEX "+c.index) {
			t.Errorf("%s: the page is not read from %s alone, in its order: %s", c.name, c.index, p)
		}
	}
}

// A database made before migration 0002 is brought to it at start: its
// queued rows stay listed, in order, from the new indexes.
func TestUpgradeFromTheFirstSchema(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "v1.db")
		raw, err := sql.Open("sqlite", "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		firstSchema(t, raw, "sqlite")
		raw.Close()
		upgradeAndList(t, "sqlite:"+path)
	})
	t.Run("Postgres", func(t *testing.T) {
		dsn := storetest.PostgresDSN(t)
		firstSchema(t, storetest.RawPostgres(t, dsn), "postgres")
		upgradeAndList(t, dsn)
	})
}

// firstSchema makes in raw what migration 0001 alone made, with one
// event queued for three deliveries due at the same time.
func firstSchema(t *testing.T, raw *sql.DB, dialect string) {
	t.Helper()
	ctx := context.Background()
	init, err := os.ReadFile(filepath.Join("migrations", dialect, "0001_init.sql"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{string(init),
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`,
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES (1, '0001_init.sql', 1700000000000)`,
		`INSERT INTO events (id, shop_id, type, envelope, deliveries, created_at) VALUES ('evt_1', 'shop', 'order.created', '{}', 3, 1700000000000)`,
	} {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%.60s…: %v", q, err)
		}
	}
	for _, id := range []string{"dlv_c", "dlv_a", "dlv_b"} {
		if _, err := raw.ExecContext(ctx, `INSERT INTO deliveries (id, shop_id, webhook_id, event_id, event, status, trigger, attempt, created_at, scheduled_at)
			VALUES ($1, 'shop', 'wh_1', 'evt_1', 'order.created', 'pending', 'event', 1, 1700000000000, 1700000000000)`, id); err != nil {
			t.Fatal(err)
		}
	}
}

func upgradeAndList(t *testing.T, dsn string) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatalf("open the first schema's database: %v", err)
	}
	defer db.Close()
	if err := db.Ready(ctx); err != nil {
		t.Fatalf("not ready after the upgrade: %v", err)
	}
	for _, f := range []webhooks.DeliveryFilter{
		{ShopID: "shop", Status: webhooks.StatusPending, Limit: 2, Offset: 1},
		{ShopID: "shop", WebhookID: "wh_1", Status: webhooks.StatusPending, Event: "order.created", Limit: 2, Offset: 1},
	} {
		ds, total, err := db.FindDeliveries(ctx, f)
		if err != nil || total != 3 || len(ds) != 2 || ds[0].ID != "dlv_b" || ds[1].ID != "dlv_c" {
			t.Errorf("pending page 2 of %+v after the upgrade: %d of %d, %v; want dlv_b, dlv_c of 3", f, len(ds), total, err)
			for _, d := range ds {
				t.Logf("  %s", d.ID)
			}
		}
	}
}
