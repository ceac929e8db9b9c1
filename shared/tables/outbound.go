package tables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/outbound"
)

// Outbound table (before the prefix):
//
//	Outbound   PK tenant id "|" service id   RK "counter"       Count (live tasks), TenantId, ServiceId
//	                                         RK "t_" task id    Data (JSON Task) + State, Live, Sequence, ScheduledAt
//
// A service's counter and its tasks share a partition, so taking a slot is ONE entity
// group transaction: UpdateEntity of the counter If-Match its ETag (or Add when there is
// none yet) plus Add of the task. Two requests that read the same counter cannot both
// commit: the second's If-Match fails (412, or 409 for two Adds of the counter) inside
// the batch, it re-reads and tries again, and sees the cap. Freeing a slot is the same:
// the task's state change If-Match its ETag plus the counter decrement If-Match its
// ETag, one transaction.
//
// Sequence and ScheduledAt are columns merged onto the task after scheduling (one
// request, no read); they win over the values in Data when decoding.
const (
	tableOutbound = "Outbound"
	counterRow    = "counter"
	obTaskPrefix  = "t_"
)

var _ outbound.Store = (*Store)(nil)

func obTaskEntity(t outbound.Task) (row, error) {
	data, err := json.Marshal(t)
	if err != nil {
		return row{}, err
	}
	return newRow("outbound task", "tenantId", outbound.PartitionKey(t.TenantID, t.ServiceID), "taskId", obTaskPrefix+t.ID, props{
		"Data": string(data), "State": string(t.State), "Live": t.State.Live(), "Sequence": t.Sequence, "ScheduledAt": t.ScheduledAt,
	})
}

func obCounterEntity(tenantID, serviceID string, n int) (row, error) {
	return newRow("outbound counter", "tenantId", outbound.PartitionKey(tenantID, serviceID), "row", counterRow, props{
		"Count": int32(n), "TenantId": tenantID, "ServiceId": serviceID,
	})
}

func decodeObTask(r record) (outbound.Task, error) {
	var t outbound.Task
	if err := r.data("outbound task", &t); err != nil {
		return t, err
	}
	if r.has("Sequence") {
		t.Sequence = r.int("Sequence")
	}
	if at, err := r.time("ScheduledAt"); err == nil && !at.IsZero() {
		t.ScheduledAt = at
	}
	t.ETag = r.str("odata.etag")
	return t, nil
}

// obRead is what one query of a partition found: the counter (with its ETag) and tasks.
type obRead struct {
	counter     int
	counterETag string // "" when the partition has no counter yet
	tasks       []outbound.Task
}

// readOb queries the partition: the counter and, with taskID, that one task; with
// taskID "" every task (liveOnly: only live ones). One round trip for up to 1,000 rows.
func (s *Store) readOb(ctx context.Context, tenantID, serviceID, taskID string, all, liveOnly bool) (obRead, error) {
	pk := outbound.PartitionKey(tenantID, serviceID)
	if err := checkKey("tenantId", pk); err != nil {
		return obRead{}, err
	}
	filter := "PartitionKey eq " + odataString(pk)
	switch {
	case taskID != "":
		filter += " and (RowKey eq '" + counterRow + "' or RowKey eq " + odataString(obTaskPrefix+taskID) + ")"
	case all && liveOnly:
		filter += " and (RowKey eq '" + counterRow + "' or Live eq true)"
	case !all:
		filter += " and RowKey eq '" + counterRow + "'"
	}
	var out obRead
	err := listAll(ctx, s.client(tableOutbound), filter, "", func(r record) error {
		if r.str("RowKey") == counterRow {
			out.counter, out.counterETag = int(r.int("Count")), r.str("odata.etag")
			return nil
		}
		t, err := decodeObTask(r)
		if err != nil {
			return err
		}
		out.tasks = append(out.tasks, t)
		return nil
	})
	return out, err
}

// lostRace reports whether a conditional write or transaction lost to another writer.
func lostRace(err error) bool {
	return errors.Is(err, fault.ErrPrecondition) || errors.Is(err, fault.ErrConflict)
}

// maxObAttempts bounds the retries of one outbound transaction; 200 writers racing
// for one counter each lose at most a few hundred times in the worst case, so the
// budget is generous, and every retry re-reads (a full service stops retrying at once).
const maxObAttempts = 400

// counterAction is the counter's part of a transaction: Add when absent, else
// UpdateEntity If-Match the ETag it was read at.
func counterAction(tenantID, serviceID string, n int, etag string) (action, error) {
	r, err := obCounterEntity(tenantID, serviceID, n)
	if err != nil {
		return action{}, err
	}
	if etag == "" {
		return action{kind: aztables.TransactionTypeAdd, row: r}, nil
	}
	e := azcore.ETag(etag)
	return action{kind: aztables.TransactionTypeUpdateReplace, row: r, ifMatch: &e}, nil
}

// ReserveOutbound implements outbound.Store: read the counter and the task in one
// query; an existing task is returned; over the cap a *LimitError; else one
// transaction (counter If-Match + task Add), retried from the read on a lost race.
func (s *Store) ReserveOutbound(ctx context.Context, t outbound.Task, limit int) (outbound.Task, bool, error) {
	t.State = outbound.Scheduled
	task, err := obTaskEntity(t)
	if err != nil {
		return outbound.Task{}, false, fmt.Errorf("reserve outbound: %w", err)
	}
	for attempt := 0; ; attempt++ {
		cur, err := s.readOb(ctx, t.TenantID, t.ServiceID, t.ID, false, false)
		if err != nil {
			return outbound.Task{}, false, fmt.Errorf("reserve outbound: %w", err)
		}
		if len(cur.tasks) > 0 {
			return cur.tasks[0], false, nil
		}
		if cur.counter >= limit {
			return outbound.Task{}, false, &outbound.LimitError{Limit: limit, Current: cur.counter}
		}
		ca, err := counterAction(t.TenantID, t.ServiceID, cur.counter+1, cur.counterETag)
		if err != nil {
			return outbound.Task{}, false, fmt.Errorf("reserve outbound: %w", err)
		}
		err = submit(ctx, s.client(tableOutbound), []action{ca, {kind: aztables.TransactionTypeAdd, row: task}})
		if err == nil {
			return t, true, nil
		}
		if !lostRace(err) {
			return outbound.Task{}, false, fmt.Errorf("reserve outbound: %w", err)
		}
		if attempt+1 >= maxObAttempts {
			return outbound.Task{}, false, fmt.Errorf("reserve outbound: gave up after %d lost races: %w", maxObAttempts, err)
		}
		if err := fault.Backoff(ctx, attempt); err != nil {
			return outbound.Task{}, false, fmt.Errorf("reserve outbound: %w", err)
		}
	}
}

// GetOutbound implements outbound.Store.
func (s *Store) GetOutbound(ctx context.Context, tenantID, serviceID, taskID string) (outbound.Task, error) {
	pk := outbound.PartitionKey(tenantID, serviceID)
	if err := checkKey("taskId", taskID); err != nil {
		return outbound.Task{}, fmt.Errorf("get outbound task: %w", err)
	}
	resp, err := s.client(tableOutbound).GetEntity(ctx, pk, obTaskPrefix+taskID, nil)
	if err != nil {
		return outbound.Task{}, wrap("get outbound task", err)
	}
	r, err := decodeRecord(resp.Value)
	if err != nil {
		return outbound.Task{}, err
	}
	t, err := decodeObTask(r)
	t.ETag = string(resp.ETag)
	return t, err
}

// ListOutbound implements outbound.Store.
func (s *Store) ListOutbound(ctx context.Context, tenantID, serviceID string, liveOnly bool) ([]outbound.Task, error) {
	cur, err := s.readOb(ctx, tenantID, serviceID, "", true, liveOnly)
	if err != nil {
		return nil, fmt.Errorf("list outbound tasks: %w", err)
	}
	if cur.tasks == nil {
		cur.tasks = []outbound.Task{}
	}
	return cur.tasks, nil // RowKey order is task id order
}

// SetOutboundSchedule implements outbound.Store: merges the two columns (no read).
func (s *Store) SetOutboundSchedule(ctx context.Context, tenantID, serviceID, taskID string, seq int64, at time.Time) error {
	r, err := newRow("outbound task", "tenantId", outbound.PartitionKey(tenantID, serviceID), "taskId", obTaskPrefix+taskID,
		props{"Sequence": seq, "ScheduledAt": at})
	if err != nil {
		return fmt.Errorf("set outbound schedule: %w", err)
	}
	star := azcore.ETagAny
	_, err = s.client(tableOutbound).UpdateEntity(ctx, r.body, &aztables.UpdateEntityOptions{IfMatch: &star, UpdateMode: aztables.UpdateModeMerge})
	return wrap("set outbound schedule", err)
}

// MarkOutboundRouted implements outbound.Store.
func (s *Store) MarkOutboundRouted(ctx context.Context, tenantID, serviceID, taskID, routingTaskID string, at time.Time) (outbound.Task, error) {
	for attempt := 0; ; attempt++ {
		t, err := s.GetOutbound(ctx, tenantID, serviceID, taskID)
		if err != nil {
			return outbound.Task{}, err
		}
		if t.State != outbound.Scheduled {
			return t, nil
		}
		t.State, t.RoutingTaskID, t.UpdatedAt = outbound.Routed, routingTaskID, at
		r, err := obTaskEntity(t)
		if err != nil {
			return outbound.Task{}, err
		}
		etag, err := s.updateIf(ctx, s.client(tableOutbound), r, t.ETag)
		if err == nil {
			t.ETag = etag
			return t, nil
		}
		if !lostRace(err) || attempt+1 >= maxAttempts {
			return outbound.Task{}, fmt.Errorf("mark outbound routed: %w", err)
		}
		if err := fault.Backoff(ctx, attempt); err != nil {
			return outbound.Task{}, err
		}
	}
}

// FinishOutbound implements outbound.Store: the task's final state (If-Match its ETag)
// and the counter's decrement (If-Match its ETag) in one transaction.
func (s *Store) FinishOutbound(ctx context.Context, tenantID, serviceID, taskID string, st outbound.State, at time.Time) (outbound.Task, error) {
	if st.Live() {
		return outbound.Task{}, fault.Invalid("state", "must be a final state")
	}
	for attempt := 0; ; attempt++ {
		cur, err := s.readOb(ctx, tenantID, serviceID, taskID, false, false)
		if err != nil {
			return outbound.Task{}, fmt.Errorf("finish outbound task: %w", err)
		}
		if len(cur.tasks) == 0 {
			return outbound.Task{}, fmt.Errorf("finish outbound task: %w", fault.ErrNotFound)
		}
		t := cur.tasks[0]
		if !t.State.Live() {
			return t, nil
		}
		t.State, t.UpdatedAt = st, at
		r, err := obTaskEntity(t)
		if err != nil {
			return outbound.Task{}, err
		}
		e := azcore.ETag(t.ETag)
		actions := []action{{kind: aztables.TransactionTypeUpdateReplace, row: r, ifMatch: &e}}
		if cur.counterETag != "" {
			ca, err := counterAction(tenantID, serviceID, max(cur.counter-1, 0), cur.counterETag)
			if err != nil {
				return outbound.Task{}, err
			}
			actions = append(actions, ca)
		}
		err = submit(ctx, s.client(tableOutbound), actions)
		if err == nil {
			t.ETag = ""
			return t, nil
		}
		if !lostRace(err) || attempt+1 >= maxObAttempts {
			return outbound.Task{}, fmt.Errorf("finish outbound task: %w", err)
		}
		if err := fault.Backoff(ctx, attempt); err != nil {
			return outbound.Task{}, err
		}
	}
}

// OutboundCounter implements outbound.Store.
func (s *Store) OutboundCounter(ctx context.Context, tenantID, serviceID string) (int, error) {
	cur, err := s.readOb(ctx, tenantID, serviceID, "", false, false)
	if err != nil {
		return 0, fmt.Errorf("outbound counter: %w", err)
	}
	return cur.counter, nil
}

// ListOutboundCounters implements outbound.Store (a scan of the counter rows).
func (s *Store) ListOutboundCounters(ctx context.Context) ([]outbound.Counter, error) {
	out := []outbound.Counter{}
	err := listAll(ctx, s.client(tableOutbound), "RowKey eq '"+counterRow+"'", "PartitionKey,Count,TenantId,ServiceId", func(r record) error {
		tid, sid := r.str("TenantId"), r.str("ServiceId")
		if tid == "" {
			tid, sid, _ = strings.Cut(r.str("PartitionKey"), "|")
		}
		out = append(out, outbound.Counter{TenantID: tid, ServiceID: sid, Count: int(r.int("Count"))})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list outbound counters: %w", err)
	}
	return out, nil
}

// RepairOutboundCounter implements outbound.Store: count the live tasks and the counter
// in one query; write the count If-Match the counter's ETag, so a reservation or a
// finish that committed since makes it start over.
func (s *Store) RepairOutboundCounter(ctx context.Context, tenantID, serviceID string) (int, int, error) {
	for attempt := 0; ; attempt++ {
		cur, err := s.readOb(ctx, tenantID, serviceID, "", true, true)
		if err != nil {
			return 0, 0, fmt.Errorf("repair outbound counter: %w", err)
		}
		live := len(cur.tasks)
		if live == cur.counter && cur.counterETag != "" {
			return cur.counter, live, nil
		}
		ca, err := counterAction(tenantID, serviceID, live, cur.counterETag)
		if err != nil {
			return 0, 0, err
		}
		err = submit(ctx, s.client(tableOutbound), []action{ca})
		if err == nil {
			return cur.counter, live, nil
		}
		if !lostRace(err) || attempt+1 >= maxObAttempts {
			return 0, 0, fmt.Errorf("repair outbound counter: %w", err)
		}
		if err := fault.Backoff(ctx, attempt); err != nil {
			return 0, 0, err
		}
	}
}

// SetOutboundCounter overwrites a service's counter (tests: a counter left wrong by a
// process that died).
func (s *Store) SetOutboundCounter(ctx context.Context, tenantID, serviceID string, n int) error {
	r, err := obCounterEntity(tenantID, serviceID, n)
	if err != nil {
		return err
	}
	_, err = s.client(tableOutbound).UpsertEntity(ctx, r.body, replace)
	return wrap("set outbound counter", err)
}
