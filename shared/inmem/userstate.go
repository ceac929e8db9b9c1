package inmem

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/userstate"
)

var _ userstate.Store = (*Store)(nil)

// userStates keeps cursors and records per tenant under their own lock.
type userStates struct {
	mu      sync.Mutex
	cursors map[string]map[string]versioned[userstate.Cursor] // tenant → agent
	records map[string]map[string]userstate.Record            // tenant → userstate.Key
}

// GetUserStateCursor implements userstate.Store.
func (s *Store) GetUserStateCursor(_ context.Context, tenantID, agentID string) (userstate.Cursor, error) {
	u := &s.us
	u.mu.Lock()
	defer u.mu.Unlock()
	v, ok := u.cursors[tenantID][agentID]
	if !ok {
		return userstate.Cursor{}, fmt.Errorf("user state cursor: %w", fault.ErrNotFound)
	}
	return withETag(v), nil
}

func withETag(v versioned[userstate.Cursor]) userstate.Cursor {
	c := v.v
	c.Seen.Agent = c.Seen.Agent.Clone()
	c.ETag = strconv.FormatInt(v.ver, 10)
	return c
}

// ListUserStateCursors implements userstate.Store.
func (s *Store) ListUserStateCursors(_ context.Context, tenantID string) ([]userstate.Cursor, error) {
	u := &s.us
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]userstate.Cursor, 0, len(u.cursors[tenantID]))
	for _, v := range u.cursors[tenantID] {
		out = append(out, withETag(v))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].AgentID < out[j].AgentID })
	return out, nil
}

// CommitUserStates implements userstate.Store: the condition is checked and the
// records and the cursor written under one lock.
func (s *Store) CommitUserStates(_ context.Context, c userstate.Cursor, remove bool, records []userstate.Record) error {
	u := &s.us
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.cursors == nil {
		u.cursors = map[string]map[string]versioned[userstate.Cursor]{}
		u.records = map[string]map[string]userstate.Record{}
	}
	cur, exists := u.cursors[c.TenantID][c.AgentID]
	switch {
	case c.ETag == "" && remove:
		return fmt.Errorf("user state cursor: remove needs an ETag: %w", fault.ErrPrecondition)
	case c.ETag == "" && exists:
		return fmt.Errorf("user state cursor: %w", fault.ErrConflict)
	case c.ETag != "" && !exists:
		return fmt.Errorf("user state cursor: %w", fault.ErrNotFound)
	case c.ETag != "" && strconv.FormatInt(cur.ver, 10) != c.ETag:
		return fmt.Errorf("user state cursor: %w", fault.ErrPrecondition)
	}
	if u.records[c.TenantID] == nil {
		u.records[c.TenantID] = map[string]userstate.Record{}
	}
	for _, r := range records {
		u.records[c.TenantID][userstate.Key(r)] = r
	}
	if remove {
		delete(u.cursors[c.TenantID], c.AgentID)
		return nil
	}
	if u.cursors[c.TenantID] == nil {
		u.cursors[c.TenantID] = map[string]versioned[userstate.Cursor]{}
	}
	s.mu.Lock()
	s.seq++
	ver := s.seq
	s.mu.Unlock()
	v := versioned[userstate.Cursor]{v: c, ver: ver}
	v.v.Seen.Agent = c.Seen.Agent.Clone()
	v.v.ETag = ""
	u.cursors[c.TenantID][c.AgentID] = v
	return nil
}

// ListUserStates implements userstate.Store.
func (s *Store) ListUserStates(_ context.Context, tenantID string, q userstate.Query) ([]userstate.Record, string, error) {
	u := &s.us
	u.mu.Lock()
	keys := make([]string, 0, len(u.records[tenantID]))
	from := userstate.KeyFrom(userstate.DayStart(q.From))
	for k := range u.records[tenantID] {
		if k >= from && k > q.After {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	top := q.Top
	if top <= 0 || top > userstate.MaxTop {
		top = userstate.MaxTop
	}
	var out []userstate.Record
	next := ""
	for _, k := range keys {
		r := u.records[tenantID][k]
		if !q.Matches(&r) {
			continue
		}
		if len(out) == top {
			next = userstate.Key(out[len(out)-1])
			break
		}
		out = append(out, r)
	}
	u.mu.Unlock()
	return out, next, nil
}
