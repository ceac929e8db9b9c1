// Package tenant holds customer tenants, the settings this backend acts on, and their
// agents. It declares the Store it needs; adapters (inmem, tables) implement it.
package tenant

import (
	"context"
	"time"
)

// PresenceMode says how presence is read from Graph for a tenant.
type PresenceMode string

const (
	// ModeAccounts reads presence as the tenant's presence accounts (delegated
	// Presence.Read.All, guest accounts invited into the tenant): account 1, falling
	// back to account 2.
	ModeAccounts PresenceMode = "Accounts"
	// ModeApplication reads presence with the application permission Presence.Read.All
	// granted to this app in the tenant.
	ModeApplication PresenceMode = "Application"
)

// Names of the per-tenant secrets (see Secrets). Values are never logged or returned.
const (
	SecretAccount1Password = "presence-account-1-password"
	SecretAccount2Password = "presence-account-2-password"
)

// PresenceSettings is the tenant's presence-tracking configuration (SPEC §2).
type PresenceSettings struct {
	Enabled  bool         `json:"enabled"`
	Mode     PresenceMode `json:"mode"`
	Account1 string       `json:"account1,omitempty"` // UPN of presence account 1
	Account2 string       `json:"account2,omitempty"` // UPN of presence account 2 (fallback)
}

// Tenant is one customer's Microsoft 365 tenant as this backend knows it.
type Tenant struct {
	ID         string           `json:"id"` // Entra tenant id (GUID)
	Name       string           `json:"name"`
	Details    Details          `json:"details"`
	Security   Security         `json:"security"`
	Privacy    Privacy          `json:"privacy"`
	Extensions Extensions       `json:"extensions"`
	Presence   PresenceSettings `json:"presence"`
	Retention  Retention        `json:"retention"`
	Deleted    bool             `json:"deleted,omitempty"` // PendingDeletion: nothing routes
	UpdatedAt  time.Time        `json:"updatedAt"`
	// Version counts updates; an update names the version it was based on (If-Match)
	// and loses with fault.ErrPrecondition when another update came first.
	Version int64 `json:"version"`
}

// Agent is a user who takes work in one or more services of a tenant.
type Agent struct {
	TenantID    string   `json:"tenantId"`
	ID          string   `json:"id"` // Entra object id; Graph presence is keyed by it
	UPN         string   `json:"upn,omitempty"`
	DisplayName string   `json:"displayName,omitempty"`
	Services    []string `json:"services,omitempty"`
}

// Store keeps tenants and agents. Implementations are safe for concurrent use.
// GetTenant returns fault.ErrNotFound for an unknown tenant.
type Store interface {
	GetTenant(ctx context.Context, id string) (Tenant, error)
	// PutTenant inserts or replaces the tenant (seeding, tests; admin changes use
	// CreateTenant and UpdateTenant).
	PutTenant(ctx context.Context, t Tenant) error
	// CreateTenant inserts a new tenant; fault.ErrConflict if the id exists.
	CreateTenant(ctx context.Context, t Tenant) error
	// UpdateTenant reads the tenant, applies fn and writes it back conditionally,
	// retrying fn on a lost race (so fn must be repeatable), and increments Version.
	// fault.ErrNotFound for an unknown tenant; an error from fn aborts with nothing
	// written.
	UpdateTenant(ctx context.Context, id string, fn func(*Tenant) error) (Tenant, error)
	// ListTenants returns every tenant, ordered by id.
	ListTenants(ctx context.Context) ([]Tenant, error)
	// ListAgents returns the tenant's agents, ordered by id (empty, not an error,
	// for a tenant with none).
	ListAgents(ctx context.Context, tenantID string) ([]Agent, error)
	// PutAgents inserts or replaces agents of one tenant (any number; adapters batch).
	PutAgents(ctx context.Context, tenantID string, agents []Agent) error
	// AgentsVersion returns a token for the state of the tenant's agent list, read
	// cheaply (one point read on Table storage), so a reader can keep a list and list
	// again only when the token differs. Tokens are opaque and compared for equality
	// only; a token is never reused for another state of the list.
	//
	// Every PutAgents that writes an agent changes the token (also when the agent
	// written equals the stored one), and a write of nothing or another tenant's write
	// leaves it. A token read BEFORE a ListAgents can be kept with that list: if a later
	// AgentsVersion returns the same token, no agent was written after the token was
	// read, so the list is still current. This holds under concurrent writers, also
	// halfway through a PutAgents of many batches (each batch changes the token with
	// its agents). Before any agent is written the token is "".
	AgentsVersion(ctx context.Context, tenantID string) (string, error)
}

// Secrets keeps per-tenant secrets (presence account passwords, later ACS connection
// strings) apart from the settings, so that no read of tenant settings carries them.
// GetSecret returns fault.ErrNotFound when the secret was never set.
type Secrets interface {
	GetSecret(ctx context.Context, tenantID, name string) (string, error)
	PutSecret(ctx context.Context, tenantID, name, value string) error
}
