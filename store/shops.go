package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// CreateShop stores a shop and its first key. ECONFLICT if the shop exists.
func (db *DB) CreateShop(ctx context.Context, s *webhooks.Shop, key *webhooks.APIKey) error {
	return db.write(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO shops (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`,
			s.ID, s.Name, ms(s.CreatedAt))
		if err != nil {
			return fmt.Errorf("insert shop: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return webhooks.Errorf(webhooks.ECONFLICT, "Shop %s already exists", s.ID)
		}
		return insertKey(ctx, tx, key)
	})
}

func insertKey(ctx context.Context, tx *Tx, key *webhooks.APIKey) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO api_keys (id, shop_id, hash, created_at) VALUES ($1, $2, $3, $4)`,
		key.ID, key.ShopID, key.Hash, ms(key.CreatedAt))
	if err != nil {
		return fmt.Errorf("insert api key: %w", err)
	}
	return nil
}

// CreateAPIKey adds a key to an existing shop, or ENOTFOUND.
func (db *DB) CreateAPIKey(ctx context.Context, key *webhooks.APIKey) error {
	return db.write(ctx, func(tx *Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM shops WHERE id = $1`, key.ShopID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return webhooks.Errorf(webhooks.ENOTFOUND, "Shop %s not found", key.ShopID)
		} else if err != nil {
			return fmt.Errorf("find shop: %w", err)
		}
		return insertKey(ctx, tx, key)
	})
}

// RevokeAPIKey deletes a key of the shop, or ENOTFOUND. OnKeysRevoked's
// hooks hear of it once it committed (on PostgreSQL, every replica's).
func (db *DB) RevokeAPIKey(ctx context.Context, shopID, keyID string) error {
	err := db.write(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM api_keys WHERE id = $1 AND shop_id = $2`, keyID, shopID)
		if err != nil {
			return fmt.Errorf("delete api key: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			// Not echoed: an operator may have given the key itself.
			return webhooks.Errorf(webhooks.ENOTFOUND, "No API key of shop %s has that key_id", shopID)
		}
		return announce(ctx, tx, keysChannel, shopID)
	})
	if err != nil {
		return err
	}
	db.notifyKeysRevoked(shopID)
	return nil
}

// Authenticate returns the shop of the key with this hash, or EUNAUTHORIZED.
func (db *DB) Authenticate(ctx context.Context, keyHash string) (string, error) {
	var shopID string
	err := db.rdb.QueryRowContext(ctx, `SELECT shop_id FROM api_keys WHERE hash = $1`, keyHash).Scan(&shopID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", webhooks.Errorf(webhooks.EUNAUTHORIZED, "Invalid API key")
	} else if err != nil {
		return "", fmt.Errorf("authenticate: %w", err)
	}
	return shopID, nil
}
