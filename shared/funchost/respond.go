package funchost

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/teamscc/teamscc/shared/fault"
)

// errorBody is the JSON shape of every error answer: {"error":{"code":..,"message":..}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Rule    string `json:"rule,omitempty"`
	Message string `json:"message"`
}

var internalBody = []byte(`{"error":{"code":"internal","message":"internal error"}}`)

// writeInternal answers 500 with a generic message.
func writeInternal(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write(internalBody)
}

// WriteJSON answers status with v encoded as JSON (Content-Type application/json).
// If v cannot be encoded, which is a bug, it answers 500 with a generic error instead.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeInternal(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// WriteError answers err as JSON {"error":{"code","message"}}, mapping it once:
//
//	*fault.FieldError        → 400 code "invalid", with "field" and "rule"
//	fault.ErrNotFound        → 404 code "not_found"
//	fault.ErrConflict        → 409 code "conflict"
//	fault.ErrPrecondition    → 412 code "precondition_failed"
//	other permanent error    → 400 code "bad_request", with the error text
//	anything else            → 500 code "internal", with a generic message
//
// The detail of a 500 is logged with the invocation logger of r's context, never sent.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	status, detail := errorResponse(err)
	ctx := context.Background()
	if r != nil {
		ctx = r.Context()
	}
	switch {
	case status == http.StatusServiceUnavailable:
		Logger(ctx).Warn("request not served: a dependency did not answer in time", slog.Any("error", err))
		w.Header().Set("Retry-After", retryAfter)
	case status >= 500:
		Logger(ctx).Error("request failed", slog.Any("error", err))
	default:
		Logger(ctx).Debug("request refused", slog.Int("status", status), slog.Any("error", err))
	}
	WriteJSON(w, status, errorBody{detail})
}

// retryAfter is the Retry-After of a 503 (seconds): long enough for a stalled
// dependency's per-try timeouts to have cleared the requests queued behind it.
const retryAfter = "5"

// errorResponse maps err to a status and the error detail to send.
func errorResponse(err error) (int, errorDetail) {
	var fe *fault.FieldError
	switch {
	case errors.As(err, &fe):
		return http.StatusBadRequest, errorDetail{Code: "invalid", Field: fe.Field, Rule: fe.Rule, Message: fe.Error()}
	case errors.Is(err, fault.ErrNotFound):
		return http.StatusNotFound, errorDetail{Code: "not_found", Message: fault.ErrNotFound.Error()}
	case errors.Is(err, fault.ErrConflict):
		return http.StatusConflict, errorDetail{Code: "conflict", Message: fault.ErrConflict.Error()}
	case errors.Is(err, fault.ErrPrecondition):
		return http.StatusPreconditionFailed, errorDetail{Code: "precondition_failed", Message: fault.ErrPrecondition.Error()}
	case fault.IsPermanent(err):
		return http.StatusBadRequest, errorDetail{Code: "bad_request", Message: err.Error()}
	case errors.Is(err, fault.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, errorDetail{Code: "unavailable",
			Message: "a service the app depends on did not answer in time; retry in a few seconds"}
	default:
		return http.StatusInternalServerError, errorDetail{Code: "internal", Message: "internal error"}
	}
}
