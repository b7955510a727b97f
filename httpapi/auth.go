package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// maxKeyLen bounds what is hashed and looked up as an API key.
const maxKeyLen = 512

// apiKey returns the API key of r: the Authorization bearer token when the
// header is present, else the api_key query parameter. ok is false when
// neither is there.
func apiKey(r *http.Request) (key string, ok bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, found := strings.Cut(h, " ")
		if !found || !strings.EqualFold(scheme, "Bearer") {
			return "", true // present but unusable: unauthorized
		}
		return strings.TrimSpace(token), true
	}
	q, _ := url.ParseQuery(r.URL.RawQuery) // keep what parses
	if v, found := q["api_key"]; found && len(v) > 0 {
		if slices.ContainsFunc(v[1:], func(k string) bool { return strings.TrimSpace(k) != strings.TrimSpace(v[0]) }) {
			return "", true // two different keys: which one is meant is unknown
		}
		return strings.TrimSpace(v[0]), true
	}
	return "", false
}

// authenticateShop returns the shop the request's API key belongs to and the
// key's hash. EUNAUTHORIZED when there is no key or it is unknown or revoked.
func (s *Server) authenticateShop(r *http.Request) (shopID, keyHash string, err error) {
	key, ok := apiKey(r)
	if !ok {
		return "", "", webhooks.Errorf(webhooks.EUNAUTHORIZED, "An API key is required: pass it as the api_key query parameter or an Authorization: Bearer header")
	}
	if key == "" || len(key) > maxKeyLen {
		return "", "", webhooks.Errorf(webhooks.EUNAUTHORIZED, "Invalid API key")
	}
	hash := webhooks.HashAPIKey(key)
	shop, gen, ok := s.auth.get(hash)
	if ok {
		return shop, hash, nil
	}
	shop, err = s.cfg.Shops.Authenticate(r.Context(), hash)
	if err != nil {
		if webhooks.ErrorCode(err) == webhooks.EUNAUTHORIZED || webhooks.ErrorCode(err) == webhooks.ENOTFOUND {
			return "", "", webhooks.Errorf(webhooks.EUNAUTHORIZED, "Invalid API key")
		}
		return "", "", err
	}
	s.auth.put(hash, shop, gen)
	return shop, hash, nil
}

// ForgetKeys drops the cached keys of shopID, or of every shop when shopID
// is "": a key of it was revoked elsewhere (the CLI, another replica). It
// does not block; the store's OnKeysRevoked calls it.
func (s *Server) ForgetKeys(shopID string) { s.auth.forgetShop(shopID) }

// authorizeAdmin checks the admin bearer token in constant time.
func (s *Server) authorizeAdmin(r *http.Request) error {
	if s.cfg.AdminToken == "" {
		return webhooks.Errorf(webhooks.ENOTFOUND, "admin API disabled")
	}
	h := r.Header.Get("Authorization")
	scheme, token, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return webhooks.Errorf(webhooks.EUNAUTHORIZED, "An admin token is required: Authorization: Bearer <token>")
	}
	// Compare fixed-size digests so that neither content nor length leaks.
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	want := sha256.Sum256([]byte(s.cfg.AdminToken))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return webhooks.Errorf(webhooks.EUNAUTHORIZED, "Invalid admin token")
	}
	return nil
}

// maxAuthCacheEntries bounds the authentication cache.
const maxAuthCacheEntries = 10_000

// authCache remembers, for a short TTL, which shop a key hash belongs to,
// so that every request is not a database read. Only successes are cached:
// a key created a moment ago works at once. A revocation makes it forget
// (forgetShop): at once for this server's, and as soon as the store hears
// of it for the CLI's and other replicas' (Server.ForgetKeys); the TTL
// bounds what it may miss.
type authCache struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]authEntry
	// gen counts forgetShop calls: a lookup that began before one must not
	// cache what it read, which may be a key revoked meanwhile.
	gen uint64
}

type authEntry struct {
	shopID  string
	expires time.Time
}

func newAuthCache(ttl time.Duration, now func() time.Time) *authCache {
	return &authCache{ttl: ttl, now: now, entries: map[string]authEntry{}}
}

// get returns the cached shop of hash, or ok false and the generation to
// pass to put after looking the key up.
func (c *authCache) get(hash string) (shopID string, gen uint64, ok bool) {
	if c.ttl <= 0 {
		return "", 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[hash]
	if !ok {
		return "", c.gen, false
	}
	if !c.now().Before(e.expires) {
		delete(c.entries, hash)
		return "", c.gen, false
	}
	return e.shopID, c.gen, true
}

// put caches hash's shop, read by a lookup that began at generation gen
// (from get); not if a revocation came since.
func (c *authCache) put(hash, shopID string, gen uint64) {
	if c.ttl <= 0 {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.entries) >= maxAuthCacheEntries {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		// Still full: drop arbitrary entries; they are only a cache.
		for k := range c.entries {
			if len(c.entries) < maxAuthCacheEntries {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[hash] = authEntry{shopID: shopID, expires: now.Add(c.ttl)}
}

// forgetShop drops every cached key of shopID, or of every shop when
// shopID is "" (after a revocation).
func (c *authCache) forgetShop(shopID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if shopID == "" {
		clear(c.entries)
		return
	}
	for k, e := range c.entries {
		if e.shopID == shopID {
			delete(c.entries, k)
		}
	}
}
