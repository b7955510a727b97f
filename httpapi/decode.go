package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// readBody reads the request body, which adapt has already limited. An
// oversize body is ETOOLARGE.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, tooLarge(mbe.Limit)
		}
		return nil, webhooks.Errorf(webhooks.EINVALIDJSON, "The request body could not be read")
	}
	return b, nil
}

func tooLarge(limit int64) error {
	return &webhooks.Error{
		Code:    webhooks.ETOOLARGE,
		Message: fmt.Sprintf("The request body is larger than %d bytes", limit),
		Details: map[string]any{"limit_bytes": limit},
	}
}

// parseObject parses body as one JSON object and returns its members
// unparsed. An empty body is an empty object. Malformed JSON (trailing
// garbage included) and text that is not UTF-8 are EINVALIDJSON; valid
// JSON that is not an object is EINVALID naming "body".
func parseObject(body []byte) (map[string]json.RawMessage, error) {
	// Only JSON's whitespace: bytes.TrimSpace also took \v, \f and
	// Unicode spaces, so a body of "\f" cleared a webhook's history.
	if len(bytes.Trim(body, " \t\r\n")) == 0 {
		return map[string]json.RawMessage{}, nil
	}
	// encoding/json (and the fast path, which agrees with it) would take
	// invalid UTF-8 and store U+FFFD in its place, or keep the bytes
	// as they are in an event's data, for receivers to choke on.
	if !utf8.Valid(body) {
		return nil, &webhooks.Error{
			Code:    webhooks.EINVALIDJSON,
			Message: "The request body is not valid UTF-8",
			Details: map[string]any{"offset": invalidUTF8At(body)},
		}
	}
	if m, dup, ok := members(body); ok {
		if dup != "" {
			// Which one is meant is unknown (encoding/json takes the last,
			// some proxies and checks the first).
			return nil, fieldError(fieldName(dup), "is given more than once")
		}
		return m, nil
	}
	// Unmarshal checks the whole body is valid JSON before it decodes, so
	// a syntax error anywhere comes back as one, with its offset.
	var m map[string]json.RawMessage
	err := json.Unmarshal(body, &m)
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return nil, &webhooks.Error{
			Code:    webhooks.EINVALIDJSON,
			Message: "The request body is not valid JSON: " + se.Error(),
			Details: map[string]any{"offset": se.Offset},
		}
	case err != nil && !json.Valid(body):
		return nil, webhooks.Errorf(webhooks.EINVALIDJSON, "The request body is not valid JSON")
	case err != nil || m == nil:
		return nil, fieldError("body", "must be a JSON object")
	}
	return m, nil
}

// invalidUTF8At is the offset of the first byte of b that does not start
// a valid UTF-8 sequence.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// The fast path of decoding: members and items split a JSON object or
// array in one pass with jsontext, where encoding/json would check the
// whole text, then scan it again to decode, at each level of nesting (a
// batch of publishes was scanned seven times). They accept what
// encoding/json accepts (duplicate names, the last one winning, and
// invalid UTF-8, mangled to U+FFFD in names, though parseObject has
// refused a body with any before) and give the same result;
// when they fail, the caller takes encoding/json's path, which says what
// is wrong as before.

var decoders = sync.Pool{New: func() any { return new(jsontext.Decoder) }}

func newDecoder(raw []byte) *jsontext.Decoder {
	d := decoders.Get().(*jsontext.Decoder)
	d.Reset(bytes.NewBuffer(raw), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	return d
}

func putDecoder(d *jsontext.Decoder) {
	d.Reset(bytes.NewBuffer(nil)) // drop raw
	decoders.Put(d)
}

// members returns the members of raw, one JSON object and nothing after it
// but whitespace, with their values as slices of raw; ok is false when raw
// is not that. dup is the first name given twice, if any (m holds its last
// value, as encoding/json would).
func members(raw []byte) (m map[string]json.RawMessage, dup string, ok bool) {
	d := newDecoder(raw)
	defer putDecoder(d)
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil, "", false
	}
	m = make(map[string]json.RawMessage, 4)
	for d.PeekKind() != '}' {
		name, err := d.ReadToken()
		if err != nil {
			return nil, "", false
		}
		k := name.String() // before the next read voids name
		v, ok := nextValue(d, raw)
		if !ok {
			return nil, "", false
		}
		if _, seen := m[k]; seen && dup == "" {
			dup = k
		}
		m[k] = v
	}
	if !closeValue(d) {
		return nil, "", false
	}
	return m, dup, true
}

// items returns the elements of raw, one JSON array, as slices of raw; ok
// is false when raw is not that.
func items(raw []byte) (out []json.RawMessage, ok bool) {
	d := newDecoder(raw)
	defer putDecoder(d)
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '[' {
		return nil, false
	}
	out = []json.RawMessage{}
	for d.PeekKind() != ']' {
		v, ok := nextValue(d, raw)
		if !ok {
			return nil, false
		}
		out = append(out, v)
	}
	if !closeValue(d) {
		return nil, false
	}
	return out, true
}

// nextValue reads the next value of d, which decodes raw, and returns it
// as a slice of raw (capacity capped, so an append copies); v is only
// valid until d reads on.
func nextValue(d *jsontext.Decoder, raw []byte) (json.RawMessage, bool) {
	v, err := d.ReadValue()
	if err != nil {
		return nil, false
	}
	end := d.InputOffset()
	start := end - int64(len(v))
	if start < 0 || end > int64(len(raw)) || !bytes.Equal(raw[start:end], v) {
		return nil, false // can't happen; if it did, the slow path decides
	}
	return raw[start:end:end], true
}

// closeValue reads the end of the object or array and makes sure nothing
// but whitespace follows it.
func closeValue(d *jsontext.Decoder) bool {
	if _, err := d.ReadToken(); err != nil {
		return false
	}
	_, err := d.ReadToken()
	return err == io.EOF
}

// plainString returns raw, a valid JSON string, as a Go string when it has
// no escapes and is valid UTF-8: what encoding/json would return.
func plainString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	s := raw[1 : len(raw)-1]
	if bytes.IndexByte(s, '\\') >= 0 || !utf8.Valid(s) {
		return "", false
	}
	return string(s), true
}

func fieldError(field, reason string) error {
	v := webhooks.ValidationErrors{}
	v.Add(field, reason)
	return v.Err()
}

// JSON value kinds, from the first byte of a valid value.
const (
	kindNull = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

func jsonKind(raw json.RawMessage) int {
	if len(raw) == 0 {
		return kindNull
	}
	switch raw[0] {
	case 'n':
		return kindNull
	case 't', 'f':
		return kindBool
	case '"':
		return kindString
	case '[':
		return kindArray
	case '{':
		return kindObject
	default:
		return kindNumber
	}
}

// jsonObject reads the members of a request object field by field,
// collecting one reason per bad field in errs. prefix names the object
// inside a larger body ("events[3].").
type jsonObject struct {
	m      map[string]json.RawMessage
	prefix string
	errs   webhooks.ValidationErrors
}

func newJSONObject(m map[string]json.RawMessage, prefix string, errs webhooks.ValidationErrors) *jsonObject {
	return &jsonObject{m: m, prefix: prefix, errs: errs}
}

// only records every member not in names as an unknown field.
func (o *jsonObject) only(names ...string) {
	for k := range o.m {
		if !slices.Contains(names, k) {
			o.errs.Add(o.prefix+fieldName(k), "unknown field")
		}
	}
}

// fieldName makes a member name safe and short enough to be a details key.
func fieldName(k string) string {
	if len(k) > 64 {
		k = k[:64] + "…"
	}
	q := strconv.Quote(k)
	if q[1:len(q)-1] != k {
		return q
	}
	return k
}

func (o *jsonObject) bad(name, reason string) {
	o.errs.Add(o.prefix+name, reason)
}

// lookup returns the raw member and whether it is present.
func (o *jsonObject) lookup(name string, required bool) (json.RawMessage, bool) {
	raw, ok := o.m[name]
	if !ok && required {
		o.bad(name, "is required")
	}
	return raw, ok
}

// str decodes a string member: nil when absent (or when null and nullable;
// a null that is not nullable is an error).
func (o *jsonObject) str(name string, required, nullable bool) *string {
	raw, ok := o.lookup(name, required)
	if !ok {
		return nil
	}
	switch jsonKind(raw) {
	case kindString:
		if s, ok := plainString(raw); ok {
			return &s
		}
		// The body is valid JSON and UTF-8 (parseObject): what unquoting
		// can refuse here is an unpaired surrogate escape, which
		// encoding/json would turn into U+FFFD, so that "k\ud800" and
		// "k\udc00" came out as one idempotency key.
		b, err := jsontext.AppendUnquote(nil, raw)
		if err != nil {
			o.bad(name, `must not contain an unpaired surrogate escape (\uD800 to \uDFFF)`)
			return nil
		}
		s := string(b)
		if strings.IndexByte(s, 0) >= 0 {
			// PostgreSQL's text refuses it (SQLite keeps it): refused
			// here, so both databases answer alike.
			o.bad(name, `must not contain the NUL character (\u0000)`)
			return nil
		}
		return &s
	case kindNull:
		if nullable {
			return nil
		}
		if required {
			o.bad(name, "is required")
		} else {
			o.bad(name, "must be a string, not null")
		}
		return nil
	default:
		o.bad(name, "must be a string")
		return nil
	}
}

// boolean decodes a boolean member: nil when absent.
func (o *jsonObject) boolean(name string, required bool) *bool {
	raw, ok := o.lookup(name, required)
	if !ok {
		return nil
	}
	if jsonKind(raw) != kindBool {
		o.bad(name, "must be a boolean")
		return nil
	}
	b := raw[0] == 't'
	return &b
}

// strs decodes an array of strings: nil when absent.
func (o *jsonObject) strs(name string, required bool) []string {
	raw, ok := o.lookup(name, required)
	if !ok {
		return nil
	}
	if jsonKind(raw) != kindArray {
		o.bad(name, "must be an array of strings")
		return nil
	}
	elems, ok := items(raw)
	if !ok && json.Unmarshal(raw, &elems) != nil {
		o.bad(name, "must be an array of strings")
		return nil
	}
	out := make([]string, 0, len(elems))
	for _, it := range elems {
		if s, ok := plainString(it); ok {
			out = append(out, s)
			continue
		}
		var s string
		if jsonKind(it) != kindString || json.Unmarshal(it, &s) != nil {
			o.bad(name, "must be an array of strings")
			return nil
		}
		out = append(out, s)
	}
	return out
}

// object returns an object member as raw JSON: nil when absent, or when
// null and nullable.
func (o *jsonObject) object(name string, required, nullable bool) json.RawMessage {
	raw, ok := o.lookup(name, required)
	if !ok {
		return nil
	}
	switch jsonKind(raw) {
	case kindObject:
		if jsonDepth(raw) > maxJSONDepth {
			o.bad(name, "is nested more than "+strconv.Itoa(maxJSONDepth)+" levels deep")
			return nil
		}
		return raw
	case kindNull:
		if nullable {
			return nil
		}
		if required {
			o.bad(name, "is required")
		} else {
			o.bad(name, "must be a JSON object")
		}
		return nil
	default:
		o.bad(name, "must be a JSON object")
		return nil
	}
}

// maxJSONDepth bounds the nesting of an object a client gives the server to
// keep and send (an event's data, a test payload). encoding/json parses
// 10,000 levels, and so the server accepted them, but the delivery lists
// that show such a payload nest it a few levels deeper: past the limit of
// the Go SDK's and the CLI's decoder, every page holding it failed to
// decode (audit).
const maxJSONDepth = 100

// jsonDepth returns how deeply raw, valid JSON, nests objects and arrays:
// 1 for {} or [].
func jsonDepth(raw []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case inString:
			if c == '\\' {
				i++ // the escaped character, a quote maybe
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// array returns the items of an array member: nil, false when absent.
func (o *jsonObject) array(name string, required bool) ([]json.RawMessage, bool) {
	raw, ok := o.lookup(name, required)
	if !ok {
		return nil, false
	}
	if jsonKind(raw) != kindArray {
		o.bad(name, "must be an array")
		return nil, false
	}
	elems, ok := items(raw)
	if !ok && json.Unmarshal(raw, &elems) != nil {
		o.bad(name, "must be an array")
		return nil, false
	}
	return elems, true
}
