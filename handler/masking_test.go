package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/access"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/tenant"
)

// seesNone fails when body holds any of clear.
func seesNone(t *testing.T, who, what, body string, clear ...string) {
	t.Helper()
	for _, c := range clear {
		if strings.Contains(body, c) {
			t.Errorf("%s sees %q in the %s: %s", who, c, what, body)
		}
	}
}

// seesAll fails when body lacks any of want.
func seesAll(t *testing.T, who, what, body string, want ...string) {
	t.Helper()
	for _, c := range want {
		if !strings.Contains(body, c) {
			t.Errorf("%s does not see %q in the %s: %s", who, c, what, body)
		}
	}
}

// The explanation of a routing decision shows a partner the tenant does not let see
// user identifiers no agent id, name or UPN (in the chosen, the agents considered,
// their names and the offer history), masked as every other view masks them; a
// tenant admin, and a partner the tenant lets see them, see them in clear.
func TestExplainMasksAgentIDsForPartners(t *testing.T) {
	a := startServices(t)
	ctx := context.Background()
	now := time.Now().UTC()
	task := routing.Task{TenantID: tenantT, ServiceID: "sales", ID: "task-1", State: routing.Offered, Created: now, Attempts: 2,
		OfferedTo: []string{agentAnna}, Tried: []string{agentBen},
		History: []routing.Attempt{{Attempt: 1, AgentID: agentBen, At: now, Result: routing.ResultNoAnswer}},
		Explain: &routing.Explain{TaskID: "task-1", ServiceID: "sales", Attempt: 2, At: now, Considered: 2, Eligible: 1,
			Chosen: []string{agentAnna}, Counts: map[string]int{routing.ReasonChosen: 1, routing.ReasonAlreadyTried: 1},
			Agents: []routing.Entry{{AgentID: agentAnna, Reason: routing.ReasonChosen}, {AgentID: agentBen, Reason: routing.ReasonAlreadyTried}}}}
	if _, err := a.store.CreateTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	path := "/api/tenants/" + tenantT + "/services/sales/tasks/task-1/explain"
	read := func(who, token string) (ExplainView, string) {
		t.Helper()
		status, b, _ := a.c.do("GET", path, token, "")
		if status != http.StatusOK {
			t.Fatalf("%s: %d %s", who, status, b)
		}
		var v ExplainView
		if err := json.Unmarshal([]byte(b), &v); err != nil || v.Explain == nil {
			t.Fatalf("%s: %v %s", who, err, b)
		}
		return v, b
	}
	partner := a.is.token(t, partnerTID, "pa-1", nil, []string{groupPartner}, time.Hour)
	v, b := read("partner", partner)
	seesNone(t, "a partner", "explanation", b, agentAnna, agentBen, "Anna", "anna@", "Ben", "ben@")
	anna, ben := access.Mask(agentAnna), access.Mask(agentBen)
	if len(v.Explain.Chosen) != 1 || v.Explain.Chosen[0] != anna || v.Explain.Agents[0].AgentID != anna ||
		v.Explain.Agents[1].AgentID != ben || v.History[0].AgentID != ben {
		t.Errorf("a partner's ids are not masked alike: %s", b)
	}
	// Both ids mask alike here: the entry is named after the chosen agent.
	if ref := v.Agents[anna]; ref.DisplayName != "A*** M*****" || ref.UPN != access.Mask("anna@contoso.com") {
		t.Errorf("a partner's names do not follow the masked ids: %s", b)
	}

	admin := a.is.token(t, tenantT, "ta-1", nil, []string{groupAdmins}, time.Hour)
	v, b = read("tenant admin", admin)
	if v.Explain.Chosen[0] != agentAnna || v.History[0].AgentID != agentBen || v.Agents[agentAnna].UPN != "anna@contoso.com" ||
		v.Agents[agentBen].DisplayName != "Ben Beispiel" {
		t.Errorf("a tenant admin does not see the ids in clear: %s", b)
	}

	if _, err := a.store.UpdateTenant(ctx, tenantT, func(tn *tenant.Tenant) error {
		tn.Privacy.PartnerSeesUserIDs = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_, b = read("partner allowed", partner)
	seesAll(t, "a partner the tenant lets see user identifiers", "explanation", b, agentAnna, agentBen, "anna@contoso.com")
}

// The other views of user identifiers mask them for a partner the tenant does not let
// see them, as the agents list does: the presence list, a service's exit to a Teams
// user and the user ids its settings name, and the audit entries of changes naming
// them. A tenant admin sees them in clear.
func TestPartnerViewsMaskUserIdentifiers(t *testing.T) {
	a := startServices(t)
	op := a.is.token(t, guestTID, "op-1", []string{"Platform.Operator"}, nil, time.Hour)
	partner := a.is.token(t, partnerTID, "pa-1", nil, []string{groupPartner}, time.Hour)
	admin := a.is.token(t, tenantT, "ta-1", nil, []string{groupAdmins}, time.Hour)
	T := "/api/tenants/" + tenantT
	body := `{"id":"escalate","name":"Escalate","type":"SkillBased","owners":["` + ownerSupport + `"],` +
		`"distribution":{"weights":{"` + agentAnna + `":2}},"calls":{"exit":{"action":"Transfer","target":"` + agentBen + `"}}}`
	if status, b, _ := a.c.do("POST", T+"/services", op, body); status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, b)
	}
	if status, b, _ := a.c.do("PATCH", T+"/interact", op, `{"meetingUserId":"`+agentAnna+`"}`); status != http.StatusOK {
		t.Fatalf("interact: %d %s", status, b)
	}
	for _, path := range []string{"/presence", "/services/escalate", "/services", "/audit", "/interact"} {
		status, b, _ := a.c.do("GET", T+path, partner, "")
		if status != http.StatusOK {
			t.Fatalf("partner GET %s: %d %s", path, status, b)
		}
		seesNone(t, "a partner", path, b, agentAnna, agentBen, ownerSupport, "Anna Muster", "Ben Beispiel")
	}
	_, b, _ := a.c.do("GET", T+"/presence", partner, "")
	seesAll(t, "a partner", "presence list", b, `"agentId":"`+access.Mask(agentAnna)+`"`, `"A*** M*****"`)
	_, b, _ = a.c.do("GET", T+"/services/escalate", partner, "")
	seesAll(t, "a partner", "service", b, `"target":"`+access.Mask(agentBen)+`"`)
	_, b, _ = a.c.do("GET", T+"/audit", partner, "")
	seesAll(t, "a partner", "audit log", b, `"distribution.weights.`+access.Mask(agentAnna)+`":"2"`)

	_, b, _ = a.c.do("GET", T+"/presence", admin, "")
	seesAll(t, "a tenant admin", "presence list", b, agentAnna, "Anna Muster")
	_, b, _ = a.c.do("GET", T+"/services/escalate", admin, "")
	seesAll(t, "a tenant admin", "service", b, agentBen, ownerSupport, agentAnna)
	_, b, _ = a.c.do("GET", T+"/audit", admin, "")
	seesAll(t, "a tenant admin", "audit log", b, agentBen, ownerSupport, agentAnna)
	_, b, _ = a.c.do("GET", T+"/interact", admin, "")
	seesAll(t, "a tenant admin", "interact settings", b, `"meetingUserId":"`+agentAnna+`"`)
}
