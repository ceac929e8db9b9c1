package inmem

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/fault"
)

var _ calls.Store = (*Store)(nil)

// callData holds one Store's calls; guarded by Store.mu.
type callData struct {
	byTenant map[string]map[string]versioned[calls.Call] // tenant → call id; values have no ETag
	ver      int64
}

// callsLocked returns s's calls, creating them; s.mu must be held.
func (s *Store) callsLocked() *callData {
	if s.calls == nil {
		s.calls = &callData{byTenant: map[string]map[string]versioned[calls.Call]{}}
	}
	return s.calls
}

// checkCall enforces the limits the Table storage adapter enforces: both keys are
// required and the timeline holds at most calls.MaxSteps steps.
func checkCall(c calls.Call) error {
	switch {
	case c.TenantID == "":
		return fault.Invalid("tenantId", "required")
	case c.ID == "":
		return fault.Invalid("callId", "required")
	case len(c.Steps) > calls.MaxSteps:
		return fault.Invalid("steps", fmt.Sprintf("%d steps, over calls.MaxSteps (%d)", len(c.Steps), calls.MaxSteps))
	}
	return nil
}

func (d *callData) get(tenantID, id string) (versioned[calls.Call], bool) {
	v, ok := d.byTenant[tenantID][id]
	return v, ok
}

// put stores a copy of c as a new version and returns it with its ETag.
func (d *callData) put(c calls.Call) calls.Call {
	d.ver++
	m := d.byTenant[c.TenantID]
	if m == nil {
		m = map[string]versioned[calls.Call]{}
		d.byTenant[c.TenantID] = m
	}
	c = c.Clone()
	c.ETag = ""
	m[c.ID] = versioned[calls.Call]{v: c, ver: d.ver}
	return withCallETag(m[c.ID])
}

func withCallETag(v versioned[calls.Call]) calls.Call {
	c := v.v.Clone()
	c.ETag = etag(v.ver)
	return c
}

// CreateCall implements calls.Store: fault.ErrConflict when the tenant has a call
// with c's id; a *fault.FieldError when c has no ids or too many steps.
func (s *Store) CreateCall(_ context.Context, c calls.Call) (calls.Call, error) {
	if err := checkCall(c); err != nil {
		return calls.Call{}, fmt.Errorf("create call: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.callsLocked()
	if _, ok := d.get(c.TenantID, c.ID); ok {
		return calls.Call{}, fmt.Errorf("create call: %w", fault.ErrConflict)
	}
	return d.put(c), nil
}

// GetCall implements calls.Store: fault.ErrNotFound for an unknown call.
func (s *Store) GetCall(_ context.Context, tenantID, id string) (calls.Call, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.callsLocked().get(tenantID, id)
	if !ok {
		return calls.Call{}, fmt.Errorf("get call: %w", fault.ErrNotFound)
	}
	return withCallETag(v), nil
}

// UpdateCall implements calls.Store. fn runs outside the lock on a copy; the write
// happens only if nobody wrote the call in between, else fn runs again on the fresh
// call. fn's error is returned as is, with nothing written.
func (s *Store) UpdateCall(ctx context.Context, tenantID, id string, fn func(*calls.Call) error) (calls.Call, error) {
	for {
		if err := ctx.Err(); err != nil {
			return calls.Call{}, err
		}
		s.mu.RLock()
		cur, ok := s.callsLocked().get(tenantID, id)
		s.mu.RUnlock()
		if !ok {
			return calls.Call{}, fmt.Errorf("update call: %w", fault.ErrNotFound)
		}
		c := withCallETag(cur)
		if err := fn(&c); err != nil {
			return calls.Call{}, err
		}
		c.TenantID, c.ID = tenantID, id
		if err := checkCall(c); err != nil {
			return calls.Call{}, fmt.Errorf("update call: %w", err)
		}
		s.mu.Lock()
		d := s.callsLocked()
		if now, _ := d.get(tenantID, id); now.ver != cur.ver {
			s.mu.Unlock()
			continue // lost a race: read again
		}
		got := d.put(c)
		s.mu.Unlock()
		return got, nil
	}
}

// DueCalls implements calls.Store: the tenant's calls with 0 < NextAt <= t, ordered
// by id.
func (s *Store) DueCalls(_ context.Context, tenantID string, t time.Time) ([]calls.Call, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []calls.Call{}
	for _, v := range s.callsLocked().byTenant[tenantID] {
		if !v.v.NextAt.IsZero() && !v.v.NextAt.After(t) {
			out = append(out, withCallETag(v))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
