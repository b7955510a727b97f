package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// ErrorStatus maps an error code of the contract to its HTTP status. It is
// the one place where codes become statuses; an unknown code is a 500.
func ErrorStatus(code string) int {
	switch code {
	case webhooks.EINVALID, webhooks.EINVALIDJSON:
		return http.StatusBadRequest
	case webhooks.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case webhooks.EFORBIDDEN:
		return http.StatusForbidden
	case webhooks.ENOTFOUND:
		return http.StatusNotFound
	case webhooks.EMETHOD:
		return http.StatusMethodNotAllowed
	case webhooks.ECONFLICT:
		return http.StatusConflict
	case webhooks.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case webhooks.ERATELIMITED:
		return http.StatusTooManyRequests
	case webhooks.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// unavailableRetryAfter is the Retry-After of a 503, in seconds: long
// enough for a database to restart or fail over, short enough that a
// publish is not held back long.
const unavailableRetryAfter = "5"

// errorEnvelope is the contract's error body.
type errorEnvelope struct {
	Success bool      `json:"success"`
	Error   errorBody `json:"error"`
}

type errorBody struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
}

// StatusClientClosed is the status recorded (in the request log and
// metrics) for a request whose client went away before its answer.
const StatusClientClosed = 499

// writeError answers err in the contract's envelope. Anything that is not a
// *webhooks.Error is logged with its details and shown as "Internal error".
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *webhooks.Error
	if !errors.As(err, &e) {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			s.logger.LogAttrs(r.Context(), slog.LevelWarn, "request timed out",
				slog.String("method", r.Method), slog.String("url", s.logURL(r.URL)),
				slog.String("error", err.Error()))
			e = webhooks.Errorf(webhooks.EUNAVAILABLE, "The request timed out")
		case s.cfg.Unavailable != nil && s.cfg.Unavailable(err):
			s.logger.LogAttrs(r.Context(), slog.LevelWarn, "database unavailable",
				slog.String("method", r.Method), slog.String("url", s.logURL(r.URL)),
				slog.String("error", err.Error()))
			e = webhooks.Errorf(webhooks.EUNAVAILABLE, "The database is unavailable for now; try again")
		case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
			// The client went away; nobody reads the answer. Not a server
			// error: as a 500 it was logged at warn and counted with the
			// 5xx (a test send given up by its caller: soak audit). 499 is
			// what nginx records for it.
			s.logger.LogAttrs(r.Context(), slog.LevelDebug, "request canceled",
				slog.String("method", r.Method), slog.String("url", s.logURL(r.URL)))
			w.WriteHeader(StatusClientClosed)
			return
		default:
			s.logger.LogAttrs(r.Context(), slog.LevelError, "internal error",
				slog.String("method", r.Method), slog.String("url", s.logURL(r.URL)),
				slog.String("error", err.Error()))
			e = webhooks.Errorf(webhooks.EINTERNAL, "Internal error")
		}
	}
	code := e.Code
	status := ErrorStatus(code)
	if status == http.StatusInternalServerError {
		code = webhooks.EINTERNAL
	}
	details := e.Details
	if details == nil || status == http.StatusInternalServerError {
		details = map[string]any{}
	}
	msg := e.Message
	if status == http.StatusInternalServerError {
		msg = "Internal error"
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", unavailableRetryAfter)
	}
	s.writeJSON(w, r, status, errorEnvelope{Error: errorBody{Code: code, Message: msg, Details: details}})
}

// writeJSON answers v as JSON with status.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	status, buf := s.encodeJSON(r, status, v)
	writeEncoded(w, status, buf)
}

// encodeJSON encodes v, or an internal error (then status 500) if it
// cannot be.
func (s *Server) encodeJSON(r *http.Request, status int, v any) (int, *bytes.Buffer) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		s.logger.LogAttrs(r.Context(), slog.LevelError, "encode response",
			slog.String("method", r.Method), slog.String("url", s.logURL(r.URL)),
			slog.String("error", err.Error()))
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"success":false,"error":{"code":"internal","message":"Internal error","details":{}}}` + "\n")
	}
	return status, &buf
}

// writeEncoded answers buf, JSON, with status.
func writeEncoded(w http.ResponseWriter, status int, buf *bytes.Buffer) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// redactURL returns u as text fit for a log line: the api_key query
// parameter's value replaced, and any parameter or path segment in which
// secret finds a secret replaced too (a key pasted where a shop or
// delivery id goes).
func redactURL(u *url.URL, secret func(string) bool) string {
	if u == nil {
		return ""
	}
	c := *u
	c.User = nil
	if p := redactPath(c.Path, secret); p != c.Path {
		c.Path, c.RawPath = p, ""
	}
	if c.RawQuery != "" {
		q, err := url.ParseQuery(c.RawQuery)
		if err != nil {
			// Unparseable: keep the path only rather than risk a key.
			c.RawQuery = "REDACTED"
		} else {
			for k, vs := range q {
				switch {
				case secret(k): // a key pasted as a name
					delete(q, k)
					q["REDACTED"] = []string{""}
				case isSecretParam(k) || slices.ContainsFunc(vs, secret):
					q[k] = []string{"REDACTED"}
				}
			}
			c.RawQuery = q.Encode()
		}
	}
	return c.String()
}

// redactPath returns p with each segment that secret reports replaced by
// REDACTED.
func redactPath(p string, secret func(string) bool) string {
	if !secret(p) {
		return p
	}
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		if secret(seg) {
			segs[i] = "REDACTED"
		}
	}
	if p = strings.Join(segs, "/"); secret(p) { // one that spans a slash
		return "REDACTED"
	}
	return p
}

// logURL and logPath are u and path as a log line may show them.
func (s *Server) logURL(u *url.URL) string   { return cutLogged(redactURL(u, s.holdsSecret)) }
func (s *Server) logPath(path string) string { return cutLogged(redactPath(path, s.holdsSecret)) }

// maxLogged bounds a URL or a path in a log line: the client chose it (a
// query of 50 KB made a warn line of 50 KB: observability audit).
const maxLogged = 512

// cutLogged cuts v, already redacted, to maxLogged bytes.
func cutLogged(v string) string {
	if len(v) <= maxLogged {
		return v
	}
	return strings.ToValidUTF8(v[:maxLogged], "") + "…(cut)"
}

// holdsSecret says whether v holds a key, a signing secret or the admin
// token.
func (s *Server) holdsSecret(v string) bool {
	return looksSecret(v) || (s.cfg.AdminToken != "" && strings.Contains(v, s.cfg.AdminToken))
}

// looksSecret says whether v holds a shop API key or a signing secret,
// whatever parameter carries it (a key pasted into the wrong one).
func looksSecret(v string) bool {
	return strings.Contains(v, webhooks.KeyPrefix) || strings.Contains(v, "whsec_")
}

func isSecretParam(k string) bool {
	switch k {
	case "api_key", "apikey", "apiKey", "key", "token", "access_token":
		return true
	}
	return false
}
