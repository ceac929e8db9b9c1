package tables

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/routing"
)

// Routing tables (before the prefix):
//
//	RoutingQueues   PK tenant id "_" service id   RK "~service"      Data (JSON Service) + Type, PendingDeletion
//	                                              RK "t_" task id    Data (JSON Task) + Open, State, Priority
//	RoutingAgents   PK tenant id                  RK agent id        Data (JSON AgentState) + HoldTask, ACWUntil, RONAUntil
//	RoutingKeys     PK tenant id                  RK sha256(key)     At
//	                PK "call_" sha256(call id)    RK "call"          Data (JSON CallRef) + TenantId, At   (the call index)
//
// A service and its tasks share a partition, so one query (the service row and the
// open tasks) is what a kick reads of its queue; the tenant's agent states are one
// partition, so one query reads them all with their ETags for the reservations.
const (
	tableRoutingQueues = "RoutingQueues"
	tableRoutingAgents = "RoutingAgents"
	tableRoutingKeys   = "RoutingKeys"

	serviceRow = "~service"
	taskPrefix = "t_"

	// The call index shares RoutingKeys: its partitions ("call_" + 64 hex digits)
	// never equal a tenant id (a GUID).
	callPrefix   = "call_"
	callIndexRow = "call"
)

var _ routing.Store = (*Store)(nil)

func (s *Store) client(name string) *aztables.Client { return s.svc.NewClient(s.table(name)) }

func queuePK(tenantID, serviceID string) string { return tenantID + "_" + serviceID }

func serviceEntity(sv routing.Service) (row, error) {
	data, err := json.Marshal(sv)
	if err != nil {
		return row{}, err
	}
	return newRow("service", "tenantId", queuePK(sv.TenantID, sv.ID), "serviceId", serviceRow, props{
		"Data": string(data), "Type": string(sv.Type), "PendingDeletion": sv.PendingDeletion, "UpdatedAt": sv.UpdatedAt,
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

// LoadQueue implements routing.Store: one partition query for the service row and
// the open tasks.
func (s *Store) LoadQueue(ctx context.Context, tenantID, serviceID string) (routing.Service, []routing.Task, error) {
	pk := queuePK(tenantID, serviceID)
	if err := checkKey("serviceId", pk); err != nil {
		return routing.Service{}, nil, fmt.Errorf("load queue: %w", err)
	}
	filter := "PartitionKey eq " + odataString(pk) + " and (RowKey eq " + odataString(serviceRow) + " or Open eq true)"
	var (
		sv    routing.Service
		found bool
		tasks = []routing.Task{}
	)
	err := listAll(ctx, s.client(tableRoutingQueues), filter, "", func(r record) error {
		if r.str("RowKey") == serviceRow {
			found = true
			var err error
			sv, err = decodeService(r)
			return err
		}
		t, err := decodeTask(r, r.str("odata.etag"))
		tasks = append(tasks, t)
		return err
	})
	if err != nil {
		return routing.Service{}, nil, fmt.Errorf("load queue: %w", err)
	}
	if !found {
		return routing.Service{}, nil, fmt.Errorf("load queue: %w", fault.ErrNotFound)
	}
	return sv, tasks, nil
}

func taskEntity(t routing.Task) (row, error) {
	data, err := json.Marshal(t)
	if err != nil {
		return row{}, err
	}
	return newRow("task", "serviceId", queuePK(t.TenantID, t.ServiceID), "taskId", taskPrefix+t.ID, props{
		"Data": string(data), "Open": t.Open(), "State": string(t.State), "Priority": string(t.Priority),
		"Outcome": string(t.Outcome), "Created": t.Created,
	})
}

// GetTask implements routing.Store.
func (s *Store) GetTask(ctx context.Context, tenantID, serviceID, taskID string) (routing.Task, error) {
	pk, rk := queuePK(tenantID, serviceID), taskPrefix+taskID
	if err := errors.Join(checkKey("serviceId", pk), checkKey("taskId", rk)); err != nil {
		return routing.Task{}, fmt.Errorf("get task: %w", err)
	}
	resp, err := s.client(tableRoutingQueues).GetEntity(ctx, pk, rk, nil)
	if err != nil {
		return routing.Task{}, wrap("get task", err)
	}
	r, err := decodeRecord(resp.Value)
	if err != nil {
		return routing.Task{}, fmt.Errorf("get task: %w", err)
	}
	return decodeTask(r, string(resp.ETag))
}

// CreateTask implements routing.Store (AddEntity: 409 → fault.ErrConflict).
func (s *Store) CreateTask(ctx context.Context, t routing.Task) (routing.Task, error) {
	r, err := taskEntity(t)
	if err != nil {
		return routing.Task{}, fmt.Errorf("create task: %w", err)
	}
	resp, err := s.client(tableRoutingQueues).AddEntity(ctx, r.body, nil)
	if err != nil {
		return routing.Task{}, wrap("create task", err)
	}
	t = t.Clone()
	t.ETag = string(resp.ETag)
	return t, nil
}

// ReplaceTask implements routing.Store (UpdateEntity If-Match).
func (s *Store) ReplaceTask(ctx context.Context, t routing.Task) (routing.Task, error) {
	r, err := taskEntity(t)
	if err != nil {
		return routing.Task{}, fmt.Errorf("replace task: %w", err)
	}
	etag, err := s.updateIf(ctx, s.client(tableRoutingQueues), r, t.ETag)
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

// ReplaceAgentState implements routing.Store: UpdateEntity If-Match, or AddEntity
// when a.ETag is empty. One request, no retry.
func (s *Store) ReplaceAgentState(ctx context.Context, a routing.AgentState) (routing.AgentState, error) {
	r, err := agentEntity(a)
	if err != nil {
		return routing.AgentState{}, fmt.Errorf("replace agent state: %w", err)
	}
	c := s.client(tableRoutingAgents)
	var etag string
	if a.ETag == "" {
		var resp aztables.AddEntityResponse
		resp, err = c.AddEntity(ctx, r.body, nil)
		err, etag = classify(err), string(resp.ETag)
	} else {
		etag, err = s.updateIf(ctx, c, r, a.ETag)
	}
	if err != nil {
		return routing.AgentState{}, fmt.Errorf("replace agent state: %w", err)
	}
	a = a.Clone()
	a.ETag = etag
	return a, nil
}

// UpdateAgentState implements routing.Store.
func (s *Store) UpdateAgentState(ctx context.Context, tenantID, agentID string, fn func(*routing.AgentState) error) (routing.AgentState, error) {
	for attempt := 0; ; attempt++ {
		a, err := s.GetAgentState(ctx, tenantID, agentID)
		if errors.Is(err, fault.ErrNotFound) {
			a, err = routing.AgentState{TenantID: tenantID, AgentID: agentID}, nil
		}
		if err != nil {
			return routing.AgentState{}, err
		}
		if err := fn(&a); err != nil {
			return routing.AgentState{}, err
		}
		a.TenantID, a.AgentID = tenantID, agentID
		got, err := s.ReplaceAgentState(ctx, a)
		if err == nil {
			return got, nil
		}
		lost := errors.Is(err, fault.ErrPrecondition) || errors.Is(err, fault.ErrConflict) || errors.Is(err, fault.ErrNotFound)
		if !lost {
			return routing.AgentState{}, err
		}
		if attempt+1 >= maxAttempts {
			return routing.AgentState{}, fmt.Errorf("update agent state: gave up after %d lost races: %w", maxAttempts, err)
		}
		if err := fault.Backoff(ctx, attempt); err != nil {
			return routing.AgentState{}, fmt.Errorf("update agent state: %w", err)
		}
	}
}

// keyRow: idempotency keys may hold any character (and customer identifiers), so the
// row key is their SHA-256 and the key itself is not stored.
func keyRow(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// MarkProcessed implements routing.Store (AddEntity: 409 → fault.ErrConflict).
func (s *Store) MarkProcessed(ctx context.Context, tenantID, key string, at time.Time) error {
	r, err := newRow("processed key", "tenantId", tenantID, "key", keyRow(key), props{"At": at})
	if err != nil {
		return fmt.Errorf("mark processed: %w", err)
	}
	_, err = s.client(tableRoutingKeys).AddEntity(ctx, r.body, nil)
	return wrap("mark processed", err)
}

// Processed implements routing.Store.
func (s *Store) Processed(ctx context.Context, tenantID, key string) (bool, error) {
	if err := checkKey("tenantId", tenantID); err != nil {
		return false, fmt.Errorf("processed: %w", err)
	}
	_, err := s.client(tableRoutingKeys).GetEntity(ctx, tenantID, keyRow(key), nil)
	if err == nil {
		return true, nil
	}
	if err = classify(err); errors.Is(err, fault.ErrNotFound) {
		return false, nil
	}
	return false, fmt.Errorf("processed: %w", err)
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

// callIndexPK is the call index row's partition: one per call, named by the SHA-256
// of the call id (call ids may hold characters a key may not).
func callIndexPK(callID string) string { return callPrefix + keyRow(callID) }

// PutCallIndex implements routing.Store: an upsert in RoutingKeys.
func (s *Store) PutCallIndex(ctx context.Context, c routing.CallRef) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("put call index: %w", err)
	}
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("put call index: %w", err)
	}
	r, err := newRow("call index", "callId", callIndexPK(c.CallID), "callId", callIndexRow, props{
		"Data": string(data), "TenantId": c.TenantID, "At": c.At,
	})
	if err != nil {
		return fmt.Errorf("put call index: %w", err)
	}
	_, err = s.client(tableRoutingKeys).UpsertEntity(ctx, r.body, replace)
	return wrap("put call index", err)
}

// GetCallIndex implements routing.Store: one point read.
func (s *Store) GetCallIndex(ctx context.Context, callID string) (routing.CallRef, error) {
	if callID == "" {
		return routing.CallRef{}, fmt.Errorf("get call index: %w", fault.Invalid("callId", "required"))
	}
	resp, err := s.client(tableRoutingKeys).GetEntity(ctx, callIndexPK(callID), callIndexRow, nil)
	if err != nil {
		return routing.CallRef{}, wrap("get call index", err)
	}
	r, err := decodeRecord(resp.Value)
	if err != nil {
		return routing.CallRef{}, fmt.Errorf("get call index: %w", err)
	}
	var c routing.CallRef
	if err := r.data("call index", &c); err != nil {
		return routing.CallRef{}, fmt.Errorf("get call index: %w", err)
	}
	return c, nil
}

// PurgeService implements routing.Store: one query lists the partition's rows (keys
// only), the tasks are deleted in batches of 100, then the service row If-Match the
// ETag it was read at.
func (s *Store) PurgeService(ctx context.Context, tenantID, serviceID string) (int, error) {
	pk := queuePK(tenantID, serviceID)
	if err := checkKey("serviceId", pk); err != nil {
		return 0, fmt.Errorf("purge service: %w", err)
	}
	c := s.client(tableRoutingQueues)
	var (
		svc   *row
		etag  azcore.ETag
		tasks []row
	)
	err := listAll(ctx, c, "PartitionKey eq "+odataString(pk), "RowKey,PendingDeletion", func(r record) error {
		rk := r.str("RowKey")
		k, err := newRow("service row", "serviceId", pk, "rowKey", rk, nil)
		if err != nil {
			return err
		}
		if rk != serviceRow {
			tasks = append(tasks, k)
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
	for _, b := range chunk(tasks) {
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
	return len(tasks), nil
}
