package inmem

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/teamscc/teamscc/shared/audit"
)

var _ audit.Store = (*Store)(nil)

// auditLog keeps entries per tenant under its own lock: appends never
// read-modify-write anything else.
type auditLog struct {
	mu      sync.Mutex
	entries map[string][]audit.Entry
}

// Append implements audit.Store.
func (s *Store) Append(_ context.Context, e audit.Entry) error {
	l := &s.audit
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.entries == nil {
		l.entries = map[string][]audit.Entry{}
	}
	e.Roles = append([]string(nil), e.Roles...)
	l.entries[e.TenantID] = append(l.entries[e.TenantID], e)
	return nil
}

// ListAudit implements audit.Store.
func (s *Store) ListAudit(_ context.Context, tenantID string, from, to time.Time, limit int) ([]audit.Entry, error) {
	l := &s.audit
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []audit.Entry
	for _, e := range l.entries[tenantID] {
		if (from.IsZero() || !e.At.Before(from)) && (to.IsZero() || e.At.Before(to)) {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.After(out[j].At) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
