package tables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/routing"
)

// Routing tables (before the prefix):
//
//	RoutingQueues   PK tenant id "_" service id   RK "a_" agent id      the service's roster (roster.go)
//	                                              RK "t_" task id       an open task: Data (JSON Task) + Open, State, Priority
//	                                              RK "~service"         Data (JSON Service) + Type, PendingDeletion, Roster
//	                                              RK "~~t_" task id     a done task (the same columns + Ended), or the stub (Stub)
//	                                                                    that claims the id of an open one
//	RoutingAgents   PK tenant id                  RK agent id           Data (JSON AgentState) + HoldTask, ACWUntil, RONAUntil, Svc
//	                                              RK "~members"         membership version (roster.go)
//
// A service, its open tasks and its roster share a partition and sort before its
// done tasks, so one range query (RowKey < "~~") is everything a kick reads, and
// its cost follows the open tasks and the members, never the service's history or
// the tenant's other agents. A task moves from "t_" to "~~t_" when it is done, in one
// transaction that also replaces its stub; the stub, written with the open row,
// makes an id taken for good (CreateTask is a conflict whether the task is open or
// done).
const (
	tableRoutingQueues = "RoutingQueues"
	tableRoutingAgents = "RoutingAgents"

	serviceRow = "~service"
	taskPrefix = "t_"
	donePrefix = "~~t_"
	matchEnd   = "~~" // RowKeys below it: roster, open tasks, service
)

var _ routing.Store = (*Store)(nil)

func (s *Store) client(name string) *aztables.Client { return s.svc.NewClient(s.table(name)) }

func queuePK(tenantID, serviceID string) string { return tenantID + "_" + serviceID }

// serviceEntity is the service row. Roster says the service's roster is complete:
// every service row written by this version has it (agent writes keep every roster
// whether or not its service exists yet); a row without it was written before
// rosters existed, and the first LoadMatch builds its roster (buildRoster).
func serviceEntity(sv routing.Service) (row, error) {
	data, err := json.Marshal(sv)
	if err != nil {
		return row{}, err
	}
	return newRow("service", "tenantId", queuePK(sv.TenantID, sv.ID), "serviceId", serviceRow, props{
		"Data": string(data), "Type": string(sv.Type), "PendingDeletion": sv.PendingDeletion, "UpdatedAt": sv.UpdatedAt, "Roster": true,
	})
}

// PutService implements routing.Store (insert or replace).
func (s *Store) PutService(ctx context.Context, sv routing.Service) error {
	if err := checkKey("serviceId", sv.ID); err != nil {
		return fmt.Errorf("put service: %w", err)
	}
	r, err := serviceEntity(sv)
	if err != nil {
		return fmt.Errorf("put service: %w", err)
	}
	_, err = s.client(tableRoutingQueues).UpsertEntity(ctx, r.body, replace)
	return wrap("put service", err)
}

// CreateService implements routing.Store (AddEntity: 409 → fault.ErrConflict).
func (s *Store) CreateService(ctx context.Context, sv routing.Service) (routing.Service, error) {
	if err := checkKey("serviceId", sv.ID); err != nil {
		return routing.Service{}, fmt.Errorf("create service: %w", err)
	}
	sv = sv.Clone()
	sv.Version = 1
	r, err := serviceEntity(sv)
	if err != nil {
		return routing.Service{}, fmt.Errorf("create service: %w", err)
	}
	if _, err := s.client(tableRoutingQueues).AddEntity(ctx, r.body, nil); err != nil {
		return routing.Service{}, wrap("create service", err)
	}
	return sv, nil
}

// UpdateService implements routing.Store: read with the ETag, fn, write If-Match; a
// lost race (412) starts over after a short jittered wait.
func (s *Store) UpdateService(ctx context.Context, tenantID, serviceID string, fn func(*routing.Service) error) (routing.Service, error) {
	if err := checkKey("tenantId", queuePK(tenantID, serviceID)); err != nil {
		return routing.Service{}, fmt.Errorf("update service: %w", err)
	}
	c := s.client(tableRoutingQueues)
	for attempt := 0; ; attempt++ {
		resp, err := c.GetEntity(ctx, queuePK(tenantID, serviceID), serviceRow, nil)
		if err != nil {
			return routing.Service{}, wrap("update service", err)
		}
		r, err := decodeRecord(resp.Value)
		if err != nil {
			return routing.Service{}, fmt.Errorf("update service: %w", err)
		}
		sv, err := decodeService(r)
		if err != nil {
			return routing.Service{}, fmt.Errorf("update service: %w", err)
		}
		if !r.has("Roster") { // the row claims a complete roster once written: make it so first
			if _, err := s.buildRoster(ctx, tenantID, serviceID); err != nil {
				return routing.Service{}, fmt.Errorf("update service: %w", err)
			}
		}
		base := sv.Version
		if err := fn(&sv); err != nil {
			return routing.Service{}, err
		}
		sv.TenantID, sv.ID, sv.Version = tenantID, serviceID, base+1
		row, err := serviceEntity(sv)
		if err != nil {
			return routing.Service{}, fmt.Errorf("update service: %w", err)
		}
		_, err = s.updateIf(ctx, c, row, string(resp.ETag))
		if err == nil {
			return sv.Clone(), nil
		}
		if !errors.Is(err, fault.ErrPrecondition) {
			return routing.Service{}, fmt.Errorf("update service: %w", err)
		}
		if attempt+1 >= maxAttempts {
			return routing.Service{}, fmt.Errorf("update service: gave up after %d lost races: %w", maxAttempts, err)
		}
		if err := fault.Backoff(ctx, attempt); err != nil {
			return routing.Service{}, fmt.Errorf("update service: %w", err)
		}
	}
}

func decodeService(r record) (routing.Service, error) {
	var sv routing.Service
	err := r.data("service", &sv)
	return sv, err
}

// GetService implements routing.Store.
func (s *Store) GetService(ctx context.Context, tenantID, serviceID string) (routing.Service, error) {
	if err := checkKey("tenantId", queuePK(tenantID, serviceID)); err != nil {
		return routing.Service{}, fmt.Errorf("get service: %w", err)
	}
	resp, err := s.client(tableRoutingQueues).GetEntity(ctx, queuePK(tenantID, serviceID), serviceRow, nil)
	if err != nil {
		return routing.Service{}, wrap("get service", err)
	}
	r, err := decodeRecord(resp.Value)
	if err != nil {
		return routing.Service{}, fmt.Errorf("get service: %w", err)
	}
	return decodeService(r)
}

// ListServices implements routing.Store: a range query over the tenant's queue
// partitions for their service rows.
func (s *Store) ListServices(ctx context.Context, tenantID string) ([]routing.Service, error) {
	if err := checkKey("tenantId", tenantID); err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	// '`' is the character after '_': the range holds exactly "tenant_*".
	filter := "PartitionKey ge " + odataString(tenantID+"_") + " and PartitionKey lt " + odataString(tenantID+"`") +
		" and RowKey eq " + odataString(serviceRow)
	out := []routing.Service{}
	err := listAll(ctx, s.client(tableRoutingQueues), filter, "Data", func(r record) error {
		sv, err := decodeService(r)
		out = append(out, sv)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func decodeTask(r record, etag string) (routing.Task, error) {
	var t routing.Task
	if err := r.data("task", &t); err != nil {
		return t, err
	}
	t.ETag = etag
	return t, nil
}

// LoadQueue implements routing.Store: one range query for the service row and the
// open tasks (RowKeys "t_" up to the done range).
func (s *Store) LoadQueue(ctx context.Context, tenantID, serviceID string) (routing.Service, []routing.Task, error) {
	q, _, err := s.loadRange(ctx, tenantID, serviceID, taskPrefix)
	if err != nil {
		return routing.Service{}, nil, fmt.Errorf("load queue: %w", err)
	}
	return q.Service, q.Tasks, nil
}

// LoadMatch implements routing.Store: one range query for the roster, the open tasks
// and the service row (RowKeys below the done range). A service whose roster was
// never built (written before rosters existed) has it built first.
func (s *Store) LoadMatch(ctx context.Context, tenantID, serviceID string) (routing.Queue, error) {
	q, complete, err := s.loadRange(ctx, tenantID, serviceID, "")
	if err == nil && !complete {
		q.Members, err = s.buildRoster(ctx, tenantID, serviceID)
	}
	if err != nil {
		return routing.Queue{}, fmt.Errorf("load match: %w", err)
	}
	return q, nil
}

// loadRange reads the queue partition from RowKey from (inclusive; "" from the
// start) to the done range. Done tasks still in the open range (written before done
// tasks moved) are left out and moved, a transaction's worth per call.
func (s *Store) loadRange(ctx context.Context, tenantID, serviceID, from string) (routing.Queue, bool, error) {
	pk := queuePK(tenantID, serviceID)
	if err := checkKey("serviceId", pk); err != nil {
		return routing.Queue{}, false, err
	}
	filter := "PartitionKey eq " + odataString(pk) + " and RowKey lt " + odataString(matchEnd)
	if from != "" {
		filter += " and RowKey ge " + odataString(from)
	}
	var (
		q        = routing.Queue{Tasks: []routing.Task{}, Members: []routing.Member{}}
		found    bool
		complete bool
		stale    []routing.Task
	)
	err := listAll(ctx, s.client(tableRoutingQueues), filter, "", func(r record) error {
		switch rk := r.str("RowKey"); {
		case rk == serviceRow:
			found, complete = true, r.has("Roster")
			var err error
			q.Service, err = decodeService(r)
			return err
		case strings.HasPrefix(rk, rosterPrefix):
			m, err := decodeMember(r)
			q.Members = append(q.Members, m)
			return err
		case strings.HasPrefix(rk, taskPrefix):
			t, err := decodeTask(r, r.str("odata.etag"))
			if err != nil {
				return err
			}
			if t.Open() {
				q.Tasks = append(q.Tasks, t)
			} else {
				stale = append(stale, t)
			}
		}
		return nil
	})
	if err != nil {
		return routing.Queue{}, false, err
	}
	if !found {
		return routing.Queue{}, false, fault.ErrNotFound
	}
	s.moveDone(ctx, stale)
	return q, complete, nil
}

// moveDone moves done tasks found in the open range to the done range (best effort;
// the next read moves what is left).
func (s *Store) moveDone(ctx context.Context, tasks []routing.Task) {
	const perBatch = maxBatchEntities / 2
	if len(tasks) > perBatch {
		tasks = tasks[:perBatch]
	}
	var acts []action
	for _, t := range tasks {
		open, err1 := taskEntity(t, taskPrefix)
		done, err2 := taskEntity(t, donePrefix)
		if err1 != nil || err2 != nil {
			continue
		}
		e := azcore.ETag(t.ETag)
		acts = append(acts, action{kind: aztables.TransactionTypeDelete, row: open, ifMatch: &e},
			action{kind: aztables.TransactionTypeInsertReplace, row: done})
	}
	_ = submit(ctx, s.client(tableRoutingQueues), acts)
}

// taskEntity is task t's row under prefix (taskPrefix while open, donePrefix done).
func taskEntity(t routing.Task, prefix string) (row, error) {
	data, err := json.Marshal(t)
	if err != nil {
		return row{}, err
	}
	return newRow("task", "serviceId", queuePK(t.TenantID, t.ServiceID), "taskId", prefix+t.ID, props{
		"Data": string(data), "Open": t.Open(), "State": string(t.State), "Priority": string(t.Priority),
		"Outcome": string(t.Outcome), "Created": t.Created, "Ended": t.EndedAt, // Ended: only when set (retention.go)
	})
}

// taskStub claims an open task's id in the done range (see the layout).
func taskStub(t routing.Task) (row, error) {
	return newRow("task", "serviceId", queuePK(t.TenantID, t.ServiceID), "taskId", donePrefix+t.ID, props{"Stub": true})
}

// GetTask implements routing.Store: the open row, else the done one (two point reads
// for a done task).
func (s *Store) GetTask(ctx context.Context, tenantID, serviceID, taskID string) (routing.Task, error) {
	pk := queuePK(tenantID, serviceID)
	if err := errors.Join(checkKey("serviceId", pk), checkKey("taskId", donePrefix+taskID)); err != nil {
		return routing.Task{}, fmt.Errorf("get task: %w", err)
	}
	c := s.client(tableRoutingQueues)
	// A stub without its open row: the task was moved between the two reads (read
	// again), or a purge is under way (not found).
	for round := 0; round < 2; round++ {
		for _, prefix := range []string{taskPrefix, donePrefix} {
			resp, err := c.GetEntity(ctx, pk, prefix+taskID, nil)
			if err = classify(err); errors.Is(err, fault.ErrNotFound) {
				continue
			}
			if err != nil {
				return routing.Task{}, fmt.Errorf("get task: %w", err)
			}
			r, err := decodeRecord(resp.Value)
			if err != nil {
				return routing.Task{}, fmt.Errorf("get task: %w", err)
			}
			if r.has("Stub") {
				break
			}
			return decodeTask(r, string(resp.ETag))
		}
	}
	return routing.Task{}, fmt.Errorf("get task: %w", fault.ErrNotFound)
}

// CreateTask implements routing.Store. An open task is written with its stub in one
// transaction (either existing: fault.ErrConflict) and read back for its ETag; a task
// created done (a full queue) is one insert in the done range.
func (s *Store) CreateTask(ctx context.Context, t routing.Task) (routing.Task, error) {
	c := s.client(tableRoutingQueues)
	if !t.Open() {
		r, err := taskEntity(t, donePrefix)
		if err != nil {
			return routing.Task{}, fmt.Errorf("create task: %w", err)
		}
		resp, err := c.AddEntity(ctx, r.body, nil)
		if err != nil {
			return routing.Task{}, wrap("create task", err)
		}
		t = t.Clone()
		t.ETag = string(resp.ETag)
		return t, nil
	}
	r, err := taskEntity(t, taskPrefix)
	if err != nil {
		return routing.Task{}, fmt.Errorf("create task: %w", err)
	}
	stub, err := taskStub(t)
	if err != nil {
		return routing.Task{}, fmt.Errorf("create task: %w", err)
	}
	if err := submit(ctx, c, []action{{kind: aztables.TransactionTypeAdd, row: stub}, {kind: aztables.TransactionTypeAdd, row: r}}); err != nil {
		return routing.Task{}, fmt.Errorf("create task: %w", err)
	}
	return s.GetTask(ctx, t.TenantID, t.ServiceID, t.ID)
}

// ReplaceTask implements routing.Store (If-Match t.ETag). An open task stays in its
// row; a task that is done now moves to the done range in one transaction (and is
// read back for its ETag); a done task is replaced in the done range. A done task is
// never reopened (fault.ErrPrecondition).
func (s *Store) ReplaceTask(ctx context.Context, t routing.Task) (routing.Task, error) {
	c := s.client(tableRoutingQueues)
	if t.Open() {
		r, err := taskEntity(t, taskPrefix)
		if err != nil {
			return routing.Task{}, fmt.Errorf("replace task: %w", err)
		}
		etag, err := s.updateIf(ctx, c, r, t.ETag)
		if errors.Is(err, fault.ErrNotFound) { // done meanwhile, or never there
			err = fmt.Errorf("the task is not open: %w", fault.ErrPrecondition)
			if _, gerr := s.GetTask(ctx, t.TenantID, t.ServiceID, t.ID); errors.Is(gerr, fault.ErrNotFound) {
				err = gerr
			}
		}
		if err != nil {
			return routing.Task{}, fmt.Errorf("replace task: %w", err)
		}
		t = t.Clone()
		t.ETag = etag
		return t, nil
	}
	open, err := taskEntity(t, taskPrefix)
	if err != nil {
		return routing.Task{}, fmt.Errorf("replace task: %w", err)
	}
	done, err := taskEntity(t, donePrefix)
	if err != nil {
		return routing.Task{}, fmt.Errorf("replace task: %w", err)
	}
	e := azcore.ETag(t.ETag)
	err = submit(ctx, c, []action{{kind: aztables.TransactionTypeDelete, row: open, ifMatch: &e},
		{kind: aztables.TransactionTypeInsertReplace, row: done}})
	if err == nil {
		// Read back the done row for its ETag (the open one is gone: GetTask would
		// look there first).
		resp, err := c.GetEntity(ctx, queuePK(t.TenantID, t.ServiceID), donePrefix+t.ID, nil)
		if err = classify(err); err != nil {
			return routing.Task{}, fmt.Errorf("replace task: read back: %w", err)
		}
		r, err := decodeRecord(resp.Value)
		if err != nil {
			return routing.Task{}, fmt.Errorf("replace task: read back: %w", err)
		}
		return decodeTask(r, string(resp.ETag))
	}
	if !errors.Is(err, fault.ErrNotFound) {
		return routing.Task{}, fmt.Errorf("replace task: %w", err)
	}
	etag, err := s.updateIf(ctx, c, done, t.ETag) // already done: replace it there
	if err != nil {
		return routing.Task{}, fmt.Errorf("replace task: %w", err)
	}
	t = t.Clone()
	t.ETag = etag
	return t, nil
}

// updateIf replaces the row if its ETag is still etag and returns the new ETag.
func (s *Store) updateIf(ctx context.Context, c *aztables.Client, r row, etag string) (string, error) {
	if etag == "" {
		return "", fmt.Errorf("no ETag: %w", fault.ErrPrecondition)
	}
	e := azcore.ETag(etag)
	resp, err := c.UpdateEntity(ctx, r.body, &aztables.UpdateEntityOptions{IfMatch: &e, UpdateMode: aztables.UpdateModeReplace})
	if err != nil {
		return "", classify(err)
	}
	return string(resp.ETag), nil
}

// UpdateTask implements routing.Store: read, fn, conditional write; a lost race
// (412) starts over after a short jittered wait.
func (s *Store) UpdateTask(ctx context.Context, tenantID, serviceID, taskID string, fn func(*routing.Task) error) (routing.Task, error) {
	for attempt := 0; ; attempt++ {
		t, err := s.GetTask(ctx, tenantID, serviceID, taskID)
		if err != nil {
			return routing.Task{}, err
		}
		if err := fn(&t); err != nil {
			return routing.Task{}, err
		}
		t.TenantID, t.ServiceID, t.ID = tenantID, serviceID, taskID
		got, err := s.ReplaceTask(ctx, t)
		if err == nil || !errors.Is(err, fault.ErrPrecondition) {
			return got, err
		}
		if attempt+1 >= maxAttempts {
			return routing.Task{}, fmt.Errorf("update task: gave up after %d lost races: %w", maxAttempts, err)
		}
		if err := fault.Backoff(ctx, attempt); err != nil {
			return routing.Task{}, fmt.Errorf("update task: %w", err)
		}
	}
}

func agentEntity(a routing.AgentState) (row, error) {
	data, err := json.Marshal(a)
	if err != nil {
		return row{}, err
	}
	hold := ""
	if a.Hold != nil {
		hold = a.Hold.ServiceID + "/" + a.Hold.TaskID
	}
	return newRow("agent state", "tenantId", a.TenantID, "agentId", a.AgentID, props{
		"Data": string(data), "HoldTask": hold, "ACWUntil": a.ACWUntil, "RONAUntil": a.RONAUntil,
		"Svc": strings.Join(a.AllServices(), ","),
	})
}

func decodeAgentState(r record, etag string) (routing.AgentState, error) {
	var a routing.AgentState
	if err := r.data("agent state", &a); err != nil {
		return a, err
	}
	a.ETag = etag
	return a, nil
}

// ListAgentStates implements routing.Store: one partition query.
func (s *Store) ListAgentStates(ctx context.Context, tenantID string) ([]routing.AgentState, error) {
	if err := checkKey("tenantId", tenantID); err != nil {
		return nil, fmt.Errorf("list agent states: %w", err)
	}
	out := []routing.AgentState{}
	err := listAll(ctx, s.client(tableRoutingAgents), "PartitionKey eq "+odataString(tenantID), "", func(r record) error {
		if strings.HasPrefix(r.str("RowKey"), "~") { // the membership version
			return nil
		}
		a, err := decodeAgentState(r, r.str("odata.etag"))
		out = append(out, a)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list agent states: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].AgentID < out[j].AgentID })
	return out, nil
}

// GetAgentState implements routing.Store.
func (s *Store) GetAgentState(ctx context.Context, tenantID, agentID string) (routing.AgentState, error) {
	if err := errors.Join(checkKey("tenantId", tenantID), checkKey("agentId", agentID)); err != nil {
		return routing.AgentState{}, fmt.Errorf("get agent state: %w", err)
	}
	resp, err := s.client(tableRoutingAgents).GetEntity(ctx, tenantID, agentID, nil)
	if err != nil {
		return routing.AgentState{}, wrap("get agent state", err)
	}
	r, err := decodeRecord(resp.Value)
	if err != nil {
		return routing.AgentState{}, fmt.Errorf("get agent state: %w", err)
	}
	return decodeAgentState(r, string(resp.ETag))
}

// ReplaceAgentState implements routing.Store: UpdateEntity If-Match, or an insert
// when a.ETag is empty, then the copies in the rosters of the agent's services (one
// request per service, concurrently). A replace must not change the agent's
// services (the reservation path); an insert keeps the rosters like UpdateAgentState.
func (s *Store) ReplaceAgentState(ctx context.Context, a routing.AgentState) (routing.AgentState, error) {
	if a.ETag == "" {
		got, err := s.putAgent(ctx, routing.AgentState{TenantID: a.TenantID, AgentID: a.AgentID}, a)
		if err != nil {
			return routing.AgentState{}, fmt.Errorf("insert agent state: %w", err)
		}
		return got, nil
	}
	got, err := s.writeAgent(ctx, a, a.ETag, false)
	if err != nil {
		return routing.AgentState{}, fmt.Errorf("replace agent state: %w", err)
	}
	_ = s.copyToRosters(ctx, got, got.ETag, got.AllServices(), nil, nil) // failed: the copy keeps the old ETag
	return got, nil
}

// writeAgent writes a's row: an insert when prevETag is "", else a replace If-Match
// prevETag. With stamp, the tenant's "~members" row is rewritten in the same
// transaction (the agent's services changed); a transaction answers no ETag, so the
// row is read back (this write, or a newer one based on it).
func (s *Store) writeAgent(ctx context.Context, a routing.AgentState, prevETag string, stamp bool) (routing.AgentState, error) {
	r, err := agentEntity(a)
	if err != nil {
		return routing.AgentState{}, err
	}
	c := s.client(tableRoutingAgents)
	if stamp {
		st, err := membersStamp(a.TenantID)
		if err != nil {
			return routing.AgentState{}, err
		}
		act := action{kind: aztables.TransactionTypeAdd, row: r}
		if prevETag != "" {
			e := azcore.ETag(prevETag)
			act = action{kind: aztables.TransactionTypeUpdateReplace, row: r, ifMatch: &e}
		}
		if err := submit(ctx, c, []action{act, {kind: aztables.TransactionTypeInsertMerge, row: st}}); err != nil {
			return routing.AgentState{}, err
		}
		return s.GetAgentState(ctx, a.TenantID, a.AgentID)
	}
	var etag string
	if prevETag == "" {
		var resp aztables.AddEntityResponse
		resp, err = c.AddEntity(ctx, r.body, nil)
		err, etag = classify(err), string(resp.ETag)
	} else {
		etag, err = s.updateIf(ctx, c, r, prevETag)
	}
	if err != nil {
		return routing.AgentState{}, err
	}
	a = a.Clone()
	a.ETag = etag
	return a, nil
}

// putAgent writes next over prev (prev.ETag "": an insert) and keeps the rosters in
// step (see roster.go): a change that Loosens, or a new membership, is copied to the
// rosters before the write, with the ETag it is based on; after the write the copies
// get the new state and ETag, the rosters the agent left lose it, and the rosters it
// joined get its current presence (fillPresence). Copies after the write are best
// effort: a failed one leaves a copy a reservation detects as outdated.
func (s *Store) putAgent(ctx context.Context, prev, next routing.AgentState) (routing.AgentState, error) {
	var was []string
	if prev.ETag != "" {
		was = prev.AllServices()
	}
	now := next.AllServices()
	joined, left := minus(now, was), minus(was, now)
	var p *presence.Presence
	if prev.ETag == "" || len(joined) > 0 || routing.Loosens(&prev, &next) {
		if len(joined) > 0 {
			var err error
			if p, err = s.storedPresence(ctx, next.TenantID, next.AgentID); err != nil {
				return routing.AgentState{}, err
			}
		}
		if err := s.copyToRosters(ctx, next, prev.ETag, now, p, joined); err != nil {
			return routing.AgentState{}, err
		}
	}
	got, err := s.writeAgent(ctx, next, prev.ETag, len(joined)+len(left) > 0)
	if err != nil {
		return routing.AgentState{}, err
	}
	_ = s.copyToRosters(ctx, got, got.ETag, got.AllServices(), nil, nil)
	s.leaveRosters(ctx, got.TenantID, got.AgentID, left)
	if len(joined) > 0 {
		_ = s.fillPresence(ctx, got.TenantID, got.AgentID, joined, p)
	}
	return got, nil
}

// minus returns the elements of a that b lacks.
func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// UpdateAgentState implements routing.Store: read, fn, putAgent; a lost race starts
// over after a short jittered wait.
func (s *Store) UpdateAgentState(ctx context.Context, tenantID, agentID string, fn func(*routing.AgentState) error) (routing.AgentState, error) {
	for attempt := 0; ; attempt++ {
		prev, err := s.GetAgentState(ctx, tenantID, agentID)
		if errors.Is(err, fault.ErrNotFound) {
			prev, err = routing.AgentState{TenantID: tenantID, AgentID: agentID}, nil
		}
		if err != nil {
			return routing.AgentState{}, err
		}
		next := prev.Clone()
		if err := fn(&next); err != nil {
			return routing.AgentState{}, err
		}
		next.TenantID, next.AgentID = tenantID, agentID
		got, err := s.putAgent(ctx, prev, next)
		if err == nil {
			return got, nil
		}
		lost := errors.Is(err, fault.ErrPrecondition) || errors.Is(err, fault.ErrConflict) || errors.Is(err, fault.ErrNotFound)
		if !lost {
			return routing.AgentState{}, fmt.Errorf("update agent state: %w", err)
		}
		if attempt+1 >= maxAttempts {
			return routing.AgentState{}, fmt.Errorf("update agent state: gave up after %d lost races: %w", maxAttempts, err)
		}
		if err := fault.Backoff(ctx, attempt); err != nil {
			return routing.AgentState{}, fmt.Errorf("update agent state: %w", err)
		}
	}
}

// ServiceByTarget implements routing.Store: the tenant's services (ListServices, one
// range query) matched by routing.ServiceForTarget.
//
// Why no index row per target: a service row lives in its own queue partition
// (tenant_service, shared with its tasks so a kick reads its queue in one query), so
// a per-tenant target index could not be written in the same transaction as the
// service and could go stale or let two services claim one target unnoticed. A
// tenant has a handful of services; one query that reads them all is always
// consistent with the service rows and detects a target claimed twice.
func (s *Store) ServiceByTarget(ctx context.Context, tenantID, target string) (routing.Service, error) {
	list, err := s.ListServices(ctx, tenantID)
	if err != nil {
		return routing.Service{}, err
	}
	return routing.ServiceForTarget(list, target)
}

// PurgeService implements routing.Store: one query lists the partition's rows (keys
// only), the tasks and the roster are deleted in batches of 100, then the service row
// If-Match the ETag it was read at.
func (s *Store) PurgeService(ctx context.Context, tenantID, serviceID string) (int, error) {
	pk := queuePK(tenantID, serviceID)
	if err := checkKey("serviceId", pk); err != nil {
		return 0, fmt.Errorf("purge service: %w", err)
	}
	c := s.client(tableRoutingQueues)
	var (
		svc   *row
		etag  azcore.ETag
		rows  []row // tasks, stubs and the roster
		count int   // tasks
	)
	err := listAll(ctx, c, "PartitionKey eq "+odataString(pk), "RowKey,PendingDeletion,Stub", func(r record) error {
		rk := r.str("RowKey")
		k, err := newRow("service row", "serviceId", pk, "rowKey", rk, nil)
		if err != nil {
			return err
		}
		if rk != serviceRow {
			rows = append(rows, k)
			if strings.HasPrefix(rk, taskPrefix) || strings.HasPrefix(rk, donePrefix) && !r.has("Stub") {
				count++
			}
			return nil
		}
		var pending bool
		_ = json.Unmarshal(r["PendingDeletion"], &pending)
		if !pending {
			return fmt.Errorf("not pending deletion: %w", fault.ErrPrecondition)
		}
		svc, etag = &k, azcore.ETag(r.str("odata.etag"))
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("purge service: %w", err)
	}
	if svc == nil {
		return 0, fmt.Errorf("purge service: %w", fault.ErrNotFound)
	}
	star := azcore.ETagAny
	for _, b := range chunk(rows) {
		acts := make([]action, len(b))
		for i, r := range b {
			acts[i] = action{kind: aztables.TransactionTypeDelete, row: r, ifMatch: &star}
		}
		if err := submit(ctx, c, acts); err != nil {
			return 0, fmt.Errorf("purge service: tasks: %w", err)
		}
	}
	if err := submit(ctx, c, []action{{kind: aztables.TransactionTypeDelete, row: *svc, ifMatch: &etag}}); err != nil {
		return 0, fmt.Errorf("purge service: %w", err)
	}
	return count, nil
}
