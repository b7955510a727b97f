package store_test

import (
	"testing"

	"github.com/pancake-pos/pancake-webhooks/store"
)

func TestRedactDSN(t *testing.T) {
	t.Parallel()
	for dsn, want := range map[string]string{
		"postgres://u:secret@db.internal:5432/w":                 "postgres://…@db.internal:5432/w",
		"postgres://u:p@ss@db/w?sslmode=disable":                 "postgres://…@db/w?sslmode=disable",
		"postgresql://db/w?password=secret&sslmode=disable":      "postgresql://db/w?password=REDACTED&sslmode=disable",
		"postgres://db/w?sslmode=verify-full&sslpassword=secret": "postgres://db/w?sslmode=verify-full&sslpassword=REDACTED",
		"postgres://db/w?search_path=x@y":                        "postgres://db/w?search_path=x@y",
		"host=db password=secret user=u":                         "host=db password=REDACTED user=u",
		`host=db PASSWORD = 'se cr\'et' user=u`:                  "host=db PASSWORD=REDACTED user=u",
		"host=db password='unterminated secret":                  "host=db password=REDACTED",
		"sqlite:/var/lib/pancake/webhooks.db":                    "sqlite:/var/lib/pancake/webhooks.db",
		"postgres://pancake@db.internal/webhooks":                "postgres://…@db.internal/webhooks",
	} {
		if got := store.RedactDSN(dsn); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", dsn, got, want)
		}
	}
}
