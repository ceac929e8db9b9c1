package teams

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/funchost"
)

const (
	// DefaultMaxBodyBytes is the body limit when Webhook.MaxBodyBytes is 0. Graph's
	// call notifications are a few KiB; batches stay far below this.
	DefaultMaxBodyBytes = 1 << 20
	// MaxValidationTokenLen bounds the validationToken echoed in the handshake. Graph's
	// tokens are a sentence and a request id (about 120 bytes).
	MaxValidationTokenLen = 2048
)

// EventsFunc receives the events of one authenticated, well-formed batch, in order. It
// must be quick (store and enqueue, no routing: Graph expects an answer within seconds)
// and idempotent by Event.Key, because Graph delivers a notification again when it got
// no 2xx in time. A nil error answers 202; a transient error answers 500 so that Graph
// retries the batch; a permanent one (fault.Permanent, *fault.FieldError) answers 4xx
// and Graph will not get it through. Return nil for events you choose to ignore.
type EventsFunc func(ctx context.Context, events []Event) error

// Webhook serves Graph's call notifications (POST /api/teams/notifications):
//
//   - with a validationToken query parameter: the subscription handshake. It answers
//     200 text/plain with the URL-decoded token, byte for byte, at once, and does nothing
//     else. A missing, empty or longer than MaxValidationTokenLen token answers 400.
//   - otherwise a notification batch, read by Parse: 413 when the body exceeds the limit;
//     400 (JSON {"error":{"code":"invalid","field","rule"}}) when it is malformed; 403
//     (code "forbidden") when any notification lacks the expected clientState — 403
//     rather than 401 because no WWW-Authenticate scheme applies — and then OnEvents is
//     not called at all; otherwise OnEvents gets the events (not called when the batch
//     held only lifecycle or non-call notifications) and the answer is 202 or its error.
//
// Logs carry counts and kinds only: never the token, the clientState, a call id, a
// phone number or a user id. Create it with NewWebhook; it is safe for concurrent use.
type Webhook struct {
	clientState string
	onEvents    EventsFunc
	maxBody     int64
}

// NewWebhook returns a Webhook that expects clientState on every notification and hands
// events to onEvents. maxBodyBytes ≤ 0 means DefaultMaxBodyBytes. It fails when
// clientState is empty or longer than Graph allows (MaxClientStateLen), or onEvents is
// nil; the error names no secret.
func NewWebhook(clientState string, onEvents EventsFunc, maxBodyBytes int64) (*Webhook, error) {
	switch {
	case clientState == "":
		return nil, errors.New("teams: the expected clientState is empty")
	case len(clientState) > MaxClientStateLen:
		return nil, fmt.Errorf("teams: the expected clientState is longer than %d characters", MaxClientStateLen)
	case onEvents == nil:
		return nil, errors.New("teams: nil EventsFunc")
	}
	if maxBodyBytes <= 0 {
		maxBodyBytes = DefaultMaxBodyBytes
	}
	return &Webhook{clientState: clientState, onEvents: onEvents, maxBody: maxBodyBytes}, nil
}

// errorBody has the shape of funchost's error answers.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeErrorCode(w http.ResponseWriter, status int, code, message string) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, message
	funchost.WriteJSON(w, status, b)
}

// ServeHTTP answers the handshake or a notification batch; see Webhook.
func (h *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := funchost.Logger(r.Context())
	if q := r.URL.Query(); q.Has("validationToken") {
		token := q.Get("validationToken")
		switch {
		case token == "":
			funchost.WriteError(w, r, fault.Invalid("validationToken", "required"))
		case len(token) > MaxValidationTokenLen:
			funchost.WriteError(w, r, fault.Invalid("validationToken", fmt.Sprintf("at most %d bytes", MaxValidationTokenLen)))
		default:
			// Why text/plain and nosniff: the token is attacker-controlled text echoed
			// back; it must never be rendered as HTML.
			hd := w.Header()
			hd.Set("Content-Type", "text/plain; charset=utf-8")
			hd.Set("X-Content-Type-Options", "nosniff")
			hd.Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, token)
			log.Info("teams subscription validated")
		}
		return
	}

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeErrorCode(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body exceeds %d bytes", h.maxBody))
			return
		}
		funchost.WriteError(w, r, fault.Invalid("body", "unreadable"))
		return
	}

	events, skipped, err := parse(body, h.clientState)
	switch {
	case errors.Is(err, ErrClientState):
		log.Warn("teams notifications refused: clientState missing or wrong")
		writeErrorCode(w, http.StatusForbidden, "forbidden", "clientState missing or not the expected one")
		return
	case err != nil:
		funchost.WriteError(w, r, err)
		return
	}
	if len(events) > 0 {
		if err := h.onEvents(r.Context(), events); err != nil {
			funchost.WriteError(w, r, fmt.Errorf("handle teams events: %w", err))
			return
		}
	}
	log.Info("teams notifications accepted", slog.Int("events", len(events)), slog.Int("skipped", skipped))
	w.WriteHeader(http.StatusAccepted)
}
