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

// ReconcileResult says what one reconciler run did.
type ReconcileResult struct {
	Due        int // calls looked at
	LegsHungUp int // legs left ringing past their deadline
	KeepAlives int // keep-alives sent
	Steps      int // overdue steps redone or ended
}

// reconcileWorkers bounds the calls reconciled at once.
const reconcileWorkers = 4

// Reconcile looks at every call whose NextAt has passed (Store.DueCalls, per tenant)
// and repairs what is overdue: offer legs still ringing past their deadline are hung
// up; long calls get their keep-alive; a step that did not finish in time (a lost
// notification, a crash between a write and its platform request, a platform refusal)
// is redone from the platform's view of the call or ended:
//
//	Answering      → the call's state is read: established → greeting/queue;
//	                 gone → ended; still not established after twice the grace →
//	                 hung up
//	Greeting       → counts as played: queued
//	Queued         → the task is checked (created if missing; a queue timeout or full
//	                 queue → its exit; waiting → the service is kicked), the call's
//	                 state is read and the music restarted
//	Connecting     → the agent never arrived: dropped, queued again
//	Announcing     → counts as played: the exit
//	Transferring   → the call's state decides: gone → ended, back → transfer failed
//	Dialing        → the customer never answered: NotReached
//
// Errors of single calls are joined and returned after every due call was tried.
func (c *Controller) Reconcile(ctx context.Context) (ReconcileResult, error) {
	var res ReconcileResult
	now := c.now()
	ts, err := c.tenants.ListTenants(ctx)
	if err != nil {
		return res, fmt.Errorf("list tenants: %w", err)
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		work = make(chan Call)
	)
	for range reconcileWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for x := range work {
				r, err := c.reconcile(ctx, x, now)
				mu.Lock()
				res.Due++
				res.LegsHungUp += r.LegsHungUp
				res.KeepAlives += r.KeepAlives
				res.Steps += r.Steps
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		}()
	}
	for _, t := range ts {
		due, err := c.store.DueCalls(ctx, t.ID, now)
		if err != nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("due calls: %w", err))
			mu.Unlock()
			continue
		}
		for _, x := range due {
			work <- x
		}
	}
	close(work)
	wg.Wait()
	return res, errors.Join(errs...)
}

func (c *Controller) reconcile(ctx context.Context, x Call, now time.Time) (ReconcileResult, error) {
	var res ReconcileResult
	tid, key := x.TenantID, x.ID
	log := c.log(ctx).With("tenant", tid, "service", x.ServiceID, "call", ref(key), "phase", string(x.Phase))
	n, err := c.reconcileLegs(ctx, x, now)
	res.LegsHungUp = n
	if err != nil {
		return res, err
	}
	if n > 0 {
		log.Info("offer legs left ringing were hung up", "legs", n)
	}
	if !x.Open() {
		return res, nil
	}
	if !x.AnsweredAt.IsZero() && x.GraphID != "" && !x.KeepAliveAt.IsZero() && !x.KeepAliveAt.After(now) {
		err := c.platform.KeepAlive(ctx, tid, x.GraphID)
		switch {
		case errors.Is(err, fault.ErrNotFound):
			return res, c.callEnded(ctx, tid, key, teams.KindEnded)
		case err != nil:
			log.Warn("keep-alive failed; tried again next run", "err", err)
		default:
			res.KeepAlives++
			if _, err := c.update(ctx, tid, key, func(y *Call, _ *plan) error {
				y.KeepAliveAt = now.Add(KeepAliveEvery)
				return nil
			}); err != nil {
				return res, err
			}
		}
	}
	if x.Due.IsZero() || x.Due.After(now) {
		return res, nil
	}
	res.Steps++
	log.Info("call step overdue: reconciling")
	switch x.Phase {
	case PhaseAnswering:
		return res, c.reconcileAnswering(ctx, x, now)
	case PhaseGreeting:
		_, err := c.update(ctx, tid, key, func(y *Call, _ *plan) error {
			if y.Phase != PhaseGreeting {
				return errSkip
			}
			y.Media = Media{Seq: y.Media.Seq}
			y.Phase, y.Due = PhaseQueued, now.Add(RetrySoon)
			return nil
		})
		if err != nil {
			return res, err
		}
		return res, c.enqueue(ctx, tid, key)
	case PhaseQueued:
		return res, c.reconcileQueued(ctx, x, now)
	case PhaseConnecting:
		if l := x.joiningLeg(); l != nil {
			return res, c.joinDone(ctx, tid, key, l.N, teams.Operation{Status: "failed", Result: teams.Result{Code: 408}})
		}
		return res, c.enqueue(ctx, tid, key)
	case PhaseAnnouncing:
		return res, c.takeExit(ctx, tid, key)
	case PhaseTransferring:
		state, err := c.platform.State(ctx, tid, x.GraphID)
		switch {
		case errors.Is(err, fault.ErrNotFound) || state == "terminated":
			return res, c.callEnded(ctx, tid, key, teams.KindTransferred)
		case err != nil:
			return res, err
		case state == "established":
			return res, c.transferFailed(ctx, tid, key)
		}
		_, err = c.update(ctx, tid, key, func(y *Call, _ *plan) error {
			y.Due = now.Add(TransferGrace)
			return nil
		})
		return res, err
	case PhaseDialing:
		if x.GraphID != "" && x.AnsweredAt.IsZero() {
			if state, err := c.platform.State(ctx, tid, x.GraphID); err == nil && state == "established" {
				return res, c.established(ctx, tid, key)
			}
		}
		return res, c.giveUpDialing(ctx, x, now)
	}
	return res, nil
}

// reconcileAnswering: an answered call that never reported established.
func (c *Controller) reconcileAnswering(ctx context.Context, x Call, now time.Time) error {
	state, err := c.platform.State(ctx, x.TenantID, x.GraphID)
	switch {
	case errors.Is(err, fault.ErrNotFound) || state == "terminated":
		return c.callEnded(ctx, x.TenantID, x.ID, teams.KindEnded)
	case err != nil:
		return err
	case state == "established":
		return c.established(ctx, x.TenantID, x.ID)
	case now.Sub(x.Created) >= 2*AnswerGrace:
		_, err := c.update(ctx, x.TenantID, x.ID, func(y *Call, p *plan) error {
			if y.Phase != PhaseAnswering {
				return errSkip
			}
			y.end(now, "AnswerTimeout")
			c.hangUp(y.TenantID, y.GraphID, p)
			return nil
		})
		return err
	case state == "incoming":
		// The answer may not have reached the platform: send it again.
		svc, err := c.services.GetService(ctx, x.TenantID, x.ServiceID)
		if err != nil {
			return fmt.Errorf("service: %w", err)
		}
		if err := c.platform.Answer(ctx, x.TenantID, x.GraphID, Answer{CallbackURI: c.callback(x.ID, -1), Prefetch: svc.Calls.Prompts.All()}); err != nil {
			return fmt.Errorf("answer again: %w", err)
		}
	}
	_, err = c.update(ctx, x.TenantID, x.ID, func(y *Call, _ *plan) error {
		if y.Phase != PhaseAnswering {
			return errSkip
		}
		y.Due = now.Add(AnswerGrace)
		return nil
	})
	return err
}

// reconcileQueued checks a waiting call: its task, the call itself and its music.
func (c *Controller) reconcileQueued(ctx context.Context, x Call, now time.Time) error {
	tid, key := x.TenantID, x.ID
	if x.TaskID == "" {
		return c.enqueue(ctx, tid, key)
	}
	task, err := c.services.GetTask(ctx, tid, x.ServiceID, x.TaskID)
	if errors.Is(err, fault.ErrNotFound) {
		return c.enqueue(ctx, tid, key)
	}
	if err != nil {
		return fmt.Errorf("task: %w", err)
	}
	if state, err := c.platform.State(ctx, tid, x.GraphID); errors.Is(err, fault.ErrNotFound) || (err == nil && state == "terminated") {
		return c.callEnded(ctx, tid, key, teams.KindEnded)
	}
	switch {
	case task.State == routing.Done && task.Outcome == routing.QueueTimeout:
		return c.announce(ctx, tid, key, ExitQueueTimeout)
	case task.State == routing.Done && task.Outcome == routing.QueueFull:
		return c.announce(ctx, tid, key, ExitQueueFull)
	case task.State == routing.Done:
		return c.announce(ctx, tid, key, ExitUnroutable)
	case task.State == routing.Waiting:
		if err := c.router.Wake(ctx, tid, x.ServiceID, routing.KickNewTask, task.ID+"/reconcile/"+now.UTC().Format(time.RFC3339)); err != nil {
			return fmt.Errorf("wake the service: %w", err)
		}
	}
	svc, err := c.services.GetService(ctx, tid, x.ServiceID)
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	_, err = c.update(ctx, tid, key, func(y *Call, p *plan) error {
		if y.Phase != PhaseQueued {
			return errSkip
		}
		y.Due = now.Add(MusicWatchdog)
		if m := svc.Calls.Prompts.Music; m != "" {
			if y.Media.Kind != MediaNone {
				c.cancelMedia(y, p)
			}
			c.playPrompt(y, p, MediaMusic, m, now)
		}
		return nil
	})
	return err
}

// giveUpDialing: an outbound customer who did not answer in time.
func (c *Controller) giveUpDialing(ctx context.Context, x Call, now time.Time) error {
	call, err := c.update(ctx, x.TenantID, x.ID, func(y *Call, p *plan) error {
		if y.Phase != PhaseDialing {
			return errSkip
		}
		y.step(now, "notReached", "", "timeout")
		y.end(now, "NotReached")
		c.hangUp(y.TenantID, y.GraphID, p)
		if l := y.joiningLeg(); l != nil && l.CallID != y.GraphID {
			c.hangUp(y.TenantID, l.CallID, p)
		}
		return nil
	})
	if err != nil || call.Open() {
		return err
	}
	c.finishTask(ctx, call, routing.NotReached)
	return nil
}

// reconcileLegs hangs up legs past their deadline: still ringing (their offer is
// long over), or hung up before without the platform confirming it. A hang-up the
// platform accepts, or a leg it no longer knows, ends the leg.
func (c *Controller) reconcileLegs(ctx context.Context, x Call, now time.Time) (int, error) {
	var due []Leg
	for _, l := range x.Legs {
		if l.pending() && l.State != LegJoining && !l.Deadline.After(now) {
			due = append(due, l)
		}
	}
	if len(due) == 0 {
		return 0, nil
	}
	if _, err := c.update(ctx, x.TenantID, x.ID, func(y *Call, _ *plan) error {
		for _, d := range due {
			if l := y.leg(d.N); l != nil && (l.State == LegDialing || l.State == LegRinging) {
				y.cancelLeg(l, now, "ringingStopped", "overdue")
			}
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("cancel overdue legs: %w", err)
	}
	var done []int
	for _, d := range due {
		if d.CallID == "" {
			continue
		}
		if err := c.platform.HangUp(ctx, x.TenantID, d.CallID); err == nil || errors.Is(err, fault.ErrNotFound) {
			done = append(done, d.N)
		}
	}
	if len(done) == 0 {
		return 0, nil
	}
	_, err := c.update(ctx, x.TenantID, x.ID, func(y *Call, _ *plan) error {
		for _, n := range done {
			if l := y.leg(n); l != nil && l.State == LegCancelled {
				l.State, l.At = LegEnded, now
			}
		}
		return nil
	})
	return len(done), err
}
