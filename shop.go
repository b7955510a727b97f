package webhooks

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"
	"unicode/utf8"
)

// KeyPrefix starts every shop API key, so leaked keys are easy to spot.
const KeyPrefix = "pk_"

// Shop is a POS shop.
type Shop struct {
	ID        string    `json:"shop_id"`
	Name      string    `json:"name,omitempty"`
	CreatedAt time.Time `json:"-"`
}

// MaxShopNameLen bounds a shop's name, in characters.
const MaxShopNameLen = 255

// ShopNameProblem checks a shop's name (optional, so "" is fine): valid
// UTF-8 without NUL (PostgreSQL text holds neither), at most MaxShopNameLen
// characters. It returns the reason, or "".
func ShopNameProblem(name string) string {
	switch {
	case !utf8.ValidString(name):
		return "must be valid UTF-8"
	case strings.IndexByte(name, 0) >= 0:
		return `must not contain the NUL character (\u0000)`
	case utf8.RuneCountInString(name) > MaxShopNameLen:
		return "must be at most 255 characters"
	}
	return ""
}

// APIKey is a shop key as stored: only its hash.
type APIKey struct {
	ID        string
	ShopID    string
	Hash      string
	CreatedAt time.Time
}

// NewAPIKey returns a fresh key (shown once) and its stored form.
func NewAPIKey(shopID string, now time.Time) (string, *APIKey) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	key := KeyPrefix + base64.RawURLEncoding.EncodeToString(b)
	return key, &APIKey{ID: NewID(PrefixKey, now), ShopID: shopID, Hash: HashAPIKey(key), CreatedAt: now}
}

// HashAPIKey returns the stored form of key. Keys carry 256 random bits, so
// a plain SHA-256 is enough (no password stretching needed).
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(key)))
	return hex.EncodeToString(sum[:])
}

// ShopService manages shops and their keys.
type ShopService interface {
	// CreateShop stores a shop and its first key; ECONFLICT if it exists.
	CreateShop(ctx context.Context, s *Shop, key *APIKey) error
	// CreateAPIKey adds a key to an existing shop, or ENOTFOUND.
	CreateAPIKey(ctx context.Context, key *APIKey) error
	// RevokeAPIKey deletes a key of the shop, or ENOTFOUND.
	RevokeAPIKey(ctx context.Context, shopID, keyID string) error
	// Authenticate returns the shop of the key with this hash, or EUNAUTHORIZED.
	Authenticate(ctx context.Context, keyHash string) (shopID string, err error)
}
