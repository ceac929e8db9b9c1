// Package inmem is the embedded, in-process implementation of every store the domain
// declares. The local runner uses it, and it is the reference the conformance suites
// (package storetest) hold the Table storage adapter to. Safe for concurrent use.
package inmem

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/parking"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/tenant"
)

// Store keeps everything in maps behind one lock.
type Store struct {
	mu        sync.RWMutex
	tenants   map[string]tenant.Tenant
	agents    map[string]map[string]tenant.Agent
	agentsVer map[string]int64 // tenant → count of agent writes (AgentsVersion)
	secrets   map[string]string
	presences map[string]map[string]presence.Presence
	health    map[string]versioned[presence.Health]
	parked    map[string]parking.Message
	parkSeq   map[string]int64
	seq       int64
	rt        routingData // routing.go
	audit     auditLog    // audit.go

	// Writes counts presence rows written, so tests and benchmarks can check that only
	// changes are written.
	writes int64

	interact interactState // Interact settings and sessions (interact.go)
	ob       outboundData  // outbound tasks and counters (outbound.go)
	us       userStates    // user-state cursors and records (userstate.go)
	calls    *callData     // calls (calls.go)
	dir      syncStates    // directory sync states (directory.go)
}

type versioned[T any] struct {
	v   T
	ver int64
}

var (
	_ tenant.Store   = (*Store)(nil)
	_ tenant.Secrets = (*Store)(nil)
	_ presence.Store = (*Store)(nil)
	_ parking.Store  = (*Store)(nil)
)

// New returns an empty store.
func New() *Store {
	return &Store{
		tenants:   map[string]tenant.Tenant{},
		agents:    map[string]map[string]tenant.Agent{},
		agentsVer: map[string]int64{},
		secrets:   map[string]string{},
		presences: map[string]map[string]presence.Presence{},
		health:    map[string]versioned[presence.Health]{},
		parked:    map[string]parking.Message{},
		parkSeq:   map[string]int64{},
	}
}

// PresenceWrites reports how many presence rows were written so far.
func (s *Store) PresenceWrites() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.writes
}

// GetTenant implements tenant.Store.
func (s *Store) GetTenant(_ context.Context, id string) (tenant.Tenant, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.tenants[id]
	if !ok {
		return tenant.Tenant{}, fmt.Errorf("get tenant: %w", fault.ErrNotFound)
	}
	return t, nil
}

// PutTenant implements tenant.Store.
func (s *Store) PutTenant(_ context.Context, t tenant.Tenant) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tenants[t.ID] = t
	return nil
}

// ListTenants implements tenant.Store.
func (s *Store) ListTenants(_ context.Context) ([]tenant.Tenant, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]tenant.Tenant, 0, len(s.tenants))
	for _, t := range s.tenants {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// ListAgents implements tenant.Store.
func (s *Store) ListAgents(_ context.Context, tenantID string) ([]tenant.Agent, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := s.agents[tenantID]
	out := make([]tenant.Agent, 0, len(m))
	for _, a := range m {
		a.Services = append([]string(nil), a.Services...)
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// PutAgents implements tenant.Store: the agents and the version change together,
// under the store's lock.
func (s *Store) PutAgents(_ context.Context, tenantID string, agents []tenant.Agent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(agents) == 0 {
		return nil
	}
	s.agentsVer[tenantID]++
	m := s.agents[tenantID]
	if m == nil {
		m = map[string]tenant.Agent{}
		s.agents[tenantID] = m
	}
	for _, a := range agents {
		a.TenantID = tenantID
		a.Services = append([]string(nil), a.Services...)
		m[a.ID] = a
	}
	return nil
}

// AgentsVersion implements tenant.Store: the count of the tenant's agent writes, ""
// before the first.
func (s *Store) AgentsVersion(_ context.Context, tenantID string) (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := s.agentsVer[tenantID]
	if n == 0 {
		return "", nil
	}
	return strconv.FormatInt(n, 10), nil
}

func secretKey(tenantID, name string) string { return tenantID + "\x00" + name }

// GetSecret implements tenant.Secrets.
func (s *Store) GetSecret(_ context.Context, tenantID, name string) (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.secrets[secretKey(tenantID, name)]
	if !ok {
		return "", fmt.Errorf("get secret %s: %w", name, fault.ErrNotFound)
	}
	return v, nil
}

// PutSecret implements tenant.Secrets.
func (s *Store) PutSecret(_ context.Context, tenantID, name, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets[secretKey(tenantID, name)] = value
	return nil
}

// LoadPresences implements presence.Store.
func (s *Store) LoadPresences(_ context.Context, tenantID string) ([]presence.Presence, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := s.presences[tenantID]
	out := make([]presence.Presence, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	return out, nil
}

// SavePresences implements presence.Store.
func (s *Store) SavePresences(_ context.Context, tenantID string, ps []presence.Presence) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.presences[tenantID]
	if m == nil {
		m = make(map[string]presence.Presence, len(ps))
		s.presences[tenantID] = m
	}
	for _, p := range ps {
		m[p.AgentID] = p
	}
	s.writes += int64(len(ps))
	return nil
}

// GetHealth implements presence.Store.
func (s *Store) GetHealth(_ context.Context, tenantID string) (presence.Health, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	h, ok := s.health[tenantID]
	if !ok {
		return presence.Health{}, fmt.Errorf("get presence health: %w", fault.ErrNotFound)
	}
	return cloneHealth(h.v), nil
}

// UpdateHealth implements presence.Store. It runs fn outside the lock and writes only
// if nobody wrote in between (a version check, like an ETag), retrying otherwise, so it
// behaves like the Table storage adapter under races.
func (s *Store) UpdateHealth(ctx context.Context, tenantID string, fn func(*presence.Health) error) (presence.Health, error) {
	for {
		if err := ctx.Err(); err != nil {
			return presence.Health{}, err
		}
		s.mu.RLock()
		cur, ok := s.health[tenantID]
		s.mu.RUnlock()
		h := cloneHealth(cur.v)
		if !ok {
			h = presence.Health{TenantID: tenantID}
		}
		if err := fn(&h); err != nil {
			return presence.Health{}, err
		}
		h.TenantID = tenantID
		s.mu.Lock()
		now, exists := s.health[tenantID]
		if exists != ok || now.ver != cur.ver {
			s.mu.Unlock()
			continue
		}
		s.health[tenantID] = versioned[presence.Health]{v: cloneHealth(h), ver: cur.ver + 1}
		s.mu.Unlock()
		return h, nil
	}
}

func cloneHealth(h presence.Health) presence.Health {
	h.Warnings = append([]presence.Warning(nil), h.Warnings...)
	return h
}

// Park implements parking.Store.
func (s *Store) Park(_ context.Context, m parking.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	key := m.Function + "\x00" + m.MessageID
	if m.MessageID == "" {
		key = fmt.Sprintf("%s\x00#%d", m.Function, s.seq)
	}
	s.parked[key] = m
	s.parkSeq[key] = s.seq
	return nil
}

// ListParked implements parking.Store.
func (s *Store) ListParked(_ context.Context, function string, limit int) ([]parking.Message, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	type row struct {
		m   parking.Message
		seq int64
	}
	var rows []row
	for k, m := range s.parked {
		if function == "" || strings.HasPrefix(k, function+"\x00") {
			rows = append(rows, row{m, s.parkSeq[k]})
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		if !rows[i].m.ParkedAt.Equal(rows[j].m.ParkedAt) {
			return rows[i].m.ParkedAt.After(rows[j].m.ParkedAt)
		}
		return rows[i].seq > rows[j].seq
	})
	if limit > 0 && len(rows) > limit {
		rows = rows[:limit]
	}
	out := make([]parking.Message, len(rows))
	for i, r := range rows {
		out[i] = r.m
	}
	return out, nil
}
