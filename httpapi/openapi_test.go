package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	webhooks "github.com/pancake-pos/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/httpapi"
)

// spec is the served OpenAPI document, decoded.
type spec struct {
	doc map[string]any
}

func (s *spec) resolve(schema map[string]any) map[string]any {
	for {
		ref, ok := schema["$ref"].(string)
		if !ok {
			return schema
		}
		schema = s.lookup(ref)
	}
}

func (s *spec) lookup(ref string) map[string]any {
	cur := any(s.doc)
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, _ := cur.(map[string]any)
		cur = m[part]
	}
	m, _ := cur.(map[string]any)
	return m
}

// validate checks v against the JSON Schema subset the description uses:
// $ref, type (a name or a list of names), required, properties,
// additionalProperties, enum, const, items, minItems, maxItems, minimum,
// maximum, maxLength and format date-time. It returns every violation.
func (s *spec) validate(schema map[string]any, v any, path string) []string {
	schema = s.resolve(schema)
	if schema == nil {
		return []string{path + ": unresolvable schema"}
	}
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, path+": "+fmt.Sprintf(format, args...)) }
	if t, ok := schema["type"]; ok {
		var types []string
		switch t := t.(type) {
		case string:
			types = []string{t}
		case []any:
			for _, x := range t {
				types = append(types, x.(string))
			}
		}
		if !slices.ContainsFunc(types, func(name string) bool { return jsonTypeIs(v, name) }) {
			bad("%s is not of type %v", short(v), types)
			return errs
		}
	}
	if enum, ok := schema["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		bad("%s is not one of %v", short(v), enum)
	}
	if c, ok := schema["const"]; ok && fmt.Sprint(c) != fmt.Sprint(v) {
		bad("%s is not %v", short(v), c)
	}
	switch v := v.(type) {
	case map[string]any:
		props, _ := schema["properties"].(map[string]any)
		if req, ok := schema["required"].([]any); ok {
			for _, r := range req {
				if _, ok := v[r.(string)]; !ok {
					bad("lacks required %q", r)
				}
			}
		}
		for k, val := range v {
			if ps, ok := props[k].(map[string]any); ok {
				errs = append(errs, s.validate(ps, val, path+"."+k)...)
				continue
			}
			switch ap := schema["additionalProperties"].(type) {
			case bool:
				if !ap {
					bad("has undescribed property %q", k)
				}
			case map[string]any:
				errs = append(errs, s.validate(ap, val, path+"."+k)...)
			}
		}
	case []any:
		if items, ok := schema["items"].(map[string]any); ok {
			for i, it := range v {
				errs = append(errs, s.validate(items, it, path+"["+strconv.Itoa(i)+"]")...)
			}
		}
		if n, ok := schema["minItems"].(float64); ok && float64(len(v)) < n {
			bad("has fewer than %v items", n)
		}
		if n, ok := schema["maxItems"].(float64); ok && float64(len(v)) > n {
			bad("has more than %v items", n)
		}
	case float64:
		if n, ok := schema["minimum"].(float64); ok && v < n {
			bad("%v < minimum %v", v, n)
		}
		if n, ok := schema["maximum"].(float64); ok && v > n {
			bad("%v > maximum %v", v, n)
		}
	case string:
		if n, ok := schema["maxLength"].(float64); ok && float64(len([]rune(v))) > n {
			bad("longer than %v", n)
		}
		if schema["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, v); err != nil || !strings.HasSuffix(v, "Z") {
				bad("%q is not an RFC 3339 UTC time", v)
			}
		}
	}
	return errs
}

func jsonTypeIs(v any, name string) bool {
	switch name {
	case "null":
		return v == nil
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == float64(int64(f))
	case "array":
		_, ok := v.([]any)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	}
	return false
}

func short(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}

// example builds a value from schema: its first example, default or enum
// value, else one made from its type. all fills optional properties too.
func (s *spec) example(schema map[string]any, all bool) any {
	schema = s.resolve(schema)
	if ex, ok := schema["examples"].([]any); ok && len(ex) > 0 {
		return ex[0]
	}
	if d, ok := schema["default"]; ok {
		return d
	}
	if enum, ok := schema["enum"].([]any); ok && len(enum) > 0 {
		return enum[0]
	}
	t, _ := schema["type"].(string)
	switch t {
	case "object":
		out := map[string]any{}
		props, _ := schema["properties"].(map[string]any)
		req, _ := schema["required"].([]any)
		for name, ps := range props {
			if all || slices.Contains(req, any(name)) {
				out[name] = s.example(ps.(map[string]any), all)
			}
		}
		return out
	case "array":
		return []any{s.example(schema["items"].(map[string]any), all)}
	case "integer", "number":
		if m, ok := schema["minimum"].(float64); ok {
			return m
		}
		return 1
	case "boolean":
		return true
	case "string":
		switch schema["format"] {
		case "date-time":
			return "2026-01-01T00:00:00.000Z"
		case "date":
			return "2026-01-01"
		case "uri":
			return "https://example.com/hook"
		}
		return "example"
	}
	return nil
}

// operationCase is one operation of the served description.
type operationCase struct {
	Method, Path string
	Op           map[string]any
}

func (s *spec) operations() []operationCase {
	var out []operationCase
	paths := s.doc["paths"].(map[string]any)
	for p, item := range paths {
		for m, op := range item.(map[string]any) {
			out = append(out, operationCase{Method: strings.ToUpper(m), Path: p, Op: op.(map[string]any)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path+out[i].Method < out[j].Path+out[j].Method })
	return out
}

func (oc operationCase) security() string {
	sec, _ := oc.Op["security"].([]any)
	for _, s := range sec {
		for name := range s.(map[string]any) {
			if name == "adminToken" {
				return "admin"
			}
			return "shop"
		}
	}
	return ""
}

func (oc operationCase) requestSchema() map[string]any {
	rb, ok := oc.Op["requestBody"].(map[string]any)
	if !ok {
		return nil
	}
	return rb["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
}

// responseSchema returns the JSON schema of a documented status, and
// whether that status is documented.
func (s *spec) responseSchema(oc operationCase, status int) (map[string]any, bool) {
	r, ok := oc.Op["responses"].(map[string]any)[strconv.Itoa(status)].(map[string]any)
	if !ok {
		return nil, false
	}
	if ref, ok := r["$ref"].(string); ok {
		r = s.lookup(ref)
	}
	c, ok := r["content"].(map[string]any)["application/json"].(map[string]any)
	if !ok {
		return nil, true
	}
	return c["schema"].(map[string]any), true
}

func (s *spec) successStatus(oc operationCase) int {
	for code := range oc.Op["responses"].(map[string]any) {
		if n, _ := strconv.Atoi(code); n >= 200 && n < 300 {
			return n
		}
	}
	return 0
}

// fixtures are fresh path parameter values for one call.
func (b *apiBundle) fixtures(t *testing.T) map[string]string {
	t.Helper()
	wh := b.mustCreateWebhook(t)
	b.publish(t, "order.created", map[string]any{"n": 1})
	dlv := b.attemptQueued(t, true, nil)
	_, keyID := newKey(t, b)
	return map[string]string{"shop_id": b.shopID, "webhook_id": wh.ID, "delivery_id": dlv[0], "key_id": keyID}
}

func newKey(t *testing.T, b *apiBundle) (string, string) {
	t.Helper()
	key, stored := webhooks.NewAPIKey(b.shopID, b.clock.Now())
	if err := b.db.CreateAPIKey(context.Background(), stored); err != nil {
		t.Fatal(err)
	}
	return key, stored.ID
}

func fillPath(p string, params map[string]string) string {
	for k, v := range params {
		p = strings.ReplaceAll(p, "{"+k+"}", v)
	}
	return p
}

func (b *apiBundle) callAs(t *testing.T, oc operationCase, path string, body any) *response {
	t.Helper()
	r := request{Method: oc.Method, Path: path, Body: body}
	switch oc.security() {
	case "shop":
		r.Key = b.key
	case "admin":
		r.Bearer = "admin-secret"
	}
	return b.do(t, r)
}

func TestOpenAPI(t *testing.T) { t.Parallel(); forEachDB(t, testOpenAPI) }

func testOpenAPI(t *testing.T) {
	t.Parallel()

	setup := func(t *testing.T) (*apiBundle, *spec) {
		t.Helper()
		reg := prometheus.NewRegistry()
		b := setupAPI(t, func(c *httpapi.Config) {
			c.Registerer = reg
			c.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
		})
		res := b.do(t, request{Method: "GET", Path: "/api/v1/openapi.json"})
		if res.Status != 200 {
			t.Fatalf("openapi.json: %d", res.Status)
		}
		s := &spec{}
		res.Decode(t, &s.doc)
		return b, s
	}

	t.Run("IsOpenAPI31WithSecuritySchemes", func(t *testing.T) {
		t.Parallel()
		_, s := setup(t)
		if s.doc["openapi"] != "3.1.0" {
			t.Errorf("openapi = %v", s.doc["openapi"])
		}
		schemes := s.lookup("#/components/securitySchemes")
		for _, name := range []string{"apiKeyQuery", "bearerAuth", "adminToken"} {
			if schemes[name] == nil {
				t.Errorf("no security scheme %s", name)
			}
		}
		if q := schemes["apiKeyQuery"].(map[string]any); q["in"] != "query" || q["name"] != "api_key" {
			t.Errorf("apiKeyQuery = %v", q)
		}
	})

	t.Run("EveryRefResolves", func(t *testing.T) {
		t.Parallel()
		_, s := setup(t)
		var walk func(v any, at string)
		walk = func(v any, at string) {
			switch v := v.(type) {
			case map[string]any:
				if ref, ok := v["$ref"].(string); ok && s.lookup(ref) == nil {
					t.Errorf("%s: $ref %s does not resolve", at, ref)
				}
				for k, x := range v {
					walk(x, at+"/"+k)
				}
			case []any:
				for i, x := range v {
					walk(x, at+"/"+strconv.Itoa(i))
				}
			}
		}
		walk(s.doc, "#")
	})

	t.Run("EveryRouteIsDescribedAndEveryDescribedRouteIsServed", func(t *testing.T) {
		t.Parallel()
		b, s := setup(t)
		var described [][2]string
		for _, oc := range s.operations() {
			described = append(described, [2]string{oc.Method, oc.Path})
		}
		routes := httpapi.RouteTable()
		less := func(a, b [2]string) int { return strings.Compare(a[1]+" "+a[0], b[1]+" "+b[0]) }
		slices.SortFunc(described, less)
		slices.SortFunc(routes, less)
		if !slices.Equal(described, routes) {
			t.Errorf("described %v\nrouted %v", described, routes)
		}
		for _, oc := range s.operations() {
			res := b.callAs(t, oc, fillPath(oc.Path, map[string]string{
				"shop_id": b.shopID, "webhook_id": "wh_x", "delivery_id": "dlv_x", "key_id": "key_x",
			}), nil)
			if res.Status == 405 || (res.Status == 404 && strings.Contains(string(res.Body), "No such path")) {
				t.Errorf("%s %s is described but not served: %d %s", oc.Method, oc.Path, res.Status, res.Body)
			}
		}
	})

	t.Run("ExamplesAreAcceptedAndResponsesMatch", func(t *testing.T) {
		t.Parallel()
		b, s := setup(t)
		for _, oc := range s.operations() {
			for _, all := range []bool{true, false} {
				name := fmt.Sprintf("%s %s all=%v", oc.Method, oc.Path, all)
				params := b.fixtures(t)
				var body any
				if rs := oc.requestSchema(); rs != nil {
					body = s.example(rs, all)
					if errs := s.validate(rs, body, "request"); len(errs) > 0 {
						t.Errorf("%s: the example does not match its own schema: %v", name, errs)
					}
					if oc.Path == "/api/v1/admin/shops" {
						body.(map[string]any)["shop_id"] = fmt.Sprintf("shop-%v-%d", all, time.Now().UnixNano())
					}
				}
				res := b.callAs(t, oc, fillPath(oc.Path, params), body)
				want := s.successStatus(oc)
				if res.Status != want {
					t.Errorf("%s: status %d, want %d: %s (request %s)", name, res.Status, want, res.Body, short(body))
					continue
				}
				schema, _ := s.responseSchema(oc, want)
				if schema == nil {
					continue // not JSON (metrics)
				}
				var v any
				if err := json.Unmarshal(res.Body, &v); err != nil {
					t.Errorf("%s: response is not JSON: %v", name, err)
					continue
				}
				for _, e := range s.validate(schema, v, "response") {
					t.Errorf("%s: %s", name, e)
				}
			}
		}
	})

	t.Run("RichResponsesMatch", func(t *testing.T) {
		t.Parallel()
		b, s := setup(t)
		// A webhook with every optional field, a failed delivery with a
		// next retry, a pending one and stats with buckets.
		wh := b.createWebhook(t, map[string]any{"url": "https://example.com/h", "events": []string{"order.created"}, "description": "d"})
		b.publish(t, "order.created", map[string]any{"n": 1})
		next := testStart.Add(time.Minute)
		b.attemptQueued(t, false, &next)
		b.call(t, "POST", shopPath(b.shopID, "/webhooks/"+wh.ID+"/test"), `{"event":"order.created"}`)
		for _, c := range []struct{ method, path, op string }{
			{"GET", "/api/v1/shops/{shop_id}/webhooks", ""},
			{"GET", "/api/v1/shops/{shop_id}/webhooks/{webhook_id}", ""},
			{"GET", "/api/v1/shops/{shop_id}/webhooks/{webhook_id}/stats", ""},
			{"GET", "/api/v1/shops/{shop_id}/webhook-deliveries", ""},
			{"GET", "/api/v1/shops/{shop_id}/webhook-deliveries/pending", ""},
		} {
			oc := operationCase{Method: c.method, Path: c.path, Op: s.doc["paths"].(map[string]any)[c.path].(map[string]any)[strings.ToLower(c.method)].(map[string]any)}
			res := b.callAs(t, oc, fillPath(c.path, map[string]string{"shop_id": b.shopID, "webhook_id": wh.ID}), nil)
			schema, _ := s.responseSchema(oc, 200)
			var v any
			res.Decode(t, &v)
			for _, e := range s.validate(schema, v, "response") {
				t.Errorf("%s %s: %s\n%s", c.method, c.path, e, res.Body)
			}
		}
	})

	t.Run("ErrorsAreDocumentedAndMatch", func(t *testing.T) {
		t.Parallel()
		b, s := setup(t)
		check := func(oc operationCase, what string, res *response) {
			t.Helper()
			schema, ok := s.responseSchema(oc, res.Status)
			if !ok {
				t.Errorf("%s %s (%s): status %d is not documented", oc.Method, oc.Path, what, res.Status)
				return
			}
			var v any
			res.Decode(t, &v)
			for _, e := range s.validate(schema, v, "error") {
				t.Errorf("%s %s (%s): %s", oc.Method, oc.Path, what, e)
			}
		}
		for _, oc := range s.operations() {
			params := b.fixtures(t)
			if oc.security() != "" {
				check(oc, "no credentials", b.do(t, request{Method: oc.Method, Path: fillPath(oc.Path, params)}))
			}
			if oc.security() == "shop" {
				other := map[string]string{}
				for k, v := range params {
					other[k] = v
				}
				other["shop_id"] = b.otherShop
				check(oc, "other shop", b.callAs(t, oc, fillPath(oc.Path, other), nil))
			}
			for _, p := range []string{"webhook_id", "delivery_id", "key_id"} {
				if strings.Contains(oc.Path, "{"+p+"}") {
					missing := map[string]string{}
					for k, v := range params {
						missing[k] = v
					}
					missing[p] = "x_unknown"
					res := b.callAs(t, oc, fillPath(oc.Path, missing), "{}")
					if res.Status != 404 && res.Status != 400 {
						t.Errorf("%s %s with unknown %s: %d", oc.Method, oc.Path, p, res.Status)
					}
					check(oc, "unknown "+p, res)
				}
			}
			if oc.requestSchema() != nil {
				res := b.callAs(t, oc, fillPath(oc.Path, params), `{"undescribed_field":1}`)
				if res.Status != 400 {
					t.Errorf("%s %s with an unknown field: %d", oc.Method, oc.Path, res.Status)
				}
				check(oc, "unknown field", res)
				check(oc, "malformed", b.callAs(t, oc, fillPath(oc.Path, params), `{`))
			}
			if params, ok := oc.Op["parameters"].([]any); ok {
				for _, p := range params {
					pm := s.lookup(p.(map[string]any)["$ref"].(string))
					if pm["in"] != "query" {
						continue
					}
					res := b.callAs(t, oc, fillPath(oc.Path, map[string]string{"shop_id": b.shopID, "webhook_id": b.mustCreateWebhook(t).ID})+"?"+pm["name"].(string)+"=%21bad", nil)
					if res.Status != 400 {
						t.Errorf("%s %s with a bad %s: %d", oc.Method, oc.Path, pm["name"], res.Status)
					}
					check(oc, "bad "+pm["name"].(string), res)
				}
			}
		}
	})
}
