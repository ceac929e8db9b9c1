package inmem

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/outbound"
)

var _ outbound.Store = (*Store)(nil)

// outboundData holds outbound tasks and counters per service (tenant|service), the
// same partitions as the Table storage adapter; guarded by Store.mu.
type outboundData struct {
	tasks    map[string]map[string]versioned[outbound.Task]
	counters map[string]int
	ver      int64
}

func (s *Store) obLocked() *outboundData {
	if s.ob.tasks == nil {
		s.ob = outboundData{tasks: map[string]map[string]versioned[outbound.Task]{}, counters: map[string]int{}}
	}
	return &s.ob
}

func (d *outboundData) put(pk string, t outbound.Task) outbound.Task {
	d.ver++
	t.ETag = etag(d.ver)
	if d.tasks[pk] == nil {
		d.tasks[pk] = map[string]versioned[outbound.Task]{}
	}
	d.tasks[pk][t.ID] = versioned[outbound.Task]{v: t.Clone(), ver: d.ver}
	return t.Clone()
}

// ReserveOutbound implements outbound.Store: the insert and the counter increment
// happen under one lock, the in-memory equivalent of one transaction.
func (s *Store) ReserveOutbound(_ context.Context, t outbound.Task, limit int) (outbound.Task, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.obLocked()
	pk := outbound.PartitionKey(t.TenantID, t.ServiceID)
	if v, ok := d.tasks[pk][t.ID]; ok {
		return v.v.Clone(), false, nil
	}
	if cur := d.counters[pk]; cur >= limit {
		return outbound.Task{}, false, &outbound.LimitError{Limit: limit, Current: cur}
	}
	d.counters[pk]++
	t.State = outbound.Scheduled
	return d.put(pk, t), true, nil
}

// GetOutbound implements outbound.Store.
func (s *Store) GetOutbound(_ context.Context, tenantID, serviceID, taskID string) (outbound.Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.obLocked().tasks[outbound.PartitionKey(tenantID, serviceID)][taskID]
	if !ok {
		return outbound.Task{}, fmt.Errorf("get outbound task: %w", fault.ErrNotFound)
	}
	return v.v.Clone(), nil
}

// ListOutbound implements outbound.Store.
func (s *Store) ListOutbound(_ context.Context, tenantID, serviceID string, liveOnly bool) ([]outbound.Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []outbound.Task{}
	for _, v := range s.obLocked().tasks[outbound.PartitionKey(tenantID, serviceID)] {
		if !liveOnly || v.v.State.Live() {
			out = append(out, v.v.Clone())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (s *Store) updateOutbound(tenantID, serviceID, taskID string, fn func(*outbound.Task, *outboundData, string) bool) (outbound.Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.obLocked()
	pk := outbound.PartitionKey(tenantID, serviceID)
	v, ok := d.tasks[pk][taskID]
	if !ok {
		return outbound.Task{}, fmt.Errorf("update outbound task: %w", fault.ErrNotFound)
	}
	t := v.v.Clone()
	if !fn(&t, d, pk) {
		return t, nil
	}
	return d.put(pk, t), nil
}

// SetOutboundSchedule implements outbound.Store.
func (s *Store) SetOutboundSchedule(_ context.Context, tenantID, serviceID, taskID string, seq int64, at time.Time) error {
	_, err := s.updateOutbound(tenantID, serviceID, taskID, func(t *outbound.Task, _ *outboundData, _ string) bool {
		t.Sequence, t.ScheduledAt = seq, at
		return true
	})
	return err
}

// MarkOutboundRouted implements outbound.Store.
func (s *Store) MarkOutboundRouted(_ context.Context, tenantID, serviceID, taskID, routingTaskID string, at time.Time) (outbound.Task, error) {
	return s.updateOutbound(tenantID, serviceID, taskID, func(t *outbound.Task, _ *outboundData, _ string) bool {
		if t.State != outbound.Scheduled {
			return false
		}
		t.State, t.RoutingTaskID, t.UpdatedAt = outbound.Routed, routingTaskID, at
		return true
	})
}

// FinishOutbound implements outbound.Store: the state change and the counter
// decrement under one lock.
func (s *Store) FinishOutbound(_ context.Context, tenantID, serviceID, taskID string, st outbound.State, at time.Time) (outbound.Task, error) {
	if st.Live() {
		return outbound.Task{}, fault.Invalid("state", "must be a final state")
	}
	return s.updateOutbound(tenantID, serviceID, taskID, func(t *outbound.Task, d *outboundData, pk string) bool {
		if !t.State.Live() {
			return false
		}
		t.State, t.UpdatedAt = st, at
		if d.counters[pk] > 0 {
			d.counters[pk]--
		}
		return true
	})
}

// OutboundCounter implements outbound.Store.
func (s *Store) OutboundCounter(_ context.Context, tenantID, serviceID string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.obLocked().counters[outbound.PartitionKey(tenantID, serviceID)], nil
}

// ListOutboundCounters implements outbound.Store.
func (s *Store) ListOutboundCounters(context.Context) ([]outbound.Counter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []outbound.Counter{}
	for pk, n := range s.obLocked().counters {
		tid, sid, _ := strings.Cut(pk, "|")
		out = append(out, outbound.Counter{TenantID: tid, ServiceID: sid, Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		return outbound.PartitionKey(out[i].TenantID, out[i].ServiceID) < outbound.PartitionKey(out[j].TenantID, out[j].ServiceID)
	})
	return out, nil
}

// RepairOutboundCounter implements outbound.Store.
func (s *Store) RepairOutboundCounter(_ context.Context, tenantID, serviceID string) (int, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.obLocked()
	pk := outbound.PartitionKey(tenantID, serviceID)
	live := 0
	for _, v := range d.tasks[pk] {
		if v.v.State.Live() {
			live++
		}
	}
	before := d.counters[pk]
	d.counters[pk] = live
	return before, live, nil
}

// SetOutboundCounter overwrites a service's counter (tests: a counter left wrong by a
// process that died).
func (s *Store) SetOutboundCounter(_ context.Context, tenantID, serviceID string, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.obLocked().counters[outbound.PartitionKey(tenantID, serviceID)] = n
	return nil
}
