package httpapi

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzFastDecodeMatchesEncodingJSON holds the one-pass splitting of
// objects and arrays, and plain strings, to what encoding/json gives for
// the same text: when the fast path answers, encoding/json must decode
// the text to the same members, elements or string.
func FuzzFastDecodeMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":"x","c":{"d":[1,2]},"e":null}`, ` { "a" : [ 1 , 2 ] } `, `{"a":1,"a":2}`,
		"{\"\xff\":1}", `{"\u00e9":"\u00e9"}`, `{"a":"\ud800"}`, `[1,"two",{"three":3},[4]]`, `[]`, `{}`,
		`{"a":1} {}`, `{"a":1}x`, `[1,]`, `null`, `"str"`, "\"\xff\"", `"tab\tin"`, `"a\"b"`, `{"a":}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if m, _, ok := members(raw); ok {
			var want map[string]json.RawMessage
			if err := json.Unmarshal(raw, &want); err != nil || want == nil {
				t.Fatalf("members(%q) accepted what encoding/json refuses: %v", raw, err)
			}
			if d := cmp.Diff(want, m); d != "" {
				t.Fatalf("members(%q) differs from encoding/json (-want +got):\n%s", raw, d)
			}
		}
		if elems, ok := items(raw); ok {
			var want []json.RawMessage
			if err := json.Unmarshal(raw, &want); err != nil || want == nil {
				t.Fatalf("items(%q) accepted what encoding/json refuses: %v", raw, err)
			}
			if d := cmp.Diff(want, elems); d != "" {
				t.Fatalf("items(%q) differs from encoding/json (-want +got):\n%s", raw, d)
			}
		}
		if json.Valid(raw) {
			if s, ok := plainString(raw); ok {
				var want string
				if err := json.Unmarshal(raw, &want); err != nil || want != s {
					t.Fatalf("plainString(%q) = %q; encoding/json gives %q, %v", raw, s, want, err)
				}
			}
		}
	})
}
