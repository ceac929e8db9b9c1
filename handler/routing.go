package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/teamscc/teamscc/shared/access"
	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/funchost"
	"github.com/teamscc/teamscc/shared/queue"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/simulate"
	"github.com/teamscc/teamscc/shared/teams"
	"github.com/teamscc/teamscc/shared/tenant"
)

// routingHandlers serve call routing and calls: the RouteCall kicks, the calling
// webhook, the calls reconciler, call timelines and transfers, explain and after-call
// work.
type routingHandlers struct {
	engine *routing.Engine
	store  routing.Store
	names  *agentNames // names the agents of explanations and call timelines
	// calls and callAuth are nil when calls are not configured (teams.go).
	calls    routingCalls
	callAuth teams.Authenticator
}

// routeCall is the RouteCall Service Bus function: one kick = "match this service
// now". Malformed kicks and unknown tenants or services are permanent (parked).
func (h *routingHandlers) routeCall(ctx context.Context, m funchost.Message) error {
	var k routing.Kick
	if err := decodeStrict(strings.NewReader(string(m.Body)), &k); err != nil {
		return err
	}
	tid, err := tenantID(k.TenantID)
	if err != nil {
		return err
	}
	if err := routing.CheckID("serviceId", k.ServiceID); err != nil {
		return err
	}
	res, err := h.engine.Kick(ctx, tid, k.ServiceID, k.Reason)
	if err != nil {
		return err
	}
	funchost.Logger(ctx).Debug("kick done", "tenant", tid, "service", k.ServiceID, "reason", k.Reason,
		"open", res.Open, "offered", res.Offered, "waiting", res.Waiting, "skipped", res.Skipped)
	return nil
}

func pathIDs(r *http.Request, names ...string) ([]string, error) {
	out := make([]string, len(names))
	for i, n := range names {
		v := r.PathValue(n)
		if n == "tenantId" {
			id, err := tenantID(v)
			if err != nil {
				return nil, err
			}
			out[i] = id
			continue
		}
		if err := routing.CheckID(n, v); err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// ExplainView is the answer of the explain endpoint: the task's state and its last
// routing attempt, each agent with its display name and UPN. Agent ids, names and
// UPNs are user identifiers: for a partner the tenant does not let see them they are
// masked, the ids alike wherever they appear (History, Explain.Chosen, Explain.Agents,
// the keys of Agents), as every admin view masks them.
type ExplainView struct {
	TenantID  string              `json:"tenantId"`
	ServiceID string              `json:"serviceId"`
	TaskID    string              `json:"taskId"`
	State     routing.TaskState   `json:"state"`
	Outcome   routing.Outcome     `json:"outcome,omitempty"`
	Attempts  int                 `json:"attempts"`
	History   []routing.Attempt   `json:"history,omitempty"`
	Explain   *routing.Explain    `json:"explain"`
	Agents    map[string]AgentRef `json:"agents"` // agent id → who
}

// AgentRef names an agent in a view.
type AgentRef struct {
	DisplayName string `json:"displayName,omitempty"`
	UPN         string `json:"upn,omitempty"`
}

func (h *routingHandlers) explain(w http.ResponseWriter, r *http.Request) {
	ids, err := pathIDs(r, "tenantId", "serviceId", "taskId")
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	task, err := h.store.GetTask(r.Context(), ids[0], ids[1], ids[2])
	if err != nil {
		funchost.WriteError(w, r, fmt.Errorf("task: %w", err))
		return
	}
	var named []string
	if task.Explain != nil {
		for _, a := range task.Explain.Agents {
			named = append(named, a.AgentID)
		}
	}
	names, err := h.names.get(r.Context(), ids[0], named, time.Now())
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	v := newExplainView(task, names, adminFrom(r.Context()).mask)
	v.TenantID, v.ServiceID = ids[0], ids[1]
	funchost.WriteJSON(w, http.StatusOK, v)
}

// newExplainView builds the view of task (without the tenant and service ids), naming
// the agents its explanation lists from names, every user identifier
// through mask (SPEC §2). Masked ids may coincide (access.Mask keeps only the first
// letter of each part of a GUID): such agents share one entry of Agents, named after
// the first of them the explanation lists (the chosen first).
func newExplainView(task routing.Task, names map[string]AgentRef, mask access.Masker) ExplainView {
	v := ExplainView{TaskID: task.ID, State: task.State, Outcome: task.Outcome, Attempts: task.Attempts, Agents: map[string]AgentRef{}}
	for _, h := range task.History {
		h.AgentID = mask.User(h.AgentID)
		v.History = append(v.History, h)
	}
	if task.Explain == nil {
		return v
	}
	e := task.Explain.Clone()
	for i := range e.Agents {
		id := e.Agents[i].AgentID
		e.Agents[i].AgentID = mask.User(id)
		a, ok := names[id]
		if _, named := v.Agents[e.Agents[i].AgentID]; ok && a != (AgentRef{}) && !named {
			v.Agents[e.Agents[i].AgentID] = AgentRef{DisplayName: mask.User(a.DisplayName), UPN: mask.User(a.UPN)}
		}
	}
	for i := range e.Chosen {
		e.Chosen[i] = mask.User(e.Chosen[i])
	}
	v.Explain = &e
	return v
}

// afterCallWork ends an agent's ACW early or extends it.
func (h *routingHandlers) afterCallWork(w http.ResponseWriter, r *http.Request) {
	ids, err := pathIDs(r, "tenantId", "agentId")
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	var body acwBody
	if err := decodeStrict(r.Body, &body); err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	var a routing.AgentState
	switch body.Action {
	case "end":
		a, err = h.engine.EndACW(r.Context(), ids[0], ids[1])
	case "extend":
		if body.Seconds < 1 || body.Seconds > 3600 {
			err = fault.Invalid("seconds", "must be a whole number 1..3600")
			break
		}
		a, err = h.engine.ExtendACW(r.Context(), ids[0], ids[1], time.Duration(body.Seconds)*time.Second)
	default:
		err = fault.Invalid("action", "must be end or extend")
	}
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	funchost.WriteJSON(w, http.StatusOK, map[string]any{"agentId": a.AgentID, "acwUntil": a.ACWUntil})
}

// resetRONA is POST /api/tenants/{tenantId}/agents/{agentId}/rona/reset: the agent
// (or an admin) ends the agent's RONA block now.
func (h *routingHandlers) resetRONA(w http.ResponseWriter, r *http.Request) {
	ids, err := pathIDs(r, "tenantId", "agentId")
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	a, err := h.engine.ResetRONA(r.Context(), ids[0], ids[1])
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	funchost.WriteJSON(w, http.StatusOK, map[string]any{"agentId": a.AgentID, "ronaUntil": a.RONAUntil})
}

// unwiredSender stands in until the Service Bus adapter is wired in Azure mode: every
// send fails (so the caller retries) with a message naming what is missing.
type unwiredSender struct{}

var errSenderUnwired = errors.New("no Service Bus sender is wired in this mode (shared/servicebus)")

func (unwiredSender) Send(context.Context, string, queue.Message) error { return errSenderUnwired }
func (unwiredSender) Schedule(context.Context, string, queue.Message, time.Time) (int64, error) {
	return 0, errSenderUnwired
}
func (unwiredSender) Cancel(context.Context, string, int64) error { return errSenderUnwired }

// demoSalesResourceAccount is the resource account the teams fixtures call
// (shared/teams/testdata/incoming_created.json); the demo sales service answers it.
const demoSalesResourceAccount = "0d1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5e6"

// seedRouting gives the local runner's simulated tenants their demo services and the
// agents' routing profiles: Contoso's sales (Teams-based, longest idle, persistent
// RONA 60 s, 20 s ring, ACW 20 s with early end and 60 s extension, PSTN licence),
// support (skill-based: English ≥ 3, relaxing to ≥ 1 after 30 s; every Contoso agent
// is on duty for it, so it shares agents with sales and billing) and billing
// (Teams-based, round robin, Busy allowed); Fabrikam's helpdesk (broadcast to 3).
// Each has Targets, so the Teams webhook finds it: sales answers the resource account
// of shared/teams/testdata (demoSalesResourceAccount) and +15555550100, support
// +15555550101, billing +15555550102, helpdesk +15555550110 (fictional numbers). Each
// has greeting, music and announcements; sales sends a call waiting over 2 minutes
// on to support.
func seedRouting(ctx context.Context, rs routing.Store, ts tenant.Store) error {
	now := time.Now().UTC()
	acw := 20
	// Prompt URIs of the simulated tenants: the simulated platform plays nothing, it
	// only takes its time (see localcalls.go).
	prompts := func(tenant string) routing.Prompts {
		base := "https://media.example/" + tenant + "/"
		return routing.Prompts{Greeting: base + "greeting.wav", Music: base + "music.wav", QueueTimeout: base + "queue-timeout.wav",
			QueueFull: base + "queue-full.wav", Closed: base + "closed.wav", TransferFailed: base + "transfer-failed.wav"}
	}
	services := []routing.Service{
		{TenantID: simulate.ContosoID, ID: "sales", Name: "Sales", Type: routing.TeamsBased, PSTNLicence: true, UpdatedAt: now,
			Targets: []string{demoSalesResourceAccount, "+15555550100"}, Calls: routing.CallFlow{Prompts: prompts("contoso"),
				Exit: routing.Exit{Action: routing.ExitService, Target: "support"}},
			Distribution: routing.Distribution{RingTimeoutSeconds: 20, RONA: routing.RONASettings{Enabled: true, Persistent: true, ResetSeconds: 60},
				ACW: routing.ACWSettings{Seconds: &acw, AllowEarlyEnd: true, MaxExtensionSeconds: 60}, QueueTimeoutSecs: 120}},
		{TenantID: simulate.ContosoID, ID: "support", Name: "Support", Type: routing.SkillBased, UpdatedAt: now,
			Targets: []string{"5a1b2c3d-0000-4000-8000-00000000a001", "+15555550101"}, Calls: routing.CallFlow{Prompts: prompts("contoso")},
			Distribution: routing.Distribution{Strategy: routing.BestSkill, RingTimeoutSeconds: 20, RONA: routing.RONASettings{Enabled: true},
				Skills: []routing.SkillRequirement{{Skill: "en", MinLevel: 3}},
				Relax:  []routing.RelaxStep{{AfterSeconds: 30, Skills: []routing.SkillRequirement{{Skill: "en", MinLevel: 1}}}}}},
		{TenantID: simulate.ContosoID, ID: "billing", Name: "Billing", Type: routing.TeamsBased, UpdatedAt: now, Targets: []string{"+15555550102"},
			Calls:        routing.CallFlow{Prompts: prompts("contoso")},
			Distribution: routing.Distribution{Strategy: routing.RoundRobin, AllowBusy: true, QueueTimeoutSecs: 300, MaxQueueLength: 20}},
		{TenantID: simulate.FabrikamID, ID: "helpdesk", Name: "Helpdesk", Type: routing.TeamsBased, UpdatedAt: now, Targets: []string{"+15555550110"},
			Calls:        routing.CallFlow{Prompts: prompts("fabrikam")},
			Distribution: routing.Distribution{Strategy: routing.Broadcast, BroadcastN: 3, RingTimeoutSeconds: 15}},
	}
	for _, s := range services {
		if err := s.Validate(); err != nil {
			return fmt.Errorf("seed service %s: %w", s.ID, err)
		}
		if err := rs.PutService(ctx, s); err != nil {
			return fmt.Errorf("seed service: %w", err)
		}
	}
	for _, tid := range []string{simulate.ContosoID, simulate.FabrikamID} {
		agents, err := ts.ListAgents(ctx, tid)
		if err != nil {
			return fmt.Errorf("seed routing agents: %w", err)
		}
		for i, a := range agents {
			if _, err := rs.UpdateAgentState(ctx, tid, a.ID, func(st *routing.AgentState) error {
				st.Services = a.Services
				if tid == simulate.ContosoID {
					st.Duty = routing.Duty{Services: []string{"support"}}
					st.Skills = map[string]int{"en": i%5 + 1}
				}
				return nil
			}); err != nil {
				return fmt.Errorf("seed routing agents: %w", err)
			}
		}
	}
	return nil
}
