package calls

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/teams"
)

// keyOf is the key of the call a task belongs to ("" when it has none): the
// caller's call id, or an outbound task's routing task id (never a platform call id:
// those are GUIDs, and outbound routing tasks are "ob-" + the outbound task's id).
func keyOf(t routing.Task) string {
	if t.Outbound != nil {
		return t.ID
	}
	return t.CallID
}

// Ring implements routing.CallControl: one offer leg per agent, an outgoing call from
// the service's resource account to the agent's Teams, whose callback names the call
// and the leg. The legs are written before they are placed, so a leg the platform
// created is always known; a leg that could not be placed is returned as failed
// (a permanent refusal: the agent cannot be rung) — or, when no agent could be rung
// for a transient reason, the error is returned and routing takes the offer back.
// An outbound task's call is created at its first offer.
func (c *Controller) Ring(ctx context.Context, t routing.Task, svc routing.Service, agents []string) ([]string, error) {
	key := keyOf(t)
	if key == "" {
		return nil, fmt.Errorf("task without a call: %w", fault.ErrNotFound)
	}
	now := c.now()
	if t.Outbound != nil {
		x := Call{TenantID: t.TenantID, ID: key, Direction: Outbound, ServiceID: svc.ID, TaskID: t.ID,
			FirstService: svc.ID, FirstServicePSTN: svc.PSTNLicence, Phase: PhaseOffering, Created: now,
			Customer:     Party{Kind: User, ID: t.Outbound.Customer},
			DirectInvite: (t.Outbound.PSTN && t.Outbound.DirectInvitePSTN) || (!t.Outbound.PSTN && t.Outbound.DirectInviteUPN)}
		if t.Outbound.PSTN {
			x.Customer.Kind = Phone
		}
		x.step(now, "outboundDue", "", string(x.Customer.Kind))
		if _, err := c.store.CreateCall(ctx, x); err != nil && !errors.Is(err, fault.ErrConflict) {
			return nil, fmt.Errorf("create outbound call: %w", err)
		}
	}
	var fresh []Leg
	_, err := c.store.UpdateCall(ctx, t.TenantID, key, func(x *Call) error {
		fresh = fresh[:0]
		if !x.Open() || x.Phase == PhaseAnnouncing || x.Phase == PhaseTransferring {
			return fmt.Errorf("the call takes no offers now: %w", fault.ErrNotFound)
		}
		for _, a := range agents {
			if slices.ContainsFunc(x.Legs, func(l Leg) bool { return l.TaskID == t.ID && l.Attempt == t.Attempts && l.AgentID == a }) {
				continue // a replay of this offer
			}
			l := x.addLeg(Leg{AgentID: a, ServiceID: svc.ID, TaskID: t.ID, Attempt: t.Attempts, State: LegDialing, At: now,
				Deadline: now.Add(svc.RingTimeout() + LegGrace)})
			fresh = append(fresh, l)
			x.step(now, "offered", a, fmt.Sprintf("attempt %d", t.Attempts))
		}
		if len(fresh) == 0 {
			return errSkip
		}
		x.reschedule(now)
		return nil
	})
	if errors.Is(err, errSkip) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	source := svc.ResourceAccount()
	ids := make(map[int]string, len(fresh))
	var failed []string
	var transient error
	for _, l := range fresh {
		id, err := c.platform.Dial(ctx, t.TenantID, Dial{Source: source, Target: Target{Kind: User, ID: l.AgentID}, CallbackURI: c.callback(key, l.N)})
		if err != nil {
			c.log(ctx).Warn("agent not rung", "tenant", t.TenantID, "service", svc.ID, "call", ref(key), "permanent", fault.IsPermanent(err), "err", err)
			failed = append(failed, l.AgentID)
			if !fault.IsPermanent(err) {
				transient = err
			}
			continue
		}
		ids[l.N] = id
	}
	_, err = c.store.UpdateCall(ctx, t.TenantID, key, func(x *Call) error {
		now := c.now()
		for _, l := range fresh {
			xl := x.leg(l.N)
			if xl == nil {
				continue
			}
			if id, ok := ids[l.N]; ok {
				if xl.CallID == "" {
					xl.CallID = id
				}
				continue
			}
			if xl.State == LegDialing {
				xl.State, xl.At = LegEnded, now
				x.step(now, "unreachable", l.AgentID, "")
			}
		}
		x.reschedule(now)
		return nil
	})
	if err != nil {
		// The legs rang; the reconciler finds them by their deadlines.
		c.log(ctx).Warn("leg ids not recorded", "tenant", t.TenantID, "call", ref(key), "err", err)
	}
	if len(failed) == len(fresh) && transient != nil {
		return nil, fmt.Errorf("ring agents: %w", transient)
	}
	return failed, nil
}

// StopRinging implements routing.CallControl: the agents' legs of t still ringing are
// cancelled and hung up.
func (c *Controller) StopRinging(ctx context.Context, t routing.Task, agents []string, why string) {
	key := keyOf(t)
	if key == "" {
		return
	}
	_, err := c.update(ctx, t.TenantID, key, func(x *Call, p *plan) error {
		now := c.now()
		n := 0
		for i := range x.Legs {
			l := &x.Legs[i]
			if l.TaskID != t.ID || !slices.Contains(agents, l.AgentID) || (l.State != LegDialing && l.State != LegRinging) {
				continue
			}
			x.cancelLeg(l, now, "ringingStopped", why)
			c.hangUp(x.TenantID, l.CallID, p)
			n++
		}
		if n == 0 {
			return errSkip
		}
		return nil
	})
	if err != nil && !errors.Is(err, fault.ErrNotFound) {
		c.log(ctx).Warn("ringing not stopped; the reconciler hangs the legs up", "tenant", t.TenantID, "call", ref(key), "err", err)
	}
}

// Exit implements routing.CallControl: the task left its queue without an agent.
func (c *Controller) Exit(ctx context.Context, t routing.Task, svc routing.Service) {
	key := keyOf(t)
	if key == "" {
		return
	}
	reason := ExitQueueTimeout
	if t.Outcome == routing.QueueFull {
		reason = ExitQueueFull
	}
	if t.Outbound != nil {
		// An outbound task that timed out has no customer call: it just ends.
		if _, err := c.update(ctx, t.TenantID, key, func(x *Call, p *plan) error {
			if !x.Open() {
				return errSkip
			}
			c.cancelLegs(x, p, c.now(), "timeout")
			x.end(c.now(), string(reason))
			return nil
		}); err != nil && !errors.Is(err, fault.ErrNotFound) {
			c.log(ctx).Warn("outbound call not closed", "tenant", t.TenantID, "call", ref(key), "err", err)
		}
		return
	}
	if err := c.announce(ctx, t.TenantID, key, reason); err != nil && !errors.Is(err, fault.ErrNotFound) {
		c.log(ctx).Warn("exit not taken; the reconciler takes it", "tenant", t.TenantID, "service", svc.ID, "call", ref(key), "err", err)
	}
}

// legEvent applies a notification about offer leg n of a call.
//
//	ringing                      → the agent's Teams rings (a leg already cancelled
//	                               is hung up now that its id is known)
//	established (the agent took it)
//	                             → routing connects the agent (other broadcast legs
//	                               stop ringing); the agent is invited into the call
//	                               replacing the leg; an answer routing refuses (too
//	                               late, another agent was first) hangs the leg up
//	ended before it was answered → declined (603/486), no answer (408/480/487) or
//	                               unreachable (anything else): routing releases the
//	                               agent (RONA for the first two when the service has it)
func (c *Controller) legEvent(ctx context.Context, tenantID, key string, n int, ev teams.Event) error {
	x, err := c.get(ctx, tenantID, key)
	if err != nil || x == nil || x.leg(n) == nil {
		return err
	}
	l := *x.leg(n)
	if l.CallID != "" && ev.CallID != "" && !strings.EqualFold(l.CallID, ev.CallID) {
		// A second call for the same leg (a create the platform served twice): it
		// must not ring on.
		if !ev.Kind.Ended() {
			if err := c.platform.HangUp(ctx, tenantID, ev.CallID); err != nil && !errors.Is(err, fault.ErrNotFound) {
				return fmt.Errorf("hang up a stray leg: %w", err)
			}
		}
		return nil
	}
	if x.Direction == Outbound && x.GraphID != "" && strings.EqualFold(x.GraphID, ev.CallID) {
		return c.callEvent(ctx, tenantID, key, ev) // the agent's leg became the customer's call
	}
	switch {
	case ev.Kind == teams.KindRinging:
		return c.legRinging(ctx, tenantID, key, n, ev.CallID)
	case ev.Kind == teams.KindAnswered:
		return c.legAnswered(ctx, x, key, n, ev.CallID)
	case ev.Kind.Ended():
		return c.legEnded(ctx, tenantID, key, n, ev)
	case ev.Kind == teams.KindOperation:
		return c.operation(ctx, tenantID, key, ev.Operation)
	}
	return nil
}

func (c *Controller) legRinging(ctx context.Context, tenantID, key string, n int, callID string) error {
	_, err := c.update(ctx, tenantID, key, func(x *Call, p *plan) error {
		l := x.leg(n)
		if l == nil {
			return errSkip
		}
		if l.CallID == "" {
			l.CallID = callID
		}
		switch l.State {
		case LegDialing:
			l.State, l.At = LegRinging, c.now()
			x.step(l.At, "ringing", l.AgentID, "")
			return nil
		case LegCancelled:
			c.hangUp(x.TenantID, l.CallID, p)
			return nil
		}
		return errSkip
	})
	return err
}

// legAnswered handles leg n of x (as legEvent read it) answered by its agent.
func (c *Controller) legAnswered(ctx context.Context, x *Call, key string, n int, callID string) error {
	tenantID := x.TenantID
	l := *x.leg(n)
	if l.State != LegDialing && l.State != LegRinging {
		if l.State == LegCancelled {
			// Answered after we stopped it: end it, the agent gets nothing.
			return c.platform.HangUp(ctx, tenantID, cmp.Or(l.CallID, callID))
		}
		return nil
	}
	_, err := c.router.CallStateChanged(ctx, routing.CallEvent{TenantID: tenantID, ServiceID: l.ServiceID, TaskID: l.TaskID,
		AgentID: l.AgentID, Change: routing.Answered})
	refused := errors.Is(err, fault.ErrConflict)
	if err != nil && !refused {
		return fmt.Errorf("answered: %w", err)
	}
	_, err = c.update(ctx, tenantID, key, func(x *Call, p *plan) error {
		now := c.now()
		l := x.leg(n)
		if l == nil {
			return errSkip
		}
		if l.CallID == "" {
			l.CallID = callID
		}
		if l.State != LegDialing && l.State != LegRinging {
			return errSkip
		}
		if refused || !x.Open() {
			x.cancelLeg(l, now, "answeredTooLate", "")
			c.hangUp(x.TenantID, l.CallID, p)
			return nil
		}
		l.State, l.At, l.Deadline = LegJoining, now, now.Add(JoinGrace)
		x.Agent, x.AgentParticipant, x.AgentJoined = l.AgentID, "", false
		x.step(now, "accepted", l.AgentID, "")
		if x.Direction == Outbound {
			return c.dialCustomer(ctx, x, p, l, now)
		}
		if x.Media.Kind != MediaNone {
			c.cancelMedia(x, p)
		}
		x.Phase, x.Due, x.Group = PhaseConnecting, now.Add(JoinGrace), true
		c.inviteAgent(x, p, l)
		return nil
	})
	return err
}

// dialCustomer: the agent accepted an outbound task. With direct invite the customer
// is invited into the agent's call (which becomes the customer's call); otherwise the
// service calls the customer and invites the agent once the customer answered.
func (c *Controller) dialCustomer(ctx context.Context, x *Call, p *plan, l *Leg, now time.Time) error {
	x.Phase, x.Due = PhaseDialing, now.Add(DialGrace)
	tenantID, key, customer := x.TenantID, x.ID, x.Customer
	if x.DirectInvite {
		l.State, l.Deadline = LegJoined, time.Time{}
		x.GraphID, x.AnsweredAt, x.KeepAliveAt, x.Group = l.CallID, now, now.Add(KeepAliveEvery), true
		x.step(now, "dialing", "", "invite "+string(customer.Kind))
		legCall, cc := l.CallID, fmt.Sprintf("dial:%d", l.N)
		p.add("invite customer", func(ctx context.Context) error {
			target, err := c.resolve(ctx, tenantID, customer)
			if err != nil {
				return err
			}
			return c.platform.Invite(ctx, tenantID, legCall, target, "", cc)
		}).gone = c.goneFn(tenantID, key)
		return nil
	}
	x.step(now, "dialing", "", "call "+string(customer.Kind))
	svc, err := c.services.GetService(ctx, x.TenantID, x.ServiceID)
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	source := svc.ResourceAccount()
	p.add("call customer", func(ctx context.Context) error {
		target, err := c.resolve(ctx, tenantID, customer)
		if err != nil {
			return err
		}
		id, err := c.platform.Dial(ctx, tenantID, Dial{Source: source, Target: target, CallbackURI: c.callback(key, -1)})
		if err != nil {
			return err
		}
		_, err = c.store.UpdateCall(ctx, tenantID, key, func(x *Call) error {
			if x.GraphID == "" {
				x.GraphID = id
			}
			return nil
		})
		return err
	}).gone = func(ctx context.Context) error { return c.callEnded(ctx, tenantID, key, teams.KindEnded) }
	return nil
}

// resolve turns an outbound customer given by UPN into its object id (a user the
// directory does not know is fault.ErrNotFound: not reached).
func (c *Controller) resolve(ctx context.Context, tenantID string, p Party) (Party, error) {
	if p.Kind != User || !strings.Contains(p.ID, "@") {
		return p, nil
	}
	if c.dir == nil {
		return p, fault.Permanent(errors.New("no directory to find the customer's user id"))
	}
	id, err := c.dir.UserID(ctx, tenantID, p.ID)
	if err != nil {
		return p, fmt.Errorf("find the customer: %w", err)
	}
	return Party{Kind: User, ID: id}, nil
}

// legEnded: a leg's call is over.
func (c *Controller) legEnded(ctx context.Context, tenantID, key string, n int, ev teams.Event) error {
	var change routing.Change
	call, err := c.update(ctx, tenantID, key, func(x *Call, p *plan) error {
		change = ""
		now := c.now()
		l := x.leg(n)
		if l == nil {
			return errSkip
		}
		switch l.State {
		case LegDialing, LegRinging:
			switch ev.Kind {
			case teams.KindDeclined:
				change = routing.Declined
			case teams.KindNoAnswer:
				change = routing.NoAnswer
			default:
				change = routing.Unreachable
			}
			x.step(now, strings.ToLower(string(change[:1]))+string(change[1:]), l.AgentID, fmt.Sprintf("code %d", ev.Result.Code))
		case LegCancelled:
		default:
			return errSkip // joined (replaced) or joining: the invite's outcome decides
		}
		l.State, l.At = LegEnded, now
		return nil
	})
	if err != nil || change == "" || call.leg(n) == nil {
		return err
	}
	l := *call.leg(n)
	if _, err := c.router.CallStateChanged(ctx, routing.CallEvent{TenantID: tenantID, ServiceID: l.ServiceID, TaskID: l.TaskID,
		AgentID: l.AgentID, Change: change}); err != nil && !errors.Is(err, fault.ErrNotFound) && !errors.Is(err, fault.ErrConflict) {
		return fmt.Errorf("%s: %w", change, err)
	}
	return nil
}

// joinDone: the invite of the agent (or, outbound with direct invite, of the
// customer) finished. Success connects the call; a failure drops the agent (the call
// is queued again) or, for an outbound customer, ends the task as NotReached.
func (c *Controller) joinDone(ctx context.Context, tenantID, key string, n int, op teams.Operation) error {
	var dropped, notReached bool
	var agent string
	call, err := c.update(ctx, tenantID, key, func(x *Call, p *plan) error {
		dropped, notReached, agent = false, false, ""
		l := x.leg(n)
		if l == nil || !x.Open() {
			return errSkip
		}
		now := c.now()
		switch {
		case op.Succeeded() && (x.Phase == PhaseConnecting || x.Phase == PhaseDialing):
			if x.Phase == PhaseDialing {
				x.step(now, "customerAnswered", "", "")
			}
			c.connected(x, p, now)
			return nil
		case op.Succeeded():
			return errSkip
		case x.Phase == PhaseDialing && x.Direction == Outbound:
			notReached = true
			x.step(now, "notReached", "", fmt.Sprintf("code %d", op.Result.Code))
			x.end(now, "NotReached")
			c.hangUp(x.TenantID, l.CallID, p)
			return nil
		case x.Phase == PhaseConnecting && l.State == LegJoining:
			dropped, agent = true, l.AgentID
			l.State, l.At = LegEnded, now
			x.step(now, "joinFailed", l.AgentID, fmt.Sprintf("code %d", op.Result.Code))
			x.Agent, x.AgentParticipant, x.AgentJoined = "", "", false
			x.Phase, x.Due = PhaseQueued, now.Add(RetrySoon)
			c.hangUp(x.TenantID, l.CallID, p)
			return nil
		}
		return errSkip
	})
	switch {
	case err != nil:
		return err
	case notReached:
		c.finishTask(ctx, call, routing.NotReached)
	case dropped:
		if _, err := c.router.CallStateChanged(ctx, routing.CallEvent{TenantID: tenantID, ServiceID: call.ServiceID, TaskID: call.TaskID,
			AgentID: agent, Change: routing.Dropped}); err != nil && !errors.Is(err, fault.ErrNotFound) {
			c.soon(ctx, tenantID, key)
			return fmt.Errorf("drop agent: %w", err)
		}
		return c.enqueue(ctx, tenantID, key)
	}
	return nil
}
