package httpapi

import (
	"cmp"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// The OpenAPI 3.1 description is built from routes (paths, operations,
// parameters, statuses) and the schemas below, written to match the JSON
// types of this package. A test proves that both agree with the server.

type obj = map[string]any

func schemaRef(name string) obj { return obj{"$ref": "#/components/schemas/" + name} }

func tString() obj             { return obj{"type": "string"} }
func tInt() obj                { return obj{"type": "integer"} }
func tNumber() obj             { return obj{"type": "number"} }
func tBool() obj               { return obj{"type": "boolean"} }
func tTime() obj               { return obj{"type": "string", "format": "date-time"} }
func tArray(items obj) obj     { return obj{"type": "array", "items": items} }
func tMap(values obj) obj      { return obj{"type": "object", "additionalProperties": values} }
func tEnum(vals ...string) obj { return obj{"type": "string", "enum": vals} }

func with(o obj, kv ...any) obj {
	out := obj{}
	for k, v := range o {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// tObject is a closed object: required names, then properties.
func tObject(required []string, props obj) obj {
	o := obj{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

func eventTypeSchema() obj {
	return with(tEnum(webhooks.EventTypeNames()...), "examples", []string{"order.created"})
}

func schemas() obj {
	health := tObject([]string{"status", "success_rate", "consecutive_failures"}, obj{
		"status":               tEnum(webhooks.HealthHealthy, webhooks.HealthWarning, webhooks.HealthError),
		"success_rate":         with(tNumber(), "minimum", 0, "maximum", 100, "description", "percentage of successful attempts in the last 24 hours, counted in whole UTC hours (the current one and the 24 before it, so every attempt of the last 24 hours counts); 100 with no attempts"),
		"last_failure_reason":  tString(),
		"last_success_at":      tTime(),
		"last_failure_at":      tTime(),
		"consecutive_failures": tInt(),
	})
	webhook := tObject([]string{"id", "url", "events", "is_active", "created_at", "updated_at", "health_status"}, obj{
		"id":                with(tString(), "examples", []string{"wh_01jq0c9z7k3m4n5p6q7r8s9t0v"}),
		"url":               with(tString(), "format", "uri"),
		"events":            tArray(eventTypeSchema()),
		"is_active":         tBool(),
		"secret_key":        with(tString(), "description", "whsec_ + base64 of 32 bytes; left out of lists"),
		"description":       tString(),
		"created_at":        tTime(),
		"updated_at":        tTime(),
		"last_triggered_at": tTime(),
		"health_status":     schemaRef("WebhookHealthStatus"),
		"disabled_reason":   tString(),
	})
	urlProp := with(tString(), "format", "uri", "maxLength", webhooks.MaxURLLen, "examples", []string{"https://example.com/hooks/pancake"})
	descProp := with(tString(), "maxLength", webhooks.MaxDescriptionLen, "examples", []string{"Order sync"})
	delivery := tObject([]string{"id", "webhook_id", "event", "payload", "status", "created_at", "duration_ms", "event_id", "attempt", "trigger"}, obj{
		"id":             with(tString(), "description", "given when the delivery is queued, and sortable by that time"),
		"webhook_id":     tString(),
		"event":          eventTypeSchema(),
		"payload":        with(obj{"type": "object"}, "description", "the envelope POSTed to the receiver"),
		"response":       with(schemaRef("DeliveryResponse"), "description", "on an attempt made; none on a pending delivery"),
		"status":         tEnum("success", "failed", "pending"),
		"failure_reason": tString(),
		"created_at": with(tTime(), "description",
			"when the attempt was made; on a pending delivery, when it was queued. Lists are ordered by it, so a list's ids need not be in order"),
		"duration_ms":   tInt(),
		"event_id":      tString(),
		"attempt":       with(tInt(), "minimum", 1),
		"trigger":       tEnum("event", "retry", "manual_retry", "test"),
		"retry_of":      tString(),
		"next_retry_at": with(obj{"type": []string{"string", "null"}, "format": "date-time"}, "description", "on a failed attempt: when the next is due; null when none will come"),
		"scheduled_at":  with(tTime(), "description", "on a pending delivery: when it is due"),
		"request":       tObject([]string{"headers"}, obj{"headers": tMap(tString())}),
	})
	publishInput := tObject([]string{"event", "data"}, obj{
		"event": eventTypeSchema(),
		"data":  with(obj{"type": "object"}, "examples", []any{obj{"order_id": "1001"}}),
		"id":    with(tString(), "minLength", 1, "maxLength", webhooks.MaxIdempotencyKeyLen, "description", "idempotency key, remembered for 24 hours"),
	})
	errorCodes := []string{webhooks.EINVALID, webhooks.EINVALIDJSON, webhooks.EUNAUTHORIZED, webhooks.EFORBIDDEN,
		webhooks.ENOTFOUND, webhooks.EMETHOD, webhooks.ECONFLICT, webhooks.ETOOLARGE, webhooks.ERATELIMITED,
		webhooks.EINTERNAL, webhooks.EUNAVAILABLE}
	return obj{
		"Error": tObject([]string{"success", "error"}, obj{
			"success": with(tBool(), "const", false),
			"error": tObject([]string{"code", "message", "details"}, obj{
				"code":    tEnum(errorCodes...),
				"message": tString(),
				"details": with(obj{"type": "object"}, "description", "for validation_failed: one entry per bad field or parameter, with the reason"),
			}),
		}),
		"WebhookHealthStatus": health,
		"Webhook":             webhook,
		"WebhookList": tObject([]string{"data", "total"}, obj{
			"data":  tArray(schemaRef("Webhook")),
			"total": tInt(),
		}),
		"CreateWebhookRequest": tObject([]string{"url", "events"}, obj{
			"url":         urlProp,
			"events":      with(tArray(eventTypeSchema()), "minItems", 1),
			"description": descProp,
			"is_active":   with(tBool(), "default", true),
		}),
		"UpdateWebhookRequest": tObject(nil, obj{
			"url":         urlProp,
			"events":      with(tArray(eventTypeSchema()), "minItems", 1),
			"description": descProp,
			"is_active":   tBool(),
		}),
		"SetActiveRequest": tObject([]string{"is_active"}, obj{"is_active": tBool()}),
		"TestWebhookRequest": tObject([]string{"event"}, obj{
			"event":   eventTypeSchema(),
			"payload": with(obj{"type": "object"}, "default", obj{}),
		}),
		"EmptyRequest": tObject(nil, obj{}),
		"AttemptResult": tObject([]string{"delivery_id", "status"}, obj{
			"delivery_id": tString(),
			"status":      tEnum("success", "failed"),
			"response": tObject([]string{"status_code"}, obj{
				"status_code": tInt(),
				"body":        tString(),
			}),
			"failure_reason": tString(),
		}),
		"SecretKey": tObject([]string{"secret_key"}, obj{"secret_key": tString()}),
		"WebhookStats": tObject([]string{"total_deliveries", "success_count", "failure_count", "average_duration_ms", "event_counts", "hourly_stats"}, obj{
			"total_deliveries":    tInt(),
			"success_count":       tInt(),
			"failure_count":       tInt(),
			"average_duration_ms": tNumber(),
			"event_counts":        tMap(tInt()),
			"hourly_stats":        tArray(schemaRef("HourlyStat")),
		}),
		"HourlyStat": tObject([]string{"hour", "total", "success", "failed"}, obj{
			"hour":    tTime(),
			"total":   tInt(),
			"success": tInt(),
			"failed":  tInt(),
		}),
		"ClearHistoryRequest": tObject(nil, obj{
			"before_date": with(tString(), "examples", []string{"2026-01-01"},
				"description", "YYYY-MM-DD (what was created before 00:00 UTC of that day), or an RFC 3339 time"),
			"status": tEnum("success", "failed"),
		}),
		"DeletedCount":    tObject([]string{"deleted_count"}, obj{"deleted_count": tInt()}),
		"Success":         tObject([]string{"success"}, obj{"success": with(tBool(), "const", true)}),
		"WebhookDelivery": delivery,
		"DeliveryResponse": tObject([]string{"status_code", "headers"}, obj{
			"status_code":    with(tInt(), "description", "0 when no HTTP response came"),
			"headers":        tMap(tString()),
			"body":           with(tString(), "description", "up to 64 KiB"),
			"body_truncated": tBool(),
		}),
		"DeliveryPage": tObject([]string{"data", "total", "page_number", "page_size", "total_pages"}, obj{
			"data":        tArray(schemaRef("WebhookDelivery")),
			"total":       tInt(),
			"page_number": tInt(),
			"page_size":   tInt(),
			"total_pages": tInt(),
		}),
		"PendingDeliveries": tObject([]string{"total_count", "deliveries"}, obj{
			"total_count": tInt(),
			"deliveries":  tArray(schemaRef("WebhookDelivery")),
		}),
		"PublishRequest": publishInput,
		"PublishResult": tObject([]string{"event_id", "deliveries"}, obj{
			"event_id":   tString(),
			"deliveries": with(tInt(), "description", "how many webhooks the event was queued for"),
		}),
		"PublishBatchRequest": tObject([]string{"events"}, obj{
			"events": with(tArray(schemaRef("PublishRequest")), "minItems", 1, "maxItems", webhooks.MaxBatchEvents),
		}),
		"PublishBatchResult": tObject([]string{"results"}, obj{"results": tArray(schemaRef("PublishResult"))}),
		"CreateShopRequest": tObject([]string{"shop_id"}, obj{
			"shop_id": with(tString(), "pattern", "^[A-Za-z0-9_-]{1,64}$", "examples", []string{"shop-42"}),
			"name":    with(tString(), "maxLength", webhooks.MaxShopNameLen),
		}),
		"CreateShopResult": tObject([]string{"shop_id", "api_key", "key_id"}, obj{
			"shop_id": tString(),
			"api_key": with(tString(), "description", "shown once"),
			"key_id":  tString(),
		}),
		"CreateKeyResult": tObject([]string{"api_key", "key_id"}, obj{
			"api_key": with(tString(), "description", "shown once"),
			"key_id":  tString(),
		}),
		"EventTypeList": tObject([]string{"data"}, obj{
			"data": tArray(tObject([]string{"name", "description"}, obj{"name": eventTypeSchema(), "description": tString()})),
		}),
		"Status":          tObject([]string{"status"}, obj{"status": tEnum("ok")}),
		"OpenAPIDocument": obj{"type": "object", "required": []string{"openapi", "info", "paths"}},
	}
}

func parameters() obj {
	path := func(name, desc string) obj {
		return obj{"name": name, "in": "path", "required": true, "description": desc, "schema": tString()}
	}
	query := func(name, desc string, schema obj) obj {
		return obj{"name": name, "in": "query", "required": false, "description": desc, "schema": schema}
	}
	date := with(tString(), "format", "date")
	return obj{
		"shop_id":       path("shop_id", "the shop's id: 1-64 characters of [A-Za-z0-9_-]"),
		"webhook_id":    path("webhook_id", "a webhook id (wh_...)"),
		"delivery_id":   path("delivery_id", "a delivery id (dlv_...)"),
		"key_id":        path("key_id", "an API key id (key_...)"),
		"q_webhook_id":  query("webhook_id", "only deliveries of this webhook", tString()),
		"q_status":      query("status", "only deliveries in this state; pending lists queued ones", tEnum("success", "failed", "pending")),
		"q_event":       query("event", "only deliveries of this event type", eventTypeSchema()),
		"q_from_date":   query("from_date", "YYYY-MM-DD, from 00:00:00 UTC of that day", date),
		"q_to_date":     query("to_date", "YYYY-MM-DD, through the end of that day (UTC)", date),
		"q_page_size":   query("page_size", "items per page", with(tInt(), "minimum", 1, "maximum", MaxPageSize, "default", DefaultPageSize)),
		"q_page_number": query("page_number", "1-based page", with(tInt(), "minimum", 1, "maximum", MaxPageNumber, "default", 1)),
	}
}

var statusDescriptions = map[int]string{
	400: "validation_failed or invalid_json",
	401: "unauthorized: no, unknown or revoked key",
	403: "forbidden: the key belongs to another shop",
	404: "not_found",
	409: "conflict",
	413: "payload_too_large",
	429: "rate_limited, with Retry-After",
	500: "internal",
	503: "unavailable, with Retry-After",
}

// buildOpenAPI returns the OpenAPI 3.1 description of routes as JSON.
func buildOpenAPI(version string) ([]byte, error) {
	paths := obj{}
	for _, rt := range routes {
		item, _ := paths[rt.Path].(obj)
		if item == nil {
			item = obj{}
			paths[rt.Path] = item
		}
		op := obj{
			"operationId": rt.op.ID,
			"summary":     rt.op.Summary,
			"tags":        []string{rt.op.Tag},
		}
		var params []any
		for _, p := range pathParams(rt.Path) {
			params = append(params, obj{"$ref": "#/components/parameters/" + p})
		}
		for _, q := range rt.op.Query {
			params = append(params, obj{"$ref": "#/components/parameters/q_" + q})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		switch rt.auth {
		case authShop:
			op["security"] = []any{obj{"apiKeyQuery": []string{}}, obj{"bearerAuth": []string{}}}
		case authAdmin:
			op["security"] = []any{obj{"adminToken": []string{}}}
		default:
			op["security"] = []any{}
		}
		if rt.op.Request != "" {
			op["requestBody"] = obj{
				"required": rt.op.Request != "EmptyRequest",
				"content":  obj{"application/json": obj{"schema": schemaRef(rt.op.Request)}},
			}
		}
		responses := obj{}
		ok := obj{"description": http.StatusText(rt.op.Status)}
		if rt.op.Response != "" {
			ok["content"] = obj{"application/json": obj{"schema": schemaRef(rt.op.Response)}}
		} else {
			ok["content"] = obj{"text/plain": obj{"schema": tString()}}
		}
		responses[strconv.Itoa(rt.op.Status)] = ok
		for _, c := range rt.errorStatuses() {
			responses[strconv.Itoa(c)] = obj{"$ref": "#/components/responses/Error" + strconv.Itoa(c)}
		}
		op["responses"] = responses
		item[strings.ToLower(rt.Method)] = op
	}
	errResponses := obj{}
	for c, d := range statusDescriptions {
		errResponses["Error"+strconv.Itoa(c)] = obj{
			"description": d,
			"content":     obj{"application/json": obj{"schema": schemaRef("Error")}},
		}
	}
	doc := obj{
		"openapi": "3.1.0",
		"info": obj{
			"title":       "Pancake Webhooks",
			"version":     cmp.Or(version, "dev"),
			"description": "Self-hosted webhook delivery for Pancake POS. Every 2xx has a JSON body. Errors are {success: false, error: {code, message, details}}. Unknown query parameters are ignored; unknown body fields are rejected.",
		},
		"servers": []any{obj{"url": "/"}},
		"paths":   paths,
		"components": obj{
			"schemas":    schemas(),
			"parameters": parameters(),
			"responses":  errResponses,
			"securitySchemes": obj{
				"apiKeyQuery": obj{"type": "apiKey", "in": "query", "name": "api_key", "description": "a shop API key (what pancake-client-sdk sends)"},
				"bearerAuth":  obj{"type": "http", "scheme": "bearer", "description": "a shop API key as a bearer token"},
				"adminToken":  obj{"type": "http", "scheme": "bearer", "description": "the operator's admin token"},
			},
		},
	}
	return json.MarshalIndent(doc, "", "  ")
}
