package inmem

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/teamscc/teamscc/shared/interact"
	"github.com/teamscc/teamscc/shared/retention"
)

var _ retention.Store = (*Store)(nil)

// pick sorts the candidate keys (so calls with a small limit go in a stable order)
// and keeps at most limit; more says some were left.
func pick(keys []string, limit int) ([]string, bool) {
	sort.Strings(keys)
	limit = retention.ClampLimit(limit)
	if len(keys) > limit {
		return keys[:limit], true
	}
	return keys, false
}

// endedBefore is the rule for tasks and calls: ended before b, or without an end
// time created before it.
func endedBefore(ended, created, b time.Time) bool {
	if !ended.IsZero() {
		return ended.Before(b)
	}
	return created.Before(b)
}

// PurgeFinishedTasks implements retention.Store.
func (s *Store) PurgeFinishedTasks(_ context.Context, tenantID, serviceID string, before time.Time, limit int) (retention.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := s.rtLocked()
	k := svcKey(tenantID, serviceID)
	m := rt.tasks[k]
	var ids []string
	for id, v := range m {
		if !v.v.Open() && endedBefore(v.v.EndedAt, v.v.Created, before) {
			ids = append(ids, id)
		}
	}
	ids, more := pick(ids, limit)
	for _, id := range ids {
		delete(m, id)
	}
	return retention.Result{Deleted: len(ids), More: more}, nil
}

// PurgeEndedCalls implements retention.Store.
func (s *Store) PurgeEndedCalls(_ context.Context, tenantID string, before time.Time, limit int) (retention.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.callsLocked().byTenant[tenantID]
	var ids []string
	for id, v := range m {
		if c := v.v; !c.Open() && endedBefore(c.EndedAt, c.Created, before) {
			ids = append(ids, id)
		}
	}
	ids, more := pick(ids, limit)
	for _, id := range ids {
		delete(m, id)
	}
	return retention.Result{Deleted: len(ids), More: more}, nil
}

// PurgeCallIndex implements retention.Store.
func (s *Store) PurgeCallIndex(_ context.Context, tenantID string, before time.Time, limit int) (retention.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := s.rtLocked()
	var ids []string
	for id, c := range rt.calls {
		if c.TenantID == tenantID && c.At.Before(before) {
			ids = append(ids, id)
		}
	}
	ids, more := pick(ids, limit)
	for _, id := range ids {
		delete(rt.calls, id)
	}
	return retention.Result{Deleted: len(ids), More: more}, nil
}

// PurgeSessions implements retention.Store.
func (s *Store) PurgeSessions(_ context.Context, tenantID string, closedBefore, openedBefore time.Time, limit int) (retention.Result, error) {
	st := &s.interact
	st.mu.Lock()
	defer st.mu.Unlock()
	var keys []string
	for k, v := range st.sessions {
		if !strings.HasPrefix(k, tenantID+"\x00") {
			continue
		}
		switch x := v.v; x.State {
		case interact.SessionClosed:
			if x.ClosedAt.Before(closedBefore) {
				keys = append(keys, k)
			}
		case interact.SessionOpen:
			if x.CreatedAt.Before(openedBefore) {
				keys = append(keys, k)
			}
		}
	}
	keys, more := pick(keys, limit)
	for _, k := range keys {
		delete(st.sessions, k)
	}
	return retention.Result{Deleted: len(keys), More: more}, nil
}

// PurgeProcessedKeys implements retention.Store.
func (s *Store) PurgeProcessedKeys(_ context.Context, tenantID string, before time.Time, limit int) (retention.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := s.rtLocked()
	var keys []string
	for k, at := range rt.keys {
		if strings.HasPrefix(k, tenantID+"\x00") && at.Before(before) {
			keys = append(keys, k)
		}
	}
	keys, more := pick(keys, limit)
	for _, k := range keys {
		delete(rt.keys, k)
	}
	return retention.Result{Deleted: len(keys), More: more}, nil
}

// PurgeUserStates implements retention.Store.
func (s *Store) PurgeUserStates(_ context.Context, tenantID string, before time.Time, limit int) (retention.Result, error) {
	u := &s.us
	u.mu.Lock()
	defer u.mu.Unlock()
	m := u.records[tenantID]
	var keys []string
	for k, r := range m {
		if !r.Open() && r.End.Before(before) {
			keys = append(keys, k)
		}
	}
	keys, more := pick(keys, limit)
	for _, k := range keys {
		delete(m, k)
	}
	return retention.Result{Deleted: len(keys), More: more}, nil
}

// PurgeParked implements retention.Store.
func (s *Store) PurgeParked(_ context.Context, before time.Time, limit int) (retention.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k, m := range s.parked {
		if m.ParkedAt.Before(before) {
			keys = append(keys, k)
		}
	}
	keys, more := pick(keys, limit)
	for _, k := range keys {
		delete(s.parked, k)
		delete(s.parkSeq, k)
	}
	return retention.Result{Deleted: len(keys), More: more}, nil
}
