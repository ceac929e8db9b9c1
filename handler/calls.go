package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/teamscc/teamscc/shared/access"
	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/funchost"
	"github.com/teamscc/teamscc/shared/teams"
)

// errCallsNotConfigured answers the call routes when calls are not set up.
var errCallsNotConfigured = fmt.Errorf("calls are not configured (CallingWebhookUrl, GraphClientId): %w", fault.ErrNotFound)

// routingCalls is what the HTTP functions use of the call controller.
type routingCalls interface {
	Handle(ctx context.Context, b teams.Batch) error
	Reconcile(ctx context.Context) (calls.ReconcileResult, error)
	Call(ctx context.Context, tenantID, key string) (calls.Call, error)
	Transfer(ctx context.Context, tenantID, key string, to calls.TransferTo) (calls.Call, error)
	HangUp(ctx context.Context, tenantID, key string) (calls.Call, error)
}

// CallView is a call's timeline as admins see it: every step with its time, the
// offers, and who was connected. Caller numbers and agent ids are masked for partners
// the tenant does not let see them.
type CallView struct {
	TenantID     string              `json:"tenantId"`
	CallID       string              `json:"callId"`
	Direction    calls.Direction     `json:"direction"`
	ServiceID    string              `json:"serviceId"`
	TaskID       string              `json:"taskId,omitempty"`
	FirstService string              `json:"firstService"`
	Phase        calls.Phase         `json:"phase"`
	Caller       *calls.Party        `json:"caller,omitempty"`
	Customer     *calls.Party        `json:"customer,omitempty"`
	Agent        string              `json:"agentId,omitempty"`
	Created      time.Time           `json:"created"`
	AnsweredAt   *time.Time          `json:"answeredAt,omitempty"`
	ConnectedAt  *time.Time          `json:"connectedAt,omitempty"`
	EndedAt      *time.Time          `json:"endedAt,omitempty"`
	EndReason    string              `json:"endReason,omitempty"`
	Steps        []calls.Step        `json:"steps"`
	StepsDropped int                 `json:"stepsDropped,omitempty"`
	Offers       []OfferView         `json:"offers,omitempty"`
	Agents       map[string]AgentRef `json:"agents,omitempty"` // agent id (as shown) → who
}

// OfferView is one offer leg in a timeline.
type OfferView struct {
	AgentID string         `json:"agentId"`
	Attempt int            `json:"attempt"`
	State   calls.LegState `json:"state"`
	At      time.Time      `json:"at"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// callView builds the view, masking for the caller of the admin request.
func callView(x calls.Call, mask access.Masker, names map[string]AgentRef) CallView {
	v := CallView{TenantID: x.TenantID, CallID: x.ID, Direction: x.Direction, ServiceID: x.ServiceID, TaskID: x.TaskID,
		FirstService: x.FirstService, Phase: x.Phase, Agent: mask.User(x.Agent), Created: x.Created,
		AnsweredAt: timePtr(x.AnsweredAt), ConnectedAt: timePtr(x.ConnectedAt), EndedAt: timePtr(x.EndedAt), EndReason: x.EndReason,
		StepsDropped: x.StepsDropped, Agents: map[string]AgentRef{}}
	if !x.Caller.IsZero() {
		v.Caller = &calls.Party{Kind: x.Caller.Kind, ID: mask.Customer(x.Caller.ID)}
	}
	if !x.Customer.IsZero() {
		v.Customer = &calls.Party{Kind: x.Customer.Kind, ID: mask.Customer(x.Customer.ID)}
	}
	v.Steps = make([]calls.Step, len(x.Steps))
	seen := map[string]bool{}
	for i, s := range x.Steps {
		if s.Agent != "" {
			seen[s.Agent] = true
			s.Agent = mask.User(s.Agent)
		}
		v.Steps[i] = s
	}
	for _, l := range x.Legs {
		seen[l.AgentID] = true
		v.Offers = append(v.Offers, OfferView{AgentID: mask.User(l.AgentID), Attempt: l.Attempt, State: l.State, At: l.At})
	}
	for id := range seen {
		if ref, ok := names[id]; ok && ref != (AgentRef{}) {
			v.Agents[mask.User(id)] = AgentRef{DisplayName: mask.User(ref.DisplayName), UPN: mask.User(ref.UPN)}
		}
	}
	return v
}

// callIDs reads the tenant and call id of a call route.
func (h *routingHandlers) callIDs(r *http.Request) (string, string, error) {
	if h.calls == nil {
		return "", "", errCallsNotConfigured
	}
	tid, err := tenantID(r.PathValue("tenantId"))
	if err != nil {
		return "", "", err
	}
	id := r.PathValue("callId")
	if id == "" {
		return "", "", fault.Invalid("callId", "required")
	}
	if err := teams.CheckCallID("callId", id); err != nil {
		return "", "", err
	}
	return tid, id, nil
}

// respondCall answers with a call's view.
func (h *routingHandlers) respondCall(w http.ResponseWriter, r *http.Request, x calls.Call) {
	var ids []string
	for _, s := range x.Steps {
		if s.Agent != "" {
			ids = append(ids, s.Agent)
		}
	}
	for _, l := range x.Legs {
		ids = append(ids, l.AgentID)
	}
	names, err := h.names.get(r.Context(), x.TenantID, ids, time.Now())
	if err != nil {
		names = nil // the timeline without names rather than none
	}
	funchost.WriteJSON(w, http.StatusOK, callView(x, adminFrom(r.Context()).mask, names))
}

// callTimeline is GET /api/tenants/{tenantId}/calls/{callId}.
func (h *routingHandlers) callTimeline(w http.ResponseWriter, r *http.Request) {
	tid, id, err := h.callIDs(r)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	x, err := h.calls.Call(r.Context(), tid, id)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	h.respondCall(w, r, x)
}

// callHangUp is DELETE /api/tenants/{tenantId}/calls/{callId}: end the call now.
func (h *routingHandlers) callHangUp(w http.ResponseWriter, r *http.Request) {
	tid, id, err := h.callIDs(r)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	x, err := h.calls.HangUp(r.Context(), tid, id)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	h.respondCall(w, r, x)
}

// callTransfer is POST /api/tenants/{tenantId}/calls/{callId}/transfer
// {"service":"<id>"} or {"phone":"+E164"}.
func (h *routingHandlers) callTransfer(w http.ResponseWriter, r *http.Request) {
	tid, id, err := h.callIDs(r)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	var to calls.TransferTo
	if err := decodeStrict(r.Body, &to); err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	x, err := h.calls.Transfer(r.Context(), tid, id, to)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	h.respondCall(w, r, x)
}
