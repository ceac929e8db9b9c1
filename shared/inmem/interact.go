package inmem

import (
	"context"
	"fmt"
	"sync"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/interact"
)

var _ interact.Store = (*Store)(nil)

// interactState holds Interact rows behind their own lock (the zero value is ready).
type interactState struct {
	mu       sync.RWMutex
	settings map[string]versioned[interact.Settings]
	sessions map[string]versioned[interact.Session] // key: tenant \x00 session id
}

func sessionKey(tenantID, id string) string { return tenantID + "\x00" + id }

// GetSettings implements interact.Store.
func (s *Store) GetSettings(_ context.Context, tenantID string) (interact.Settings, error) {
	st := &s.interact
	st.mu.RLock()
	defer st.mu.RUnlock()
	v, ok := st.settings[tenantID]
	if !ok {
		return interact.Settings{}, fmt.Errorf("get interact settings: %w", fault.ErrNotFound)
	}
	return v.v.Clone(), nil
}

// UpdateSettings implements interact.Store: fn runs outside the lock; the write
// happens only if nobody wrote in between (like an ETag), else fn runs again.
func (s *Store) UpdateSettings(ctx context.Context, tenantID string, fn func(*interact.Settings) error) (interact.Settings, error) {
	st := &s.interact
	for {
		if err := ctx.Err(); err != nil {
			return interact.Settings{}, err
		}
		st.mu.RLock()
		cur, ok := st.settings[tenantID]
		st.mu.RUnlock()
		v := cur.v.Clone()
		if !ok {
			v = interact.Settings{TenantID: tenantID}
		}
		if err := fn(&v); err != nil {
			return interact.Settings{}, err
		}
		v.TenantID, v.Version = tenantID, cur.v.Version+1
		st.mu.Lock()
		now, exists := st.settings[tenantID]
		if exists != ok || now.ver != cur.ver {
			st.mu.Unlock()
			continue
		}
		if st.settings == nil {
			st.settings = map[string]versioned[interact.Settings]{}
		}
		st.settings[tenantID] = versioned[interact.Settings]{v: v.Clone(), ver: cur.ver + 1}
		st.mu.Unlock()
		return v, nil
	}
}

// CreateSession implements interact.Store.
func (s *Store) CreateSession(_ context.Context, sess interact.Session) error {
	st := &s.interact
	st.mu.Lock()
	defer st.mu.Unlock()
	k := sessionKey(sess.TenantID, sess.ID)
	if _, ok := st.sessions[k]; ok {
		return fmt.Errorf("create session: %w", fault.ErrConflict)
	}
	if st.sessions == nil {
		st.sessions = map[string]versioned[interact.Session]{}
	}
	st.sessions[k] = versioned[interact.Session]{v: sess, ver: 1}
	return nil
}

// GetSession implements interact.Store.
func (s *Store) GetSession(_ context.Context, tenantID, sessionID string) (interact.Session, error) {
	st := &s.interact
	st.mu.RLock()
	defer st.mu.RUnlock()
	v, ok := st.sessions[sessionKey(tenantID, sessionID)]
	if !ok {
		return interact.Session{}, fmt.Errorf("get session: %w", fault.ErrNotFound)
	}
	return v.v, nil
}

// UpdateSession implements interact.Store (version-checked like UpdateSettings).
func (s *Store) UpdateSession(ctx context.Context, tenantID, sessionID string, fn func(*interact.Session) error) (interact.Session, error) {
	st := &s.interact
	k := sessionKey(tenantID, sessionID)
	for {
		if err := ctx.Err(); err != nil {
			return interact.Session{}, err
		}
		st.mu.RLock()
		cur, ok := st.sessions[k]
		st.mu.RUnlock()
		if !ok {
			return interact.Session{}, fmt.Errorf("update session: %w", fault.ErrNotFound)
		}
		v := cur.v
		if err := fn(&v); err != nil {
			return interact.Session{}, err
		}
		v.TenantID, v.ID = tenantID, sessionID
		st.mu.Lock()
		if now := st.sessions[k]; now.ver != cur.ver {
			st.mu.Unlock()
			continue
		}
		st.sessions[k] = versioned[interact.Session]{v: v, ver: cur.ver + 1}
		st.mu.Unlock()
		return v, nil
	}
}
