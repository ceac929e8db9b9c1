package teams

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/funchost"
)

// DefaultMaxBodyBytes is the body limit when NewWebhook gets 0. Call notifications are
// a few KiB; a roster of a large group call stays far below this.
const DefaultMaxBodyBytes = 1 << 20

// ErrUnauthenticated is wrapped by an Authenticator's refusal.
var ErrUnauthenticated = errors.New("teams: callback not authenticated")

// Authenticator verifies a callback's Authorization header ("Bearer <JWT>" signed by
// Microsoft's calling platform for this bot's app id) and returns the tenant id the
// token names. A refusal wraps ErrUnauthenticated; any other error is transient (the
// signing keys could not be fetched) and answers 503.
type Authenticator interface {
	Authenticate(ctx context.Context, authorization string) (tenantID string, err error)
}

// Hint is what the app put in the callback URI of a call it answered or placed: the
// key of its call entity and, for an offer leg, the leg's number. Zero on the bot's
// global webhook (a new incoming call).
type Hint struct {
	Call string // query "call"
	Leg  int    // query "leg"; -1 when absent
}

// Batch is one authenticated notification body.
type Batch struct {
	TenantID string // from the token
	Hint     Hint
	Events   []Event
}

// BatchFunc receives the events of one authenticated, well-formed body, in order. It
// must be quick (an incoming call must be answered within 15 s of the notification)
// and safe to call again with the same batch: the platform delivers a notification
// again when it got no 2xx. A nil error answers 202; a transient error answers 500 so
// that the platform retries; a permanent one (fault.Permanent, *fault.FieldError)
// answers 4xx. Return nil for events you choose to ignore.
type BatchFunc func(ctx context.Context, b Batch) error

// Webhook serves the calling platform's callbacks (POST /api/teams/notifications):
//
//   - every request is first authenticated from its Authorization header: without a
//     valid token it answers 401 (WWW-Authenticate: Bearer) before reading the body,
//     and nothing else happens;
//   - a legacy-format body answers 204 No Content, so the platform sends it again in
//     Graph's format;
//   - 413 when the body exceeds the limit; 400 (JSON {"error":{"code":"invalid",
//     "field","rule"}}) when it or the callback hint (query "call", "leg") is malformed;
//   - otherwise OnBatch gets the events (not called when the body held only
//     notifications the parser skips) and the answer is 202 or its error.
//
// Logs carry counts and kinds only: never the token, a call id, a phone number or a
// user id. Safe for concurrent use.
type Webhook struct {
	auth    Authenticator
	onBatch BatchFunc
	maxBody int64
}

// NewWebhook returns a Webhook. maxBodyBytes ≤ 0 means DefaultMaxBodyBytes.
func NewWebhook(auth Authenticator, onBatch BatchFunc, maxBodyBytes int64) (*Webhook, error) {
	if auth == nil || onBatch == nil {
		return nil, errors.New("teams: NewWebhook needs an Authenticator and a BatchFunc")
	}
	if maxBodyBytes <= 0 {
		maxBodyBytes = DefaultMaxBodyBytes
	}
	return &Webhook{auth: auth, onBatch: onBatch, maxBody: maxBodyBytes}, nil
}

func writeErrorCode(w http.ResponseWriter, status int, code, message string) {
	var b struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	b.Error.Code, b.Error.Message = code, message
	funchost.WriteJSON(w, status, b)
}

// ServeHTTP authenticates and handles one callback; see Webhook.
func (h *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := funchost.Logger(r.Context())
	tenantID, err := h.auth.Authenticate(r.Context(), r.Header.Get("Authorization"))
	switch {
	case errors.Is(err, ErrUnauthenticated):
		log.Warn("calling callback refused: not authenticated", "err", err)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeErrorCode(w, http.StatusUnauthorized, "unauthenticated", "a bearer token of Microsoft's calling platform for this bot is required")
		return
	case err != nil:
		log.Error("calling callback not authenticated: keys unavailable", "err", err)
		w.Header().Set("Retry-After", "5")
		writeErrorCode(w, http.StatusServiceUnavailable, "unavailable", "the calling platform's signing keys cannot be read now")
		return
	}
	hint, err := readHint(r)
	if err != nil {
		funchost.WriteError(w, r, err)
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
	events, skipped, err := parse(body)
	switch {
	case errors.Is(err, ErrLegacy):
		log.Info("calling callback in the legacy format: 204, the platform sends it again in Graph's format")
		w.WriteHeader(http.StatusNoContent)
		return
	case err != nil:
		funchost.WriteError(w, r, err)
		return
	}
	if len(events) > 0 {
		if err := h.onBatch(r.Context(), Batch{TenantID: tenantID, Hint: hint, Events: events}); err != nil {
			funchost.WriteError(w, r, fmt.Errorf("handle call notifications: %w", err))
			return
		}
	}
	log.Debug("calling callback accepted", slog.Int("events", len(events)), slog.Int("skipped", skipped))
	w.WriteHeader(http.StatusAccepted)
}

// readHint reads the callback hint from the query.
func readHint(r *http.Request) (Hint, error) {
	q := r.URL.Query()
	h := Hint{Call: q.Get("call"), Leg: -1}
	if h.Call != "" {
		if err := CheckCallID("call", h.Call); err != nil {
			return Hint{}, err
		}
	}
	if v := q.Get("leg"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 9999 || h.Call == "" {
			return Hint{}, fault.Invalid("leg", "must be a number 0..9999, with call")
		}
		h.Leg = n
	}
	return h, nil
}

// CallbackURI is the callback URI of a call the app answers or places: base (the
// calling webhook's public URL) with the hint in its query.
func CallbackURI(base string, h Hint) string {
	if h.Call == "" {
		return base
	}
	u := base + "?call=" + queryEscape(h.Call)
	if h.Leg >= 0 {
		u += "&leg=" + strconv.Itoa(h.Leg)
	}
	return u
}

// queryEscape escapes the few characters a call key may hold that a query cannot.
func queryEscape(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b = append(b, c)
		default:
			b = append(b, '%', "0123456789ABCDEF"[c>>4], "0123456789ABCDEF"[c&15])
		}
	}
	return string(b)
}
