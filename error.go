// Package webhooks holds the domain of Pancake Webhooks: the types a shop's
// webhooks, events and deliveries are made of, the service interfaces the
// adapters implement (store, dispatch, httpapi) and the one error vocabulary
// they share. It imports none of the project's subpackages.
package webhooks

import (
	"errors"
	"fmt"
)

// Error codes, matching the API contract. httpapi maps each to one status.
const (
	ECONFLICT     = "conflict"
	EINTERNAL     = "internal"
	EINVALID      = "validation_failed"
	EINVALIDJSON  = "invalid_json"
	ENOTFOUND     = "not_found"
	EUNAUTHORIZED = "unauthorized"
	EFORBIDDEN    = "forbidden"
	ETOOLARGE     = "payload_too_large"
	ERATELIMITED  = "rate_limited"
	EMETHOD       = "method_not_allowed"
	EUNAVAILABLE  = "unavailable"
)

// Error is an error a user may see: a contract code, a message safe to show,
// and optional details (for validation, one entry per bad field).
type Error struct {
	Code    string
	Message string
	Details map[string]any
}

// Error implements the error interface.
func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, "" for nil,
// and EINTERNAL for any other error.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-facing message of err: the message of an
// *Error, or "Internal error" for anything else, so internals never leak.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error"
}

// ValidationErrors collects field errors; Err returns nil when there are none.
type ValidationErrors map[string]string

// Add records why field is bad; the first reason per field wins.
func (v ValidationErrors) Add(field, reason string) {
	if _, ok := v[field]; !ok {
		v[field] = reason
	}
}

// Err returns an EINVALID *Error naming every bad field, or nil.
func (v ValidationErrors) Err() error {
	if len(v) == 0 {
		return nil
	}
	details := make(map[string]any, len(v))
	for k, r := range v {
		details[k] = r
	}
	msg := "Request validation failed"
	if len(v) == 1 {
		for k, r := range v {
			msg = fmt.Sprintf("%s: %s", k, r)
		}
	}
	return &Error{Code: EINVALID, Message: msg, Details: details}
}
