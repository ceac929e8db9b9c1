package access_test

import (
	"context"
	"errors"
	"testing"

	"github.com/teamscc/teamscc/shared/access"
	"github.com/teamscc/teamscc/shared/tenant"
)

const (
	contoso      = "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e"
	partnerTID   = "9e8d7c6b-5a49-4837-8261-7f6e5d4c3b2a"
	otherTID     = "11111111-2222-3333-4444-555555555555"
	adminGroup   = "aaaaaaaa-0000-4000-8000-000000000001"
	partnerGroup = "bbbbbbbb-0000-4000-8000-000000000002"
	otherGroup   = "cccccccc-0000-4000-8000-000000000003"
)

func contosoTenant() tenant.Tenant {
	t := tenant.New(contoso, "Contoso")
	t.Security = tenant.Security{TenantAdminGroup: adminGroup, PartnerAdminGroup: partnerGroup}
	return t
}

type checker struct {
	member []string
	err    error
	calls  int
}

func (c *checker) MemberOf(_ context.Context, _, _ string, ids []string) ([]string, error) {
	c.calls++
	var out []string
	for _, id := range ids {
		for _, m := range c.member {
			if m == id {
				out = append(out, id)
			}
		}
	}
	return out, c.err
}

func TestRolesComeFromAppRolesGroupsAndHomeTenant(t *testing.T) {
	rs := access.Resolver{OperatorRole: "Platform.Operator"}
	cases := []struct {
		name   string
		caller access.Caller
		want   []access.Role
	}{
		{"operator from any tenant", access.Caller{TenantID: otherTID, AppRoles: []string{"Platform.Operator"}}, []access.Role{access.Operator}},
		{"partner admin from the partner's directory", access.Caller{TenantID: partnerTID, Groups: []string{partnerGroup}}, []access.Role{access.PartnerAdmin}},
		{"group ids compare case-insensitively", access.Caller{TenantID: partnerTID, Groups: []string{"BBBBBBBB-0000-4000-8000-000000000002"}}, []access.Role{access.PartnerAdmin}},
		{"tenant admin signed in to the tenant", access.Caller{TenantID: contoso, Groups: []string{adminGroup}}, []access.Role{access.TenantAdmin}},
		{"tenant admin group from another directory is no tenant admin", access.Caller{TenantID: otherTID, Groups: []string{adminGroup}}, nil},
		{"member of the tenant", access.Caller{TenantID: contoso, Groups: []string{otherGroup}}, []access.Role{access.Member}},
		{"guest from elsewhere", access.Caller{TenantID: otherTID}, nil},
		{"an unrelated app role is nothing", access.Caller{TenantID: otherTID, AppRoles: []string{"Reader"}}, nil},
	}
	for _, c := range cases {
		r, err := rs.For(context.Background(), c.caller, contosoTenant())
		if err != nil {
			t.Fatal(err)
		}
		got := r.List()
		if len(got) != len(c.want) || (len(got) > 0 && got[0] != c.want[0]) {
			t.Errorf("%s: roles %v, want %v", c.name, got, c.want)
		}
	}
}

func TestGroupsOverageAsksTheGroupChecker(t *testing.T) {
	ck := &checker{member: []string{adminGroup}}
	rs := access.Resolver{Groups: ck}
	r, err := rs.For(context.Background(), access.Caller{TenantID: contoso, GroupsOverage: true}, contosoTenant())
	if err != nil || !r.Has(access.TenantAdmin) || ck.calls != 1 {
		t.Fatalf("overage: roles %v, err %v, calls %d", r.List(), err, ck.calls)
	}
	ck.err = errors.New("graph down")
	if _, err := rs.For(context.Background(), access.Caller{TenantID: contoso, GroupsOverage: true}, contosoTenant()); err == nil {
		t.Fatal("a failed group check must not silently drop roles")
	}
}

func TestFieldLevelsFollowTheRoles(t *testing.T) {
	rs := access.Resolver{OperatorRole: "op"}
	roles := func(c access.Caller) access.Roles {
		r, _ := rs.For(context.Background(), c, contosoTenant())
		return r
	}
	op := roles(access.Caller{AppRoles: []string{"op"}})
	partner := roles(access.Caller{TenantID: partnerTID, Groups: []string{partnerGroup}})
	admin := roles(access.Caller{TenantID: contoso, Groups: []string{adminGroup}})
	member := roles(access.Caller{TenantID: contoso})
	want := map[tenant.Level][4]bool{ // operator, partner, tenant admin, member
		tenant.LevelTenant:      {true, true, true, false},
		tenant.LevelTechnical:   {true, true, false, false},
		tenant.LevelTenantOwned: {true, false, true, false},
		tenant.LevelOperator:    {true, false, false, false},
	}
	for l, w := range want {
		got := [4]bool{access.MayChange(op, l), access.MayChange(partner, l), access.MayChange(admin, l), access.MayChange(member, l)}
		if got != w {
			t.Errorf("level %s: operator/partner/admin/member may change = %v, want %v", l, got, w)
		}
	}
	if access.Allowed(member, access.ReadTenant) || !access.Allowed(admin, access.ReadTenant) || access.Allowed(admin, access.CreateTenant) ||
		!access.Allowed(partner, access.DeleteTenant) || access.Allowed(partner, access.ReadParked) || !access.Allowed(op, access.ReadParked) {
		t.Error("operation rules")
	}
}

func TestPartnersSeeMaskedIdentifiersUnlessTheTenantAllows(t *testing.T) {
	rs := access.Resolver{}
	tn := contosoTenant()
	partner, _ := rs.For(context.Background(), access.Caller{TenantID: partnerTID, Groups: []string{partnerGroup}}, tn)
	admin, _ := rs.For(context.Background(), access.Caller{TenantID: contoso, Groups: []string{adminGroup}}, tn)

	m := access.MaskerFor(partner, tn)
	if got := m.User("Jane Doe"); got != "J*** D**" {
		t.Errorf("masked user %q", got)
	}
	if got := m.Customer("+41441234567"); got != "+***********" {
		t.Errorf("masked customer %q", got)
	}
	if got := m.User("jane.doe@contoso.com"); got != "j***.d**@c******.c**" {
		t.Errorf("masked UPN %q", got)
	}
	if got := access.MaskerFor(admin, tn).User("Jane Doe"); got != "Jane Doe" {
		t.Errorf("tenant admin sees %q", got)
	}
	tn.Privacy.PartnerSeesUserIDs = true
	m = access.MaskerFor(partner, tn)
	if m.User("Jane Doe") != "Jane Doe" || m.Customer("+41441234567") == "+41441234567" {
		t.Error("allowing user identifiers must not reveal customer identifiers")
	}
}

// A team owner is a member of the tenant whose object id a service lists: OwnerMay lets
// such a caller attempt only the services operations, and Owns decides per service.
func TestTeamOwnersMayAttemptOnlyServiceOperations(t *testing.T) {
	rs := access.Resolver{OperatorRole: "Platform.Operator"}
	const owner = "0a0a0a0a-0000-4000-8000-00000000a001"
	member, _ := rs.For(context.Background(), access.Caller{ObjectID: owner, TenantID: contoso}, contosoTenant())
	guest, _ := rs.For(context.Background(), access.Caller{ObjectID: owner, TenantID: otherTID}, contosoTenant())
	for _, op := range []access.Operation{access.ReadServices, access.ManageServices} {
		if access.Allowed(member, op) || !access.OwnerMay(member, op) || access.OwnerMay(guest, op) {
			t.Errorf("%s: allowed %v, owner may %v, guest owner may %v", op, access.Allowed(member, op), access.OwnerMay(member, op), access.OwnerMay(guest, op))
		}
	}
	for _, op := range []access.Operation{access.ReadTenant, access.UpdateTenant, access.OperateCalls, access.ReadAudit} {
		if access.OwnerMay(member, op) {
			t.Errorf("a team owner may attempt %s", op)
		}
	}
	if !access.Owns(access.Caller{ObjectID: "0A0A0A0A-0000-4000-8000-00000000A001"}, []string{owner}) || access.Owns(access.Caller{ObjectID: "x"}, []string{owner}) {
		t.Error("Owns compares object ids case-insensitively and nothing else")
	}
}
