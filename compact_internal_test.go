package webhooks

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzAppendCompact holds the envelope's fast compaction of event data to
// json.Compact's result, byte for byte, and to its verdict on bad input.
func FuzzAppendCompact(f *testing.F) {
	for _, s := range []string{
		`{}`, ` { "a" : [ 1 , 2.50e+3 , -0 ] , "b" : null } `, "{\"a\":\n\t\"x y\"}",
		`{"a":1,"a":2}`, `{"s":"\u00e9\u2028<>&\"\\\/"}`, "{\"s\":\"\xff\xfe bad utf-8\"}",
		`{"s":"\ud800 lone surrogate"}`, `{"n":123456789012345678901234567890}`, `[true,false,null]`,
		`"str"`, `{"a":}`, `{"a":1}}`, `{"a":1} x`, ``, `{"a":[1,]}`, `{"a":01}`, "{\"c\":\"\x01\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want bytes.Buffer
		wantErr := json.Compact(&want, data)
		prefix := []byte(`{"data":`)
		got, err := appendCompact(bytes.Clone(prefix), data)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("appendCompact(%q) error %v, json.Compact error %v", data, err, wantErr)
		}
		if !bytes.HasPrefix(got, prefix) {
			t.Fatalf("appendCompact(%q) lost what it appends to: %q", data, got)
		}
		if err == nil && !bytes.Equal(got[len(prefix):], want.Bytes()) {
			t.Fatalf("appendCompact(%q) = %q, json.Compact gives %q", data, got[len(prefix):], want.Bytes())
		}
	})
}
