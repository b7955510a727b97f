package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/pancake-pos/pancake-webhooks/httpapi"
)

func TestAuth(t *testing.T) { t.Parallel(); forEachDB(t, testAuth) }

func testAuth(t *testing.T) {
	t.Parallel()

	t.Run("NoKeyIs401", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		res := b.do(t, request{Method: "GET", Path: shopPath(b.shopID, "/webhooks")})
		wantError(t, res, 401, "unauthorized")
	})

	t.Run("UnknownKeyIs401WithoutEcho", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		for _, key := range []string{"pk_unknown", strings.Repeat("k", 600)} {
			res := b.do(t, request{Method: "GET", Path: shopPath(b.shopID, "/webhooks"), Key: key})
			wantError(t, res, 401, "unauthorized")
			if strings.Contains(string(res.Body), key) {
				t.Errorf("401 echoes the key: %s", res.Body)
			}
		}
		res := b.do(t, request{Method: "GET", Path: shopPath(b.shopID, "/webhooks"), Bearer: "pk_unknown"})
		wantError(t, res, 401, "unauthorized")
		res = b.do(t, request{Method: "GET", Path: shopPath(b.shopID, "/webhooks"), Header: http.Header{"Authorization": {"Basic " + b.key}}})
		wantError(t, res, 401, "unauthorized")
	})

	t.Run("TwoDifferentQueryKeysAre401", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		path := shopPath(b.shopID, "/webhooks")
		for _, q := range []string{"?api_key=pk_other&api_key=" + b.key, "?api_key=" + b.key + "&api_key=pk_other"} {
			wantError(t, b.do(t, request{Method: "GET", Path: path + q}), 401, "unauthorized")
		}
		// The same key twice (a base URL that already holds it) is that key.
		if res := b.do(t, request{Method: "GET", Path: path + "?api_key=" + b.key + "&api_key=" + b.key}); res.Status != 200 {
			t.Errorf("the same key twice: %d %s", res.Status, res.Body)
		}
	})

	t.Run("BearerKeyWorks", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		res := b.do(t, request{Method: "GET", Path: shopPath(b.shopID, "/webhooks"), Bearer: b.key})
		if res.Status != 200 {
			t.Fatalf("bearer: %d %s", res.Status, res.Body)
		}
	})

	t.Run("KeyOfAnotherShopIs403", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		for _, p := range []string{
			shopPath(b.otherShop, "/webhooks"),
			shopPath("no-such-shop", "/webhooks"),
			shopPath("bad!shop", "/webhooks"),
			shopPath(strings.Repeat("s", 65), "/events"),
		} {
			res := b.call(t, "GET", p, nil)
			if strings.HasSuffix(p, "/events") {
				res = b.call(t, "POST", p, `{"event":"order.created","data":{}}`)
			}
			wantError(t, res, 403, "forbidden")
		}
	})

	t.Run("AuthComesBeforeValidation", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		res := b.do(t, request{Method: "POST", Path: shopPath(b.shopID, "/webhooks"), Body: `{"url":`})
		wantError(t, res, 401, "unauthorized")
		res = b.do(t, request{Method: "POST", Path: shopPath(b.otherShop, "/webhooks"), Body: `{"url":`, Key: b.key})
		wantError(t, res, 403, "forbidden")
	})

	t.Run("RevokedKeyStopsAtOnceHere", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		if res := b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil); res.Status != 200 {
			t.Fatalf("before: %d", res.Status)
		}
		res := b.do(t, request{Method: "DELETE", Path: "/api/v1/admin/shops/shop-1/keys/" + b.keyID, Bearer: "admin-secret"})
		if res.Status != 200 || string(res.Body) != `{"success":true}`+"\n" {
			t.Fatalf("revoke: %d %s", res.Status, res.Body)
		}
		wantError(t, b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil), 401, "unauthorized")
	})

	t.Run("RevokedElsewhereStopsWithinTheTTL", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		if res := b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil); res.Status != 200 {
			t.Fatalf("before: %d", res.Status)
		}
		// Another replica revokes it: straight in the store.
		if err := b.db.RevokeAPIKey(context.Background(), b.shopID, b.keyID); err != nil {
			t.Fatal(err)
		}
		if res := b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil); res.Status != 200 {
			t.Errorf("within the TTL: %d, want the cached 200", res.Status)
		}
		b.clock.Advance(httpapi.DefaultAuthCacheTTL)
		wantError(t, b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil), 401, "unauthorized")
	})

	t.Run("RevokedElsewhereStopsWhenForgotten", func(t *testing.T) {
		t.Parallel()
		for _, shop := range []string{"shop-1", ""} { // "": every shop's keys
			b := setupAPI(t)
			if res := b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil); res.Status != 200 {
				t.Fatalf("before: %d", res.Status)
			}
			// The CLI or another replica revokes it; the store tells the server.
			if err := b.db.RevokeAPIKey(context.Background(), b.shopID, b.keyID); err != nil {
				t.Fatal(err)
			}
			b.srv.ForgetKeys(shop)
			wantError(t, b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil), 401, "unauthorized")
		}
	})

	t.Run("ARevocationDuringTheLookupIsNotCached", func(t *testing.T) {
		t.Parallel()
		var b *apiBundle
		var first atomic.Bool
		fs := &fakeShops{}
		fs.AuthenticateFunc = func(ctx context.Context, keyHash string) (string, error) {
			shop, err := fs.ShopService.Authenticate(ctx, keyHash)
			if err == nil && first.CompareAndSwap(false, true) {
				// Revoked after this lookup read the key, before it is cached.
				if err := b.db.RevokeAPIKey(ctx, b.shopID, b.keyID); err != nil {
					t.Error(err)
				}
				b.srv.ForgetKeys(b.shopID)
			}
			return shop, err
		}
		b = setupAPI(t, func(c *httpapi.Config) { fs.ShopService = c.Shops; c.Shops = fs })
		if res := b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil); res.Status != 200 {
			t.Fatalf("the request whose lookup found the key: %d", res.Status)
		}
		wantError(t, b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil), 401, "unauthorized")
	})

	t.Run("CacheSavesLookups", func(t *testing.T) {
		t.Parallel()
		var lookups atomic.Int64
		fs := &fakeShops{}
		fs.AuthenticateFunc = func(ctx context.Context, keyHash string) (string, error) {
			lookups.Add(1)
			return fs.ShopService.Authenticate(ctx, keyHash)
		}
		b := setupAPI(t, func(c *httpapi.Config) { fs.ShopService = c.Shops; c.Shops = fs })
		for range 5 {
			b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil)
		}
		if n := lookups.Load(); n != 1 {
			t.Errorf("lookups = %d, want 1", n)
		}
	})

	t.Run("NoCacheWhenNegativeTTL", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t, func(c *httpapi.Config) { c.AuthCacheTTL = -1 })
		b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil)
		if err := b.db.RevokeAPIKey(context.Background(), b.shopID, b.keyID); err != nil {
			t.Fatal(err)
		}
		wantError(t, b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil), 401, "unauthorized")
	})

	t.Run("PublicRoutesNeedNoKey", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		for _, p := range []string{"/healthz", "/readyz", "/api/v1/event-types", "/api/v1/openapi.json"} {
			if res := b.do(t, request{Method: "GET", Path: p}); res.Status != 200 {
				t.Errorf("GET %s: %d", p, res.Status)
			}
		}
	})
}

func TestAdmin(t *testing.T) { t.Parallel(); forEachDB(t, testAdmin) }

func testAdmin(t *testing.T) {
	t.Parallel()

	admin := func(method, path string, body any) request {
		return request{Method: method, Path: "/api/v1/admin" + path, Body: body, Bearer: "admin-secret"}
	}

	t.Run("DisabledWithoutToken", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t, func(c *httpapi.Config) { c.AdminToken = "" })
		res := b.do(t, admin("POST", "/shops", `{"shop_id":"s"}`))
		wantError(t, res, 404, "not_found")
		res = b.do(t, request{Method: "POST", Path: "/api/v1/admin/shops", Body: `{"shop_id":"s"}`, Bearer: ""})
		wantError(t, res, 404, "not_found")
	})

	t.Run("WrongOrMissingTokenIs401", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		for _, r := range []request{
			{Method: "POST", Path: "/api/v1/admin/shops", Body: `{"shop_id":"s"}`},
			{Method: "POST", Path: "/api/v1/admin/shops", Body: `{"shop_id":"s"}`, Bearer: "admin-secreT"},
			{Method: "POST", Path: "/api/v1/admin/shops", Body: `{"shop_id":"s"}`, Bearer: "admin-secret-and-more"},
			{Method: "POST", Path: "/api/v1/admin/shops", Body: `{"shop_id":"s"}`, Key: "admin-secret"},
			{Method: "POST", Path: "/api/v1/admin/shops/shop-1/keys", Body: `{}`, Bearer: b.key},
		} {
			wantError(t, b.do(t, r), 401, "unauthorized")
		}
	})

	t.Run("CreateShopGivesAWorkingKey", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		res := b.do(t, admin("POST", "/shops", `{"shop_id":"new-shop","name":"New Shop"}`))
		var got struct {
			ShopID string `json:"shop_id"`
			APIKey string `json:"api_key"`
			KeyID  string `json:"key_id"`
		}
		res.Decode(t, &got)
		if res.Status != 201 || got.ShopID != "new-shop" || !strings.HasPrefix(got.APIKey, "pk_") || !strings.HasPrefix(got.KeyID, "key_") {
			t.Fatalf("create shop: %d %s", res.Status, res.Body)
		}
		if strings.Contains(b.logs.String(), got.APIKey) {
			t.Error("the new key was logged")
		}
		res = b.do(t, request{Method: "GET", Path: shopPath("new-shop", "/webhooks"), Key: got.APIKey})
		if res.Status != 200 {
			t.Errorf("new key: %d %s", res.Status, res.Body)
		}
		wantError(t, b.do(t, admin("POST", "/shops", `{"shop_id":"new-shop"}`)), 409, "conflict")
	})

	t.Run("CreateShopValidation", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		wantError(t, b.do(t, admin("POST", "/shops", `{}`)), 400, "validation_failed", "shop_id")
		wantError(t, b.do(t, admin("POST", "/shops", `{"shop_id":"a b"}`)), 400, "validation_failed", "shop_id")
		wantError(t, b.do(t, admin("POST", "/shops", `{"shop_id":"`+strings.Repeat("a", 65)+`"}`)), 400, "validation_failed", "shop_id")
		wantError(t, b.do(t, admin("POST", "/shops", `{"shop_id":"ok","name":"`+strings.Repeat("n", 256)+`"}`)), 400, "validation_failed", "name")
		wantError(t, b.do(t, admin("POST", "/shops", `{"shop_id":"ok","owner":"x"}`)), 400, "validation_failed", "owner")
		wantError(t, b.do(t, admin("POST", "/shops", `{"shop_id":`)), 400, "invalid_json")
	})

	t.Run("CreateAndRevokeKeys", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		res := b.do(t, admin("POST", "/shops/shop-1/keys", nil))
		var got struct {
			APIKey string `json:"api_key"`
			KeyID  string `json:"key_id"`
		}
		res.Decode(t, &got)
		if res.Status != 201 || !strings.HasPrefix(got.APIKey, "pk_") {
			t.Fatalf("create key: %d %s", res.Status, res.Body)
		}
		if r := b.do(t, request{Method: "GET", Path: shopPath("shop-1", "/webhooks"), Key: got.APIKey}); r.Status != 200 {
			t.Fatalf("second key: %d", r.Status)
		}
		if r := b.do(t, admin("DELETE", "/shops/shop-1/keys/"+got.KeyID, nil)); r.Status != 200 {
			t.Fatalf("revoke: %d %s", r.Status, r.Body)
		}
		wantError(t, b.do(t, request{Method: "GET", Path: shopPath("shop-1", "/webhooks"), Key: got.APIKey}), 401, "unauthorized")
		// The first key still works.
		if r := b.call(t, "GET", shopPath("shop-1", "/webhooks"), nil); r.Status != 200 {
			t.Errorf("first key after revoking the second: %d", r.Status)
		}
		wantError(t, b.do(t, admin("DELETE", "/shops/shop-1/keys/"+got.KeyID, nil)), 404, "not_found")
		wantError(t, b.do(t, admin("DELETE", "/shops/shop-1/keys/nope", nil)), 404, "not_found")
		wantError(t, b.do(t, admin("POST", "/shops/no-such-shop/keys", `{}`)), 404, "not_found")
		wantError(t, b.do(t, admin("POST", "/shops/bad!id/keys", `{}`)), 404, "not_found")
		wantError(t, b.do(t, admin("POST", "/shops/shop-1/keys", `{"name":"x"}`)), 400, "validation_failed", "name")
	})
}

func TestRateLimit(t *testing.T) { t.Parallel(); forEachDB(t, testRateLimit) }

func testRateLimit(t *testing.T) {
	t.Parallel()

	t.Run("ManagementPerKeyWithRetryAfter", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t, func(c *httpapi.Config) { c.RateLimit = 0.5; c.RateBurst = 2 })
		path := shopPath(b.shopID, "/webhooks")
		for i := range 2 {
			if res := b.call(t, "GET", path, nil); res.Status != 200 {
				t.Fatalf("request %d: %d", i, res.Status)
			}
		}
		res := b.call(t, "GET", path, nil)
		wantError(t, res, 429, "rate_limited")
		if got := res.Header.Get("Retry-After"); got != "2" {
			t.Errorf("Retry-After = %q, want 2", got)
		}
		// Another shop's key has its own bucket.
		if res := b.do(t, request{Method: "GET", Path: shopPath(b.otherShop, "/webhooks"), Key: b.otherKey}); res.Status != 200 {
			t.Errorf("other key: %d", res.Status)
		}
		// Public routes are not limited.
		if res := b.do(t, request{Method: "GET", Path: "/healthz"}); res.Status != 200 {
			t.Errorf("healthz: %d", res.Status)
		}
		b.clock.Advance(2 * time.Second)
		if res := b.call(t, "GET", path, nil); res.Status != 200 {
			t.Errorf("after waiting: %d", res.Status)
		}
	})

	t.Run("RetryAfterIsAtLeastOneSecond", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t, func(c *httpapi.Config) { c.RateLimit = 1000; c.RateBurst = 1 })
		b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil)
		res := b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil)
		wantError(t, res, 429, "rate_limited")
		if got := res.Header.Get("Retry-After"); got != "1" {
			t.Errorf("Retry-After = %q, want 1", got)
		}
	})

	t.Run("PublishIsSeparateAndOffByDefault", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t, func(c *httpapi.Config) { c.RateLimit = 1; c.RateBurst = 1 })
		for i := range 5 {
			res := b.call(t, "POST", shopPath(b.shopID, "/events"), `{"event":"order.created","data":{}}`)
			if res.Status != 202 {
				t.Fatalf("publish %d: %d %s", i, res.Status, res.Body)
			}
		}
		if res := b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil); res.Status != 200 {
			t.Errorf("management after publishing: %d", res.Status)
		}
	})

	t.Run("PublishLimitWhenSet", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t, func(c *httpapi.Config) { c.PublishRateLimit = 1; c.PublishRateBurst = 2 })
		path := shopPath(b.shopID, "/events")
		for range 2 {
			if res := b.call(t, "POST", path, `{"event":"order.created","data":{}}`); res.Status != 202 {
				t.Fatalf("publish: %d", res.Status)
			}
		}
		res := b.call(t, "POST", path, `{"event":"order.created","data":{}}`)
		wantError(t, res, 429, "rate_limited")
		if res.Header.Get("Retry-After") != "1" {
			t.Errorf("Retry-After = %q", res.Header.Get("Retry-After"))
		}
		if res := b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil); res.Status != 200 {
			t.Errorf("management: %d", res.Status)
		}
	})

	t.Run("InfDisables", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t, func(c *httpapi.Config) { c.RateLimit = rate.Inf; c.RateBurst = 1 })
		for range 10 {
			if res := b.call(t, "GET", shopPath(b.shopID, "/webhooks"), nil); res.Status != 200 {
				t.Fatalf("status %d", res.Status)
			}
		}
	})
}
