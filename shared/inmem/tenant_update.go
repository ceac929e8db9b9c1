package inmem

import (
	"context"
	"fmt"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/tenant"
)

// CreateTenant implements tenant.Store.
func (s *Store) CreateTenant(_ context.Context, t tenant.Tenant) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tenants[t.ID]; ok {
		return fmt.Errorf("create tenant: %w", fault.ErrConflict)
	}
	t.Version = 1
	s.tenants[t.ID] = t
	return nil
}

// UpdateTenant implements tenant.Store: fn runs outside the lock on a copy, and the
// write happens only if the stored version is still the one fn saw.
func (s *Store) UpdateTenant(ctx context.Context, id string, fn func(*tenant.Tenant) error) (tenant.Tenant, error) {
	for {
		if err := ctx.Err(); err != nil {
			return tenant.Tenant{}, err
		}
		s.mu.RLock()
		cur, ok := s.tenants[id]
		s.mu.RUnlock()
		if !ok {
			return tenant.Tenant{}, fmt.Errorf("update tenant: %w", fault.ErrNotFound)
		}
		next := cur
		if err := fn(&next); err != nil {
			return tenant.Tenant{}, err
		}
		next.ID, next.Version = id, cur.Version+1
		s.mu.Lock()
		if s.tenants[id].Version != cur.Version {
			s.mu.Unlock()
			continue
		}
		s.tenants[id] = next
		s.mu.Unlock()
		return next, nil
	}
}
