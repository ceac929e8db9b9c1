package calls

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/routing"
)

// TransferTo names where a connected call goes: another service of the tenant, or a
// phone number (E.164). Exactly one is set.
type TransferTo struct {
	Service string `json:"service,omitempty"`
	Phone   string `json:"phone,omitempty"`
}

func (t TransferTo) validate(current string) error {
	switch {
	case (t.Service == "") == (t.Phone == ""):
		return fault.Invalid("service", "name exactly one of service or phone")
	case t.Service != "":
		if err := routing.CheckID("service", t.Service); err != nil {
			return err
		}
		if strings.EqualFold(t.Service, current) {
			return fault.Invalid("service", "must be another service than the call's")
		}
	default:
		if !routing.IsE164(routing.NormalizeTarget(t.Phone)) {
			return fault.Invalid("phone", "must be an E.164 phone number (+ and 7..15 digits, the first not 0)")
		}
	}
	return nil
}

// Transfer moves a connected call (SPEC §3, §8):
//
//   - to another service: routing ends the task as Transferred (the agent goes to
//     after-call work) and queues the call there; the agent leaves the call and the
//     caller hears that service's music;
//   - to a phone number: with the PSTN licence of the first service that answered the
//     call, the agent leaves and the platform transfers the caller (the app leaves
//     when it completes); without it the task ends TransferFailed, the agent leaves,
//     and the caller hears the TransferFailed announcement and takes the exit.
//
// Errors: *fault.FieldError for a bad target; fault.ErrNotFound for an unknown call
// or service; fault.ErrConflict when the call is not connected.
func (c *Controller) Transfer(ctx context.Context, tenantID, key string, to TransferTo) (Call, error) {
	x, err := c.store.GetCall(ctx, tenantID, key)
	if err != nil {
		return Call{}, err
	}
	if err := to.validate(x.ServiceID); err != nil {
		return x, err
	}
	if x.Phase != PhaseConnected || x.TaskID == "" {
		return x, fmt.Errorf("the call is not connected to an agent: %w", fault.ErrConflict)
	}
	if to.Service != "" {
		svc, err := c.services.GetService(ctx, tenantID, to.Service)
		if err != nil {
			return x, fmt.Errorf("service: %w", err)
		}
		task, err := c.router.TransferToService(ctx, tenantID, x.ServiceID, x.TaskID, svc.ID)
		if err != nil {
			return x, err
		}
		return c.update(ctx, tenantID, key, func(y *Call, p *plan) error {
			if y.Phase != PhaseConnected {
				return errSkip
			}
			now := c.now()
			y.step(now, "transferred", y.Agent, "service "+svc.ID)
			c.dropAgent(y, p)
			y.ServiceID, y.TaskID, y.Phase, y.Due = svc.ID, task.ID, PhaseQueued, now.Add(MusicWatchdog)
			if m := svc.Calls.Prompts.Music; m != "" {
				c.playPrompt(y, p, MediaMusic, m, now)
			}
			return nil
		})
	}
	phone := Target{Kind: Phone, ID: routing.NormalizeTarget(to.Phone)}
	task, err := c.router.TransferToPSTN(ctx, tenantID, x.ServiceID, x.TaskID)
	if err != nil {
		return x, err
	}
	failed := task.Outcome == routing.TransferFailed
	call, err := c.update(ctx, tenantID, key, func(y *Call, p *plan) error {
		if y.Phase != PhaseConnected {
			return errSkip
		}
		now := c.now()
		c.dropAgent(y, p)
		if failed {
			y.step(now, "transferFailed", "", "no PSTN licence on the first answering service")
			return c.startAnnouncement(ctx, y, p, ExitTransferFailed, now)
		}
		y.step(now, "transferred", "", "phone")
		y.Phase, y.Due = PhaseTransferring, now.Add(TransferGrace)
		c.transfer(y, p, phone)
		return nil
	})
	if err != nil {
		return call, err
	}
	if failed && call.Phase == PhaseAnnouncing && call.Media.Kind != MediaAnnouncement {
		if err := c.takeExit(ctx, tenantID, key); err != nil {
			return call, err
		}
		return c.store.GetCall(ctx, tenantID, key)
	}
	return call, nil
}

// dropAgent removes the connected agent from the call.
func (c *Controller) dropAgent(x *Call, p *plan) {
	tid, callID, pid := x.TenantID, x.GraphID, x.AgentParticipant
	if pid != "" {
		p.add("remove agent", func(ctx context.Context) error { return c.platform.RemoveParticipant(ctx, tid, callID, pid) })
	}
	x.step(c.now(), "afterCallWork", x.Agent, "")
	x.Agent, x.AgentParticipant, x.AgentJoined = "", "", false
}

// HangUp ends a call now (an admin's decision): its legs and the call are hung up
// and its task ends (Completed with after-call work when an agent was connected,
// Abandoned otherwise). A call already over is returned as it is.
func (c *Controller) HangUp(ctx context.Context, tenantID, key string) (Call, error) {
	call, err := c.update(ctx, tenantID, key, func(y *Call, p *plan) error {
		if !y.Open() {
			return errSkip
		}
		now := c.now()
		c.cancelLegs(y, p, now, "hungUp")
		y.end(now, "HungUpByAdmin")
		c.hangUp(y.TenantID, y.GraphID, p)
		return nil
	})
	if err != nil || call.TaskID == "" || call.EndReason != "HungUpByAdmin" {
		return call, err
	}
	if _, err := c.router.CallStateChanged(ctx, routing.CallEvent{TenantID: tenantID, ServiceID: call.ServiceID, TaskID: call.TaskID,
		Change: routing.Ended}); err != nil && !errors.Is(err, fault.ErrNotFound) {
		return call, fmt.Errorf("end task: %w", err)
	}
	return call, nil
}
