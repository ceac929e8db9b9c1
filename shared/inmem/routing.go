package inmem

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/routing"
)

var _ routing.Store = (*Store)(nil)

// routingData holds the routing store's maps; created on first use, guarded by mu.
type routingData struct {
	services map[string]routing.Service                    // tenant\x00service
	tasks    map[string]map[string]versioned[routing.Task] // tenant\x00service → task id
	open     map[string]map[string]bool                    // tenant\x00service → ids of its open tasks
	members  map[string]map[string]bool                    // tenant\x00service → ids of its agents (the roster)
	agents   map[string]map[string]versioned[routing.AgentState]
	keys     map[string]time.Time
	ver      int64
}

// rtLocked returns the routing maps, creating them; s.mu must be held for writing.
func (s *Store) rtLocked() *routingData {
	if s.rt.services == nil {
		s.rt = routingData{services: map[string]routing.Service{}, tasks: map[string]map[string]versioned[routing.Task]{},
			open: map[string]map[string]bool{}, members: map[string]map[string]bool{},
			agents: map[string]map[string]versioned[routing.AgentState]{}, keys: map[string]time.Time{}}
	}
	return &s.rt
}

// setIn adds (on) or removes id from the set under k.
func setIn(sets map[string]map[string]bool, k, id string, on bool) {
	m := sets[k]
	switch {
	case on && m == nil:
		sets[k] = map[string]bool{id: true}
	case on:
		m[id] = true
	case m != nil:
		delete(m, id)
	}
}

// putTask stores t (the lock held) and keeps the open-task index in step.
func (rt *routingData) putTask(m map[string]versioned[routing.Task], t routing.Task) int64 {
	rt.ver++
	m[t.ID] = versioned[routing.Task]{v: t.Clone(), ver: rt.ver}
	setIn(rt.open, svcKey(t.TenantID, t.ServiceID), t.ID, t.Open())
	return rt.ver
}

// putAgent stores a (the lock held) and keeps the rosters in step.
func (rt *routingData) putAgent(m map[string]versioned[routing.AgentState], a routing.AgentState) int64 {
	if cur, ok := m[a.AgentID]; ok {
		for _, sv := range cur.v.AllServices() {
			setIn(rt.members, svcKey(a.TenantID, sv), a.AgentID, false)
		}
	}
	for _, sv := range a.AllServices() {
		setIn(rt.members, svcKey(a.TenantID, sv), a.AgentID, true)
	}
	rt.ver++
	m[a.AgentID] = versioned[routing.AgentState]{v: a.Clone(), ver: rt.ver}
	return rt.ver
}

func svcKey(tenantID, serviceID string) string { return tenantID + "\x00" + serviceID }

func etag(v int64) string { return "v" + strconv.FormatInt(v, 10) }

// PutService implements routing.Store.
func (s *Store) PutService(_ context.Context, sv routing.Service) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rtLocked().services[svcKey(sv.TenantID, sv.ID)] = sv.Clone()
	return nil
}

// CreateService implements routing.Store.
func (s *Store) CreateService(_ context.Context, sv routing.Service) (routing.Service, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := svcKey(sv.TenantID, sv.ID)
	if _, ok := s.rtLocked().services[k]; ok {
		return routing.Service{}, fmt.Errorf("create service: %w", fault.ErrConflict)
	}
	sv.Version = 1
	s.rt.services[k] = sv.Clone()
	return sv.Clone(), nil
}

// UpdateService implements routing.Store. fn runs outside the lock; the write happens
// only if the stored version is still the one fn saw, else fn runs again.
func (s *Store) UpdateService(ctx context.Context, tenantID, serviceID string, fn func(*routing.Service) error) (routing.Service, error) {
	for {
		if err := ctx.Err(); err != nil {
			return routing.Service{}, err
		}
		sv, err := s.GetService(ctx, tenantID, serviceID)
		if err != nil {
			return routing.Service{}, fmt.Errorf("update service: %w", err)
		}
		base := sv.Version
		if err := fn(&sv); err != nil {
			return routing.Service{}, err
		}
		sv.TenantID, sv.ID, sv.Version = tenantID, serviceID, base+1
		s.mu.Lock()
		k := svcKey(tenantID, serviceID)
		cur, ok := s.rtLocked().services[k]
		if ok && cur.Version == base {
			s.rt.services[k] = sv.Clone()
		}
		s.mu.Unlock()
		if !ok {
			return routing.Service{}, fmt.Errorf("update service: %w", fault.ErrNotFound)
		}
		if cur.Version == base {
			return sv, nil
		}
		// lost a race: read again
	}
}

// GetService implements routing.Store.
func (s *Store) GetService(_ context.Context, tenantID, serviceID string) (routing.Service, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sv, ok := s.rtLocked().services[svcKey(tenantID, serviceID)]
	if !ok {
		return routing.Service{}, fmt.Errorf("get service: %w", fault.ErrNotFound)
	}
	return sv.Clone(), nil
}

// ListServices implements routing.Store.
func (s *Store) ListServices(_ context.Context, tenantID string) ([]routing.Service, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []routing.Service{}
	for _, sv := range s.rtLocked().services {
		if sv.TenantID == tenantID {
			out = append(out, sv.Clone())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// LoadQueue implements routing.Store.
func (s *Store) LoadQueue(_ context.Context, tenantID, serviceID string) (routing.Service, []routing.Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := s.rtLocked()
	sv, ok := rt.services[svcKey(tenantID, serviceID)]
	if !ok {
		return routing.Service{}, nil, fmt.Errorf("load queue: %w", fault.ErrNotFound)
	}
	return sv.Clone(), rt.openTasks(tenantID, serviceID), nil
}

// openTasks returns the service's open tasks by id (the lock held): the open-task
// index, never the service's history.
func (rt *routingData) openTasks(tenantID, serviceID string) []routing.Task {
	k := svcKey(tenantID, serviceID)
	all := rt.tasks[k]
	out := make([]routing.Task, 0, len(rt.open[k]))
	for id := range rt.open[k] {
		v := all[id]
		t := v.v.Clone()
		t.ETag = etag(v.ver)
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// LoadMatch implements routing.Store: the service, its open tasks and its members
// with their current states and presences (the embedded store's rosters are always
// current). The members' states share their maps and slices with the store, which
// never changes a stored value in place: they are read-only (the engine clones an
// agent's state before it reserves it).
func (s *Store) LoadMatch(_ context.Context, tenantID, serviceID string) (routing.Queue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := s.rtLocked()
	k := svcKey(tenantID, serviceID)
	sv, ok := rt.services[k]
	if !ok {
		return routing.Queue{}, fmt.Errorf("load match: %w", fault.ErrNotFound)
	}
	q := routing.Queue{Service: sv.Clone(), Tasks: rt.openTasks(tenantID, serviceID), Members: make([]routing.Member, 0, len(rt.members[k]))}
	agents, ps := rt.agents[tenantID], s.presences[tenantID]
	for id := range rt.members[k] {
		v := agents[id]
		a := v.v // shallow: see above
		a.ETag = etag(v.ver)
		p, hasP := ps[id]
		q.Members = append(q.Members, routing.Member{State: a, Presence: p, HasPresence: hasP})
	}
	sort.Slice(q.Members, func(i, j int) bool { return q.Members[i].State.AgentID < q.Members[j].State.AgentID })
	return q, nil
}

// Memberships implements routing.Store.
func (s *Store) Memberships(_ context.Context, tenantID string, agentIDs []string) (map[string][]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	agents := s.rtLocked().agents[tenantID]
	out := make(map[string][]string, len(agentIDs))
	for _, id := range agentIDs {
		if v, ok := agents[id]; ok {
			if svcs := v.v.AllServices(); len(svcs) > 0 {
				out[id] = svcs
			}
		}
	}
	return out, nil
}

// GetTask implements routing.Store.
func (s *Store) GetTask(_ context.Context, tenantID, serviceID, taskID string) (routing.Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.rtLocked().tasks[svcKey(tenantID, serviceID)][taskID]
	if !ok {
		return routing.Task{}, fmt.Errorf("get task: %w", fault.ErrNotFound)
	}
	t := v.v.Clone()
	t.ETag = etag(v.ver)
	return t, nil
}

// CreateTask implements routing.Store.
func (s *Store) CreateTask(_ context.Context, t routing.Task) (routing.Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := s.rtLocked()
	k := svcKey(t.TenantID, t.ServiceID)
	m := rt.tasks[k]
	if m == nil {
		m = map[string]versioned[routing.Task]{}
		rt.tasks[k] = m
	}
	if _, ok := m[t.ID]; ok {
		return routing.Task{}, fmt.Errorf("create task: %w", fault.ErrConflict)
	}
	ver := rt.putTask(m, t)
	t = t.Clone()
	t.ETag = etag(ver)
	return t, nil
}

// ReplaceTask implements routing.Store.
func (s *Store) ReplaceTask(_ context.Context, t routing.Task) (routing.Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := s.rtLocked()
	m := rt.tasks[svcKey(t.TenantID, t.ServiceID)]
	cur, ok := m[t.ID]
	if !ok {
		return routing.Task{}, fmt.Errorf("replace task: %w", fault.ErrNotFound)
	}
	if etag(cur.ver) != t.ETag {
		return routing.Task{}, fmt.Errorf("replace task: %w", fault.ErrPrecondition)
	}
	ver := rt.putTask(m, t)
	t = t.Clone()
	t.ETag = etag(ver)
	return t, nil
}

// UpdateTask implements routing.Store. fn runs outside the lock; the write happens
// only if nobody wrote in between, else fn runs again on the fresh task.
func (s *Store) UpdateTask(ctx context.Context, tenantID, serviceID, taskID string, fn func(*routing.Task) error) (routing.Task, error) {
	for {
		if err := ctx.Err(); err != nil {
			return routing.Task{}, err
		}
		t, err := s.GetTask(ctx, tenantID, serviceID, taskID)
		if err != nil {
			return routing.Task{}, err
		}
		if err := fn(&t); err != nil {
			return routing.Task{}, err
		}
		t.TenantID, t.ServiceID, t.ID = tenantID, serviceID, taskID
		got, err := s.ReplaceTask(ctx, t)
		if !errors.Is(err, fault.ErrPrecondition) {
			return got, err
		}
		// lost a race: read again
	}
}

// ListAgentStates implements routing.Store.
func (s *Store) ListAgentStates(_ context.Context, tenantID string) ([]routing.AgentState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.rtLocked().agents[tenantID]
	out := make([]routing.AgentState, 0, len(m))
	for _, v := range m {
		a := v.v.Clone()
		a.ETag = etag(v.ver)
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].AgentID < out[j].AgentID })
	return out, nil
}

// GetAgentState implements routing.Store.
func (s *Store) GetAgentState(_ context.Context, tenantID, agentID string) (routing.AgentState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.rtLocked().agents[tenantID][agentID]
	if !ok {
		return routing.AgentState{}, fmt.Errorf("get agent state: %w", fault.ErrNotFound)
	}
	a := v.v.Clone()
	a.ETag = etag(v.ver)
	return a, nil
}

// ReplaceAgentState implements routing.Store.
func (s *Store) ReplaceAgentState(_ context.Context, a routing.AgentState) (routing.AgentState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := s.rtLocked()
	m := rt.agents[a.TenantID]
	if m == nil {
		m = map[string]versioned[routing.AgentState]{}
		rt.agents[a.TenantID] = m
	}
	cur, ok := m[a.AgentID]
	switch {
	case a.ETag == "" && ok:
		return routing.AgentState{}, fmt.Errorf("insert agent state: %w", fault.ErrConflict)
	case a.ETag != "" && !ok:
		return routing.AgentState{}, fmt.Errorf("replace agent state: %w", fault.ErrNotFound)
	case a.ETag != "" && etag(cur.ver) != a.ETag:
		return routing.AgentState{}, fmt.Errorf("replace agent state: %w", fault.ErrPrecondition)
	}
	ver := rt.putAgent(m, a)
	a = a.Clone()
	a.ETag = etag(ver)
	return a, nil
}

// UpdateAgentState implements routing.Store.
func (s *Store) UpdateAgentState(ctx context.Context, tenantID, agentID string, fn func(*routing.AgentState) error) (routing.AgentState, error) {
	for {
		if err := ctx.Err(); err != nil {
			return routing.AgentState{}, err
		}
		a, err := s.GetAgentState(ctx, tenantID, agentID)
		if err != nil {
			a = routing.AgentState{TenantID: tenantID, AgentID: agentID}
		}
		if err := fn(&a); err != nil {
			return routing.AgentState{}, err
		}
		a.TenantID, a.AgentID = tenantID, agentID
		got, err := s.ReplaceAgentState(ctx, a)
		if err == nil {
			return got, nil
		}
		// lost a race (precondition, conflict, vanished): read again
	}
}

// ServiceByTarget implements routing.Store: the tenant's services matched by
// routing.ServiceForTarget.
func (s *Store) ServiceByTarget(ctx context.Context, tenantID, target string) (routing.Service, error) {
	list, err := s.ListServices(ctx, tenantID)
	if err != nil {
		return routing.Service{}, err
	}
	return routing.ServiceForTarget(list, target)
}

// PurgeService implements routing.Store.
func (s *Store) PurgeService(_ context.Context, tenantID, serviceID string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := svcKey(tenantID, serviceID)
	sv, ok := s.rtLocked().services[k]
	switch {
	case !ok:
		return 0, fmt.Errorf("purge service: %w", fault.ErrNotFound)
	case !sv.PendingDeletion:
		return 0, fmt.Errorf("purge service: not pending deletion: %w", fault.ErrPrecondition)
	}
	n := len(s.rt.tasks[k])
	delete(s.rt.tasks, k)
	delete(s.rt.open, k)
	delete(s.rt.services, k)
	return n, nil
}
