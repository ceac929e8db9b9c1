package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/funchost"
	"github.com/teamscc/teamscc/shared/parking"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/tenant"
	"github.com/teamscc/teamscc/shared/userstate"
)

// handlers turns triggers and requests into domain calls and domain results into
// answers. Domain errors are mapped to statuses by funchost.WriteError only.
type handlers struct {
	refresher *presence.Refresher
	tenants   tenant.Store
	presences presence.Store
	parked    parking.Store
	tracker   *userstate.Tracker
}

func tenantID(s string) (string, error) {
	if !tenant.IsGUID(s) {
		return "", fault.Invalid("tenantId", "must be a GUID")
	}
	return strings.ToLower(s), nil
}

// presenceRefresh is the PresenceRefresh timer: refresh every tracked tenant.
func (h *handlers) presenceRefresh(ctx context.Context, _ funchost.Timer) error {
	log := funchost.Logger(ctx)
	sum, err := h.refresher.RefreshAll(ctx)
	if err != nil {
		return err
	}
	for _, r := range sum.Results {
		logResult(log, r, sum.Failed[r.TenantID])
	}
	log.Info("presence refreshed", "tenants", sum.Tenants, "agents", sum.Agents, "graph_requests", sum.Requests,
		"changed", sum.Changed, "failed_tenants", len(sum.Failed))
	// The same tick sweeps user-state tracking: states that ended by themselves are
	// recorded at their instant, records roll over at midnight, a Stop that failed is
	// finished.
	us, err := h.tracker.Sweep(ctx)
	if err != nil {
		return err
	}
	for id, err := range us.Failed {
		log.Error("user-state sweep failed", "tenant", id, "err", err)
	}
	if us.Tracked > 0 || len(us.Failed) > 0 {
		log.Info("user states swept", "tracking_tenants", us.Tracked, "failed_tenants", len(us.Failed))
	}
	return nil
}

func logResult(log *slog.Logger, r presence.Result, err error) {
	attrs := []any{"tenant", r.TenantID, "active", r.Active, "agents", r.Agents, "changed", r.Changed}
	switch {
	case err != nil:
		log.Error("presence refresh failed", append(attrs, "err", err)...)
	case r.Switched:
		log.Warn("presence credential switched", append(attrs, "last_error_code", r.Health.LastErrorCode)...)
	}
	if !r.WarningsChanged {
		return
	}
	if len(r.Health.Warnings) == 0 {
		log.Info("presence health warnings cleared", "tenant", r.TenantID)
	}
	for _, w := range r.Health.Warnings {
		log.Warn("presence health warning", "tenant", r.TenantID, "code", w.Code, "message", w.Message)
	}
}

// refreshRequest is the body of a PresenceRefreshTenant message.
type refreshRequest struct {
	TenantID string `json:"tenantId"`
	Reason   string `json:"reason,omitempty"`
}

// presenceRefreshTenant refreshes one tenant now (sent when its presence settings
// change). Malformed bodies and unknown tenants are permanent: the message is parked.
func (h *handlers) presenceRefreshTenant(ctx context.Context, m funchost.Message) error {
	var req refreshRequest
	if err := decodeStrict(strings.NewReader(string(m.Body)), &req); err != nil {
		return err
	}
	id, err := tenantID(req.TenantID)
	if err != nil {
		return err
	}
	res, err := h.refresher.RefreshTenant(ctx, id)
	logResult(funchost.Logger(ctx), res, err)
	return err
}

// healthView is the answer of GET /api/tenants/{tenantId}/presence/health.
type healthView struct {
	TenantID string              `json:"tenantId"`
	Status   string              `json:"status"` // disabled | notPolledYet | ok | degraded | basic
	Enabled  bool                `json:"enabled"`
	Mode     tenant.PresenceMode `json:"mode"`
	Health   *presence.Health    `json:"health,omitempty"`
}

func (h *handlers) presenceHealth(w http.ResponseWriter, r *http.Request) {
	id, err := tenantID(r.PathValue("tenantId"))
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	t, err := h.tenants.GetTenant(r.Context(), id)
	if err != nil {
		funchost.WriteError(w, r, fmt.Errorf("tenant: %w", err))
		return
	}
	v := healthView{TenantID: id, Enabled: t.Presence.Enabled, Mode: t.Presence.Mode}
	hl, err := h.presences.GetHealth(r.Context(), id)
	switch {
	case errors.Is(err, fault.ErrNotFound):
		v.Status = "notPolledYet"
	case err != nil:
		funchost.WriteError(w, r, err)
		return
	default:
		v.Health = &hl
		v.Status = "ok"
		if len(hl.Warnings) > 0 {
			v.Status = "degraded"
		}
		if hl.Active == presence.CredBasic {
			v.Status = "basic"
		}
	}
	if !t.Presence.Enabled {
		v.Status = "disabled"
	}
	funchost.WriteJSON(w, http.StatusOK, v)
}

// presenceView is one agent's stored presence as GET /api/tenants/{tenantId}/presence
// shows it.
type presenceView struct {
	AgentID      string                `json:"agentId"`
	DisplayName  string                `json:"displayName,omitempty"`
	Availability presence.Availability `json:"availability"`
	Activity     string                `json:"activity,omitempty"`
	Source       presence.Source       `json:"source,omitempty"`
	ObservedAt   time.Time             `json:"observedAt,omitzero"`
}

// presenceList shows every agent of the tenant with the presence routing sees now;
// an agent never read yet shows PresenceUnknown. Agent ids and names are masked for a
// partner the tenant does not let see user identifiers.
func (h *handlers) presenceList(w http.ResponseWriter, r *http.Request) {
	id, err := tenantID(r.PathValue("tenantId"))
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	if _, err := h.tenants.GetTenant(r.Context(), id); err != nil {
		funchost.WriteError(w, r, fmt.Errorf("tenant: %w", err))
		return
	}
	agents, err := h.tenants.ListAgents(r.Context(), id)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	stored, err := h.presences.LoadPresences(r.Context(), id)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	byID := make(map[string]presence.Presence, len(stored))
	for _, p := range stored {
		byID[p.AgentID] = p
	}
	mask := adminFrom(r.Context()).mask
	out := make([]presenceView, len(agents))
	for i, a := range agents {
		p, ok := byID[a.ID]
		if !ok {
			p.Availability = presence.PresenceUnknown
		}
		out[i] = presenceView{AgentID: mask.User(a.ID), DisplayName: mask.User(a.DisplayName), Availability: p.Availability, Activity: p.Activity, Source: p.Source, ObservedAt: p.ObservedAt}
	}
	funchost.WriteJSON(w, http.StatusOK, map[string]any{"agents": out})
}

func (h *handlers) presenceTest(w http.ResponseWriter, r *http.Request) {
	id, err := tenantID(r.PathValue("tenantId"))
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	var body presenceTestBody
	if err := decodeStrict(r.Body, &body); err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	res, err := h.refresher.TestUser(r.Context(), id, body.UPN)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	funchost.WriteJSON(w, http.StatusOK, res)
}

func (h *handlers) parkedMessages(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			funchost.WriteError(w, r, fault.Invalid("limit", "must be a whole number 1..500"))
			return
		}
		limit = n
	}
	ms, err := h.parked.ListParked(r.Context(), r.URL.Query().Get("function"), limit)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	funchost.WriteJSON(w, http.StatusOK, map[string]any{"messages": ms})
}
