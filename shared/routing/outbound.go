package routing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
)

// OutboundCall is an outbound task that became due (package outbound): the customer
// to call, for the dialler, and the tenant's "directly invite" flags. Customer is a
// customer identifier: never log it.
type OutboundCall struct {
	Customer         string `json:"customer"`
	PSTN             bool   `json:"pstn"` // Customer is an E.164 number (else a UPN)
	DirectInvitePSTN bool   `json:"directInvitePstn"`
	DirectInviteUPN  bool   `json:"directInviteUpn"`
	Notes            string `json:"notes,omitempty"`
	// Params are the caller's routing parameters.
	Params map[string]string `json:"params,omitempty"`
}

// OutboundDue is an outbound task that is due, to be routed.
type OutboundDue struct {
	TenantID  string
	ServiceID string
	TaskID    string // the routing task's id
	Priority  Priority
	Call      OutboundCall
}

// OutboundDue creates the routing task of a due outbound task and kicks the service,
// so it is offered to eligible agents exactly like an inbound call. A phone number
// needs the service's PSTN licence (SPEC §3). Idempotent by task id: a replay returns
// the existing task (and kicks again while it is open; duplicate detection drops the
// repeat). Errors: *fault.FieldError for a service that takes no such task;
// fault.ErrNotFound for an unknown tenant or service; anything else is transient.
func (e *Engine) OutboundDue(ctx context.Context, in OutboundDue) (Task, error) {
	if err := CheckID("tenantId", in.TenantID); err != nil {
		return Task{}, err
	}
	if err := CheckID("serviceId", in.ServiceID); err != nil {
		return Task{}, err
	}
	if err := CheckID("taskId", in.TaskID); err != nil {
		return Task{}, err
	}
	p, err := ParsePriority(string(in.Priority))
	if err != nil {
		return Task{}, err
	}
	t, err := e.tenant(ctx, in.TenantID)
	if err != nil {
		return Task{}, fmt.Errorf("tenant: %w", err)
	}
	svc, err := e.store.GetService(ctx, in.TenantID, in.ServiceID)
	if err != nil {
		return Task{}, fmt.Errorf("service: %w", err)
	}
	switch {
	case t.Deleted || svc.PendingDeletion:
		return Task{}, fault.Invalid("serviceId", "the service is pending deletion")
	case svc.Type == None:
		return Task{}, fault.Invalid("serviceId", "a service of type None takes no outbound tasks")
	case in.Call.PSTN && !svc.PSTNLicence:
		return Task{}, fault.Invalid("customer", "a phone number needs a service with a PSTN licence")
	}
	call := in.Call
	task := Task{TenantID: in.TenantID, ServiceID: in.ServiceID, ID: in.TaskID, Priority: p, Created: e.now(),
		State: Waiting, Outbound: &call}
	got, err := e.store.CreateTask(ctx, task)
	if errors.Is(err, fault.ErrConflict) {
		got, err = e.store.GetTask(ctx, in.TenantID, in.ServiceID, in.TaskID)
	}
	if err != nil {
		return Task{}, fmt.Errorf("create outbound task: %w", err)
	}
	if got.Open() {
		if err := e.kick(ctx, in.TenantID, in.ServiceID, KickNewTask, got.ID, time.Time{}); err != nil {
			return got, err
		}
	}
	return got, nil
}
