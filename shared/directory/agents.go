package directory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/tenant"
)

// AddAgent makes a directory user an agent of a skill-based service: the user is
// found by UPN or object id within the tenant's Graph filter, gets (or keeps) its
// directory entry, and the service joins its duty profile (its skills decide the
// rest). Errors: *fault.FieldError on "user" when the directory has no such user
// (or the filter excludes it), on "type" for a service that is not skill-based;
// fault.ErrNotFound for an unknown service; ErrNoCredential.
func (d *Directory) AddAgent(ctx context.Context, tenantID, serviceID, user string) (tenant.Agent, error) {
	user = strings.TrimSpace(user)
	if user == "" {
		return tenant.Agent{}, fault.Invalid("user", "required: a user principal name or an Entra object id")
	}
	t, err := d.o.Tenants.GetTenant(ctx, tenantID)
	if err != nil {
		return tenant.Agent{}, fmt.Errorf("tenant: %w", err)
	}
	svc, err := d.o.Routes.GetService(ctx, tenantID, serviceID)
	if err != nil {
		return tenant.Agent{}, fmt.Errorf("service: %w", err)
	}
	if svc.Type != routing.SkillBased {
		return tenant.Agent{}, fault.Invalid("type", "agents are added to skill-based services; a Teams-based service's agents are its Team's members")
	}
	var u User
	err = d.withCred(ctx, t, func(c presence.Credential) error {
		u, err = d.o.Graph.FindUser(ctx, tenantID, c, user, t.Extensions.GraphFilter)
		return err
	})
	if errors.Is(err, fault.ErrNotFound) {
		return tenant.Agent{}, fault.Invalid("user", "not found in the tenant's directory (or outside its Graph filter)")
	}
	if err != nil {
		return tenant.Agent{}, fmt.Errorf("find user: %w", err)
	}
	id := strings.ToLower(u.ID)
	agents, err := d.o.Tenants.ListAgents(ctx, tenantID)
	if err != nil {
		return tenant.Agent{}, fmt.Errorf("agents: %w", err)
	}
	a := tenant.Agent{TenantID: tenantID, ID: id}
	if i := slices.IndexFunc(agents, func(x tenant.Agent) bool { return strings.EqualFold(x.ID, id) }); i >= 0 {
		a = agents[i]
	}
	a.UPN, a.DisplayName = u.UPN, u.DisplayName
	if err := d.o.Tenants.PutAgents(ctx, tenantID, []tenant.Agent{a}); err != nil {
		return tenant.Agent{}, fmt.Errorf("write agent: %w", err)
	}
	if _, err := d.o.Routes.UpdateAgentState(ctx, tenantID, id, func(st *routing.AgentState) error {
		if slices.Contains(st.Duty.Services, serviceID) {
			return errNothing
		}
		st.Duty.Services = append(st.Duty.Services, serviceID)
		return nil
	}); err != nil && !errors.Is(err, errNothing) {
		return a, fmt.Errorf("put the agent on duty: %w", err)
	}
	return a, nil
}

// RemoveAgent takes an agent off a skill-based service's duty profile (the agent and
// its history stay). fault.ErrNotFound for an unknown agent or service; a
// *fault.FieldError for a Teams-based service (its members follow the Team).
func (d *Directory) RemoveAgent(ctx context.Context, tenantID, serviceID, agentID string) error {
	svc, err := d.o.Routes.GetService(ctx, tenantID, serviceID)
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if svc.Type != routing.SkillBased {
		return fault.Invalid("type", "only a skill-based service's agents are removed here; a Teams-based service's follow its Team")
	}
	_, err = d.o.Routes.UpdateAgentState(ctx, tenantID, strings.ToLower(agentID), func(st *routing.AgentState) error {
		if st.ETag == "" {
			return fmt.Errorf("agent: %w", fault.ErrNotFound)
		}
		if !slices.Contains(st.Duty.Services, serviceID) {
			return errNothing
		}
		st.Duty.Services = slices.DeleteFunc(st.Duty.Services, func(s string) bool { return s == serviceID })
		return nil
	})
	if errors.Is(err, errNothing) {
		return nil
	}
	return err
}

// SearchUsers finds users of the tenant's directory whose name, UPN or mail starts
// with query, within the tenant's Graph filter, a page at a time (page: the token of
// the previous answer). *fault.FieldError on "search" or "$top" for bad input.
func (d *Directory) SearchUsers(ctx context.Context, tenantID, query string, top int, page string) ([]User, string, error) {
	query = strings.TrimSpace(query)
	if query == "" {
		return nil, "", fault.Invalid("search", "required")
	}
	if top < 1 || top > MaxTop {
		return nil, "", fault.Invalid("$top", fmt.Sprintf("must be 1..%d", MaxTop))
	}
	t, err := d.o.Tenants.GetTenant(ctx, tenantID)
	if err != nil {
		return nil, "", fmt.Errorf("tenant: %w", err)
	}
	var users []User
	var next string
	err = d.withCred(ctx, t, func(c presence.Credential) error {
		users, next, err = d.o.Graph.SearchUsers(ctx, tenantID, c, query, t.Extensions.GraphFilter, top, page)
		return err
	})
	return users, next, err
}

// GroupMembers reads a group of the tenant's directory and a page of its members.
// fault.ErrNotFound for no such group.
func (d *Directory) GroupMembers(ctx context.Context, tenantID, groupID string, top int, page string) (Group, []User, string, error) {
	if !tenant.IsGUID(groupID) {
		return Group{}, nil, "", fault.Invalid("groupId", "must be a group object id (GUID)")
	}
	if top < 1 || top > MaxTop {
		return Group{}, nil, "", fault.Invalid("$top", fmt.Sprintf("must be 1..%d", MaxTop))
	}
	t, err := d.o.Tenants.GetTenant(ctx, tenantID)
	if err != nil {
		return Group{}, nil, "", fmt.Errorf("tenant: %w", err)
	}
	var g Group
	var users []User
	var next string
	err = d.withCred(ctx, t, func(c presence.Credential) error {
		if g, err = d.o.Graph.Group(ctx, tenantID, c, groupID); err != nil {
			return err
		}
		users, next, err = d.o.Graph.GroupMembers(ctx, tenantID, c, groupID, top, page)
		return err
	})
	return g, users, next, err
}

// CheckGroup reports whether a group exists in the tenant's directory: nil when it
// does, fault.ErrNotFound when it does not, ErrNoCredential (or a transient error)
// when it cannot be told.
func (d *Directory) CheckGroup(ctx context.Context, t tenant.Tenant, groupID string) error {
	return d.withCred(ctx, t, func(c presence.Credential) error {
		_, err := d.o.Graph.Group(ctx, t.ID, c, groupID)
		return err
	})
}
