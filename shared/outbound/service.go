package outbound

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/queue"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/tenant"
)

// Tenants is what the service reads of tenants (tenant.Store satisfies it).
type Tenants interface {
	GetTenant(ctx context.Context, id string) (tenant.Tenant, error)
}

// Routes is what the service reads of routing (routing.Store satisfies it).
type Routes interface {
	GetService(ctx context.Context, tenantID, serviceID string) (routing.Service, error)
	GetTask(ctx context.Context, tenantID, serviceID, taskID string) (routing.Task, error)
}

// Router turns a due task into routing work (*routing.Engine satisfies it).
type Router interface {
	OutboundDue(ctx context.Context, in routing.OutboundDue) (routing.Task, error)
}

// Options wires a Service.
type Options struct {
	Store   Store
	Tenants Tenants
	Routes  Routes
	Router  Router
	Sender  queue.Sender
	Queue   string        // the due queue (OutboundDueQueue)
	Horizon time.Duration // how far ahead a due time may be; 0 = DefaultHorizon
	// ScheduleGrace is how old an accepted task without a scheduled message must be
	// before the reconciler schedules it (so it does not race the request that is
	// scheduling it right now); 0 = one minute.
	ScheduleGrace time.Duration
	Now           func() time.Time
	Log           func(context.Context) *slog.Logger
}

// Service schedules, cancels, fires and reconciles outbound tasks.
type Service struct{ o Options }

// NewService returns a Service.
func NewService(o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Horizon <= 0 {
		o.Horizon = DefaultHorizon
	}
	if o.ScheduleGrace <= 0 {
		o.ScheduleGrace = time.Minute
	}
	if o.Log == nil {
		o.Log = func(context.Context) *slog.Logger { return slog.New(slog.DiscardHandler) }
	}
	return &Service{o: o}
}

// ErrTaskIDConflict: the task id exists with different content (errors.Is; it also
// is fault.ErrConflict and permanent).
var ErrTaskIDConflict = errors.New("taskId: a task with this id exists with different content")

type conflictErr struct{}

func (conflictErr) Error() string { return ErrTaskIDConflict.Error() }
func (conflictErr) Unwrap() []error {
	return []error{ErrTaskIDConflict, fault.ErrConflict}
}

// Result is what a scheduling request got.
type Result struct {
	Task    Task
	Created bool // false: a replay of an accepted request
}

// DueMessage is the body of the scheduled message on the due queue.
type DueMessage struct {
	TenantID  string `json:"tenantId"`
	ServiceID string `json:"serviceId"`
	TaskID    string `json:"taskId"`
}

// lookup checks the tenant and the service; unknown ones are fault.ErrNotFound,
// marked permanent.
func (s *Service) lookup(ctx context.Context, tenantID, serviceID string) (tenant.Tenant, routing.Service, error) {
	t, err := s.o.Tenants.GetTenant(ctx, tenantID)
	if errors.Is(err, fault.ErrNotFound) {
		return t, routing.Service{}, fault.Permanent(fmt.Errorf("tenantId: unknown tenant: %w", fault.ErrNotFound))
	}
	if err != nil {
		return t, routing.Service{}, fmt.Errorf("get tenant: %w", err)
	}
	svc, err := s.o.Routes.GetService(ctx, tenantID, serviceID)
	if errors.Is(err, fault.ErrNotFound) {
		return t, svc, fault.Permanent(fmt.Errorf("serviceId: unknown service: %w", fault.ErrNotFound))
	}
	if err != nil {
		return t, svc, fmt.Errorf("get service: %w", err)
	}
	return t, svc, nil
}

// Schedule validates r, takes a slot of the service's cap and schedules the task's
// message for its due time. Errors: *fault.FieldError (400), fault.ErrNotFound for an
// unknown tenant or service, ErrTaskIDConflict, *LimitError over the cap (nothing
// changed); anything else is transient and a retry of the same request is safe (it
// finds its task and finishes the scheduling).
func (s *Service) Schedule(ctx context.Context, r Request) (Result, error) {
	now := s.o.Now().UTC()
	t, err := Validate(r, now, s.o.Horizon)
	if err != nil {
		return Result{}, err
	}
	ten, svc, err := s.lookup(ctx, t.TenantID, t.ServiceID)
	if err != nil {
		return Result{}, err
	}
	switch {
	case ten.Deleted || svc.PendingDeletion:
		return Result{}, fault.Invalid("serviceId", "the service is pending deletion")
	case svc.Type == routing.None:
		return Result{}, fault.Invalid("serviceId", "a service of type None takes no outbound tasks")
	case t.CustomerKind == PSTN && !svc.PSTNLicence:
		return Result{}, fault.Invalid("customer", "a phone number needs a service with a PSTN licence; this service calls UPNs only")
	}
	t.DirectInvitePSTN, t.DirectInviteUPN = ten.Extensions.DirectInvitePSTN, ten.Extensions.DirectInviteUPN
	t.Accepted, t.UpdatedAt = now, now
	limit := ten.Extensions.OutboundCap
	if limit <= 0 {
		limit = tenant.DefaultOutboundCap
	}
	got, created, err := s.o.Store.ReserveOutbound(ctx, t, limit)
	if err != nil {
		if errors.Is(err, ErrLimitReached) {
			return Result{}, err
		}
		return Result{}, fmt.Errorf("reserve outbound slot: %w", err)
	}
	if !created && Fingerprint(got) != Fingerprint(t) {
		return Result{}, conflictErr{}
	}
	if got.State == Scheduled && got.Sequence == 0 {
		if got, err = s.schedule(ctx, got); err != nil {
			return Result{}, err
		}
	}
	if created {
		s.o.Log(ctx).Info("outbound task accepted", "tenant", got.TenantID, "service", got.ServiceID, "task", got.ID,
			"kind", string(got.CustomerKind), "due", got.Due)
	}
	return Result{Task: got, Created: created}, nil
}

// schedule sends the task's message for its due time (now when past) and records its
// sequence number.
func (s *Service) schedule(ctx context.Context, t Task) (Task, error) {
	if s.o.Sender == nil {
		return t, errors.New("outbound: no Service Bus sender configured")
	}
	at := t.Due
	if now := s.o.Now().UTC(); at.Before(now) {
		at = now
	}
	body, _ := json.Marshal(DueMessage{TenantID: t.TenantID, ServiceID: t.ServiceID, TaskID: t.ID})
	seq, err := s.o.Sender.Schedule(ctx, s.o.Queue, queue.Message{ID: MessageID(t), ContentType: "application/json", Body: body}, at)
	if err != nil {
		return t, fmt.Errorf("schedule outbound message: %w", err)
	}
	if err := s.o.Store.SetOutboundSchedule(ctx, t.TenantID, t.ServiceID, t.ID, seq, at); err != nil {
		return t, fmt.Errorf("record outbound schedule: %w", err)
	}
	t.Sequence, t.ScheduledAt = seq, at
	return t, nil
}

// List returns the service's live tasks.
func (s *Service) List(ctx context.Context, tenantID, serviceID string) ([]Task, error) {
	if err := routing.CheckID("tenantId", tenantID); err != nil {
		return nil, err
	}
	if err := routing.CheckID("serviceId", serviceID); err != nil {
		return nil, err
	}
	if _, _, err := s.lookup(ctx, tenantID, serviceID); err != nil {
		return nil, err
	}
	return s.o.Store.ListOutbound(ctx, tenantID, serviceID, true)
}

// Cancel cancels a scheduled task: its slot is freed and its message cancelled. A task
// already final is returned as it is; one already handed to routing ends with its call.
func (s *Service) Cancel(ctx context.Context, tenantID, serviceID, taskID string) (Task, error) {
	if err := CheckTaskID(taskID); err != nil {
		return Task{}, err
	}
	t, err := s.o.Store.GetOutbound(ctx, tenantID, serviceID, taskID)
	if err != nil {
		return Task{}, err
	}
	switch t.State {
	case Routed:
		return t, fault.Invalid("taskId", "the task is due and being routed: it ends with its call")
	case Scheduled:
	default:
		return t, nil
	}
	t, err = s.o.Store.FinishOutbound(ctx, tenantID, serviceID, taskID, Cancelled, s.o.Now().UTC())
	if err != nil {
		return Task{}, fmt.Errorf("cancel outbound task: %w", err)
	}
	if t.State == Cancelled && t.Sequence > 0 && s.o.Sender != nil {
		// The slot is already free; a message that still fires finds the task
		// cancelled and does nothing.
		if err := s.o.Sender.Cancel(ctx, s.o.Queue, t.Sequence); err != nil {
			s.o.Log(ctx).Warn("scheduled outbound message not cancelled", "tenant", tenantID, "service", serviceID, "task", taskID, "err", err)
		}
	}
	return t, nil
}

// Due handles a task's scheduled message: the task becomes a routing task. A task no
// longer Scheduled (cancelled, already routed) is left alone; a task that cannot be
// routed any more (service deleted, licence gone) fails and frees its slot.
func (s *Service) Due(ctx context.Context, m DueMessage) error {
	if err := routing.CheckID("tenantId", m.TenantID); err != nil {
		return err
	}
	if err := routing.CheckID("serviceId", m.ServiceID); err != nil {
		return err
	}
	if err := CheckTaskID(m.TaskID); err != nil {
		return err
	}
	t, err := s.o.Store.GetOutbound(ctx, m.TenantID, m.ServiceID, m.TaskID)
	if errors.Is(err, fault.ErrNotFound) {
		return fault.Permanent(fmt.Errorf("taskId: unknown outbound task: %w", err))
	}
	if err != nil {
		return err
	}
	if t.State != Scheduled {
		return nil
	}
	rt, err := s.o.Router.OutboundDue(ctx, routing.OutboundDue{TenantID: t.TenantID, ServiceID: t.ServiceID,
		TaskID: RoutingTaskID(t.ID), Priority: t.Priority, Call: routing.OutboundCall{Customer: t.Customer,
			PSTN: t.CustomerKind == PSTN, DirectInvitePSTN: t.DirectInvitePSTN, DirectInviteUPN: t.DirectInviteUPN,
			Notes: t.Notes, Params: t.Params}})
	now := s.o.Now().UTC()
	if err != nil && (fault.IsPermanent(err) || errors.Is(err, fault.ErrNotFound)) {
		s.o.Log(ctx).Warn("outbound task cannot be routed: failed", "tenant", t.TenantID, "service", t.ServiceID, "task", t.ID, "err", err)
		_, ferr := s.o.Store.FinishOutbound(ctx, t.TenantID, t.ServiceID, t.ID, Failed, now)
		return ferr
	}
	if err != nil {
		return err // redelivered: OutboundDue finds its task and kicks again
	}
	if _, err := s.o.Store.MarkOutboundRouted(ctx, t.TenantID, t.ServiceID, t.ID, rt.ID, now); err != nil {
		return err
	}
	if !rt.Open() {
		return s.finishFromRouting(ctx, t, rt)
	}
	return nil
}

// finalState maps a routing outcome to the outbound task's final state.
func finalState(o routing.Outcome) State {
	switch o {
	case routing.Completed, routing.Transferred, routing.TransferredOut:
		return Completed
	case routing.Abandoned:
		return Abandoned
	default:
		return Failed
	}
}

func (s *Service) finishFromRouting(ctx context.Context, t Task, rt routing.Task) error {
	_, err := s.o.Store.FinishOutbound(ctx, t.TenantID, t.ServiceID, t.ID, finalState(rt.Outcome), s.o.Now().UTC())
	return err
}

// OverdueAfter is how long past its scheduled time a task may stay Scheduled before
// the reconciler schedules its message again (longer than Service Bus duplicate
// detection's 10 minutes, so the new message is not dropped).
const OverdueAfter = 15 * time.Minute

// ReconcileResult says what one reconciler run did.
type ReconcileResult struct {
	Services  int // services with an outbound counter
	Repaired  int // counters that differed from the count of live tasks
	Scheduled int // accepted tasks whose scheduling never happened, scheduled now
	Finished  int // routed tasks whose routing task had ended, finished now
}

// Reconcile repairs every service's counter from its live tasks (the truth), schedules
// accepted tasks whose schedule step never happened (a process died between the
// insert and the schedule), and frees the slots of routed tasks whose routing task has
// ended. Errors of one service do not stop the others; they are joined.
func (s *Service) Reconcile(ctx context.Context) (ReconcileResult, error) {
	var res ReconcileResult
	counters, err := s.o.Store.ListOutboundCounters(ctx)
	if err != nil {
		return res, fmt.Errorf("list outbound counters: %w", err)
	}
	var errs []error
	now := s.o.Now().UTC()
	for _, c := range counters {
		res.Services++
		tasks, err := s.o.Store.ListOutbound(ctx, c.TenantID, c.ServiceID, true)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, t := range tasks {
			switch {
			case t.State == Scheduled && (t.Sequence == 0 && now.Sub(t.Accepted) >= s.o.ScheduleGrace ||
				t.Sequence != 0 && now.Sub(t.ScheduledAt) >= OverdueAfter):
				// Never scheduled (a process died between the insert and the schedule),
				// or its message is long overdue (expired, dead-lettered): schedule it
				// (again). A duplicate delivery is harmless: Due acts on Scheduled
				// tasks only and the routing task is created once.
				if _, err := s.schedule(ctx, t); err != nil {
					errs = append(errs, err)
					continue
				}
				res.Scheduled++
			case t.State == Routed:
				rt, err := s.o.Routes.GetTask(ctx, t.TenantID, t.ServiceID, t.RoutingTaskID)
				if errors.Is(err, fault.ErrNotFound) {
					rt, err = routing.Task{State: routing.Done}, nil // nothing left to route
				}
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if rt.Open() {
					continue
				}
				if err := s.finishFromRouting(ctx, t, rt); err != nil {
					errs = append(errs, err)
					continue
				}
				res.Finished++
			}
		}
		before, after, err := s.o.Store.RepairOutboundCounter(ctx, c.TenantID, c.ServiceID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if before != after {
			res.Repaired++
			s.o.Log(ctx).Warn("outbound counter repaired", "tenant", c.TenantID, "service", c.ServiceID, "was", before, "now", after)
		}
	}
	return res, errors.Join(errs...)
}
