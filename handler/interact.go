package main

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/teamscc/teamscc/shared/acs"
	"github.com/teamscc/teamscc/shared/config"
	"github.com/teamscc/teamscc/shared/entra"
	"github.com/teamscc/teamscc/shared/funchost"
	"github.com/teamscc/teamscc/shared/interact"
)

// interactHandler serves the Interact widget (anonymous at the host: it checks the
// widget key and tokens itself) and the Interact admin operations.
//
// The widget endpoints answer 401 {"error":{"code":"unauthorized"}} for every key or
// token failure and for unknown tenants, without saying which part failed; 403 for a
// disabled tenant or a refused Origin (only once the key is right); 429 with
// Retry-After after repeated failures from one client address (clientAddr) or for the
// tenant from all addresses together. When the tenant's Azure Communication Services
// fail, a session request and the ACS check answer 502 acs_refused (the access key
// was refused), 502 acs_error (ACS answered with an error) or 503 acs_unreachable (no
// answer in time), with nothing of the key or the connection string.
type interactHandler struct {
	svc *interact.Service
}

// tokenVerifier adapts the Entra validator to interact.TokenVerifier.
type tokenVerifier struct{ v *entra.Validator }

func (t tokenVerifier) VerifyToken(ctx context.Context, token, tenantID string, audiences []string) error {
	_, err := t.v.Verify(ctx, token, entra.Want{Tenant: tenantID, Audiences: audiences})
	return err
}

// newInteractHandler wires the Interact service on the app's stores, the Entra
// validator and the ACS client.
func newInteractHandler(cfg config.Config, d deps) *interactHandler {
	return newInteractHandlerACS(cfg, d, nil)
}

// newInteractHandlerACS is newInteractHandler with the given ACS client (tests: one
// with a short timeout, pointed at a fake ACS by the connection string); nil is the
// default client.
func newInteractHandlerACS(cfg config.Config, d deps, ac *acs.Client) *interactHandler {
	if ac == nil {
		ac = acs.New(nil, nil)
	}
	var tokens interact.TokenVerifier
	// The URLs were validated by config.Load; an error here means no token mode works,
	// which refuses token requests rather than stopping the app.
	if v, err := entra.NewValidator(entra.Options{AuthorityHost: cfg.Graph.AuthorityHost, JWKSURL: cfg.Interact.JWKSURL,
		Audiences: cfg.Interact.Audiences}); err == nil {
		tokens = tokenVerifier{v}
	}
	now := d.now
	return &interactHandler{svc: interact.NewService(
		interact.Config{KeyGrace: cfg.Interact.KeyGrace, DefaultAudiences: cfg.Interact.Audiences},
		interact.Deps{Tenants: d.tenants, Secrets: d.secrets, Store: d.interact, Tokens: tokens, ACS: ac, Now: now})}
}

// clientAddr is the key the failure limiter counts a widget request under: the
// caller's address as the platform vouches for it, never one the caller wrote.
//
// The Functions host connects from loopback and forwards the request's headers as
// they are, so the address comes from the App Service front end's headers
// (docs/PLATFORM.md): Client-IP ("ip:port"), which the front end sets and overwrites
// if the caller sent one; without it, the right-most X-Forwarded-For hop, which the
// front end appends (every hop left of it is the caller's to write); without either
// (the local runner, Core Tools), the connection's address. A value that does not
// parse as an address is skipped: the front end writes valid ones.
//
// An IPv6 client counts by its /64, the block one subscriber usually holds, so that
// stepping through the addresses of one block gives no more attempts.
func clientAddr(r *http.Request) string {
	if v := r.Header.Values("Client-IP"); len(v) > 0 {
		if a, ok := parseAddr(v[len(v)-1]); ok {
			return limitKey(a)
		}
	}
	if v := r.Header.Values("X-Forwarded-For"); len(v) > 0 {
		last := v[len(v)-1]
		if i := strings.LastIndexByte(last, ','); i >= 0 {
			last = last[i+1:]
		}
		if a, ok := parseAddr(last); ok {
			return limitKey(a)
		}
	}
	if a, ok := parseAddr(r.RemoteAddr); ok {
		return limitKey(a)
	}
	return r.RemoteAddr
}

// parseAddr reads "ip", "ip:port", "[ipv6]:port" or "[ipv6]".
func parseAddr(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return a.WithZone("").Unmap(), true
	}
	return netip.Addr{}, false
}

// limitKey is a's IPv4 address, or its IPv6 /64.
func limitKey(a netip.Addr) string {
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

var (
	unauthorizedBody = map[string]any{"error": map[string]string{"code": "unauthorized", "message": "unauthorized"}}
	disabledBody     = map[string]any{"error": map[string]string{"code": "disabled", "message": "interact disabled"}}
	originBody       = map[string]any{"error": map[string]string{"code": "origin_not_allowed", "message": "origin not allowed"}}
	rateLimitedBody  = map[string]any{"error": map[string]string{"code": "rate_limited", "message": "too many failed attempts"}}
)

// cors adds the CORS answer headers when the request's Origin is allowed for the
// tenant. It never fails the request: a storage error only means no CORS headers.
func (h *interactHandler) cors(w http.ResponseWriter, r *http.Request, tenantID string, preflight bool) {
	w.Header().Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" || tenantID == "" {
		return
	}
	if ok, err := h.svc.AllowedOrigin(r.Context(), tenantID, origin); err != nil || !ok {
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", origin)
	if preflight {
		w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", "Content-Type, Authorization, X-Widget-Key")
		w.Header().Set("Access-Control-Max-Age", "600")
	}
}

// widgetTenant is the path's tenant id, lower-cased, or "" if it is no GUID (which
// is answered like an unknown tenant).
func widgetTenant(r *http.Request) string {
	id, err := tenantID(r.PathValue("tenantId"))
	if err != nil {
		return ""
	}
	return id
}

// preflight answers a CORS preflight: 204, with the allow headers only for an
// allowed origin.
func (h *interactHandler) preflight(w http.ResponseWriter, r *http.Request) {
	h.cors(w, r, widgetTenant(r), true)
	w.WriteHeader(http.StatusNoContent)
}

// authorize runs the widget checks and answers refusals itself; ok is false then.
func (h *interactHandler) authorize(w http.ResponseWriter, r *http.Request) (interact.Settings, bool) {
	id := widgetTenant(r)
	h.cors(w, r, id, false)
	s, err := h.svc.Authorize(r.Context(), interact.Request{TenantID: id, Key: r.Header.Get("X-Widget-Key"),
		Token: bearer(r), Client: clientAddr(r), Origin: r.Header.Get("Origin")})
	if err == nil {
		return s, true
	}
	log := funchost.Logger(r.Context())
	var rl *interact.RateLimitedError
	switch {
	case errors.As(err, &rl):
		if rl.Tenant {
			// Many addresses failing for one tenant: worth an operator's look.
			log.Warn("widget request rate limited: too many failures for the tenant", slog.String("tenant", id))
		} else {
			log.Info("widget request rate limited", slog.String("tenant", id))
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(rl.RetryAfter.Seconds()))))
		funchost.WriteJSON(w, http.StatusTooManyRequests, rateLimitedBody)
	case errors.Is(err, interact.ErrUnauthorized):
		// The reason goes to the log only, never to the caller.
		log.Info("widget request refused", slog.String("tenant", id), slog.String("reason", err.Error()))
		funchost.WriteJSON(w, http.StatusUnauthorized, unauthorizedBody)
	case errors.Is(err, interact.ErrDisabled):
		funchost.WriteJSON(w, http.StatusForbidden, disabledBody)
	case errors.Is(err, interact.ErrOriginNotAllowed):
		funchost.WriteJSON(w, http.StatusForbidden, originBody)
	default:
		funchost.WriteError(w, r, err)
	}
	return interact.Settings{}, false
}

// sessions is POST /api/interact/{tenantId}/sessions: start or recover a session.
// 201 for a new session, 200 for a recovered one.
func (h *interactHandler) sessions(w http.ResponseWriter, r *http.Request) {
	s, ok := h.authorize(w, r)
	if !ok {
		return
	}
	var req interact.StartRequest
	if err := decodeStrict(r.Body, &req); err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	out, err := h.svc.StartSession(r.Context(), s, req)
	if err != nil {
		if status, code, ok := acsFailure(err); ok {
			funchost.Logger(r.Context()).Warn("widget session: ACS failed", slog.String("tenant", s.TenantID),
				slog.String("code", code), slog.String("error", err.Error()))
			funchost.WriteJSON(w, status, acsErrorBody(code, nil))
			return
		}
		funchost.WriteError(w, r, err)
		return
	}
	status := http.StatusCreated
	if out.Recovered {
		status = http.StatusOK
	}
	funchost.WriteJSON(w, status, out)
}

// closeSession is POST /api/interact/{tenantId}/sessions/{sessionId}/close with
// {"customerId": ...}: 204; 404 for an unknown session or another customer's.
func (h *interactHandler) closeSession(w http.ResponseWriter, r *http.Request) {
	s, ok := h.authorize(w, r)
	if !ok {
		return
	}
	var body closeSessionBody
	if err := decodeStrict(r.Body, &body); err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	if err := h.svc.CloseSession(r.Context(), s, r.PathValue("sessionId"), body.CustomerID); err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// adminTenant parses the admin path's tenant id (400 naming tenantId if malformed).
func adminTenant(w http.ResponseWriter, r *http.Request) (string, bool) {
	id, err := tenantID(r.PathValue("tenantId"))
	if err != nil {
		funchost.WriteError(w, r, err)
		return "", false
	}
	return id, true
}

// getSettings is GET /api/tenants/{tenantId}/interact: the settings with the widget
// key, never the ACS connection string.
func (h *interactHandler) getSettings(w http.ResponseWriter, r *http.Request) {
	id, ok := adminTenant(w, r)
	if !ok {
		return
	}
	v, err := h.svc.Settings(r.Context(), id)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	v.MeetingUserID = adminFrom(r.Context()).mask.User(v.MeetingUserID) // a user's id: masked for partners the tenant does not let see them
	funchost.WriteJSON(w, http.StatusOK, v)
}

// patchSettings is PATCH /api/tenants/{tenantId}/interact: a partial update; a bad
// field is a 400 naming it and its rule, and nothing is written.
func (h *interactHandler) patchSettings(w http.ResponseWriter, r *http.Request) {
	id, ok := adminTenant(w, r)
	if !ok {
		return
	}
	var p interact.Patch
	if err := decodeStrict(r.Body, &p); err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	v, err := h.svc.UpdateSettings(r.Context(), id, p)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	funchost.Logger(r.Context()).Info("interact settings updated", slog.String("tenant", id),
		slog.Bool("enabled", v.Enabled), slog.String("auth_mode", string(v.AuthMode)), slog.Bool("acs_set", v.ACSConnectionStringSet))
	v.MeetingUserID = adminFrom(r.Context()).mask.User(v.MeetingUserID)
	funchost.WriteJSON(w, http.StatusOK, v)
}

// refreshKey is POST /api/tenants/{tenantId}/interact/widget-key/refresh.
func (h *interactHandler) refreshKey(w http.ResponseWriter, r *http.Request) {
	id, ok := adminTenant(w, r)
	if !ok {
		return
	}
	v, err := h.svc.RefreshKey(r.Context(), id)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	funchost.Logger(r.Context()).Info("interact widget key refreshed", slog.String("tenant", id))
	funchost.WriteJSON(w, http.StatusOK, v)
}

// checkACS is POST /api/tenants/{tenantId}/interact/acs/check: 200 with the result
// when the check passed or no connection string is set; otherwise the status and
// code of acsFailure, with the result's fields beside the error.
func (h *interactHandler) checkACS(w http.ResponseWriter, r *http.Request) {
	id, ok := adminTenant(w, r)
	if !ok {
		return
	}
	res, err := h.svc.CheckACS(r.Context(), id)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	var kind error
	switch res.Status {
	case interact.CheckBadKey:
		kind = interact.ErrACSRefused
	case interact.CheckUnreachable:
		kind = interact.ErrACSUnreachable
	case interact.CheckFailed:
		kind = interact.ErrACSFailed
	default:
		funchost.WriteJSON(w, http.StatusOK, res)
		return
	}
	status, code, _ := acsFailure(kind)
	funchost.Logger(r.Context()).Info("ACS check failed", slog.String("tenant", id), slog.String("code", code))
	funchost.WriteJSON(w, status, acsErrorBody(code, &res))
}

// acsFailure maps an ACS failure to its answer: ErrACSRefused → 502 acs_refused,
// ErrACSFailed → 502 acs_error, ErrACSUnreachable → 503 acs_unreachable. ok is false
// for any other error.
func acsFailure(err error) (status int, code string, ok bool) {
	switch {
	case errors.Is(err, interact.ErrACSRefused):
		return http.StatusBadGateway, "acs_refused", true
	case errors.Is(err, interact.ErrACSUnreachable):
		return http.StatusServiceUnavailable, "acs_unreachable", true
	case errors.Is(err, interact.ErrACSFailed):
		return http.StatusBadGateway, "acs_error", true
	}
	return 0, "", false
}

// acsMessages are the fixed messages of the ACS error codes: nothing of the tenant's
// configuration beyond what the code says.
var acsMessages = map[string]string{
	"acs_refused":     "Azure Communication Services refused the tenant's access key",
	"acs_error":       "Azure Communication Services answered with an error",
	"acs_unreachable": "Azure Communication Services could not be reached",
}

// acsErrorBody is {"error":{"code","message"}}, with the check result's status,
// detail and tookMs beside it when res is set (admins only).
func acsErrorBody(code string, res *interact.CheckResult) map[string]any {
	body := map[string]any{"error": map[string]string{"code": code, "message": acsMessages[code]}}
	if res != nil {
		body["status"], body["detail"], body["tookMs"] = res.Status, res.Detail, res.TookMs
	}
	return body
}
