package tables

import (
	"context"
	"errors"
	"fmt"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/tenant"
)

// CreateTenant implements tenant.Store: AddEntity, so an existing id is
// fault.ErrConflict.
func (s *Store) CreateTenant(ctx context.Context, t tenant.Tenant) error {
	t.Version = 1
	r, err := tenantEntity(t)
	if err != nil {
		return fmt.Errorf("create tenant: %w", err)
	}
	return wrap("create tenant", s.add(ctx, s.tenants, r))
}

// UpdateTenant implements tenant.Store: read with ETag, apply fn, replace If-Match;
// a lost race re-reads and applies fn again, so concurrent updates are serialised and
// none is lost. Version is incremented by every write.
func (s *Store) UpdateTenant(ctx context.Context, id string, fn func(*tenant.Tenant) error) (tenant.Tenant, error) {
	if err := checkKey("tenant.id", id); err != nil {
		return tenant.Tenant{}, fmt.Errorf("update tenant: %w", err)
	}
	for attempt := 0; ; attempt++ {
		resp, err := s.tenants.GetEntity(ctx, tenantPartition, id, nil)
		if err != nil {
			return tenant.Tenant{}, wrap("update tenant", err)
		}
		rec, err := decodeRecord(resp.Value)
		if err != nil {
			return tenant.Tenant{}, fmt.Errorf("update tenant: %w", err)
		}
		t, err := decodeTenant(rec)
		if err != nil {
			return tenant.Tenant{}, fmt.Errorf("update tenant: %w", err)
		}
		version := t.Version
		if err := fn(&t); err != nil {
			return tenant.Tenant{}, err
		}
		t.ID, t.Version = id, version+1
		r, err := tenantEntity(t)
		if err != nil {
			return tenant.Tenant{}, fmt.Errorf("update tenant: %w", err)
		}
		err = s.replaceIfMatch(ctx, s.tenants, r, resp.ETag)
		if err == nil {
			return t, nil
		}
		if !errors.Is(err, fault.ErrPrecondition) {
			return tenant.Tenant{}, wrap("update tenant", err)
		}
		if attempt+1 >= maxAttempts {
			return tenant.Tenant{}, fmt.Errorf("update tenant: gave up after %d lost races: %w", maxAttempts, err)
		}
		if err := fault.Backoff(ctx, attempt); err != nil {
			return tenant.Tenant{}, fmt.Errorf("update tenant: %w", err)
		}
	}
}
