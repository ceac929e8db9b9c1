package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/access"
	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/tenant"
)

// A call's timeline shows partners, unless the tenant lets them see identifiers, no
// caller number, agent id, name or UPN in clear; a tenant admin sees them all.
func TestTheTimelineMasksIdentifiersForPartners(t *testing.T) {
	const partnerGroup = "5f0e5f0e-0000-4000-8000-00000000aaaa"
	const agent = "c0a7b0a1-0000-4000-8000-000000000001"
	tn := tenant.New("c0a7b0a1-0000-4000-8000-00000000c0de", "Contoso")
	tn.Security.PartnerAdminGroup = partnerGroup
	at := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	x := calls.Call{TenantID: tn.ID, ID: "c1", Direction: calls.Inbound, ServiceID: "sales", Phase: calls.PhaseEnded,
		Caller: calls.Party{Kind: calls.Phone, ID: "+15555550199"}, Agent: agent,
		Legs:  []calls.Leg{{N: 0, AgentID: agent, State: calls.LegJoined, At: at}},
		Steps: []calls.Step{{At: at, What: "connected", Agent: agent}}}
	names := map[string]AgentRef{agent: {DisplayName: "Jane Doe", UPN: "jane@contoso.example"}}
	partner, err := access.Resolver{}.For(context.Background(), access.Caller{TenantID: "11111111-1111-4111-8111-111111111111",
		Groups: []string{partnerGroup}}, tn)
	if err != nil || !partner.Has(access.PartnerAdmin) {
		t.Fatalf("partner roles: %v %v", partner.List(), err)
	}
	v := callView(x, access.MaskerFor(partner, tn), names)
	all := strings.Join([]string{v.Caller.ID, v.Agent, v.Steps[0].Agent, v.Offers[0].AgentID}, " ")
	for k, ref := range v.Agents {
		all += " " + k + " " + ref.DisplayName + " " + ref.UPN
	}
	for _, clear := range []string{"5555550199", agent, "Jane", "jane@"} {
		if strings.Contains(all, clear) {
			t.Errorf("a partner sees %q in %s", clear, all)
		}
	}
	tn.Privacy.PartnerSeesUserIDs, tn.Privacy.PartnerSeesCustomerIDs = true, true
	v = callView(x, access.MaskerFor(partner, tn), names)
	if v.Caller.ID != "+15555550199" || v.Agent != agent || v.Agents[agent].UPN != "jane@contoso.example" {
		t.Errorf("a partner the tenant lets see identifiers: %+v", v)
	}
}
