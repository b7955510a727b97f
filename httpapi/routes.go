package httpapi

import (
	"context"
	"net/http"
	"strconv"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// authKind says who may call a route.
type authKind int

const (
	authNone  authKind = iota
	authShop           // a key of the path's shop
	authAdmin          // the admin token
)

// limitKind says which rate limit applies.
type limitKind int

const (
	limitNone       limitKind = iota
	limitManagement           // Config.RateLimit per key
	limitPublish              // Config.PublishRateLimit per key
)

// bodyKind says whether a route reads a body, and how large it may be.
type bodyKind int

const (
	bodyNone       bodyKind = iota
	bodyManagement          // Config.MaxManagementBodyBytes
	bodyLarge               // Config.MaxBodyBytes (publish, test payloads)
)

// optionalKind marks routes served only when configured.
type optionalKind int

const (
	always optionalKind = iota
	optionalMetrics
)

// route is one endpoint: what the mux serves and what the OpenAPI
// description says of it. The mux and the OpenAPI test both iterate routes.
type route struct {
	Method   string
	Path     string
	auth     authKind
	limit    limitKind
	body     bodyKind
	optional optionalKind
	// long routes wait for an attempt (bounded by the sync gate's wait and
	// the attempt timeout) or delete a whole history, and get no
	// Config.RequestTimeout.
	long   bool
	handle func(*Server, http.ResponseWriter, *http.Request) error
	op     operation
}

// operation is the OpenAPI side of a route.
type operation struct {
	ID      string
	Summary string
	Tag     string
	// Query names parameters in components.parameters.
	Query []string
	// Request names the schema of the JSON body ("" for none).
	Request string
	// Status is the success status; Response names its schema ("" for a
	// non-JSON body).
	Status   int
	Response string
	// Errors lists error statuses beyond those implied by auth and body.
	Errors []int
}

const (
	shopPrefix  = "/api/v1/shops/{shop_id}"
	adminPrefix = "/api/v1/admin"
)

// routes is every endpoint of the API.
var routes = []route{
	// Webhooks.
	{Method: "GET", Path: shopPrefix + "/webhooks", auth: authShop, limit: limitManagement,
		handle: (*Server).handleListWebhooks,
		op:     operation{ID: "listWebhooks", Tag: "webhooks", Summary: "List the shop's webhooks, oldest first (no secrets)", Status: 200, Response: "WebhookList"}},
	{Method: "POST", Path: shopPrefix + "/webhooks", auth: authShop, limit: limitManagement, body: bodyManagement,
		handle: (*Server).handleCreateWebhook,
		op:     operation{ID: "createWebhook", Tag: "webhooks", Summary: "Create a webhook", Request: "CreateWebhookRequest", Status: 201, Response: "Webhook", Errors: []int{409}}},
	{Method: "GET", Path: shopPrefix + "/webhooks/{webhook_id}", auth: authShop, limit: limitManagement,
		handle: (*Server).handleGetWebhook,
		op:     operation{ID: "getWebhook", Tag: "webhooks", Summary: "Get a webhook, with its secret", Status: 200, Response: "Webhook"}},
	{Method: "PUT", Path: shopPrefix + "/webhooks/{webhook_id}", auth: authShop, limit: limitManagement, body: bodyManagement,
		handle: (*Server).handleUpdateWebhook,
		op:     operation{ID: "updateWebhook", Tag: "webhooks", Summary: "Update a webhook; absent fields keep their value", Request: "UpdateWebhookRequest", Status: 200, Response: "Webhook"}},
	{Method: "DELETE", Path: shopPrefix + "/webhooks/{webhook_id}", auth: authShop, limit: limitManagement,
		handle: (*Server).handleDeleteWebhook,
		op:     operation{ID: "deleteWebhook", Tag: "webhooks", Summary: "Delete a webhook, its queued deliveries and its history", Status: 200, Response: "Success"}},
	{Method: "PUT", Path: shopPrefix + "/webhooks/{webhook_id}/set-active", auth: authShop, limit: limitManagement, body: bodyManagement,
		handle: (*Server).handleSetActive,
		op:     operation{ID: "setWebhookActive", Tag: "webhooks", Summary: "Enable or disable a webhook", Request: "SetActiveRequest", Status: 200, Response: "Webhook"}},
	{Method: "POST", Path: shopPrefix + "/webhooks/{webhook_id}/test", auth: authShop, limit: limitManagement, body: bodyLarge, long: true,
		handle: (*Server).handleTestWebhook,
		op:     operation{ID: "testWebhook", Tag: "webhooks", Summary: "Send a test event now, synchronously", Request: "TestWebhookRequest", Status: 200, Response: "AttemptResult"}},
	{Method: "POST", Path: shopPrefix + "/webhooks/{webhook_id}/rotate-secret", auth: authShop, limit: limitManagement, body: bodyManagement,
		handle: (*Server).handleRotateSecret,
		op:     operation{ID: "rotateWebhookSecret", Tag: "webhooks", Summary: "Rotate the signing secret; the previous one keeps signing for the overlap", Request: "EmptyRequest", Status: 200, Response: "SecretKey"}},
	{Method: "GET", Path: shopPrefix + "/webhooks/{webhook_id}/stats", auth: authShop, limit: limitManagement,
		handle: (*Server).handleWebhookStats,
		op:     operation{ID: "getWebhookStats", Tag: "webhooks", Summary: "Count the attempts made in a date range (default: the last 7 days)", Query: []string{"from_date", "to_date"}, Status: 200, Response: "WebhookStats"}},
	{Method: "POST", Path: shopPrefix + "/webhooks/{webhook_id}/clear-history", auth: authShop, limit: limitManagement, body: bodyManagement, long: true,
		handle: (*Server).handleClearHistory,
		op:     operation{ID: "clearWebhookHistory", Tag: "webhooks", Summary: "Delete finished deliveries of the webhook", Request: "ClearHistoryRequest", Status: 200, Response: "DeletedCount"}},

	// Deliveries.
	{Method: "GET", Path: shopPrefix + "/webhook-deliveries", auth: authShop, limit: limitManagement,
		handle: (*Server).handleListDeliveries,
		op: operation{ID: "listDeliveries", Tag: "deliveries", Summary: "List delivery attempts, newest first",
			Query: []string{"webhook_id", "status", "event", "from_date", "to_date", "page_size", "page_number"}, Status: 200, Response: "DeliveryPage"}},
	{Method: "GET", Path: shopPrefix + "/webhook-deliveries/pending", auth: authShop, limit: limitManagement,
		handle: (*Server).handlePendingDeliveries,
		op: operation{ID: "listPendingDeliveries", Tag: "deliveries", Summary: "List queued deliveries, next due first",
			Query: []string{"webhook_id", "page_size", "page_number"}, Status: 200, Response: "PendingDeliveries"}},
	{Method: "GET", Path: shopPrefix + "/webhook-deliveries/{delivery_id}", auth: authShop, limit: limitManagement,
		handle: (*Server).handleGetDelivery,
		op:     operation{ID: "getDelivery", Tag: "deliveries", Summary: "Get a delivery", Status: 200, Response: "WebhookDelivery"}},
	{Method: "POST", Path: shopPrefix + "/webhook-deliveries/{delivery_id}/retry", auth: authShop, limit: limitManagement, body: bodyManagement, long: true,
		handle: (*Server).handleRetryDelivery,
		op:     operation{ID: "retryDelivery", Tag: "deliveries", Summary: "Send a delivery's event again now, as a new delivery", Request: "EmptyRequest", Status: 200, Response: "AttemptResult", Errors: []int{409}}},

	// Events.
	{Method: "POST", Path: shopPrefix + "/events", auth: authShop, limit: limitPublish, body: bodyLarge,
		handle: (*Server).handlePublish,
		op:     operation{ID: "publishEvent", Tag: "events", Summary: "Publish an event; durable when answered", Request: "PublishRequest", Status: 202, Response: "PublishResult"}},
	{Method: "POST", Path: shopPrefix + "/events/batch", auth: authShop, limit: limitPublish, body: bodyLarge,
		handle: (*Server).handlePublishBatch,
		op:     operation{ID: "publishEvents", Tag: "events", Summary: "Publish up to 500 events in one commit", Request: "PublishBatchRequest", Status: 202, Response: "PublishBatchResult"}},

	// Administration.
	{Method: "POST", Path: adminPrefix + "/shops", auth: authAdmin, body: bodyManagement,
		handle: (*Server).handleCreateShop,
		op:     operation{ID: "createShop", Tag: "admin", Summary: "Create a shop and its first API key", Request: "CreateShopRequest", Status: 201, Response: "CreateShopResult", Errors: []int{409}}},
	{Method: "POST", Path: adminPrefix + "/shops/{shop_id}/keys", auth: authAdmin, body: bodyManagement,
		handle: (*Server).handleCreateKey,
		op:     operation{ID: "createAPIKey", Tag: "admin", Summary: "Add an API key to a shop", Request: "EmptyRequest", Status: 201, Response: "CreateKeyResult"}},
	{Method: "DELETE", Path: adminPrefix + "/shops/{shop_id}/keys/{key_id}", auth: authAdmin,
		handle: (*Server).handleRevokeKey,
		op:     operation{ID: "revokeAPIKey", Tag: "admin", Summary: "Revoke an API key", Status: 200, Response: "Success"}},

	// Meta.
	{Method: "GET", Path: "/api/v1/event-types",
		handle: (*Server).handleEventTypes,
		op:     operation{ID: "listEventTypes", Tag: "meta", Summary: "List the event types", Status: 200, Response: "EventTypeList"}},
	{Method: "GET", Path: "/api/v1/openapi.json",
		handle: (*Server).handleOpenAPI,
		op:     operation{ID: "getOpenAPI", Tag: "meta", Summary: "This description", Status: 200, Response: "OpenAPIDocument"}},
	{Method: "GET", Path: "/healthz",
		handle: (*Server).handleHealthz,
		op:     operation{ID: "healthz", Tag: "meta", Summary: "Liveness: the process is up", Status: 200, Response: "Status"}},
	{Method: "GET", Path: "/readyz",
		handle: (*Server).handleReadyz,
		op:     operation{ID: "readyz", Tag: "meta", Summary: "Readiness: the database is reachable and migrated", Status: 200, Response: "Status", Errors: []int{503}}},
	{Method: "GET", Path: "/metrics", optional: optionalMetrics,
		handle: (*Server).handleMetrics,
		op:     operation{ID: "metrics", Tag: "meta", Summary: "Prometheus metrics (served when configured)", Status: 200}},
}

// errorStatuses returns the error statuses rt can answer, sorted.
func (rt route) errorStatuses() []int {
	set := map[int]bool{500: true}
	switch rt.auth {
	case authShop:
		set[401], set[403], set[503] = true, true, true // 503: the database unavailable, or waited on too long
	case authAdmin:
		set[401], set[404], set[503] = true, true, true
	}
	if rt.limit != limitNone {
		set[429] = true
	}
	if rt.body != bodyNone {
		set[400], set[413] = true, true
	}
	if len(rt.op.Query) > 0 {
		set[400] = true
	}
	for _, p := range pathParams(rt.Path) {
		if p != "shop_id" || rt.auth == authAdmin {
			set[404] = true
		}
	}
	for _, c := range rt.op.Errors {
		set[c] = true
	}
	out := make([]int, 0, len(set))
	for c := 100; c < 600; c++ {
		if set[c] {
			out = append(out, c)
		}
	}
	return out
}

// pathParams returns the {names} of path, in order.
func pathParams(path string) []string {
	var out []string
	for i := 0; i < len(path); i++ {
		if path[i] != '{' {
			continue
		}
		j := i + 1
		for j < len(path) && path[j] != '}' {
			j++
		}
		out = append(out, path[i+1:j])
		i = j
	}
	return out
}

// adapt wraps rt's handler with authentication, the shop check, the rate
// limit and the body limit, and answers its error in the envelope.
func (s *Server) adapt(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !rt.long {
			// Answered before the server's write timeout cuts the
			// connection: a database that waits on a lock gets a 503,
			// not an empty reply.
			ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		if err := s.guard(rt, w, r); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := rt.handle(s, w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// guard runs the checks every request of rt passes before its handler:
// 401 (no or bad key), 429 (rate), 403 (another shop's path), 413 (body).
func (s *Server) guard(rt route, w http.ResponseWriter, r *http.Request) error {
	switch rt.auth {
	case authShop:
		shopID, keyHash, err := s.authenticateShop(r)
		if err != nil {
			return err
		}
		lim := s.limiter
		if rt.limit == limitPublish {
			lim = s.plimiter
		}
		if rt.limit != limitNone {
			if ok, wait := lim.allow(keyHash); !ok {
				secs := retryAfterSeconds(wait)
				w.Header().Set("Retry-After", strconv.Itoa(secs))
				return &webhooks.Error{
					Code:    webhooks.ERATELIMITED,
					Message: "Too many requests; retry after " + strconv.Itoa(secs) + " s",
					Details: map[string]any{"retry_after_seconds": secs},
				}
			}
		}
		if r.PathValue("shop_id") != shopID {
			return webhooks.Errorf(webhooks.EFORBIDDEN, "This API key does not belong to this shop")
		}
	case authAdmin:
		if err := s.authorizeAdmin(r); err != nil {
			return err
		}
	}
	if rt.body != bodyNone {
		limit := s.cfg.MaxManagementBodyBytes
		if rt.body == bodyLarge {
			limit = s.cfg.MaxBodyBytes
		}
		if r.ContentLength > limit {
			return tooLarge(limit)
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
	}
	return nil
}
