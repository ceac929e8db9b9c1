// Package audit records every administrative change: who (object id and tenant of the
// caller, the roles they acted with), when, what operation, and which fields with
// their new values — secrets only as "***". Entries are never changed or deleted.
package audit

import (
	"context"
	"time"
)

// Entry is one recorded change.
type Entry struct {
	TenantID    string            `json:"tenantId"`
	At          time.Time         `json:"at"`
	ActorID     string            `json:"actorId"`     // caller's object id
	ActorTenant string            `json:"actorTenant"` // directory the caller signed in to
	Roles       []string          `json:"roles"`
	Operation   string            `json:"operation"` // e.g. tenant.update
	Target      string            `json:"target,omitempty"`
	Fields      map[string]string `json:"fields,omitempty"` // path → new value as JSON; secrets "***"
}

// Store appends entries and lists them. Safe for concurrent use; entries of one tenant
// listed newest first.
type Store interface {
	Append(ctx context.Context, e Entry) error
	// ListAudit returns up to limit entries of the tenant with from <= At < to (zero
	// times: unbounded), newest first.
	ListAudit(ctx context.Context, tenantID string, from, to time.Time, limit int) ([]Entry, error)
}
