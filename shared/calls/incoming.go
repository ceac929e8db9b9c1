package calls

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/teams"
)

// incoming handles a new call to the bot: find the service the called resource
// account or number belongs to, decide (answer, redirect or reject), write the call,
// then ask the platform — all within AnswerBudget of the notification.
//
//	unknown tenant, no service for the target,
//	target on two services                        → rejected, nothing stored
//	tenant deleted, service pending deletion       → rejected (timeline: ServicePendingDeletion)
//	service of type None with a Transfer exit      → redirected to the exit's target
//	service of type None without one               → rejected (NoRedirectTarget)
//	otherwise                                      → answered (a closed service's
//	                                                 call then hears the Closed
//	                                                 announcement and takes the exit)
func (c *Controller) incoming(ctx context.Context, tenantID string, ev teams.Event) error {
	ctx, cancel := context.WithTimeout(ctx, AnswerBudget)
	defer cancel()
	log := c.log(ctx)
	if ev.Target.IsZero() {
		log.Warn("incoming call without a target: rejected", "tenant", tenantID, "call", ref(ev.CallID))
		return c.platform.Reject(ctx, tenantID, ev.CallID, RejectNone)
	}
	t, err := c.tenants.GetTenant(ctx, tenantID)
	if errors.Is(err, fault.ErrNotFound) {
		log.Warn("incoming call for an unknown tenant: rejected", "tenant", tenantID, "call", ref(ev.CallID))
		return c.platform.Reject(ctx, tenantID, ev.CallID, RejectForbidden)
	}
	if err != nil {
		return fmt.Errorf("tenant: %w", err)
	}
	svc, err := c.services.ServiceByTarget(ctx, tenantID, ev.Target.ID)
	if errors.Is(err, fault.ErrNotFound) || errors.Is(err, fault.ErrConflict) {
		log.Warn("incoming call to a target no single service has: rejected", "tenant", tenantID, "call", ref(ev.CallID),
			"targetKind", string(ev.Target.Kind), "err", err)
		return c.platform.Reject(ctx, tenantID, ev.CallID, RejectNone)
	}
	if err != nil {
		return fmt.Errorf("service by target: %w", err)
	}
	now := c.now()
	call := Call{TenantID: tenantID, ID: ev.CallID, GraphID: ev.CallID, Direction: Inbound, ServiceID: svc.ID,
		FirstService: svc.ID, FirstServicePSTN: svc.PSTNLicence, Caller: ev.Source, Created: now}
	call.step(now, "incoming", "", "to "+string(ev.Target.Kind))
	var act action
	switch {
	case t.Deleted || svc.PendingDeletion:
		call.end(now, "ServicePendingDeletion")
		act = action{what: "reject", do: func(ctx context.Context) error {
			return c.platform.Reject(ctx, tenantID, ev.CallID, RejectForbidden)
		}}
	case svc.Type == routing.None:
		act = c.redirectOrReject(&call, svc, now)
	default:
		call.Phase, call.Due = PhaseAnswering, now.Add(AnswerGrace)
		if svc.Calls.Closed {
			call.Exit = ExitClosed
		}
		call.step(now, "answered", "", "")
		answer := Answer{CallbackURI: c.callback(call.ID, -1), Prefetch: svc.Calls.Prompts.All()}
		act = action{what: "answer", do: func(ctx context.Context) error {
			return c.platform.Answer(ctx, tenantID, ev.CallID, answer)
		}}
	}
	call.reschedule(now)
	stored, err := c.createWithin(ctx, call)
	switch {
	case errors.Is(err, fault.ErrConflict):
		// The same incoming call again (a redelivery): answer again only while the
		// answer may not have reached the platform; a refusal then only says the
		// first answer did.
		if _, sent := c.answered.Load(tenantID + "/" + call.ID); stored.Phase == PhaseAnswering && !sent {
			if err := act.do(ctx); err != nil {
				log.Debug("incoming call redelivered: answer again refused", "tenant", tenantID, "call", ref(call.ID), "err", err)
			}
		}
		return nil
	case err != nil:
		return err
	}
	key := tenantID + "/" + call.ID
	c.noteAnswered(key, time.Now())
	if err := act.do(ctx); err != nil {
		c.answered.Delete(key) // not answered: a redelivery answers again
		if errors.Is(err, fault.ErrNotFound) || fault.IsPermanent(err) {
			// The call is gone or cannot be answered: close it.
			log.Warn("incoming call could not be "+act.what+"ed", "tenant", tenantID, "service", svc.ID, "call", ref(call.ID), "err", err)
			_, uerr := c.update(ctx, tenantID, call.ID, func(x *Call, _ *plan) error {
				if !x.Open() {
					return errSkip
				}
				x.end(c.now(), "AnswerFailed")
				return nil
			})
			return uerr
		}
		c.soon(ctx, tenantID, call.ID)
		return fmt.Errorf("%s: %w", act.what, err)
	}
	c.logSteps(ctx, call, len(call.Steps))
	return nil
}

// redirectOrReject handles a call to a service of type None: redirect to its exit's
// transfer target, else reject.
func (c *Controller) redirectOrReject(call *Call, svc routing.Service, now time.Time) action {
	x := svc.Calls.Exit
	tenantID, id := call.TenantID, call.ID
	reject := func(reason string) action {
		call.end(now, reason)
		return action{what: "reject", do: func(ctx context.Context) error { return c.platform.Reject(ctx, tenantID, id, RejectNone) }}
	}
	if x.EffectiveAction() != routing.ExitTransfer {
		return reject("NoRedirectTarget")
	}
	target := transferTarget(x.Target)
	if target.Kind == Phone && !svc.PSTNLicence {
		return reject(string(routing.TransferFailed))
	}
	call.step(now, "redirected", "", string(target.Kind))
	call.end(now, "Redirected")
	return action{what: "redirect", do: func(ctx context.Context) error {
		return c.platform.Redirect(ctx, tenantID, id, target, c.callback(id, -1))
	}}
}

// transferTarget reads an exit or transfer target: a phone number or a user.
func transferTarget(s string) Target {
	n := routing.NormalizeTarget(s)
	if len(n) > 0 && n[0] == '+' {
		return Target{Kind: Phone, ID: n}
	}
	return Target{Kind: User, ID: n}
}

// createWithin writes a new call, waiting at most StoreBudget: a slower store must
// not hold the answer back. When the write is late, the caller gets the call as given
// (the answer goes out) and the write goes on in the background for up to
// BackgroundWrite; should it fail then, the call is hung up, so no caller is left
// with an app that does not know the call. A call that exists already is returned
// with fault.ErrConflict.
func (c *Controller) createWithin(ctx context.Context, call Call) (Call, error) {
	var (
		mu     sync.Mutex
		gaveUp bool
		got    Call
		gotErr error
		ready  = make(chan struct{})
	)
	c.bg.Add(1)
	wkey := call.TenantID + "/" + call.ID
	c.writing.Store(wkey, ready)
	go func() {
		defer c.bg.Done()
		defer c.writing.Delete(wkey)
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.backgroundWrite)
		defer cancel()
		stored, err := c.store.CreateCall(wctx, call)
		if errors.Is(err, fault.ErrConflict) {
			if stored, err = c.store.GetCall(wctx, call.TenantID, call.ID); err == nil {
				err = fault.ErrConflict
			}
		}
		mu.Lock()
		late := gaveUp
		got, gotErr = stored, err
		close(ready)
		mu.Unlock()
		if late && err != nil && !errors.Is(err, fault.ErrConflict) && call.Phase == PhaseAnswering {
			c.log(ctx).Error("call answered but never stored: hung up", "tenant", call.TenantID, "call", ref(call.ID), "err", err)
			hctx, hcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer hcancel()
			_ = c.platform.HangUp(hctx, call.TenantID, call.ID)
		}
	}()
	timer := time.NewTimer(c.storeBudget)
	defer timer.Stop()
	select {
	case <-ready:
	case <-timer.C:
		mu.Lock()
		select {
		case <-ready:
		default:
			gaveUp = true
		}
		mu.Unlock()
		if gaveUp {
			c.log(ctx).Warn("storage slow: the call is answered before it is stored", "tenant", call.TenantID, "call", ref(call.ID))
			return call, nil
		}
	}
	return got, gotErr
}

// noteAnswered remembers that this instance is answering (or answered) a call, so a
// redelivery of its incoming notification does not answer it twice (a failed answer
// is forgotten again; another instance, after a crash of this one, answers again: the
// platform refuses a second answer of a call it saw answered). Entries older than a
// minute are dropped.
func (c *Controller) noteAnswered(key string, now time.Time) {
	c.answered.Store(key, now)
	if c.answeredN.Add(1)%256 == 0 {
		c.answered.Range(func(k, v any) bool {
			if now.Sub(v.(time.Time)) > time.Minute {
				c.answered.Delete(k)
			}
			return true
		})
	}
}
