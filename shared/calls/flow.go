package calls

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/teams"
)

// callEvent applies a notification about the customer's call (inbound: the caller's
// call; outbound: the call placed to the customer).
func (c *Controller) callEvent(ctx context.Context, tenantID, key string, ev teams.Event) error {
	switch {
	case ev.Kind == teams.KindAnswered:
		return c.established(ctx, tenantID, key)
	case ev.Kind == teams.KindTransferFailed:
		return c.transferFailed(ctx, tenantID, key)
	case ev.Kind == teams.KindRoster:
		return c.roster(ctx, tenantID, key, ev)
	case ev.Kind == teams.KindOperation:
		return c.operation(ctx, tenantID, key, ev.Operation)
	case ev.Kind.Ended():
		return c.callEnded(ctx, tenantID, key, ev.Kind)
	}
	return nil // ringing, transferring, hold, ...: nothing to do
}

// established: the customer's call is connected to the app.
//
//	inbound, answering  → the pending exit's announcement (a closed service), else
//	                      the greeting, else queued at once
//	outbound, dialing   → the customer answered: the agent is invited into the call
//	                      (replacing the agent's offer leg)
func (c *Controller) established(ctx context.Context, tenantID, key string) error {
	enqueue := false
	call, err := c.update(ctx, tenantID, key, func(x *Call, p *plan) error {
		now := c.now()
		enqueue = false
		switch {
		case x.Direction == Inbound && x.Phase == PhaseAnswering:
			x.AnsweredAt, x.KeepAliveAt = now, now.Add(KeepAliveEvery)
			x.step(now, "established", "", "")
			if x.Exit != "" {
				return c.startAnnouncement(ctx, x, p, x.Exit, now)
			}
			svc, err := c.services.GetService(ctx, x.TenantID, x.ServiceID)
			if err != nil {
				return fmt.Errorf("service: %w", err)
			}
			if g := svc.Calls.Prompts.Greeting; g != "" {
				x.Phase, x.Due = PhaseGreeting, now.Add(PromptWatchdog)
				c.playPrompt(x, p, MediaGreeting, g, now)
				return nil
			}
			x.Phase, x.Due = PhaseQueued, now.Add(RetrySoon)
			enqueue = true
			return nil
		case x.Direction == Outbound && x.Phase == PhaseDialing:
			x.AnsweredAt, x.KeepAliveAt = now, now.Add(KeepAliveEvery)
			x.step(now, "customerAnswered", "", "")
			l := x.joiningLeg()
			if l == nil {
				return fmt.Errorf("outbound call without its agent's leg: %w", fault.ErrConflict)
			}
			x.Phase, x.Due, x.Group = PhaseConnecting, now.Add(JoinGrace), true
			c.inviteAgent(x, p, l)
			return nil
		}
		return errSkip
	})
	if err != nil || !enqueue {
		return err
	}
	return c.enqueueCall(ctx, call)
}

// playPrompt starts a prompt and adds the request to p.
func (c *Controller) playPrompt(x *Call, p *plan, kind MediaKind, uri string, now time.Time) {
	cc := x.prompt(now, kind)
	tenantID, callID := x.TenantID, x.GraphID
	p.add("play "+string(kind), func(ctx context.Context) error {
		return c.platform.PlayPrompt(ctx, tenantID, callID, uri, cc)
	}).gone = c.goneFn(tenantID, x.ID)
}

// goneFn ends a call whose platform call turned out to be gone.
func (c *Controller) goneFn(tenantID, key string) func(context.Context) error {
	return func(ctx context.Context) error { return c.callEnded(ctx, tenantID, key, teams.KindEnded) }
}

// inviteAgent invites the agent of leg l into the customer's call, replacing the leg.
func (c *Controller) inviteAgent(x *Call, p *plan, l *Leg) {
	tenantID, callID, legCall, n, agent := x.TenantID, x.GraphID, l.CallID, l.N, l.AgentID
	p.add("invite agent", func(ctx context.Context) error {
		return c.platform.Invite(ctx, tenantID, callID, Target{Kind: User, ID: agent}, legCall, "invite:"+strconv.Itoa(n))
	}).gone = c.goneFn(tenantID, x.ID)
}

// joiningLeg is the leg of the agent being connected.
func (x *Call) joiningLeg() *Leg {
	for i := range x.Legs {
		if x.Legs[i].AgentID == x.Agent && (x.Legs[i].State == LegJoining || x.Legs[i].State == LegJoined) {
			return &x.Legs[i]
		}
	}
	return nil
}

// enqueue puts the call in its service's queue: the routing task is created (or found:
// it is idempotent by call id, and kicks the service), then the call waits with music.
// A full queue takes the service's exit after the QueueFull announcement.
func (c *Controller) enqueue(ctx context.Context, tenantID, key string) error {
	x, err := c.get(ctx, tenantID, key)
	if err != nil || x == nil {
		return err
	}
	return c.enqueueCall(ctx, *x)
}

// enqueueCall is enqueue of the call as its caller has just read or written it.
func (c *Controller) enqueueCall(ctx context.Context, x Call) error {
	tenantID, key := x.TenantID, x.ID
	if !x.Open() {
		return nil
	}
	task, err := c.router.IncomingCall(ctx, routing.IncomingCall{TenantID: tenantID, ServiceID: x.ServiceID, CallID: x.GraphID,
		FirstAnsweredService: x.FirstService, FirstAnsweredPSTN: x.FirstServicePSTN})
	var fe *fault.FieldError
	switch {
	case errors.As(err, &fe) || errors.Is(err, fault.ErrNotFound):
		c.log(ctx).Warn("call not queued: the service takes no calls", "tenant", tenantID, "service", x.ServiceID, "call", ref(key), "err", err)
		return c.announce(ctx, tenantID, key, ExitUnroutable)
	case err != nil:
		c.soon(ctx, tenantID, key)
		return fmt.Errorf("queue the call: %w", err)
	}
	svc, err := c.services.GetService(ctx, tenantID, x.ServiceID)
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if task.State == routing.Done {
		reason := ExitUnroutable
		if task.Outcome == routing.QueueFull {
			reason = ExitQueueFull
		}
		return c.announce(ctx, tenantID, key, reason)
	}
	_, err = c.update(ctx, tenantID, key, func(x *Call, p *plan) error {
		now := c.now()
		switch x.Phase {
		case PhaseAnswering, PhaseGreeting, PhaseQueued:
		default:
			if x.TaskID == "" && x.Open() { // connecting already: only remember the task
				x.TaskID = task.ID
				return nil
			}
			return errSkip
		}
		if x.Phase == PhaseQueued && x.TaskID == task.ID && x.Media.Kind == MediaMusic {
			return errSkip // a replay
		}
		if x.TaskID != task.ID {
			x.step(now, "queued", "", svc.ID)
		}
		x.Phase, x.TaskID, x.Due = PhaseQueued, task.ID, now.Add(MusicWatchdog)
		if m := svc.Calls.Prompts.Music; m != "" {
			c.playPrompt(x, p, MediaMusic, m, now)
		} else {
			x.Media = Media{Seq: x.Media.Seq}
		}
		return nil
	})
	return err
}

// announce makes the call leave the queue: the announcement for reason plays (none
// set: the exit is taken at once); its end takes the service's exit. Legs still
// ringing are hung up.
func (c *Controller) announce(ctx context.Context, tenantID, key string, reason ExitReason) error {
	exitNow := false
	_, err := c.update(ctx, tenantID, key, func(x *Call, p *plan) error {
		exitNow = false
		if !x.Open() || x.Phase == PhaseConnected || x.Phase == PhaseConnecting || (x.Phase == PhaseAnnouncing && x.Exit == reason) {
			return errSkip
		}
		now := c.now()
		if x.AnsweredAt.IsZero() {
			// Not established yet (a closed service): the announcement plays once it is.
			x.Exit = reason
			return nil
		}
		if err := c.startAnnouncement(ctx, x, p, reason, now); err != nil {
			return err
		}
		exitNow = x.Media.Kind != MediaAnnouncement
		return nil
	})
	if err != nil || !exitNow {
		return err
	}
	return c.takeExit(ctx, tenantID, key)
}

// startAnnouncement moves an established call to PhaseAnnouncing for reason: music
// stops, live legs are hung up, and the service's announcement plays (Media stays
// empty when the service has none; the caller then takes the exit at once).
func (c *Controller) startAnnouncement(ctx context.Context, x *Call, p *plan, reason ExitReason, now time.Time) error {
	svc, err := c.services.GetService(ctx, x.TenantID, x.ServiceID)
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	c.cancelLegs(x, p, now, "announcement")
	if x.Media.Kind == MediaMusic || x.Media.Kind == MediaGreeting {
		c.cancelMedia(x, p)
	}
	x.Phase, x.Exit, x.Due = PhaseAnnouncing, reason, now.Add(PromptWatchdog)
	x.step(now, "announcement", "", string(reason))
	var uri string
	switch reason {
	case ExitQueueTimeout:
		uri = svc.Calls.Prompts.QueueTimeout
	case ExitQueueFull:
		uri = svc.Calls.Prompts.QueueFull
	case ExitClosed:
		uri = svc.Calls.Prompts.Closed
	case ExitTransferFailed:
		uri = svc.Calls.Prompts.TransferFailed
	}
	if uri == "" {
		x.Media = Media{Seq: x.Media.Seq}
		x.Due = now.Add(RetrySoon)
		return nil
	}
	c.playPrompt(x, p, MediaAnnouncement, uri, now)
	return nil
}

// cancelMedia stops what plays in the call.
func (c *Controller) cancelMedia(x *Call, p *plan) {
	tenantID, callID, cc := x.TenantID, x.GraphID, "cancel:"+strconv.Itoa(x.Media.Seq)
	x.Media = Media{Seq: x.Media.Seq}
	p.add("cancel media", func(ctx context.Context) error { return c.platform.CancelMedia(ctx, tenantID, callID, cc) })
}

// cancelLegs hangs up every leg still ringing.
func (c *Controller) cancelLegs(x *Call, p *plan, now time.Time, why string) {
	for i := range x.Legs {
		l := &x.Legs[i]
		if l.State != LegDialing && l.State != LegRinging {
			continue
		}
		x.cancelLeg(l, now, "ringingStopped", why)
		c.hangUp(x.TenantID, l.CallID, p)
	}
}

// hangUp adds the hang-up of a call (the customer's or a leg) whose id is known; a
// leg not known yet is hung up when its first notification names it.
func (c *Controller) hangUp(tenantID, callID string, p *plan) {
	if callID == "" {
		return
	}
	p.add("hang up", func(ctx context.Context) error { return c.platform.HangUp(ctx, tenantID, callID) })
}

// takeExit takes the current service's exit after an announcement:
//
//	HangUp (default), or a loop of more than MaxExits  → the call is hung up
//	Transfer to a phone number without the licence of
//	the first answering service                        → the TransferFailed
//	                                                     announcement, then hang up
//	Transfer                                           → transferred (the app leaves
//	                                                     when the platform reports it)
//	Service                                            → queued in that service
func (c *Controller) takeExit(ctx context.Context, tenantID, key string) error {
	x, err := c.get(ctx, tenantID, key)
	if err != nil || x == nil {
		return err
	}
	svc, err := c.services.GetService(ctx, tenantID, x.ServiceID)
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	exit := svc.Calls.Exit
	var then func() error
	var call Call // as written, for then
	call, err = c.update(ctx, tenantID, key, func(x *Call, p *plan) error {
		then = nil
		if x.Phase != PhaseAnnouncing {
			return errSkip
		}
		now := c.now()
		x.Exits++
		action := exit.EffectiveAction()
		if x.Exits > MaxExits || (x.Exit == ExitTransferFailed && action == routing.ExitTransfer) || x.Exit == ExitUnroutable {
			action = routing.ExitHangUp
		}
		switch action {
		case routing.ExitTransfer:
			target := transferTarget(exit.Target)
			if target.Kind == Phone && !x.FirstServicePSTN {
				x.step(now, "exit", "", "transfer refused: no PSTN licence")
				if err := c.startAnnouncement(ctx, x, p, ExitTransferFailed, now); err != nil {
					return err
				}
				if x.Media.Kind != MediaAnnouncement {
					then = func() error { return c.takeExit(ctx, tenantID, key) }
				}
				return nil
			}
			x.Phase, x.Due = PhaseTransferring, now.Add(TransferGrace)
			x.step(now, "exit", "", "transfer to "+string(target.Kind))
			c.transfer(x, p, target)
		case routing.ExitService:
			x.step(now, "exit", "", "service "+exit.Target)
			x.ServiceID, x.TaskID, x.Exit = exit.Target, "", ""
			x.Phase, x.Due = PhaseQueued, now.Add(RetrySoon)
			then = func() error { return c.enqueueCall(ctx, call) }
		default:
			x.step(now, "exit", "", "hang up")
			x.end(now, "Exit"+string(x.Exit))
			c.hangUp(x.TenantID, x.GraphID, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !call.Open() && call.TaskID != "" {
		c.finishTask(ctx, call, routing.Abandoned)
	}
	if then != nil {
		return then()
	}
	return nil
}

// transfer asks the platform to hand the customer's call to target.
func (c *Controller) transfer(x *Call, p *plan, target Target) {
	tenantID, callID, transferee := x.TenantID, x.GraphID, ""
	if x.Group {
		transferee = x.CustomerParticipant
	}
	cc := "transfer:" + strconv.Itoa(x.Exits)
	p.add("transfer", func(ctx context.Context) error {
		return c.platform.Transfer(ctx, tenantID, callID, target, transferee, cc)
	}).gone = c.goneFn(tenantID, x.ID)
}

// finishTask closes the call's task (if still open) with outcome.
func (c *Controller) finishTask(ctx context.Context, x Call, outcome routing.Outcome) {
	if x.TaskID == "" {
		return
	}
	if _, err := c.router.Finish(ctx, x.TenantID, x.ServiceID, x.TaskID, outcome); err != nil && !errors.Is(err, fault.ErrNotFound) {
		c.log(ctx).Warn("task not closed; the reconciler retries", "tenant", x.TenantID, "service", x.ServiceID, "call", ref(x.ID), "err", err)
		c.soon(ctx, x.TenantID, x.ID)
	}
}

// transferFailed: the platform reports the transfer failed (the call is established
// with the app again): the TransferFailed announcement, then the exit (which hangs up
// rather than transfer again).
func (c *Controller) transferFailed(ctx context.Context, tenantID, key string) error {
	x, err := c.get(ctx, tenantID, key)
	if err != nil || x == nil || x.Phase != PhaseTransferring {
		return err
	}
	return c.announce(ctx, tenantID, key, ExitTransferFailed)
}

// callEnded: the customer's call is over (hung up, transferred away, failed). The
// task ends (Completed with after-call work when an agent was connected, Abandoned
// when not; NotReached for an outbound customer who never answered), live legs are
// hung up.
func (c *Controller) callEnded(ctx context.Context, tenantID, key string, kind teams.Kind) error {
	var outcome routing.Outcome
	var hangUpAgentLeg string
	call, err := c.update(ctx, tenantID, key, func(x *Call, p *plan) error {
		outcome, hangUpAgentLeg = "", ""
		if !x.Open() {
			return errSkip
		}
		now := c.now()
		reason := "CallerHungUp"
		switch {
		case x.Phase == PhaseTransferring && kind == teams.KindTransferred:
			reason = "Transferred"
		case x.Phase == PhaseTransferring:
			reason = "TransferEnded"
		case x.Direction == Outbound && (x.Phase == PhaseDialing || x.Phase == PhaseOffering):
			reason, outcome = "NotReached", routing.NotReached
			if l := x.joiningLeg(); l != nil {
				hangUpAgentLeg = l.CallID
			}
		case x.Phase == PhaseConnected && x.Direction == Outbound:
			reason = "CustomerHungUp"
		}
		c.cancelLegs(x, p, now, "callerGone")
		x.end(now, reason)
		if hangUpAgentLeg != "" {
			c.hangUp(x.TenantID, hangUpAgentLeg, p)
		}
		return nil
	})
	if err != nil || call.Open() || call.EndedAt.IsZero() {
		return err
	}
	if call.TaskID == "" {
		return nil
	}
	if outcome != "" {
		c.finishTask(ctx, call, outcome)
		return nil
	}
	if _, err := c.router.CallStateChanged(ctx, routing.CallEvent{TenantID: tenantID, ServiceID: call.ServiceID, TaskID: call.TaskID,
		Change: routing.Ended}); err != nil && !errors.Is(err, fault.ErrNotFound) {
		c.soon(ctx, tenantID, key)
		return fmt.Errorf("end task: %w", err)
	}
	return nil
}

// roster follows who is in the customer's call: the customer's and the agent's
// participant ids; an agent seen in the call is connected; either side gone from a
// connected call ends it (the other side is hung up).
func (c *Controller) roster(ctx context.Context, tenantID, key string, ev teams.Event) error {
	var left string
	call, err := c.update(ctx, tenantID, key, func(x *Call, p *plan) error {
		left = ""
		if !x.Open() {
			return errSkip
		}
		now := c.now()
		changed := false
		agentIn, customerIn := false, false
		for _, pt := range ev.Participants {
			switch {
			case x.Agent != "" && pt.Party.Kind == User && strings.EqualFold(pt.Party.ID, x.Agent):
				agentIn = true
				if x.AgentParticipant != pt.ID {
					x.AgentParticipant, changed = pt.ID, true
				}
			case x.isCustomer(pt):
				customerIn = true
				if x.CustomerParticipant != pt.ID {
					x.CustomerParticipant, changed = pt.ID, true
				}
			}
		}
		if ev.ChangeType == teams.Deleted {
			switch {
			case agentIn && x.AgentJoined:
				left = "AgentHungUp"
			case customerIn:
				left = "CallerHungUp"
			}
		} else {
			if agentIn && !x.AgentJoined && (x.Phase == PhaseConnecting || x.Phase == PhaseConnected) {
				c.connected(x, p, now)
				changed = true
			}
			switch {
			case x.Phase == PhaseConnected && x.AgentJoined && !agentIn:
				left = "AgentHungUp"
			case x.Phase == PhaseConnected && x.CustomerParticipant != "" && !customerIn:
				left = "CallerHungUp"
			}
		}
		if left != "" {
			c.cancelLegs(x, p, now, "callerGone")
			x.end(now, left)
			c.hangUp(x.TenantID, x.GraphID, p)
			return nil
		}
		if !changed {
			return errSkip
		}
		return nil
	})
	if err != nil || left == "" || call.TaskID == "" {
		return err
	}
	if _, err := c.router.CallStateChanged(ctx, routing.CallEvent{TenantID: tenantID, ServiceID: call.ServiceID, TaskID: call.TaskID,
		Change: routing.Ended}); err != nil && !errors.Is(err, fault.ErrNotFound) {
		c.soon(ctx, tenantID, key)
		return fmt.Errorf("end task: %w", err)
	}
	return nil
}

// isCustomer reports whether a participant is the customer: the caller (or the
// outbound customer) by identity, else anybody who is neither the app nor the agent.
func (x *Call) isCustomer(pt teams.Participant) bool {
	want := x.Caller
	if x.Direction == Outbound {
		want = x.Customer
	}
	if !want.IsZero() {
		return pt.Party.Kind == want.Kind && strings.EqualFold(pt.Party.ID, want.ID)
	}
	switch pt.Party.Kind {
	case Application, ApplicationInstance:
		return false
	}
	return !(pt.Party.Kind == User && strings.EqualFold(pt.Party.ID, x.Agent)) && (pt.ID != "" || !pt.Party.IsZero())
}

// connected marks the agent joined: caller and agent talk; music is stopped again in
// case a prompt started while the agent was joining.
func (c *Controller) connected(x *Call, p *plan, now time.Time) {
	x.AgentJoined, x.Phase, x.ConnectedAt, x.Due = true, PhaseConnected, now, time.Time{}
	if l := x.joiningLeg(); l != nil && l.State == LegJoining {
		l.State, l.At = LegJoined, now
	}
	x.step(now, "connected", x.Agent, "")
	c.cancelMedia(x, p)
}

// operation applies the end of an operation the app started, by its clientContext
// ("greeting:3", "music:4", "announcement:5", "invite:<leg>", "dial:<leg>",
// "transfer:<n>", "cancel:<n>"). Stale operations (a music prompt cancelled when an
// agent answered) change nothing.
func (c *Controller) operation(ctx context.Context, tenantID, key string, op teams.Operation) error {
	if !op.Done() {
		return nil
	}
	kind, arg, _ := strings.Cut(op.ClientContext, ":")
	switch MediaKind(kind) {
	case MediaGreeting, MediaMusic, MediaAnnouncement:
		return c.promptDone(ctx, tenantID, key, op)
	}
	switch kind {
	case "invite", "dial":
		n, err := strconv.Atoi(arg)
		if err != nil {
			return nil
		}
		return c.joinDone(ctx, tenantID, key, n, op)
	case "transfer":
		if !op.Succeeded() {
			return c.transferFailed(ctx, tenantID, key)
		}
	}
	return nil
}

// promptDone: a prompt finished (or failed: a bad prompt does not stall the call).
//
//	greeting     → queued
//	music        → the music again, while queued
//	announcement → the exit
func (c *Controller) promptDone(ctx context.Context, tenantID, key string, op teams.Operation) error {
	var next func() error
	var call Call // as written, for next
	call, err := c.update(ctx, tenantID, key, func(x *Call, p *plan) error {
		next = nil
		if !x.Open() || x.Media.Context != op.ClientContext {
			return errSkip
		}
		now := c.now()
		if !op.Succeeded() {
			c.log(ctx).Warn("prompt not played", "tenant", x.TenantID, "service", x.ServiceID, "call", ref(x.ID), "prompt", string(x.Media.Kind),
				"code", op.Result.Code, "subcode", op.Result.Subcode)
		}
		switch {
		case x.Phase == PhaseGreeting && x.Media.Kind == MediaGreeting:
			x.Media = Media{Seq: x.Media.Seq}
			x.Phase, x.Due = PhaseQueued, now.Add(RetrySoon)
			next = func() error { return c.enqueueCall(ctx, call) }
		case x.Phase == PhaseQueued && x.Media.Kind == MediaMusic:
			if !op.Succeeded() {
				x.Media = Media{Seq: x.Media.Seq} // silence until the watchdog tries again
				return nil
			}
			svc, err := c.services.GetService(ctx, x.TenantID, x.ServiceID)
			if err != nil {
				return fmt.Errorf("service: %w", err)
			}
			if svc.Calls.Prompts.Music == "" {
				x.Media = Media{Seq: x.Media.Seq}
				return nil
			}
			x.Due = now.Add(MusicWatchdog)
			c.playPrompt(x, p, MediaMusic, svc.Calls.Prompts.Music, now)
		case x.Phase == PhaseAnnouncing && x.Media.Kind == MediaAnnouncement:
			x.Media = Media{Seq: x.Media.Seq}
			next = func() error { return c.takeExit(ctx, tenantID, key) }
		default:
			return errSkip
		}
		return nil
	})
	if err != nil || next == nil {
		return err
	}
	return next()
}
