package httpapi

import (
	"context"
	"log/slog"
	"net/http"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

type createShopJSON struct {
	ShopID string `json:"shop_id"`
	APIKey string `json:"api_key"`
	KeyID  string `json:"key_id"`
}

type createKeyJSON struct {
	APIKey string `json:"api_key"`
	KeyID  string `json:"key_id"`
}

// decodeCreateShop decodes {shop_id, name?}.
func decodeCreateShop(body []byte) (webhooks.Shop, error) {
	m, err := parseObject(body)
	if err != nil {
		return webhooks.Shop{}, err
	}
	errs := webhooks.ValidationErrors{}
	o := newJSONObject(m, "", errs)
	o.only("shop_id", "name")
	var shop webhooks.Shop
	if id := o.str("shop_id", true, false); id != nil {
		if !webhooks.ValidShopID(*id) {
			o.bad("shop_id", "must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -")
		}
		shop.ID = *id
	}
	if name := o.str("name", false, true); name != nil {
		if problem := webhooks.ShopNameProblem(*name); problem != "" {
			o.bad("name", problem)
		}
		shop.Name = *name
	}
	if err := errs.Err(); err != nil {
		return webhooks.Shop{}, err
	}
	return shop, nil
}

func (s *Server) handleCreateShop(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	shop, err := decodeCreateShop(body)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	shop.CreatedAt = now
	key, stored := webhooks.NewAPIKey(shop.ID, now)
	if err := s.cfg.Shops.CreateShop(r.Context(), &shop, stored); err != nil {
		return err
	}
	s.logger.LogAttrs(r.Context(), slog.LevelInfo, "shop created", slog.String("shop_id", shop.ID), slog.String("key_id", stored.ID))
	s.writeJSON(w, r, http.StatusCreated, createShopJSON{ShopID: shop.ID, APIKey: key, KeyID: stored.ID})
	return nil
}

// pathAdminShopID returns the shop id of an admin path; one that cannot
// exist is ENOTFOUND.
func pathAdminShopID(r *http.Request) (string, error) {
	id := r.PathValue("shop_id")
	if !webhooks.ValidShopID(id) {
		return "", webhooks.Errorf(webhooks.ENOTFOUND, "Shop not found")
	}
	return id, nil
}

func (s *Server) handleCreateKey(w http.ResponseWriter, r *http.Request) error {
	shopID, err := pathAdminShopID(r)
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if err := decodeEmpty(body); err != nil {
		return err
	}
	key, stored := webhooks.NewAPIKey(shopID, s.now().UTC())
	if err := s.cfg.Shops.CreateAPIKey(r.Context(), stored); err != nil {
		return err
	}
	s.logger.LogAttrs(r.Context(), slog.LevelInfo, "API key created", slog.String("shop_id", shopID), slog.String("key_id", stored.ID))
	s.writeJSON(w, r, http.StatusCreated, createKeyJSON{APIKey: key, KeyID: stored.ID})
	return nil
}

func (s *Server) handleRevokeKey(w http.ResponseWriter, r *http.Request) error {
	shopID, err := pathAdminShopID(r)
	if err != nil {
		return err
	}
	keyID := r.PathValue("key_id")
	if !webhooks.ValidID(webhooks.PrefixKey, keyID) {
		return webhooks.Errorf(webhooks.ENOTFOUND, "API key not found")
	}
	if err := s.cfg.Shops.RevokeAPIKey(r.Context(), shopID, keyID); err != nil {
		return err
	}
	s.auth.forgetShop(shopID)
	s.logger.LogAttrs(r.Context(), slog.LevelInfo, "API key revoked", slog.String("shop_id", shopID), slog.String("key_id", keyID))
	s.writeJSON(w, r, http.StatusOK, successJSON{Success: true})
	return nil
}

type eventTypesJSON struct {
	Data []webhooks.EventTypeInfo `json:"data"`
}

func (s *Server) handleEventTypes(w http.ResponseWriter, r *http.Request) error {
	s.writeJSON(w, r, http.StatusOK, eventTypesJSON{Data: webhooks.EventTypes})
	return nil
}

type statusJSON struct {
	Status string `json:"status"`
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) error {
	s.writeJSON(w, r, http.StatusOK, statusJSON{Status: "ok"})
	return nil
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) error {
	if s.draining.Load() {
		return webhooks.Errorf(webhooks.EUNAVAILABLE, "Shutting down")
	}
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), DefaultReadyTimeout)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			s.logger.LogAttrs(r.Context(), slog.LevelWarn, "not ready", slog.String("error", err.Error()))
			return webhooks.Errorf(webhooks.EUNAVAILABLE, "Not ready")
		}
	}
	s.writeJSON(w, r, http.StatusOK, statusJSON{Status: "ok"})
	return nil
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) error {
	s.cfg.Metrics.ServeHTTP(w, r)
	return nil
}

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(s.openAPI)
	return nil
}
