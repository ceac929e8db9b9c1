package inmem

import (
	"context"
	"fmt"

	"github.com/teamscc/teamscc/shared/directory"
	"github.com/teamscc/teamscc/shared/fault"
)

var _ directory.Store = (*Store)(nil)

// syncStates holds one Store's directory sync states; guarded by Store.mu.
type syncStates struct {
	m   map[string]versioned[directory.SyncState] // tenant\x00service; values have no ETag
	ver int64
}

// checkSyncKeys refuses what the Table storage adapter refuses before any request:
// an empty tenant or service id.
func checkSyncKeys(tenantID, serviceID string) error {
	switch {
	case tenantID == "":
		return fault.Invalid("tenantId", "required")
	case serviceID == "":
		return fault.Invalid("serviceId", "required")
	}
	return nil
}

// GetSync implements directory.Store: the state with its ETag; fault.ErrNotFound for
// a service never synced; a *fault.FieldError for an empty id.
func (s *Store) GetSync(_ context.Context, tenantID, serviceID string) (directory.SyncState, error) {
	if err := checkSyncKeys(tenantID, serviceID); err != nil {
		return directory.SyncState{}, fmt.Errorf("get directory sync: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.dir.m[svcKey(tenantID, serviceID)]
	if !ok {
		return directory.SyncState{}, fmt.Errorf("get directory sync: %w", fault.ErrNotFound)
	}
	st := v.v
	st.ETag = etag(v.ver)
	return st, nil
}

// PutSync implements directory.Store: with an empty st.ETag it inserts
// (fault.ErrConflict if a state exists); otherwise it replaces the stored state only
// if that is still at st.ETag (fault.ErrPrecondition if it changed or is gone). It
// returns st with its new ETag; nothing is written on error. A *fault.FieldError for
// an empty id.
func (s *Store) PutSync(_ context.Context, st directory.SyncState) (directory.SyncState, error) {
	if err := checkSyncKeys(st.TenantID, st.ServiceID); err != nil {
		return directory.SyncState{}, fmt.Errorf("put directory sync: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir.m == nil {
		s.dir.m = map[string]versioned[directory.SyncState]{}
	}
	k := svcKey(st.TenantID, st.ServiceID)
	cur, ok := s.dir.m[k]
	switch {
	case st.ETag == "" && ok:
		return directory.SyncState{}, fmt.Errorf("put directory sync: %w", fault.ErrConflict)
	case st.ETag != "" && (!ok || etag(cur.ver) != st.ETag):
		return directory.SyncState{}, fmt.Errorf("put directory sync: %w", fault.ErrPrecondition)
	}
	s.dir.ver++
	st.ETag = ""
	s.dir.m[k] = versioned[directory.SyncState]{v: st, ver: s.dir.ver}
	st.ETag = etag(s.dir.ver)
	return st, nil
}

// DeleteSync implements directory.Store: it removes the state whatever its ETag; a
// missing one is no error. A *fault.FieldError for an empty id.
func (s *Store) DeleteSync(_ context.Context, tenantID, serviceID string) error {
	if err := checkSyncKeys(tenantID, serviceID); err != nil {
		return fmt.Errorf("delete directory sync: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.dir.m, svcKey(tenantID, serviceID))
	return nil
}
