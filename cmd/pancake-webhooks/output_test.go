package main_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	pw "github.com/pancake-pos/pancake-webhooks/cmd/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/pancake"
)

func TestPrintable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in   string
		cell, body string // printable(in, false), printable(in, true)
	}{
		{"plain text is kept", "HTTP 500 Bánh xèo ✔ ●", "HTTP 500 Bánh xèo ✔ ●", "HTTP 500 Bánh xèo ✔ ●"},
		{"a backslash is kept", `C:\x1b`, `C:\x1b`, `C:\x1b`},
		{"escape sequences", "\x1b[31mred\x1b]0;title\a", `\x1b[31mred\x1b]0;title\a`, `\x1b[31mred\x1b]0;title\a`},
		{"tabs and newlines only in bodies", "a\tb\nc", `a\tb\nc`, "a\tb\nc"},
		{"CRLF is a newline in bodies", "a\r\nb\rc", `a\r\nb\rc`, "a\nb\\rc"},
		{"DEL and C1", "a\x7f\u0085\u009bb", `a\x7f\u0085\u009bb`, `a\x7f\u0085\u009bb`},
		{"invisible format characters", "a\u202eb\u200bc\ufeffd\u00ade\U000E0041", `a\u202eb\u200bc\ufeffd\u00ade\U000e0041`, `a\u202eb\u200bc\ufeffd\u00ade\U000e0041`},
		{"line and paragraph separators", "a\u2028b\u2029c", `a\u2028b\u2029c`, `a\u2028b\u2029c`},
		{"invalid UTF-8 byte by byte", "a\xff\xc3b", `a\xff\xc3b`, `a\xff\xc3b`},
		{"U+FFFD itself is kept", "a\ufffdb\x1b", `a` + "\ufffd" + `b\x1b`, `a` + "\ufffd" + `b\x1b`},
	} {
		if got := pw.Printable(tc.in, false); got != tc.cell {
			t.Errorf("%s: printable(%q, false) = %q, want %q", tc.name, tc.in, got, tc.cell)
		}
		if got := pw.Printable(tc.in, true); got != tc.body {
			t.Errorf("%s: printable(%q, true) = %q, want %q", tc.name, tc.in, got, tc.body)
		}
	}
}

// --json prints times as the API does (milliseconds, all three digits:
// Go's own format drops trailing zeros, 05.12Z for 05.120Z), and the
// payload as it came.
func TestJSONOutputKeepsTheAPIsStrings(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 26, 20, 31, 5, 120_000_000, time.FixedZone("ICT", 7*3600))
	var buf bytes.Buffer
	err := pw.PrintJSON(&buf, pancake.WebhookDelivery{CreatedAt: at, Payload: json.RawMessage(`{"total":250000.10,"t":"2026-11-26T13:31:05.12Z"}`)})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"created_at": "2026-11-26T13:31:05.120Z"`, `250000.10`, `"2026-11-26T13:31:05.12Z"`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("--json output lacks %s:\n%s", want, buf.String())
		}
	}
}
