package inmem

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/interact"
	"github.com/teamscc/teamscc/shared/parking"
	"github.com/teamscc/teamscc/shared/retention"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/userstate"
)

var _ retention.Store = (*Store)(nil)

// purge deletes from m at most limit entries that old says are old enough, the
// smallest keys first (so calls with a small limit go in a stable order), and calls
// also (if set) with each deleted key.
func purge[V any](m map[string]V, old func(key string, v V) bool, limit int, also func(key string)) retention.Result {
	var keys []string
	for k, v := range m {
		if old(k, v) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	limit = retention.ClampLimit(limit)
	more := len(keys) > limit
	if more {
		keys = keys[:limit]
	}
	for _, k := range keys {
		delete(m, k)
		if also != nil {
			also(k)
		}
	}
	return retention.Result{Deleted: len(keys), More: more}
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
	return purge(s.rtLocked().tasks[svcKey(tenantID, serviceID)], func(_ string, v versioned[routing.Task]) bool {
		return !v.v.Open() && endedBefore(v.v.EndedAt, v.v.Created, before)
	}, limit, nil), nil
}

// PurgeEndedCalls implements retention.Store.
func (s *Store) PurgeEndedCalls(_ context.Context, tenantID string, before time.Time, limit int) (retention.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return purge(s.callsLocked().byTenant[tenantID], func(_ string, v versioned[calls.Call]) bool {
		return !v.v.Open() && endedBefore(v.v.EndedAt, v.v.Created, before)
	}, limit, nil), nil
}

// PurgeSessions implements retention.Store.
func (s *Store) PurgeSessions(_ context.Context, tenantID string, closedBefore, openedBefore time.Time, limit int) (retention.Result, error) {
	st := &s.interact
	st.mu.Lock()
	defer st.mu.Unlock()
	return purge(st.sessions, func(k string, v versioned[interact.Session]) bool {
		if !strings.HasPrefix(k, tenantID+"\x00") {
			return false
		}
		switch x := v.v; x.State {
		case interact.SessionClosed:
			return x.ClosedAt.Before(closedBefore)
		case interact.SessionOpen:
			return x.CreatedAt.Before(openedBefore)
		}
		return false
	}, limit, nil), nil
}

// PurgeUserStates implements retention.Store.
func (s *Store) PurgeUserStates(_ context.Context, tenantID string, before time.Time, limit int) (retention.Result, error) {
	u := &s.us
	u.mu.Lock()
	defer u.mu.Unlock()
	return purge(u.records[tenantID], func(_ string, r userstate.Record) bool {
		return !r.Open() && r.End.Before(before)
	}, limit, nil), nil
}

// PurgeParked implements retention.Store.
func (s *Store) PurgeParked(_ context.Context, before time.Time, limit int) (retention.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return purge(s.parked, func(_ string, m parking.Message) bool {
		return m.ParkedAt.Before(before)
	}, limit, func(k string) { delete(s.parkSeq, k) }), nil
}
