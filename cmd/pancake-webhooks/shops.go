package main

import (
	"context"
	"fmt"
	"io"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/spf13/cobra"

	webhooks "github.com/pancake-pos/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/store"
)

func newShopsCmd() *cobra.Command {
	var dsn string
	cmd := groupCmd("shops", "Create shops and manage their API keys (on the database directly)",
		`  pancake-webhooks shops create --id shop-42 --name "Pancake Street"
  pancake-webhooks shops keys create --shop shop-42
  pancake-webhooks shops keys revoke --shop shop-42 --key key_01j…`)
	cmd.Long = `Create shops and manage their API keys, working on the database directly
(the same --db as serve, or PANCAKE_DB; the server may be running).`
	cmd.PersistentFlags().StringVar(&dsn, "db", "sqlite:pancake-webhooks.db", "database: sqlite:FILE or a postgres:// URL (env PANCAKE_DB)")

	var id, name string
	create := &cobra.Command{
		Use:     "create",
		Short:   "Create a shop and print its first API key as JSON",
		Example: `  pancake-webhooks shops create --id shop-42 --name "Pancake Street"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !webhooks.ValidShopID(id) {
				return usageErr("--id must be 1–64 characters of A-Z a-z 0-9 _ -")
			}
			if problem := webhooks.ShopNameProblem(name); problem != "" {
				return usageErr("--name %s", problem)
			}
			return withDB(cmd.Context(), dsn, func(db *store.DB) error {
				now := time.Now()
				key, k := webhooks.NewAPIKey(id, now)
				if err := db.CreateShop(cmd.Context(), &webhooks.Shop{ID: id, Name: name, CreatedAt: now}, k); err != nil {
					return domainErr(err)
				}
				// key_id, as the admin API gives it: what revokes the key.
				return printJSON(cmd.OutOrStdout(), map[string]string{"shop_id": id, "api_key": key, "key_id": k.ID})
			})
		},
	}
	create.Flags().StringVar(&id, "id", "", "shop id (1–64 characters of A-Z a-z 0-9 _ -)")
	create.Flags().StringVar(&name, "name", "", "shop name")
	_ = create.MarkFlagRequired("id")
	noEnvFlags(create.Flags()) // only --db has a variable

	keys := groupCmd("keys", "Manage a shop's API keys", `  pancake-webhooks shops keys create --shop shop-42
  pancake-webhooks shops keys revoke --shop shop-42 --key key_01j…`)
	var shop, keyID string
	keyCreate := &cobra.Command{
		Use:     "create",
		Short:   "Create another API key for a shop and print it as JSON",
		Example: `  pancake-webhooks shops keys create --shop shop-42`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withDB(cmd.Context(), dsn, func(db *store.DB) error {
				key, k := webhooks.NewAPIKey(shop, time.Now())
				if err := db.CreateAPIKey(cmd.Context(), k); err != nil {
					return domainErr(err)
				}
				return printJSON(cmd.OutOrStdout(), map[string]string{"api_key": key, "key_id": k.ID})
			})
		},
	}
	keyCreate.Flags().StringVar(&shop, "shop", "", "shop id")
	_ = keyCreate.MarkFlagRequired("shop")
	noEnvFlags(keyCreate.Flags())
	keyRevoke := &cobra.Command{
		Use:     "revoke",
		Short:   "Revoke an API key of a shop",
		Example: `  pancake-webhooks shops keys revoke --shop shop-42 --key key_01j…`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withDB(cmd.Context(), dsn, func(db *store.DB) error {
				if err := db.RevokeAPIKey(cmd.Context(), shop, keyID); err != nil {
					return domainErr(err)
				}
				return printJSON(cmd.OutOrStdout(), map[string]bool{"success": true})
			})
		},
	}
	keyRevoke.Flags().StringVar(&shop, "shop", "", "shop id")
	keyRevoke.Flags().StringVar(&keyID, "key", "", "key id (key_…), as printed by keys create")
	_ = keyRevoke.MarkFlagRequired("shop")
	_ = keyRevoke.MarkFlagRequired("key")
	noEnvFlags(keyRevoke.Flags())
	keys.AddCommand(keyCreate, keyRevoke)
	cmd.AddCommand(create, keys)
	return cmd
}

func withDB(ctx context.Context, dsn string, fn func(db *store.DB) error) error {
	db, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer db.Close()
	return fn(db)
}

// domainErr maps a domain error to the CLI's exit codes.
func domainErr(err error) error {
	code := ExitError
	switch webhooks.ErrorCode(err) {
	case webhooks.ENOTFOUND:
		code = ExitNotFound
	case webhooks.ECONFLICT, webhooks.EINVALID:
		code = ExitInvalid
	}
	return &exitError{code: code, err: err}
}

func printJSON(w io.Writer, v any) error {
	b, err := jsonv2.Marshal(v, jsonv1.DefaultOptionsV1(), jsontext.WithIndent("  "),
		jsonv2.WithMarshalers(jsonv2.MarshalFunc(apiTime)))
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// apiTime writes a time as the API does: RFC 3339 in UTC with
// milliseconds (2026-11-26T20:31:05.120Z, not Go's …05.12Z), so that
// scripts reading --json see the API's own strings.
func apiTime(t time.Time) ([]byte, error) {
	return []byte(`"` + t.UTC().Format(webhooks.TimeLayout) + `"`), nil
}
