package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/funchost"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/teams"
)

// teamsWebhook is the TeamsNotifications function (POST /api/teams/notifications):
// Graph's handshake and call notifications (shared/teams), fed into the routing
// engine by teamsEvents. Without the TeamsClientState setting it answers every request
// 503 — the handshake too: a subscription must not be validated against an endpoint
// that cannot authenticate the notifications that follow.
func (h *routingHandlers) teamsWebhook() http.Handler {
	if h.clientState == "" {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			funchost.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]string{
				"code": "not_configured", "message": "webhook not configured: the TeamsClientState setting is empty"}})
		})
	}
	wh, err := teams.NewWebhook(h.clientState, h.teamsEvents, 0)
	if err != nil { // config.Load bounds the setting; this is a programming error
		panic(fmt.Sprintf("teams webhook: %v", err))
	}
	return wh
}

// teamsEvents applies the events of one authenticated notification batch, in order.
//
// For each event: its tenant and task are resolved (below); if Event.Key was
// processed for that tenant (Store.Processed) the event is skipped; otherwise the
// engine call is made and the key recorded (Store.MarkProcessed) after it succeeded.
// A transient error (storage, Service Bus) stops the batch and is returned, so the
// webhook answers 500 and Graph delivers the batch again; the events already applied
// are then skipped by their keys. A permanent error for one event (an unknown tenant
// or service, a service that takes no calls, an answer for an offer that is no longer
// ringing at that agent) is logged and the batch goes on: Graph must not retry
// something no retry can fix. Logs name the tenant, the event's kind and Key, never a
// call id, a phone number or a user id.
//
// What is mapped (everything else is ignored, logged at debug):
//
//	KindIncoming, Target = a resource account or number of one of the tenant's services
//	    → Engine.IncomingCall (task + kick; also records the call index).
//	    Unknown target, no tenant id, target on two services → warn, skipped.
//
//	The customer's call (its call id is in the call index without an agent):
//	  KindAnswered with Agent set        → CallStateChanged Answered by that agent.
//	  KindAnswered without Agent         → ignored: our own app answering the call to
//	                                       queue it, not an agent.
//	  KindEnded, KindDeclined,
//	  KindNoAnswer                       → CallStateChanged Ended (Completed when an
//	                                       agent was connected, then ACW; else Abandoned).
//	  KindTransferred                    → Ended if no agent is connected (the call left
//	                                       the queue); ignored if one is (the agent's leg
//	                                       goes on, its own end ends the task).
//
//	An agent's offer leg (the call our dialer places to the agent: Direction outgoing
//	with Agent set, or a call id the index holds with an agent):
//	  first sight with Agent (any kind)  → the task the agent currently holds (AgentState
//	                                       Hold: reserved/ringing, or connected) is
//	                                       looked up and the leg recorded in the call
//	                                       index, so later sparse updates (call id and
//	                                       state only) map too. An agent holding no task:
//	                                       ignored.
//	  KindRinging                        → nothing more (the offer already rings).
//	  KindAnswered                       → CallStateChanged Answered by the agent.
//	  KindDeclined                       → CallStateChanged Declined (RONA if the service
//	                                       has it, recorded apart from no-answer; the task
//	                                       is re-queued).
//	  KindNoAnswer                       → ignored: the offer's ring timeout (a kick
//	                                       scheduled at RingExpiry) already turns it into
//	                                       RONA and re-routes the task.
//	  KindEnded, KindTransferred         → CallStateChanged Ended when the task is
//	                                       connected to this agent (the agent hung up or
//	                                       passed the call on; ACW starts); ignored while
//	                                       it is still offered (a leg that failed before
//	                                       the answer is left to the ring timeout, rather
//	                                       than abandoning the customer's task).
//
//	KindTransferring, KindTransferFailed, KindOther, and KindRinging on the customer's
//	call → ignored. A call id neither in the index nor an outgoing leg with an agent
//	(e.g. a sparse update of a call we never saw created) → ignored.
func (h *routingHandlers) teamsEvents(ctx context.Context, events []teams.Event) error {
	log := funchost.Logger(ctx)
	for _, ev := range events {
		err := h.teamsEvent(ctx, log, ev)
		if err == nil {
			continue
		}
		if permanentEvent(err) {
			log.Warn("teams event skipped", "event", ev, "err", err)
			continue
		}
		return err
	}
	return nil
}

// permanentEvent: errors no redelivery of the notification can fix.
func permanentEvent(err error) bool {
	return fault.IsPermanent(err) || errors.Is(err, fault.ErrNotFound) || errors.Is(err, fault.ErrConflict)
}

// teamsEvent applies one event; nil when it was applied, skipped or ignored.
func (h *routingHandlers) teamsEvent(ctx context.Context, log *slog.Logger, ev teams.Event) error {
	key := ev.Key()
	if ev.Kind == teams.KindIncoming {
		return h.teamsIncoming(ctx, log, ev, key)
	}
	ref, known, err := h.callRef(ctx, ev)
	if err != nil {
		return err
	}
	if !known {
		log.Debug("teams event ignored: call not ours", "event", ev)
		return nil
	}
	if ev.TenantID != "" && !strings.EqualFold(ev.TenantID, ref.TenantID) {
		log.Warn("teams event ignored: its tenant is not the indexed call's", "tenant", ev.TenantID, "key", key)
		return nil
	}
	seen, err := h.store.Processed(ctx, ref.TenantID, key)
	if err != nil {
		return fmt.Errorf("check event key: %w", err)
	}
	if seen {
		return nil
	}
	ce, act, err := h.teamsChange(ctx, ev, ref)
	if err != nil {
		return err
	}
	if !act {
		log.Debug("teams event ignored", "tenant", ref.TenantID, "service", ref.ServiceID, "event", ev)
		return nil
	}
	if _, err := h.engine.CallStateChanged(ctx, ce); err != nil {
		return fmt.Errorf("call state %s: %w", ce.Change, err)
	}
	log.Info("teams event applied", "tenant", ref.TenantID, "service", ref.ServiceID, "change", string(ce.Change), "key", key)
	return h.markProcessed(ctx, ref.TenantID, key)
}

func (h *routingHandlers) markProcessed(ctx context.Context, tenantID, key string) error {
	if err := h.store.MarkProcessed(ctx, tenantID, key, time.Now()); err != nil && !errors.Is(err, fault.ErrConflict) {
		return fmt.Errorf("record event key: %w", err)
	}
	return nil
}

// teamsIncoming: a new call to one of our services.
func (h *routingHandlers) teamsIncoming(ctx context.Context, log *slog.Logger, ev teams.Event, key string) error {
	if ev.TenantID == "" || ev.Target.IsZero() {
		log.Warn("incoming call ignored: no tenant or no target in the notification", "key", key)
		return nil
	}
	tid, err := tenantID(ev.TenantID)
	if err != nil {
		log.Warn("incoming call ignored: malformed tenant id", "key", key)
		return nil
	}
	seen, err := h.store.Processed(ctx, tid, key)
	if err != nil {
		return fmt.Errorf("check event key: %w", err)
	}
	if seen {
		return nil
	}
	svc, err := h.store.ServiceByTarget(ctx, tid, ev.Target.ID)
	switch {
	case errors.Is(err, fault.ErrNotFound):
		log.Warn("incoming call ignored: no service has its target", "tenant", tid, "targetKind", string(ev.Target.Kind), "key", key)
		return nil
	case errors.Is(err, fault.ErrConflict):
		log.Warn("incoming call ignored: its target is on more than one service", "tenant", tid, "err", err, "key", key)
		return nil
	case err != nil:
		return fmt.Errorf("service by target: %w", err)
	}
	task, err := h.engine.IncomingCall(ctx, routing.IncomingCall{TenantID: tid, ServiceID: svc.ID, CallID: ev.CallID})
	if err != nil {
		return fmt.Errorf("incoming call: %w", err)
	}
	log.Info("incoming call queued", "tenant", tid, "service", svc.ID, "state", string(task.State), "key", key)
	return h.markProcessed(ctx, tid, key)
}

// callRef finds which task an event's call belongs to: the call index, else — for an
// outgoing leg with its agent — the task the agent holds now, which is then indexed.
func (h *routingHandlers) callRef(ctx context.Context, ev teams.Event) (routing.CallRef, bool, error) {
	ref, err := h.store.GetCallIndex(ctx, ev.CallID)
	if err == nil {
		return ref, true, nil
	}
	if !errors.Is(err, fault.ErrNotFound) {
		return ref, false, fmt.Errorf("call index: %w", err)
	}
	if ev.Agent == "" || ev.Direction != "outgoing" || ev.TenantID == "" {
		return ref, false, nil
	}
	tid, err := tenantID(ev.TenantID)
	if err != nil || routing.CheckID("agentId", ev.Agent) != nil {
		return ref, false, nil
	}
	a, err := h.store.GetAgentState(ctx, tid, ev.Agent)
	if errors.Is(err, fault.ErrNotFound) {
		return ref, false, nil
	}
	if err != nil {
		return ref, false, fmt.Errorf("agent state: %w", err)
	}
	if !a.Held(time.Now()) {
		return ref, false, nil
	}
	ref = routing.CallRef{CallID: ev.CallID, TenantID: tid, ServiceID: a.Hold.ServiceID, TaskID: a.Hold.TaskID, AgentID: ev.Agent, At: time.Now()}
	if err := h.store.PutCallIndex(ctx, ref); err != nil {
		if fault.IsPermanent(err) { // a call id the index cannot hold: map this event, not later ones
			return ref, true, nil
		}
		return ref, false, fmt.Errorf("index offer leg: %w", err)
	}
	return ref, true, nil
}

// teamsChange maps an event on a known call to the engine call (see teamsEvents);
// act=false when the event is ignored.
func (h *routingHandlers) teamsChange(ctx context.Context, ev teams.Event, ref routing.CallRef) (ce routing.CallEvent, act bool, err error) {
	ce = routing.CallEvent{TenantID: ref.TenantID, ServiceID: ref.ServiceID, TaskID: ref.TaskID}
	// connectedTo reports whether the task is connected (to agent, when not "").
	connectedTo := func(agent string) (bool, error) {
		t, err := h.store.GetTask(ctx, ref.TenantID, ref.ServiceID, ref.TaskID)
		if err != nil {
			return false, fmt.Errorf("task: %w", err)
		}
		return t.State == routing.Connected && (agent == "" || t.ConnectedAgent == agent), nil
	}
	if ref.AgentID == "" { // the customer's call
		switch ev.Kind {
		case teams.KindAnswered:
			if ev.Agent == "" {
				return ce, false, nil
			}
			ce.Change, ce.AgentID = routing.Answered, ev.Agent
			return ce, true, nil
		case teams.KindEnded, teams.KindDeclined, teams.KindNoAnswer:
			ce.Change = routing.Ended
			return ce, true, nil
		case teams.KindTransferred:
			connected, err := connectedTo("")
			ce.Change = routing.Ended
			return ce, err == nil && !connected, err
		}
		return ce, false, nil
	}
	// An agent's offer leg.
	ce.AgentID = ref.AgentID
	switch ev.Kind {
	case teams.KindAnswered:
		ce.Change = routing.Answered
		return ce, true, nil
	case teams.KindDeclined:
		ce.Change = routing.Declined
		return ce, true, nil
	case teams.KindEnded, teams.KindTransferred:
		connected, err := connectedTo(ref.AgentID)
		ce.Change = routing.Ended
		return ce, err == nil && connected, err
	}
	return ce, false, nil
}
