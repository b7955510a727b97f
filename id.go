package webhooks

import (
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// ID prefixes: IDs are opaque, typed and sortable by creation.
const (
	PrefixWebhook  = "wh_"
	PrefixDelivery = "dlv_"
	PrefixEvent    = "evt_"
	PrefixKey      = "key_"
)

// NewID returns prefix + a ULID (lower case) for time t. IDs made in the same
// millisecond stay ordered (ulid's default entropy is monotonic and safe for
// concurrent use).
func NewID(prefix string, t time.Time) string {
	id := ulid.MustNew(ulid.Timestamp(t), ulid.DefaultEntropy())
	return prefix + strings.ToLower(id.String())
}

// ValidID reports whether s looks like an ID with the given prefix. It is a
// cheap filter so that garbage never reaches the database.
func ValidID(prefix, s string) bool {
	if !strings.HasPrefix(s, prefix) || len(s) != len(prefix)+ulid.EncodedSize {
		return false
	}
	_, err := ulid.ParseStrict(strings.ToUpper(s[len(prefix):]))
	return err == nil
}

// ValidShopID reports whether s is 1–64 characters of [A-Za-z0-9_-].
func ValidShopID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// TimeLayout is the one format of time stamps on the wire: RFC 3339, UTC, ms.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// FormatTime formats t in UTC with milliseconds, e.g. 2026-11-26T20:31:05.123Z.
func FormatTime(t time.Time) string {
	return t.UTC().Format(TimeLayout)
}

// MinID returns the smallest ID with prefix made at time t: every ID made
// before t sorts below it.
func MinID(prefix string, t time.Time) string {
	var id ulid.ULID
	_ = id.SetTime(ulid.Timestamp(t))
	return prefix + strings.ToLower(id.String())
}
