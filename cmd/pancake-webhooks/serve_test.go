package main_test

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeTakesAShortAdminTokenWithAWarning checks that an admin token
// shorter than the recommended 16 characters (the contract sets no length)
// starts the server and opens the admin API, with a warning that never
// shows the token.
func TestServeTakesAShortAdminTokenWithAWarning(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	const token = "tok-9x" // the later --admin-token wins
	srv := startServer(t, bin, "--admin-token", token, "--db", "sqlite:"+filepath.Join(t.TempDir(), "short.db"))
	var shop struct {
		APIKey string `json:"api_key"`
	}
	if code := doJSON(t, http.MethodPost, srv.url("/api/v1/admin/shops"), token, map[string]string{"shop_id": "short-token"}, &shop); code != http.StatusCreated || shop.APIKey == "" {
		t.Fatalf("create a shop with the short admin token: %d, key %q", code, shop.APIKey)
	}
	if code := doJSON(t, http.MethodPost, srv.url("/api/v1/admin/shops"), adminToken, map[string]string{"shop_id": "other"}, nil); code != http.StatusUnauthorized {
		t.Errorf("the overridden admin token: %d, want 401", code)
	}
	logs := srv.logs()
	if !strings.Contains(logs, "--admin-token is short") {
		t.Errorf("no warning about the short admin token in the logs:\n%s", logs)
	}
	if strings.Contains(logs, token) {
		t.Errorf("the logs show the admin token:\n%s", logs)
	}
}
