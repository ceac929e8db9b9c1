package routing

import (
	"context"

	"github.com/teamscc/teamscc/shared/presence"
)

// Member is one agent of a service as the service's matcher sees it: the agent's
// routing state and the presence routing applies. State.ETag is the version of the
// agent's state the copy was taken at: a reservation is conditional on it, so a copy
// that is no longer current loses the race instead of booking the agent twice.
type Member struct {
	State       AgentState
	Presence    presence.Presence
	HasPresence bool
}

// Queue is what a kick reads of a service: the service, its open tasks and its
// members.
type Queue struct {
	Service Service
	Tasks   []Task
	Members []Member
}

// Store keeps services, their tasks, and agent routing states.
// Implementations are safe for concurrent use. Not-found is fault.ErrNotFound, a lost
// conditional write fault.ErrPrecondition, an insert of an existing id
// fault.ErrConflict (errors.Is). Values returned carry the ETag they were read or
// written at.
//
// Rosters. A kick reads its service's members, never the whole tenant: the store
// keeps, for every service, a roster of the agents whose AllServices name it, each
// with a copy of its state and its presence (LoadMatch). Agent-state writes keep the
// rosters in step (an agent leaving a service leaves its roster), and stored
// presences reach the rosters of the agent's services before SavePresences returns
// (presence.Store, implemented by the same store). A copy may lag the agent's state,
// but only in a way a reservation detects: it carries the ETag of the state it was
// copied from, so a reservation based on an outdated copy fails with
// fault.ErrPrecondition. A change that lets an agent take more work (Loosens) reaches
// the rosters before the write that makes it true, so a roster never keeps an agent
// out longer than its state does (if that write then fails, a reservation based on
// the copy applies the change it described, which is what its writer meant to do).
// ReplaceAgentState, the reservation path, must not change AllServices except when
// inserting.
type Store interface {
	// PutService inserts or replaces a service (admin and seeding; not conditional).
	PutService(ctx context.Context, s Service) error
	// CreateService inserts s with Version 1; fault.ErrConflict when the id exists.
	CreateService(ctx context.Context, s Service) (Service, error)
	// UpdateService reads the service, applies fn and writes it conditionally with
	// Version one higher, retrying fn on a lost race (so fn must be repeatable). An
	// error from fn aborts with nothing written and is returned as is; a missing
	// service is fault.ErrNotFound. The ids cannot be changed by fn.
	UpdateService(ctx context.Context, tenantID, serviceID string, fn func(*Service) error) (Service, error)
	// GetService returns one service.
	GetService(ctx context.Context, tenantID, serviceID string) (Service, error)
	// ListServices returns the tenant's services, ordered by id.
	ListServices(ctx context.Context, tenantID string) ([]Service, error)
	// ServiceByTarget returns the tenant's service that has target (a resource
	// account id or an E.164 number, compared normalized) among its Targets, by the
	// rule of ServiceForTarget: fault.ErrNotFound when none, fault.ErrConflict when
	// two services claim it.
	ServiceByTarget(ctx context.Context, tenantID, target string) (Service, error)
	// PurgeService removes a PendingDeletion service and every task of it (the
	// provisioning run). A service not pending deletion is fault.ErrPrecondition and
	// nothing is removed; a missing one is fault.ErrNotFound. The tasks go first and
	// the service last, so an interrupted purge is finished by the next one. It
	// returns the number of tasks removed.
	PurgeService(ctx context.Context, tenantID, serviceID string) (int, error)
	// LoadQueue returns the service and its open tasks (not Done), in one read where
	// the adapter allows it: the service and its tasks share a partition. Done tasks
	// are never read: its cost follows the open tasks, not the service's history.
	LoadQueue(ctx context.Context, tenantID, serviceID string) (Service, []Task, error)
	// LoadMatch returns what a kick reads: the service, its open tasks and its roster
	// (see Rosters), in one read where the adapter allows it. Its cost follows the
	// service's open tasks and members, not the tenant's agents. The members' states
	// are read-only: clone one (AgentState.Clone) before changing it.
	LoadMatch(ctx context.Context, tenantID, serviceID string) (Queue, error)
	// Memberships returns the services (AllServices) of each of the given agents
	// that has any, as the rosters know them; agents unknown or in no service are
	// left out. Its cost does not grow with the tenant's agents while their
	// memberships do not change.
	Memberships(ctx context.Context, tenantID string, agentIDs []string) (map[string][]string, error)

	// GetTask returns one task, open or done.
	GetTask(ctx context.Context, tenantID, serviceID, taskID string) (Task, error)
	// CreateTask inserts a task; fault.ErrConflict when its id exists in the service.
	CreateTask(ctx context.Context, t Task) (Task, error)
	// ReplaceTask writes t only if the stored task is still at t.ETag
	// (fault.ErrPrecondition otherwise; fault.ErrNotFound if it vanished).
	ReplaceTask(ctx context.Context, t Task) (Task, error)
	// UpdateTask reads the task, applies fn and writes it conditionally, retrying fn
	// on a lost race. An error from fn aborts with nothing written and is returned
	// as is; a missing task is fault.ErrNotFound.
	UpdateTask(ctx context.Context, tenantID, serviceID, taskID string, fn func(*Task) error) (Task, error)

	// ListAgentStates returns every agent routing state of the tenant (one read).
	ListAgentStates(ctx context.Context, tenantID string) ([]AgentState, error)
	// GetAgentState returns one agent's state.
	GetAgentState(ctx context.Context, tenantID, agentID string) (AgentState, error)
	// ReplaceAgentState writes a only if the stored state is still at a.ETag; with an
	// empty ETag it inserts (fault.ErrConflict if the agent exists). One try, no
	// retry: the reservation that loses moves on to the next candidate.
	ReplaceAgentState(ctx context.Context, a AgentState) (AgentState, error)
	// UpdateAgentState reads the agent's state (a zero state with the ids set when
	// there is none), applies fn and writes it conditionally, retrying fn on a lost
	// race so no update is lost. An error from fn aborts with nothing written and is
	// returned as is.
	UpdateAgentState(ctx context.Context, tenantID, agentID string, fn func(*AgentState) error) (AgentState, error)
}
