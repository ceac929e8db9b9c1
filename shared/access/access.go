// Package access decides who may do what (SPEC §1): the caller's roles for a tenant,
// from a verified token's claims and the tenant's security groups, and the rule for
// each admin operation and each tenant field. It also masks identifiers for partner
// callers (SPEC §2 data privacy).
package access

import (
	"context"
	"slices"
	"strings"

	"github.com/teamscc/teamscc/shared/tenant"
)

// Role is one role a caller can hold for a tenant.
type Role string

const (
	Operator     Role = "operator"     // platform operator: app role on this app
	PartnerAdmin Role = "partnerAdmin" // member of the tenant's partner administration group
	TenantAdmin  Role = "tenantAdmin"  // member of the tenant's administration group, signed in to that tenant
	TeamOwner    Role = "teamOwner"    // owner of a service (per service)
	Supervisor   Role = "supervisor"   // member of the tenant's supervisor group, signed in to that tenant
	Member       Role = "member"       // signed in to the tenant, no admin role
)

// Caller is who a verified token says is calling.
type Caller struct {
	ObjectID string   // oid
	TenantID string   // tid: the directory the caller signed in to
	AppRoles []string // roles claim
	Groups   []string // group object ids
	// GroupsOverage: the token had too many groups to list; they are resolved through
	// a GroupChecker.
	GroupsOverage bool
}

// GroupChecker answers group membership when a token could not list the groups
// (Entra's "groups overage"): which of groupIDs the user is a transitive member of.
type GroupChecker interface {
	MemberOf(ctx context.Context, tenantID, objectID string, groupIDs []string) ([]string, error)
}

// Roles are the caller's roles for one tenant (team ownership is per service and
// decided by the service's owners, see Owns).
type Roles struct {
	set map[Role]bool
}

// Has reports whether the caller holds r.
func (r Roles) Has(role Role) bool { return r.set[role] }

// Any reports whether the caller holds any role at all for the tenant.
func (r Roles) Any() bool { return len(r.set) > 0 }

// List returns the roles, sorted.
func (r Roles) List() []Role {
	out := make([]Role, 0, len(r.set))
	for k := range r.set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Resolver turns a caller into roles for a tenant.
type Resolver struct {
	OperatorRole string       // the app role value that makes an operator
	Groups       GroupChecker // nil: an overage token gets no group-based role
}

// For returns the caller's roles for t. A partner admin may sign in from the partner's
// own directory; a tenant admin and a member must be signed in to the tenant itself.
// Group ids are compared case-insensitively.
func (rs Resolver) For(ctx context.Context, c Caller, t tenant.Tenant) (Roles, error) {
	r := Roles{set: map[Role]bool{}}
	if rs.OperatorRole != "" && slices.Contains(c.AppRoles, rs.OperatorRole) {
		r.set[Operator] = true
	}
	groups := c.Groups
	if c.GroupsOverage && rs.Groups != nil {
		var wanted []string
		for _, g := range []string{t.Security.PartnerAdminGroup, t.Security.TenantAdminGroup, t.Security.SupervisorGroup} {
			if g != "" {
				wanted = append(wanted, g)
			}
		}
		if len(wanted) > 0 {
			got, err := rs.Groups.MemberOf(ctx, c.TenantID, c.ObjectID, wanted)
			if err != nil {
				return Roles{}, err
			}
			groups = got
		}
	}
	in := func(g string) bool {
		if g == "" {
			return false
		}
		for _, x := range groups {
			if strings.EqualFold(x, g) {
				return true
			}
		}
		return false
	}
	if in(t.Security.PartnerAdminGroup) {
		r.set[PartnerAdmin] = true
	}
	home := strings.EqualFold(c.TenantID, t.ID)
	if home && in(t.Security.TenantAdminGroup) {
		r.set[TenantAdmin] = true
	}
	if home && in(t.Security.SupervisorGroup) {
		r.set[Supervisor] = true
	}
	if home && len(r.set) == 0 {
		r.set[Member] = true
	}
	return r, nil
}

// Owns reports whether the caller is one of a service's owners (object ids).
func Owns(c Caller, owners []string) bool {
	for _, o := range owners {
		if strings.EqualFold(o, c.ObjectID) {
			return true
		}
	}
	return false
}

// MayChange reports whether roles allow changing a field of level l.
func MayChange(r Roles, l tenant.Level) bool {
	switch l {
	case tenant.LevelTenant:
		return r.Has(Operator) || r.Has(PartnerAdmin) || r.Has(TenantAdmin)
	case tenant.LevelTechnical:
		return r.Has(Operator) || r.Has(PartnerAdmin)
	case tenant.LevelTenantOwned:
		return r.Has(Operator) || r.Has(TenantAdmin)
	default:
		return r.Has(Operator)
	}
}

// Operation names an admin operation for the permission rule.
type Operation string

const (
	ReadTenant     Operation = "tenant.read"
	CreateTenant   Operation = "tenant.create"
	UpdateTenant   Operation = "tenant.update" // plus MayChange per field
	DeleteTenant   Operation = "tenant.delete"
	ListTenants    Operation = "tenant.list"
	ReadAudit      Operation = "audit.read"
	ReadPresence   Operation = "presence.read"   // health, list
	TestPresence   Operation = "presence.test"   // Test UPN
	ManageInteract Operation = "interact.manage" // widget key, settings, ACS check
	ReadReports    Operation = "reports.read"
	ReadRouting    Operation = "routing.read"    // explain, call timelines
	OperateCalls   Operation = "routing.operate" // hang up and transfer calls
	// OperateAgent: end or extend an agent's after-call work, reset its RONA. An agent
	// may do it for themselves (SelfMay).
	OperateAgent Operation = "agent.operate"
	// ReadDirectory: search the tenant's directory, read a group's members, sync a
	// Team's members into its service.
	ReadDirectory Operation = "directory.read"
	ReadParked    Operation = "ops.parked"
	// ScheduleOutbound: schedule, list and cancel a service's outbound tasks.
	ScheduleOutbound Operation = "outbound.schedule"
	// ReadServices: services and agents' routing profiles. A team owner may read
	// their own services and the agents of them (see OwnerMay).
	ReadServices Operation = "services.read"
	// ManageServices: create, change and delete services, change agents' routing
	// profiles. A team owner may change their own services' distribution settings
	// and their agents' active flags only (see OwnerMay).
	ManageServices Operation = "services.manage"
)

var rules = map[Operation][]Role{
	ReadTenant:       {Operator, PartnerAdmin, TenantAdmin},
	CreateTenant:     {Operator, PartnerAdmin},
	UpdateTenant:     {Operator, PartnerAdmin, TenantAdmin},
	DeleteTenant:     {Operator, PartnerAdmin},
	ListTenants:      {Operator, PartnerAdmin, TenantAdmin},
	ReadAudit:        {Operator, PartnerAdmin, TenantAdmin},
	ReadPresence:     {Operator, PartnerAdmin, TenantAdmin},
	TestPresence:     {Operator, PartnerAdmin, TenantAdmin},
	ManageInteract:   {Operator, PartnerAdmin, TenantAdmin},
	ReadReports:      {Operator, PartnerAdmin, TenantAdmin, Supervisor},
	ReadRouting:      {Operator, PartnerAdmin, TenantAdmin, Supervisor},
	OperateCalls:     {Operator, TenantAdmin},
	OperateAgent:     {Operator, TenantAdmin},
	ReadDirectory:    {Operator, PartnerAdmin, TenantAdmin},
	ReadParked:       {Operator},
	ScheduleOutbound: {Operator, PartnerAdmin, TenantAdmin},
	ReadServices:     {Operator, PartnerAdmin, TenantAdmin},
	ManageServices:   {Operator, PartnerAdmin, TenantAdmin},
}

// ownerRules are the operations a team owner may do on the services they own. The
// role is per service: OwnerMay only lets the caller past the tenant-level check,
// and the handler must check Owns for every service the request touches.
var ownerRules = map[Operation]bool{
	ReadServices:   true,
	ManageServices: true,
}

// selfRules are the operations an agent signed in to the tenant may do on their own
// agent (the route names them as {agentId}): read their profile, change their duty
// profile (the handler allows that field only), end or extend their after-call work
// and reset their RONA.
var selfRules = map[Operation]bool{
	ReadServices:   true,
	ManageServices: true,
	OperateAgent:   true,
}

// SelfMay reports whether caller c, signed in to tenant t, may do op on the agent
// agentID as that agent: only on themselves, only the self-service operations.
func SelfMay(c Caller, t tenant.Tenant, op Operation, agentID string) bool {
	return selfRules[op] && c.ObjectID != "" && agentID != "" && t.ID != "" &&
		strings.EqualFold(c.ObjectID, agentID) && strings.EqualFold(c.TenantID, t.ID)
}

// OwnerMay reports whether a caller signed in to the tenant (a member) may attempt op
// as a team owner, subject to the per-service check with Owns.
func OwnerMay(r Roles, op Operation) bool {
	return ownerRules[op] && (r.Has(Member) || r.Has(Supervisor))
}

// Allowed reports whether roles permit op.
func Allowed(r Roles, op Operation) bool {
	for _, need := range rules[op] {
		if r.Has(need) {
			return true
		}
	}
	return false
}

// Masker masks identifiers for a caller who is a partner without the tenant's
// permission to see them. An operator or tenant admin sees everything.
type Masker struct {
	users, customers bool
}

// MaskerFor decides what the caller sees of t's identifiers: partners per the tenant's
// privacy choices; everybody else (a supervisor among them) sees them.
func MaskerFor(r Roles, t tenant.Tenant) Masker {
	if r.Has(Operator) || r.Has(TenantAdmin) || !r.Has(PartnerAdmin) {
		return Masker{}
	}
	return Masker{users: !t.Privacy.PartnerSeesUserIDs, customers: !t.Privacy.PartnerSeesCustomerIDs}
}

// User masks a user identifier (name, UPN, object id) when the caller may not see it.
func (m Masker) User(s string) string {
	if !m.users {
		return s
	}
	return Mask(s)
}

// Customer masks a customer identifier (phone number, caller name) when the caller
// may not see it.
func (m Masker) Customer(s string) string {
	if !m.customers {
		return s
	}
	return Mask(s)
}

// Mask keeps the first character of each word and replaces every other letter or
// digit with '*', so "Jane Doe" reads "J*** D**", "+41441234567" "+***********", and
// the shape of a value stays recognisable without revealing it.
func Mask(s string) string {
	b := []rune(s)
	start := true
	for i, r := range b {
		word := r != ' ' && r != '@' && r != '.' && r != '-' && r != '_'
		alnum := r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r > 127
		if alnum && !(start && r > '9') {
			b[i] = '*'
		}
		start = !word
	}
	return string(b)
}
