package tables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/tenant"
)

// tenantPartition is the one partition of the Tenants table: tenants are few, and one
// partition lists them with a single query.
const tenantPartition = "tenant"

var replace = &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace}

// GetTenant implements tenant.Store: fault.ErrNotFound for an unknown tenant, a
// *fault.FieldError for an id that cannot be a key.
func (s *Store) GetTenant(ctx context.Context, id string) (tenant.Tenant, error) {
	if err := checkKey("tenant.id", id); err != nil {
		return tenant.Tenant{}, fmt.Errorf("get tenant: %w", err)
	}
	resp, err := s.tenants.GetEntity(ctx, tenantPartition, id, nil)
	if err != nil {
		return tenant.Tenant{}, wrap("get tenant", err)
	}
	r, err := decodeRecord(resp.Value)
	if err != nil {
		return tenant.Tenant{}, fmt.Errorf("get tenant: %w", err)
	}
	return decodeTenant(r)
}

func decodeTenant(r record) (tenant.Tenant, error) {
	var t tenant.Tenant
	if err := r.data("tenant", &t); err != nil {
		return tenant.Tenant{}, err
	}
	t.ID = r.str("RowKey")
	return t, nil
}

// tenantEntity is the row of a tenant: the whole tenant as JSON in Data, plus a few
// typed copies for Storage Explorer and Power BI (only Data is read back).
func tenantEntity(t tenant.Tenant) (row, error) {
	data, err := json.Marshal(t)
	if err != nil {
		return row{}, err
	}
	return newRow("tenant", "tenant.partition", tenantPartition, "tenant.id", t.ID, props{
		"Data":            string(data),
		"Name":            t.Name,
		"Deleted":         t.Deleted,
		"PresenceEnabled": t.Presence.Enabled,
		"PresenceMode":    string(t.Presence.Mode),
		"UpdatedAt":       t.UpdatedAt,
		"Version":         t.Version,
	})
}

// PutTenant implements tenant.Store (insert or replace).
func (s *Store) PutTenant(ctx context.Context, t tenant.Tenant) error {
	r, err := tenantEntity(t)
	if err != nil {
		return fmt.Errorf("put tenant: %w", err)
	}
	_, err = s.tenants.UpsertEntity(ctx, r.body, replace)
	return wrap("put tenant", err)
}

// ListTenants implements tenant.Store: every tenant, ordered by id.
func (s *Store) ListTenants(ctx context.Context) ([]tenant.Tenant, error) {
	out := []tenant.Tenant{}
	err := listAll(ctx, s.tenants, "PartitionKey eq "+odataString(tenantPartition), "RowKey,Data", func(r record) error {
		t, err := decodeTenant(r)
		out = append(out, t)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// ListAgents implements tenant.Store: the tenant's agents ordered by id, empty for a
// tenant with none.
func (s *Store) ListAgents(ctx context.Context, tenantID string) ([]tenant.Agent, error) {
	if err := checkKey("tenantId", tenantID); err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	out := []tenant.Agent{}
	err := listAll(ctx, s.agents, "PartitionKey eq "+odataString(tenantID), "RowKey,Data", func(r record) error {
		if r.str("RowKey") == agentsVersionRow {
			return nil
		}
		var a tenant.Agent
		if err := r.data("agent", &a); err != nil {
			return err
		}
		a.TenantID, a.ID = tenantID, r.str("RowKey")
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// agentsVersionRow is the RowKey of the version row in each tenant's partition of
// Agents: Version, a random token (see AgentsVersion). No agent may have this id.
const agentsVersionRow = "~agents-version"

// PutAgents implements tenant.Store: inserts or replaces agents of one tenant in
// transactions of at most 99 agents plus the version row, a few at a time. Every
// agent is validated before the first request; each transaction is atomic, the call
// is not. An id given twice keeps its last agent.
func (s *Store) PutAgents(ctx context.Context, tenantID string, agents []tenant.Agent) error {
	rows := make([]row, 0, len(agents))
	for _, a := range agents {
		if a.ID == agentsVersionRow {
			return fmt.Errorf("put agents: %w", fault.Invalid("agent.id", "reserved for the agent list's version"))
		}
		a.TenantID = tenantID
		data, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("put agents: %w", err)
		}
		r, err := newRow("agent", "tenantId", tenantID, "agent.id", a.ID, props{
			"Data":        string(data),
			"UPN":         a.UPN,
			"DisplayName": a.DisplayName,
		})
		if err != nil {
			return fmt.Errorf("put agents: %w", err)
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		return nil
	}
	stamp, err := newRow("agents version", "tenantId", tenantID, "row", agentsVersionRow, props{"At": time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("put agents: %w", err)
	}
	return wrap("put agents", upsertAllStamped(ctx, s.agents, rows, stamp))
}

// AgentsVersion implements tenant.Store with one point read of the version row: its
// ETag ("" when there is none).
//
// Every agent transaction rewrites the version row, in the same entity-group
// transaction as its agents, so no agent write commits without a new ETag and an ETag
// is never visible before its agents are (the storage service changes the ETag on
// every write, and never back). An unconditional rewrite cannot conflict, where a
// counter would need a read and a conditional write per batch. It is written neither
// after the batches (a crash in between would leave a changed list under the old
// version) nor before them (a reader could pair the new version with the old list).
// The roster's "~members" row works the same way.
func (s *Store) AgentsVersion(ctx context.Context, tenantID string) (string, error) {
	if err := checkKey("tenantId", tenantID); err != nil {
		return "", fmt.Errorf("agents version: %w", err)
	}
	resp, err := s.agents.GetEntity(ctx, tenantID, agentsVersionRow, nil)
	if errors.Is(classify(err), fault.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", wrap("agents version", err)
	}
	return string(resp.ETag), nil
}

// GetSecret implements tenant.Secrets: fault.ErrNotFound when never set. The value is
// never part of an error.
func (s *Store) GetSecret(ctx context.Context, tenantID, name string) (string, error) {
	if err := checkKey("tenantId", tenantID); err != nil {
		return "", fmt.Errorf("get secret %s: %w", name, err)
	}
	if err := checkKey("secret.name", name); err != nil {
		return "", fmt.Errorf("get secret: %w", err)
	}
	resp, err := s.secrets.GetEntity(ctx, tenantID, name, nil)
	if err != nil {
		return "", wrap("get secret "+name, err)
	}
	r, err := decodeRecord(resp.Value)
	if err != nil {
		return "", fmt.Errorf("get secret %s: %w", name, err)
	}
	return r.str("Value"), nil
}

// PutSecret implements tenant.Secrets (insert or replace).
func (s *Store) PutSecret(ctx context.Context, tenantID, name, value string) error {
	r, err := newRow("secret", "tenantId", tenantID, "secret.name", name, props{"Value": value})
	if err != nil {
		return fmt.Errorf("put secret %s: %w", checkedName(name), err)
	}
	_, err = s.secrets.UpsertEntity(ctx, r.body, replace)
	return wrap("put secret "+name, err)
}

// checkedName is name if it is a valid key, else a placeholder, so an error never
// repeats a malformed (possibly pasted-in-the-wrong-field) value.
func checkedName(name string) string {
	if checkKey("", name) != nil {
		return "(invalid name)"
	}
	return name
}
