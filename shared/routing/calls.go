package routing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/presence"
)

// IncomingCall is a call made to a service, as the Teams webhook (or the local
// simulator) reports it.
type IncomingCall struct {
	TenantID  string
	ServiceID string
	CallID    string // Teams call id; the task id derives from it (TaskIDFor)
	Priority  Priority
	// FirstAnsweredService is the first service that answered the call, when it is
	// not this one (the call came through another service's exit); its PSTN licence
	// (FirstAnsweredPSTN) decides a later transfer to PSTN. Empty: this service.
	FirstAnsweredService string
	FirstAnsweredPSTN    bool
}

// IncomingCall creates the call's task and kicks the service. It is idempotent by
// call id: a replay returns the existing task and sends the same kick again, which
// Service Bus duplicate detection drops. A full queue (MaxQueueLength waiting tasks)
// creates the task Done with outcome QueueFull, the exit. Errors: *fault.FieldError
// for missing or malformed fields or a service that does not route; fault.ErrNotFound
// for an unknown tenant or service; anything else is transient.
func (e *Engine) IncomingCall(ctx context.Context, in IncomingCall) (Task, error) {
	if err := CheckID("tenantId", in.TenantID); err != nil {
		return Task{}, err
	}
	if err := CheckID("serviceId", in.ServiceID); err != nil {
		return Task{}, err
	}
	if in.CallID == "" || len(in.CallID) > 256 {
		return Task{}, fault.Invalid("callId", "required, at most 256 characters")
	}
	if in.Priority == "" {
		in.Priority = Normal
	}
	if _, err := ParsePriority(string(in.Priority)); err != nil {
		return Task{}, err
	}
	t, err := e.tenant(ctx, in.TenantID)
	if err != nil {
		return Task{}, fmt.Errorf("tenant: %w", err)
	}
	svc, open, err := e.store.LoadQueue(ctx, in.TenantID, in.ServiceID)
	if err != nil {
		return Task{}, fmt.Errorf("service: %w", err)
	}
	if t.Deleted || svc.PendingDeletion {
		return Task{}, fault.Invalid("serviceId", "the service is pending deletion")
	}
	if svc.Type == None {
		return Task{}, fault.Invalid("serviceId", "a service of type None takes no calls")
	}
	id := TaskIDFor(in.CallID)
	for _, x := range open {
		if x.ID == id {
			return x, e.kick(ctx, in.TenantID, in.ServiceID, KickNewTask, id, time.Time{})
		}
	}
	now := e.now()
	task := Task{TenantID: in.TenantID, ServiceID: in.ServiceID, ID: id, CallID: in.CallID, Priority: in.Priority,
		Created: now, State: Waiting, FirstAnsweredService: in.FirstAnsweredService, FirstAnsweredPSTN: in.FirstAnsweredPSTN}
	if task.FirstAnsweredService == "" {
		// The service's own resource account answered the call (package calls).
		task.FirstAnsweredService, task.FirstAnsweredPSTN = svc.ID, svc.PSTNLicence
	}
	waiting := 0
	for _, x := range open {
		if x.State == Waiting {
			waiting++
		}
	}
	if m := svc.Distribution.MaxQueueLength; m > 0 && waiting >= m {
		task.State, task.Outcome, task.EndedAt = Done, QueueFull, now
	}
	got, err := e.store.CreateTask(ctx, task)
	if errors.Is(err, fault.ErrConflict) { // a replay of a call already closed, or a race with one
		got, err = e.store.GetTask(ctx, in.TenantID, in.ServiceID, id)
		if err != nil {
			return Task{}, fmt.Errorf("get task: %w", err)
		}
		return got, nil
	}
	if err != nil {
		return Task{}, fmt.Errorf("create task: %w", err)
	}
	if got.State == Done {
		e.log(ctx).Info("queue full: call exits", "tenant", in.TenantID, "service", in.ServiceID)
		return got, nil
	}
	if err := e.kick(ctx, in.TenantID, in.ServiceID, KickNewTask, id, time.Time{}); err != nil {
		return got, err
	}
	if to := svc.Distribution.QueueTimeoutSecs; to > 0 {
		at := now.Add(time.Duration(to) * time.Second)
		if err := e.kick(ctx, in.TenantID, in.ServiceID, KickQueueTime, id, at); err != nil {
			return got, err
		}
	}
	return got, nil
}

// Change is a call-state change reported for a task.
type Change string

const (
	Answered Change = "Answered" // the agent picked up
	Declined Change = "Declined" // the agent refused the offer (recorded apart from no-answer)
	Ended    Change = "Ended"    // the call ended (hung up by anybody)
	// NoAnswer: the agent's Teams stopped ringing unanswered before our ring timeout
	// (the platform's own timeout): RONA for the agent as at the ring timeout.
	NoAnswer Change = "NoAnswer"
	// Unreachable: the agent's Teams could not be rung (not enabled for calls, an
	// error): the agent is released without RONA and the task tries someone else.
	Unreachable Change = "Unreachable"
	// Dropped: the agent accepted but could not be joined to the call (or left before
	// it was connected): the task waits again, the agent is released without ACW.
	Dropped Change = "Dropped"
)

// CallEvent is a call-state change of a task.
type CallEvent struct {
	TenantID  string
	ServiceID string
	TaskID    string
	AgentID   string // who answered or declined; for Ended optional
	Change    Change
}

// CallStateChanged moves the task and its agents: Answered connects the agent (other
// broadcast agents are released) and records the first answering service for the
// PSTN rule; Declined releases the agent with RONA (counted as a decline) and re-queues
// the task; Ended closes the task (Completed, or Abandoned when nobody answered),
// starts the agent's ACW and kicks the service. Every step only applies when the state
// still matches, so a replay changes nothing. Errors: *fault.FieldError for bad
// fields; fault.ErrNotFound for an unknown service or task; fault.ErrConflict when
// the task is not ringing at that agent.
func (e *Engine) CallStateChanged(ctx context.Context, ev CallEvent) (Task, error) {
	for _, f := range []struct{ name, v string }{{"tenantId", ev.TenantID}, {"serviceId", ev.ServiceID}, {"taskId", ev.TaskID}} {
		if err := CheckID(f.name, f.v); err != nil {
			return Task{}, err
		}
	}
	if ev.AgentID != "" || ev.Change != Ended {
		if err := CheckID("agentId", ev.AgentID); err != nil {
			return Task{}, err
		}
	}
	svc, err := e.store.GetService(ctx, ev.TenantID, ev.ServiceID)
	if err != nil {
		return Task{}, fmt.Errorf("service: %w", err)
	}
	var task Task
	switch ev.Change {
	case Answered:
		task, err = e.answered(ctx, &svc, ev)
	case Declined, NoAnswer, Unreachable:
		task, err = e.dropOffer(ctx, &svc, ev)
	case Dropped:
		task, err = e.dropped(ctx, &svc, ev)
	case Ended:
		task, err = e.ended(ctx, &svc, ev.TaskID, Completed)
	default:
		return Task{}, fault.Invalid("change", "must be one of Answered, Declined, Ended, NoAnswer, Unreachable, Dropped")
	}
	return task, err
}

var errNotRinging = fmt.Errorf("the task is not ringing at this agent: %w", fault.ErrConflict)

func (e *Engine) answered(ctx context.Context, svc *Service, ev CallEvent) (Task, error) {
	now := e.now()
	var others []string
	// Task first: a crash before the agent write is repaired by the replay, which
	// finds the task Connected to the same agent and redoes the agent step.
	task, err := e.store.UpdateTask(ctx, ev.TenantID, ev.ServiceID, ev.TaskID, func(t *Task) error {
		if t.State == Connected && t.ConnectedAgent == ev.AgentID {
			return errNoChange
		}
		if t.State != Offered || !slices.Contains(t.OfferedTo, ev.AgentID) {
			return errNotRinging
		}
		others = slices.DeleteFunc(slices.Clone(t.OfferedTo), func(s string) bool { return s == ev.AgentID })
		t.record(Attempt{Attempt: t.Attempts, AgentID: ev.AgentID, At: now, Result: ResultAnswered})
		for _, o := range others {
			t.record(Attempt{Attempt: t.Attempts, AgentID: o, At: now, Result: ResultReleased})
		}
		t.State, t.ConnectedAgent, t.ConnectedAt, t.OfferedTo, t.RingExpiry = Connected, ev.AgentID, now, nil, time.Time{}
		if t.FirstAnsweredService == "" {
			t.FirstAnsweredService, t.FirstAnsweredPSTN = svc.ID, svc.PSTNLicence
		}
		return nil
	})
	if errors.Is(err, errNoChange) {
		task, err = e.store.GetTask(ctx, ev.TenantID, ev.ServiceID, ev.TaskID)
	}
	if err != nil {
		return task, fmt.Errorf("answer: %w", err)
	}
	_, err = e.store.UpdateAgentState(ctx, ev.TenantID, ev.AgentID, func(a *AgentState) error {
		if a.Hold != nil && a.Hold.TaskID == task.ID && a.Hold.ServiceID == svc.ID && a.Hold.Phase == HoldConnected {
			return errNoChange
		}
		if a.Held(now) && (a.Hold.TaskID != task.ID || a.Hold.ServiceID != svc.ID) {
			return fmt.Errorf("agent holds another task: %w", fault.ErrConflict)
		}
		a.Hold = &Hold{ServiceID: svc.ID, TaskID: task.ID, Attempt: task.Attempts, Phase: HoldConnected, Since: now, Until: now.Add(MaxCallDuration)}
		return nil
	})
	if err != nil && !errors.Is(err, errNoChange) {
		return task, fmt.Errorf("connect agent: %w", err)
	}
	for _, o := range others {
		if _, err := e.release(ctx, ev.TenantID, o, svc.ID, task.ID, 0, nil); err != nil && !errors.Is(err, fault.ErrNotFound) {
			return task, fmt.Errorf("release broadcast agent: %w", err)
		}
	}
	if len(others) > 0 {
		if e.calls != nil {
			e.calls.StopRinging(ctx, task, others, StopAnsweredElsewhere)
		}
		e.kickReleased(ctx, svc)
	}
	e.log(ctx).Info("call answered", "tenant", ev.TenantID, "service", svc.ID)
	return task, nil
}

// dropOffer takes one agent out of a ringing offer (Declined, NoAnswer, Unreachable):
// the attempt is recorded with its result, the agent is marked tried and released —
// with RONA for a decline or a no-answer when the service has RONA (not for a
// no-answer in a broadcast, as at the ring timeout) — and the task waits again once
// nobody rings. A replay finds the agent no longer offered and changes nothing.
func (e *Engine) dropOffer(ctx context.Context, svc *Service, ev CallEvent) (Task, error) {
	now := e.now()
	result, rona := ResultDeclined, svc.RONAFor()
	switch ev.Change {
	case NoAnswer:
		result = ResultNoAnswer
		if svc.Strategy() == Broadcast {
			rona = 0
		}
	case Unreachable:
		result, rona = ResultUnreachable, 0
	}
	attempt := -1
	task, err := e.store.UpdateTask(ctx, ev.TenantID, ev.ServiceID, ev.TaskID, func(t *Task) error {
		if t.State != Offered || !slices.Contains(t.OfferedTo, ev.AgentID) {
			return errNoChange
		}
		attempt = t.Attempts
		t.record(Attempt{Attempt: t.Attempts, AgentID: ev.AgentID, At: now, Result: result})
		t.OfferedTo = slices.DeleteFunc(t.OfferedTo, func(s string) bool { return s == ev.AgentID })
		if !slices.Contains(t.Tried, ev.AgentID) {
			t.Tried = append(t.Tried, ev.AgentID)
		}
		if len(t.OfferedTo) == 0 {
			t.State, t.RingExpiry = Waiting, time.Time{}
		}
		return nil
	})
	if errors.Is(err, errNoChange) {
		task, err = e.store.GetTask(ctx, ev.TenantID, ev.ServiceID, ev.TaskID)
	}
	if err != nil {
		return task, fmt.Errorf("%s: %w", strings.ToLower(string(ev.Change)), err)
	}
	if attempt < 0 {
		return task, nil
	}
	got, err := e.release(ctx, ev.TenantID, ev.AgentID, svc.ID, task.ID, attempt, func(a *AgentState) {
		switch ev.Change {
		case Declined:
			a.Declines++
		case NoAnswer:
			a.NoAnswers++
		}
		if rona > 0 {
			a.RONAUntil, a.RONAAt, a.RONAReason = now.Add(rona), now, result
		}
	})
	if err != nil && !errors.Is(err, fault.ErrNotFound) {
		return task, fmt.Errorf("release agent: %w", err)
	}
	if err == nil && rona > 0 && got.RONAAt.Equal(now) {
		e.kickServicesAt(ctx, &got, KickRONAEnd, got.RONAUntil)
	}
	e.kickReleased(ctx, svc)
	return task, nil
}

// dropped puts a task whose agent accepted but was never connected back in the
// queue: the agent is released without ACW and not offered this task again while
// anybody else is eligible.
func (e *Engine) dropped(ctx context.Context, svc *Service, ev CallEvent) (Task, error) {
	now := e.now()
	changed := false
	task, err := e.store.UpdateTask(ctx, ev.TenantID, ev.ServiceID, ev.TaskID, func(t *Task) error {
		if t.State != Connected || t.ConnectedAgent != ev.AgentID {
			return errNoChange
		}
		changed = true
		t.record(Attempt{Attempt: t.Attempts, AgentID: ev.AgentID, At: now, Result: ResultDropped})
		if !slices.Contains(t.Tried, ev.AgentID) {
			t.Tried = append(t.Tried, ev.AgentID)
		}
		t.State, t.ConnectedAgent, t.ConnectedAt = Waiting, "", time.Time{}
		return nil
	})
	if errors.Is(err, errNoChange) {
		task, err = e.store.GetTask(ctx, ev.TenantID, ev.ServiceID, ev.TaskID)
	}
	if err != nil {
		return task, fmt.Errorf("dropped: %w", err)
	}
	if _, err := e.release(ctx, ev.TenantID, ev.AgentID, svc.ID, task.ID, 0, nil); err != nil && !errors.Is(err, fault.ErrNotFound) {
		return task, fmt.Errorf("release dropped agent: %w", err)
	}
	if changed {
		e.kickReleased(ctx, svc)
	}
	return task, nil
}

// ended closes the task with outcome (Completed when connected; Abandoned when nobody
// answered), releases its agents and starts the connected agent's ACW.
func (e *Engine) ended(ctx context.Context, svc *Service, taskID string, outcome Outcome) (Task, error) {
	now := e.now()
	task, err := e.store.UpdateTask(ctx, svc.TenantID, svc.ID, taskID, func(t *Task) error {
		if t.State == Done {
			return errNoChange
		}
		if t.State != Connected && outcome == Completed {
			t.Outcome = Abandoned
			for _, o := range t.OfferedTo {
				t.record(Attempt{Attempt: t.Attempts, AgentID: o, At: now, Result: ResultReleased})
			}
		} else {
			t.Outcome = outcome
		}
		t.State, t.EndedAt = Done, now
		return nil
	})
	if errors.Is(err, errNoChange) {
		task, err = e.store.GetTask(ctx, svc.TenantID, svc.ID, taskID)
	}
	if err != nil {
		return task, fmt.Errorf("end task: %w", err)
	}
	// Agents after the task: idempotent (only a hold still on this task is released),
	// so a replay after a crash finishes the job without a second ACW.
	if e.calls != nil && len(task.OfferedTo) > 0 {
		e.calls.StopRinging(ctx, task, task.OfferedTo, StopCallerGone)
	}
	for _, o := range task.OfferedTo {
		if _, err := e.release(ctx, svc.TenantID, o, svc.ID, task.ID, 0, nil); err != nil && !errors.Is(err, fault.ErrNotFound) {
			return task, fmt.Errorf("release agent: %w", err)
		}
	}
	if task.ConnectedAgent != "" {
		acw := svc.ACW()
		got, err := e.release(ctx, svc.TenantID, task.ConnectedAgent, svc.ID, task.ID, 0, func(a *AgentState) {
			a.LastCallEnded = now
			if acw > 0 {
				a.ACWStart, a.ACWUntil = now, now.Add(acw)
				a.ACWMaxUntil = a.ACWUntil.Add(time.Duration(svc.Distribution.ACW.MaxExtensionSeconds) * time.Second)
				a.ACWEarlyEnd = svc.Distribution.ACW.AllowEarlyEnd
			}
		})
		if err != nil && !errors.Is(err, fault.ErrNotFound) {
			return task, fmt.Errorf("start ACW: %w", err)
		}
		if err == nil && got.LastCallEnded.Equal(now) && acw > 0 {
			e.kickServicesAt(ctx, &got, KickACWEnd, got.ACWUntil)
		}
	}
	e.kickReleased(ctx, svc)
	return task, nil
}

// Finish ends a task with an outcome (NotReached, Abandoned, ...), releasing its
// agents as a call's end does (a connected agent goes to after-call work). A task
// already done is returned as it is.
func (e *Engine) Finish(ctx context.Context, tenantID, serviceID, taskID string, outcome Outcome) (Task, error) {
	svc, err := e.store.GetService(ctx, tenantID, serviceID)
	if err != nil {
		return Task{}, fmt.Errorf("service: %w", err)
	}
	return e.ended(ctx, &svc, taskID, outcome)
}

// Wake kicks the service now; id makes the kick's message id (duplicate detection
// drops a repeat of the same id).
func (e *Engine) Wake(ctx context.Context, tenantID, serviceID, reason, id string) error {
	return e.kick(ctx, tenantID, serviceID, reason, id, time.Time{})
}

func (e *Engine) kickReleased(ctx context.Context, svc *Service) {
	if err := e.wake(ctx, svc.TenantID, svc.ID, KickReleased); err != nil {
		e.log(ctx).Warn("kick not sent", "tenant", svc.TenantID, "service", svc.ID, "err", err)
	}
}

// TransferToPSTN transfers a connected call to PSTN with the licence of the first
// service that answered it (SPEC §3). Without one the task ends with outcome
// TransferFailed (the workflow's exit path); with one, TransferredPSTN. Either way the
// agent's leg ends (ACW). fault.ErrConflict when the task is not connected.
func (e *Engine) TransferToPSTN(ctx context.Context, tenantID, serviceID, taskID string) (Task, error) {
	svc, err := e.store.GetService(ctx, tenantID, serviceID)
	if err != nil {
		return Task{}, fmt.Errorf("service: %w", err)
	}
	t, err := e.store.GetTask(ctx, tenantID, serviceID, taskID)
	if err != nil {
		return Task{}, fmt.Errorf("task: %w", err)
	}
	if t.State != Connected {
		return t, fmt.Errorf("the task is not connected: %w", fault.ErrConflict)
	}
	outcome := TransferFailed
	if t.FirstAnsweredService != "" && t.FirstAnsweredPSTN {
		outcome = TransferredOut
	}
	return e.ended(ctx, &svc, taskID, outcome)
}

// TransferToService moves a connected call to another service of the tenant: the
// task ends Transferred (the agent goes to ACW) and a new task, carrying the call id
// and the first answering service, waits in the target service.
func (e *Engine) TransferToService(ctx context.Context, tenantID, fromService, taskID, toService string) (Task, error) {
	svc, err := e.store.GetService(ctx, tenantID, fromService)
	if err != nil {
		return Task{}, fmt.Errorf("service: %w", err)
	}
	to, err := e.store.GetService(ctx, tenantID, toService)
	if err != nil {
		return Task{}, fmt.Errorf("target service: %w", err)
	}
	t, err := e.store.GetTask(ctx, tenantID, fromService, taskID)
	if err != nil {
		return Task{}, fmt.Errorf("task: %w", err)
	}
	if t.State != Connected && !(t.State == Done && t.Outcome == Transferred) {
		return t, fmt.Errorf("the task is not connected: %w", fault.ErrConflict)
	}
	nt := Task{TenantID: tenantID, ServiceID: to.ID, ID: t.ID, CallID: t.CallID, Priority: t.Priority, Created: e.now(),
		State: Waiting, FirstAnsweredService: t.FirstAnsweredService, FirstAnsweredPSTN: t.FirstAnsweredPSTN}
	got, err := e.store.CreateTask(ctx, nt)
	if errors.Is(err, fault.ErrConflict) {
		got, err = e.store.GetTask(ctx, tenantID, to.ID, t.ID)
	}
	if err != nil {
		return Task{}, fmt.Errorf("create task in target service: %w", err)
	}
	if _, err := e.ended(ctx, &svc, taskID, Transferred); err != nil {
		return got, err
	}
	return got, e.kick(ctx, tenantID, to.ID, KickNewTask, t.ID+"/transfer", time.Time{})
}

// EndACW ends the agent's after-call work now, if the service the call came from
// allows early end. *fault.FieldError when it does not or the agent is not in ACW.
func (e *Engine) EndACW(ctx context.Context, tenantID, agentID string) (AgentState, error) {
	now := e.now()
	a, err := e.store.UpdateAgentState(ctx, tenantID, agentID, func(a *AgentState) error {
		if a.ETag == "" {
			return fmt.Errorf("agent: %w", fault.ErrNotFound)
		}
		if !a.InACW(now) {
			return fault.Invalid("acw", "the agent is not in after-call work")
		}
		if !a.ACWEarlyEnd {
			return fault.Invalid("acw", "the service does not allow ending after-call work early")
		}
		a.ACWUntil = now
		return nil
	})
	if err != nil {
		return a, err
	}
	e.kickServicesNow(ctx, &a, KickACWEnd)
	return a, nil
}

// ExtendACW extends the agent's after-call work by 'by', up to the maximum extension
// of the service the call came from (*fault.FieldError beyond it).
func (e *Engine) ExtendACW(ctx context.Context, tenantID, agentID string, by time.Duration) (AgentState, error) {
	if by <= 0 {
		return AgentState{}, fault.Invalid("seconds", "must be positive")
	}
	now := e.now()
	a, err := e.store.UpdateAgentState(ctx, tenantID, agentID, func(a *AgentState) error {
		if a.ETag == "" {
			return fmt.Errorf("agent: %w", fault.ErrNotFound)
		}
		if !a.InACW(now) {
			return fault.Invalid("acw", "the agent is not in after-call work")
		}
		until := a.ACWUntil.Add(by)
		if until.After(a.ACWMaxUntil) {
			return fault.Invalid("seconds", "beyond the service's maximum extension")
		}
		a.ACWUntil = until
		return nil
	})
	if err != nil {
		return a, err
	}
	e.kickServicesAt(ctx, &a, KickACWEnd, a.ACWUntil)
	return a, nil
}

// ResetRONA ends the agent's RONA block now (the agent's own reset).
func (e *Engine) ResetRONA(ctx context.Context, tenantID, agentID string) (AgentState, error) {
	now := e.now()
	a, err := e.store.UpdateAgentState(ctx, tenantID, agentID, func(a *AgentState) error {
		if a.ETag == "" {
			return fmt.Errorf("agent: %w", fault.ErrNotFound)
		}
		if !now.Before(a.RONAUntil) {
			return errNoChange
		}
		a.RONAUntil = now
		return nil
	})
	if errors.Is(err, errNoChange) {
		return e.store.GetAgentState(ctx, tenantID, agentID)
	}
	if err != nil {
		return a, err
	}
	e.kickServicesNow(ctx, &a, KickRONAEnd)
	return a, nil
}

func (e *Engine) kickServicesNow(ctx context.Context, a *AgentState, reason string) {
	for _, s := range a.AllServices() {
		if err := e.wake(ctx, a.TenantID, s, reason); err != nil {
			e.log(ctx).Warn("kick not sent", "tenant", a.TenantID, "service", s, "reason", reason, "err", err)
		}
	}
}

// PresenceChanged is the presence refresher's hook, called once the changed presences
// are stored (and so in the rosters): every service of an agent whose new presence may
// be delivered to is woken (coalesced, see WakeWindow). It reads the agents'
// memberships only, never their states: RONA ends when an agent goes Offline by a
// rule read at decision time (RONA counts only if it began after the agent's last
// Offline). Errors are transient; the next kick of a service finds the agent anyway.
func (e *Engine) PresenceChanged(ctx context.Context, tenantID string, changed []presence.Presence) error {
	var ids []string
	for _, p := range changed {
		// The loosest policy: a service allowing Busy and Away. Services that allow
		// less are woken for nothing now and then, which is cheap.
		if PresenceReason(p, true, &Distribution{AllowBusy: true, AllowAway: true}) == "" {
			ids = append(ids, p.AgentID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	byAgent, err := e.store.Memberships(ctx, tenantID, ids)
	if err != nil {
		return fmt.Errorf("memberships: %w", err)
	}
	woken := map[string]bool{}
	var errs []error
	for _, id := range ids {
		for _, s := range byAgent[id] {
			if woken[s] {
				continue
			}
			woken[s] = true
			if err := e.wake(ctx, tenantID, s, KickPresence); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
