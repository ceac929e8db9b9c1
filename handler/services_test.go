package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/access"
	"github.com/teamscc/teamscc/shared/config"
	"github.com/teamscc/teamscc/shared/entra"
	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/simulate"
	"github.com/teamscc/teamscc/shared/tenant"
)

const (
	ownerSales   = "0a0a0a0a-0000-4000-8000-00000000a001" // owns "sales"
	ownerSupport = "0a0a0a0a-0000-4000-8000-00000000a002" // owns "support"
	agentAnna    = "0b0b0b0b-0000-4000-8000-00000000b001" // member of "sales"
	agentBen     = "0b0b0b0b-0000-4000-8000-00000000b002" // on duty for "support"
)

// servicesApp serves the app with real token checks (the local issuer) on an embedded
// store the test can look into: tenant T (admins groupAdmins, partner groupPartner)
// and T2 (partner groupOther); services sales (TeamsBased, owned by ownerSales) and
// support (SkillBased, owned by ownerSupport); agents Anna (sales, ringing now) and
// Ben (on duty for support).
type servicesApp struct {
	c     adminClient
	is    *issuer
	store *inmem.Store
}

func startServices(t *testing.T) *servicesApp {
	t.Helper()
	is := newIssuer(t)
	ctx := context.Background()
	s := inmem.New()
	cfg, err := config.Load(envFrom(map[string]string{"AdminAudiences": adminAudience, "EntraAuthorityHost": is.authority(), "EntraJwksUrl": is.srv.URL + "/keys"}))
	if err != nil {
		t.Fatal(err)
	}
	v, err := entra.NewValidator(entra.Options{AuthorityHost: cfg.Graph.AuthorityHost, JWKSURL: cfg.Interact.JWKSURL})
	if err != nil {
		t.Fatal(err)
	}
	admin := newAdminAuth([]string{adminAudience}, v, access.Resolver{OperatorRole: cfg.Values["OperatorAppRole"]}, s)
	app := newApp(cfg, deps{tenants: s, secrets: s, presences: s, parked: s, userStates: s, interact: s, routes: s, sender: &busQueue{clk: &clock{t: time.Now()}, seen: map[string]time.Time{}}, audit: s,
		admin: admin, reader: simulate.NewReader(nil), now: time.Now}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)

	t1 := tenant.New(tenantT, "Contoso")
	t1.Security.TenantAdminGroup, t1.Security.PartnerAdminGroup, t1.Security.SupervisorGroup = groupAdmins, groupPartner, groupSupervise
	t2 := tenant.New(tenantT2, "Fabrikam")
	t2.Security.PartnerAdminGroup = groupOther
	for _, tn := range []tenant.Tenant{t1, t2} {
		if err := s.PutTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
	}
	for _, sv := range []routing.Service{
		{TenantID: tenantT, ID: "sales", Name: "Sales", Type: routing.TeamsBased, Owners: []string{ownerSales}},
		{TenantID: tenantT, ID: "support", Name: "Support", Type: routing.SkillBased, Owners: []string{ownerSupport}},
	} {
		if _, err := s.CreateService(ctx, sv); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutAgents(ctx, tenantT, []tenant.Agent{
		{TenantID: tenantT, ID: agentAnna, UPN: "anna@contoso.com", DisplayName: "Anna Muster", Services: []string{"sales"}},
		{TenantID: tenantT, ID: agentBen, UPN: "ben@contoso.com", DisplayName: "Ben Beispiel"},
	}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if _, err := s.UpdateAgentState(ctx, tenantT, agentAnna, func(a *routing.AgentState) error {
		a.Services, a.Skills = []string{"sales"}, map[string]int{"de": 3}
		a.Hold = &routing.Hold{ServiceID: "sales", TaskID: "t1", Attempt: 1, Phase: routing.HoldOffered, Since: now, Until: now.Add(time.Hour)}
		a.RONAUntil, a.ACWUntil = now.Add(time.Hour), now.Add(time.Hour)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateAgentState(ctx, tenantT, agentBen, func(a *routing.AgentState) error {
		a.Skills, a.Duty = map[string]int{"fr": 4}, routing.Duty{Services: []string{"support"}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return &servicesApp{c: adminClient{t: t, base: srv.URL}, is: is, store: s}
}

// snapshot is everything an admin change could write: services, agent states, audit.
func (a *servicesApp) snapshot(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	sv, err1 := a.store.ListServices(ctx, tenantT)
	st, err2 := a.store.ListAgentStates(ctx, tenantT)
	au, err3 := a.store.ListAudit(ctx, tenantT, time.Time{}, time.Time{}, 10000)
	if err1 != nil || err2 != nil || err3 != nil {
		t.Fatal(err1, err2, err3)
	}
	b, _ := json.Marshal([]any{sv, st, len(au)})
	return string(b)
}

func (a *servicesApp) auditCount(t *testing.T) int {
	t.Helper()
	au, err := a.store.ListAudit(context.Background(), tenantT, time.Time{}, time.Time{}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	return len(au)
}

func (a *servicesApp) version(t *testing.T, id string) string {
	t.Helper()
	sv, err := a.store.GetService(context.Background(), tenantT, id)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`"%d"`, sv.Version)
}

// The role matrix of the services and agents operations: every caller gets the
// expected status; a refusal writes nothing; a change writes one audit entry.
func TestServiceAdminRoleMatrix(t *testing.T) {
	a := startServices(t)
	is, c, hour := a.is, a.c, time.Hour
	callers := []struct{ name, token string }{
		{"operator", is.token(t, guestTID, "op-1", []string{"Platform.Operator"}, nil, hour)},
		{"partner", is.token(t, partnerTID, "pa-1", nil, []string{groupPartner}, hour)},
		{"otherPartner", is.token(t, partnerTID, "pa-2", nil, []string{groupOther}, hour)},
		{"tenantAdmin", is.token(t, tenantT, "ta-1", nil, []string{groupAdmins}, hour)},
		{"owner", is.token(t, tenantT, ownerSales, nil, nil, hour)},
		{"otherOwner", is.token(t, tenantT, ownerSupport, nil, nil, hour)},
		{"member", is.token(t, tenantT, "me-1", nil, []string{groupUnrelated}, hour)},
		{"guest", is.token(t, guestTID, ownerSales, nil, []string{groupUnrelated}, hour)}, // an owner's id, signed in elsewhere
		{"noToken", ""},
		{"expired", is.token(t, guestTID, "op-1", []string{"Platform.Operator"}, nil, -10*time.Minute)},
	}
	op := callers[0].token
	T := "/api/tenants/" + tenantT
	type operation struct {
		name, method, path, body string
		ifMatch                  string // service whose version goes into If-Match
		change                   bool
	}
	ops := []operation{
		{"list services", "GET", T + "/services", "", "", false},
		{"create service", "POST", T + "/services", "", "", true},
		{"read service", "GET", T + "/services/sales", "", "", false},
		{"change distribution", "PATCH", T + "/services/sales", `{"distribution":{"ringTimeoutSeconds":25}}`, "sales", true},
		{"change PSTN licence", "PATCH", T + "/services/sales", `{"pstnLicence":true}`, "sales", true},
		{"change owners", "PATCH", T + "/services/sales", `{"owners":["` + ownerSales + `"]}`, "sales", true},
		{"delete service", "DELETE", T + "/services/", "", "", true},
		{"list agents", "GET", T + "/agents", "", "", false},
		{"change skills", "PATCH", T + "/agents/" + agentAnna, `{"skills":{"de":4}}`, "", true},
		{"change active flag", "PATCH", T + "/agents/" + agentAnna, `{"active":{"sales":false}}`, "", true},
	}
	want := map[string][]int{
		//                     op   pa   pa2  ta   own  own2 mem  gst  none exp
		"list services":       {200, 200, 403, 200, 200, 200, 403, 403, 401, 401},
		"create service":      {201, 201, 403, 201, 403, 403, 403, 403, 401, 401},
		"read service":        {200, 200, 403, 200, 200, 403, 403, 403, 401, 401},
		"change distribution": {200, 200, 403, 200, 200, 403, 403, 403, 401, 401},
		"change PSTN licence": {200, 200, 403, 200, 403, 403, 403, 403, 401, 401},
		"change owners":       {200, 200, 403, 200, 403, 403, 403, 403, 401, 401},
		"delete service":      {202, 202, 403, 202, 403, 403, 403, 403, 401, 401},
		"list agents":         {200, 200, 403, 200, 200, 200, 403, 403, 401, 401},
		"change skills":       {200, 200, 403, 200, 403, 403, 403, 403, 401, 401},
		"change active flag":  {200, 200, 403, 200, 200, 403, 403, 403, 401, 401},
	}
	for _, o := range ops {
		for i, caller := range callers {
			path, body := o.path, o.body
			if o.name == "create service" {
				body = fmt.Sprintf(`{"id":"new-%d","name":"New","type":"None"}`, i)
			}
			if o.name == "delete service" {
				id := fmt.Sprintf("del-%d", i)
				if status, b, _ := c.do("POST", T+"/services", op, `{"id":"`+id+`","name":"Doomed","type":"None","owners":["`+ownerSales+`"]}`); status != 201 {
					t.Fatalf("create %s: %d %s", id, status, b)
				}
				path += id
			}
			var headers []string
			if o.ifMatch != "" {
				headers = []string{"If-Match", a.version(t, o.ifMatch)}
			}
			before, audits := a.snapshot(t), a.auditCount(t)
			status, b, _ := c.do(o.method, path, caller.token, body, headers...)
			if status != want[o.name][i] {
				t.Errorf("%s by %s: %d, want %d (%s)", o.name, caller.name, status, want[o.name][i], strings.TrimSpace(b))
			}
			if status >= 400 && a.snapshot(t) != before {
				t.Errorf("%s by %s was refused but wrote something", o.name, caller.name)
			}
			if status < 300 && o.change && a.auditCount(t) != audits+1 {
				t.Errorf("%s by %s: %d audit entries written, want 1", o.name, caller.name, a.auditCount(t)-audits)
			}
		}
	}
	// An owner lists only their own services and the agents of them.
	_, b, _ := c.do("GET", T+"/services", callers[5].token, "")
	if !strings.Contains(b, `"id":"support"`) || strings.Contains(b, `"id":"sales"`) {
		t.Errorf("the owner of support lists: %s", b)
	}
	_, b, _ = c.do("GET", T+"/agents", callers[5].token, "")
	if !strings.Contains(b, agentBen) || strings.Contains(b, agentAnna) {
		t.Errorf("the owner of support sees agents: %s", b)
	}
}

// A team owner's refused fields are named (403), and nothing is written.
func TestTeamOwnerMayChangeOnlyDistributionAndActiveFlags(t *testing.T) {
	a := startServices(t)
	owner := a.is.token(t, tenantT, ownerSales, nil, nil, time.Hour)
	T := "/api/tenants/" + tenantT
	for _, tc := range []struct{ path, body, field string }{
		{T + "/services/sales", `{"distribution":{"ringTimeoutSeconds":20},"pstnLicence":true}`, "pstnLicence"},
		{T + "/services/sales", `{"owners":[]}`, "owners"},
		{T + "/services/sales", `{"type":"SkillBased"}`, "type"},
		{T + "/services/sales", `{"phoneNumbers":[{"number":"+41441234567","kind":"DirectRouting"}]}`, "phoneNumbers"},
		{T + "/services/sales", `{"name":"Mine"}`, "name"},
		{T + "/agents/" + agentAnna, `{"skills":{"de":5}}`, "skills"},
		{T + "/agents/" + agentAnna, `{"duty":{"offDuty":true}}`, "duty"},
		{T + "/agents/" + agentAnna, `{"active":{"support":false}}`, "active.support"},
	} {
		before := a.snapshot(t)
		status, b, _ := a.c.do("PATCH", tc.path, owner, tc.body, "If-Match", a.version(t, "sales"))
		if status != 403 || !strings.Contains(b, `"field":"`+tc.field+`"`) {
			t.Errorf("owner PATCH %s: %d %s, want 403 naming %s", tc.body, status, b, tc.field)
		}
		if a.snapshot(t) != before {
			t.Errorf("owner PATCH %s was refused but wrote something", tc.body)
		}
	}
	if status, b, _ := a.c.do("DELETE", T+"/services/sales", owner, ""); status != 403 {
		t.Errorf("owner deletes their service: %d %s", status, b)
	}
}

func TestServiceRulesEachFailAndPass(t *testing.T) {
	a := startServices(t)
	op := a.is.token(t, guestTID, "op-1", []string{"Platform.Operator"}, nil, time.Hour)
	T := "/api/tenants/" + tenantT
	n := 0
	create := func(fields string) (int, string) {
		t.Helper()
		n++
		body := fmt.Sprintf(`{"id":"svc-%d","name":"S","type":"SkillBased"%s}`, n, fields)
		status, b, _ := a.c.do("POST", T+"/services", op, body)
		return status, b
	}
	for _, tc := range []struct{ field, bad, good string }{
		{"distribution.strategy", `,"distribution":{"strategy":"Fastest"}`, `,"distribution":{"strategy":"BestSkill"}`},
		{"distribution.broadcastN", `,"distribution":{"broadcastN":51}`, `,"distribution":{"broadcastN":50}`},
		{"distribution.ringTimeoutSeconds", `,"distribution":{"ringTimeoutSeconds":601}`, `,"distribution":{"ringTimeoutSeconds":600}`},
		{"distribution.queueTimeoutSeconds", `,"distribution":{"queueTimeoutSeconds":86401}`, `,"distribution":{"queueTimeoutSeconds":86400}`},
		{"distribution.maxQueueLength", `,"distribution":{"maxQueueLength":-1}`, `,"distribution":{"maxQueueLength":10000}`},
		{"distribution.rona.resetSeconds", `,"distribution":{"rona":{"enabled":true,"persistent":true,"resetSeconds":9}}`, `,"distribution":{"rona":{"enabled":true,"persistent":true,"resetSeconds":28800}}`},
		{"distribution.acw.seconds", `,"distribution":{"acw":{"seconds":3601}}`, `,"distribution":{"acw":{"seconds":0}}`},
		{"distribution.acw.maxExtensionSeconds", `,"distribution":{"acw":{"maxExtensionSeconds":3601}}`, `,"distribution":{"acw":{"maxExtensionSeconds":3600}}`},
		{"distribution.weights.x", `,"distribution":{"weights":{"x":1001}}`, `,"distribution":{"weights":{"x":1000}}`},
		{"distribution.skills", `,"distribution":{"skills":[{"skill":"de","minLevel":101}]}`, `,"distribution":{"skills":[{"skill":"de","minLevel":100}]}`},
		{"distribution.relax.afterSeconds", `,"distribution":{"relax":[{"afterSeconds":0}]}`, `,"distribution":{"relax":[{"afterSeconds":1}]}`},
		{"phoneNumbers[0].number", `,"phoneNumbers":[{"number":"044 123 45 67","kind":"DirectRouting"}]`, `,"phoneNumbers":[{"number":"+41 44 123 45 67","kind":"DirectRouting"}]`},
		{"phoneNumbers[0].kind", `,"phoneNumbers":[{"number":"+41441234568","kind":"CallingPlanUser"}]`, `,"phoneNumbers":[{"number":"+41441234568","kind":"CallingPlanService"}]`},
		{"phoneNumbers[0].kind", `,"phoneNumbers":[{"number":"+41441234569","kind":"Mobile"}]`, `,"phoneNumbers":[{"number":"+41441234569","kind":"DirectRouting"}]`},
		{"phoneNumbers[1].number", `,"phoneNumbers":[{"number":"+41441234570","kind":"DirectRouting"},{"number":"+41 44 123 45 70","kind":"DirectRouting"}]`, `,"phoneNumbers":[{"number":"+41441234570","kind":"DirectRouting"},{"number":"+41441234571","kind":"DirectRouting"}]`},
		{"phoneNumbers[0].number", `,"targets":["+41441234572"],"phoneNumbers":[{"number":"+41441234572","kind":"DirectRouting"}]`, `,"targets":["+41441234573"],"phoneNumbers":[{"number":"+41441234574","kind":"DirectRouting"}]`},
		{"targets", `,"targets":["sip:x"]`, `,"targets":["0d1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5e6"]`},
		{"owners", `,"owners":["me-1"]`, `,"owners":["` + ownerSales + `"]`},
		{"calls.prompts.music", `,"calls":{"prompts":{"music":"http://media.example/m.wav"}}`, `,"calls":{"prompts":{"music":"https://media.example/m.wav"}}`},
		{"calls.prompts.greeting", `,"calls":{"prompts":{"greeting":"https://"}}`, `,"calls":{"prompts":{"greeting":"https://media.example/g.wav"}}`},
		{"calls.exit.action", `,"calls":{"exit":{"action":"Voicemail"}}`, `,"calls":{"exit":{"action":"HangUp"}}`},
		{"calls.exit.target", `,"calls":{"exit":{"action":"Transfer","target":"sales"}}`, `,"calls":{"exit":{"action":"Transfer","target":"+41441234599"}}`},
		{"calls.exit.target", `,"calls":{"exit":{"action":"Service","target":"a/b"}}`, `,"calls":{"exit":{"action":"Service","target":"support"}}`},
		{"calls.exit.target", `,"calls":{"exit":{"target":"+41441234599"}}`, `,"calls":{"closed":true}`},
		{"calls.closed", `,"calls":{"closed":"yes"}`, `,"calls":{"closed":false}`},
		{"colour", `,"colour":"red"`, ``},
	} {
		status, b := create(tc.bad)
		if status != 400 || !strings.Contains(b, `"field":"`+tc.field+`"`) {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.bad, status, b, tc.field)
		}
		if status, b := create(tc.good); status != 201 {
			t.Errorf("%s: %d %s, want 201", tc.good, status, b)
		}
	}
	// The Calling Plan rule is said, not just named.
	_, b := create(`,"phoneNumbers":[{"number":"+41441234599","kind":"CallingPlanUser"}]`)
	if !strings.Contains(b, "only numbers of type Service") {
		t.Errorf("Calling Plan user number: %s", b)
	}
	for _, tc := range []struct{ body, field string }{
		{`{"id":"Bad_Id","name":"S","type":"None"}`, "id"},
		{`{"id":"` + strings.Repeat("a", 41) + `","name":"S","type":"None"}`, "id"},
		{`{"id":"ok","type":"None"}`, "name"},
		{`{"id":"ok","name":"` + strings.Repeat("n", 101) + `","type":"None"}`, "name"},
		{`{"id":"ok","name":"S"}`, "type"},
		{`{"id":"ok","name":"S","type":"Queue"}`, "type"},
	} {
		if status, b, _ := a.c.do("POST", T+"/services", op, tc.body); status != 400 || !strings.Contains(b, `"field":"`+tc.field+`"`) {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.body, status, b, tc.field)
		}
	}
	if status, b, _ := a.c.do("POST", T+"/services", op, `{"id":"`+strings.Repeat("a", 40)+`","name":"`+strings.Repeat("n", 100)+`","type":"None"}`); status != 201 {
		t.Errorf("longest id and name: %d %s", status, b)
	}
	if status, _, _ := a.c.do("POST", T+"/services", op, `{"id":"sales","name":"Again","type":"None"}`); status != 409 {
		t.Errorf("existing id: %d, want 409", status)
	}

	// PATCH: version rules, type fixed, read-only and unknown fields, nested merge.
	S := T + "/services/sales"
	before := a.snapshot(t)
	for _, tc := range []struct {
		body, ifMatch string
		status        int
		field         string
	}{
		{`{"name":"X"}`, "", 428, "If-Match"},
		{`{"name":"X"}`, `"99"`, 412, ""},
		{`{"type":"SkillBased"}`, a.version(t, "sales"), 400, "type"},
		{`{"id":"other"}`, a.version(t, "sales"), 400, "id"},
		{`{"version":5}`, a.version(t, "sales"), 400, "version"},
		{`{"colour":"red"}`, a.version(t, "sales"), 400, "colour"},
		{`{"distribution":{"colour":"red"}}`, a.version(t, "sales"), 400, "distribution.colour"},
		{`{"distribution":{"ringTimeoutSeconds":601}}`, a.version(t, "sales"), 400, "distribution.ringTimeoutSeconds"},
		{`{"phoneNumbers":[{"number":"+41441234500","kind":"CallingPlanUser"}]}`, a.version(t, "sales"), 400, "phoneNumbers[0].kind"},
		{`[1]`, a.version(t, "sales"), 400, "body"},
	} {
		var h []string
		if tc.ifMatch != "" {
			h = []string{"If-Match", tc.ifMatch}
		}
		status, b, _ := a.c.do("PATCH", S, op, tc.body, h...)
		if status != tc.status || tc.field != "" && !strings.Contains(b, `"field":"`+tc.field+`"`) {
			t.Errorf("PATCH %s: %d %s, want %d naming %q", tc.body, status, b, tc.status, tc.field)
		}
	}
	if a.snapshot(t) != before {
		t.Fatal("a refused PATCH wrote something")
	}
	if status, b, _ := a.c.do("PATCH", S, op, `{"type":"TeamsBased"}`, "If-Match", a.version(t, "sales")); status != 200 {
		t.Errorf("PATCH naming the same type: %d %s", status, b)
	}
	status, b, etag := a.c.do("PATCH", S, op, `{"distribution":{"allowBusy":true,"rona":{"enabled":true}},"phoneNumbers":[{"number":"+41 44 555 00 00","kind":"CallingPlanService"}]}`, "If-Match", a.version(t, "sales"))
	if status != 200 || etag != a.version(t, "sales") {
		t.Fatalf("PATCH: %d %s (ETag %s)", status, b, etag)
	}
	status, b, _ = a.c.do("PATCH", S, op, `{"distribution":{"ringTimeoutSeconds":15,"allowBusy":null}}`, "If-Match", etag)
	sv, _ := a.store.GetService(context.Background(), tenantT, "sales")
	if status != 200 || sv.Distribution.RingTimeoutSeconds != 15 || sv.Distribution.AllowBusy || !sv.Distribution.RONA.Enabled || len(sv.PhoneNumbers) != 1 {
		t.Fatalf("merge PATCH: %d %s → %+v", status, b, sv)
	}
	// A service's phone numbers are targets: a call to the number finds it.
	got, err := a.store.ServiceByTarget(context.Background(), tenantT, "tel:+41445550000")
	if err != nil || got.ID != "sales" {
		t.Fatalf("service by phone number: %+v, %v", got, err)
	}
	es, _ := a.store.ListAudit(context.Background(), tenantT, time.Time{}, time.Time{}, 1)
	if len(es) != 1 || es[0].Operation != "service.update" || es[0].Target != "services/sales" || es[0].Fields["distribution.ringTimeoutSeconds"] != "15" || es[0].ActorID != "op-1" {
		t.Fatalf("audit: %+v", es)
	}
	// DELETE marks PendingDeletion once; the number no longer routes to it.
	for i := 0; i < 2; i++ {
		if status, b, _ := a.c.do("DELETE", S, op, ""); status != 202 {
			t.Fatalf("DELETE (%d): %d %s", i, status, b)
		}
	}
	sv, _ = a.store.GetService(context.Background(), tenantT, "sales")
	if !sv.PendingDeletion {
		t.Fatal("not PendingDeletion")
	}
	if status, _, _ := a.c.do("GET", T+"/services/nope", op, ""); status != 404 {
		t.Errorf("unknown service: %d, want 404", status)
	}
}

func TestConcurrentServicePatchesOneWins(t *testing.T) {
	a := startServices(t)
	op := a.is.token(t, guestTID, "op-1", []string{"Platform.Operator"}, nil, time.Hour)
	S := "/api/tenants/" + tenantT + "/services/sales"
	_, _, etag := a.c.do("GET", S, op, "")
	won, stale := racePatches(t, a.c, S, op, etag, func(i int) string { return fmt.Sprintf(`{"distribution":{"ringTimeoutSeconds":%d}}`, 10+i) })
	if won != 1 || stale != 7 {
		t.Fatalf("8 PATCHes on one version: %d won, %d got 412", won, stale)
	}
}

func TestAgentProfileRulesAndTheRouterStateIsUntouched(t *testing.T) {
	a := startServices(t)
	op := a.is.token(t, guestTID, "op-1", []string{"Platform.Operator"}, nil, time.Hour)
	ctx := context.Background()
	A := "/api/tenants/" + tenantT + "/agents/" + agentAnna
	held, _ := a.store.GetAgentState(ctx, tenantT, agentAnna)
	for _, tc := range []struct{ bad, good, field string }{
		{`{"skills":{"de":0}}`, `{"skills":{"de":1}}`, "skills.de"},
		{`{"skills":{"de":101}}`, `{"skills":{"de":100}}`, "skills.de"},
		{`{"skills":{"":3}}`, `{"skills":{"en":3}}`, "skills."},
		{`{"skills":{"` + strings.Repeat("s", 51) + `":3}}`, `{"skills":{"` + strings.Repeat("s", 50) + `":3}}`, "skills." + strings.Repeat("s", 51)},
		{`{"duty":{"services":["nope"]}}`, `{"duty":{"services":["support"]}}`, "duty.services"},
		{`{"duty":{"services":["sales"]}}`, `{"duty":{"services":["support"]}}`, "duty.services"},
		{`{"duty":{"services":["support","support"]}}`, `{"duty":{"services":["support"]}}`, "duty.services"},
		{`{"duty":{"services":["support"],"skills":["it"]}}`, `{"duty":{"services":["support"],"skills":["de"]}}`, "duty.skills"},
		{`{"duty":{"skills":["de","de"]}}`, `{"duty":{"skills":["de"]}}`, "duty.skills"},
		{`{"active":{"support":true}}`, `{"active":{"sales":true}}`, "active.support"},
		{`{"active":{"nope":true}}`, `{"active":{"sales":false}}`, "active.nope"},
		{`{"ringing":true}`, `{}`, "ringing"},
	} {
		before := a.snapshot(t)
		status, b, _ := a.c.do("PATCH", A, op, tc.bad)
		if status != 400 || !strings.Contains(b, `"field":"`+tc.field+`"`) {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.bad, status, b, tc.field)
		}
		if a.snapshot(t) != before {
			t.Errorf("%s was refused but wrote something", tc.bad)
		}
		if status, b, _ := a.c.do("PATCH", A, op, tc.good); status != 200 {
			t.Errorf("%s: %d %s, want 200", tc.good, status, b)
		}
	}
	// Not a member of a Teams-based service: the active flag has nothing to switch.
	if status, b, _ := a.c.do("PATCH", "/api/tenants/"+tenantT+"/agents/"+agentBen, op, `{"active":{"sales":true}}`); status != 400 || !strings.Contains(b, `"field":"active.sales"`) {
		t.Errorf("active flag of a non-member: %d %s", status, b)
	}
	if status, _, _ := a.c.do("PATCH", "/api/tenants/"+tenantT+"/agents/nobody", op, `{"skills":{"de":2}}`); status != 404 {
		t.Errorf("unknown agent: %d, want 404", status)
	}
	status, b, _ := a.c.do("PATCH", A, op, `{"skills":{"de":null,"it":5},"duty":{"offDuty":true},"active":{"sales":false}}`)
	if status != 200 {
		t.Fatalf("PATCH: %d %s", status, b)
	}
	st, _ := a.store.GetAgentState(ctx, tenantT, agentAnna)
	if _, ok := st.Skills["de"]; ok || st.Skills["it"] != 5 || !st.Duty.OffDuty || len(st.Inactive) != 1 || st.Inactive[0] != "sales" {
		t.Fatalf("profile after PATCH: %+v", st)
	}
	if st.Hold == nil || *st.Hold != *held.Hold || !st.RONAUntil.Equal(held.RONAUntil) || !st.ACWUntil.Equal(held.ACWUntil) {
		t.Fatalf("an admin PATCH changed the router's state: %+v, was %+v", st, held)
	}
	es, _ := a.store.ListAudit(ctx, tenantT, time.Time{}, time.Time{}, 1)
	if len(es) != 1 || es[0].Operation != "agent.update" || es[0].Fields["skills.de"] != "null" || es[0].Fields["active.sales"] != "false" {
		t.Fatalf("audit: %+v", es)
	}
	// The list shows the profile; a partner without the tenant's permission sees the
	// names, UPNs and ids masked (in the audit log too), a tenant admin in clear.
	_, b, _ = a.c.do("GET", "/api/tenants/"+tenantT+"/agents", op, "")
	var list struct{ Agents []agentView }
	if err := json.Unmarshal([]byte(b), &list); err != nil || len(list.Agents) != 2 || list.Agents[0].ID != agentAnna ||
		list.Agents[0].Active["sales"] || list.Agents[0].Skills["it"] != 5 || list.Agents[1].Duty.Services[0] != "support" {
		t.Fatalf("agents: %s", b)
	}
	partner := a.is.token(t, partnerTID, "pa-1", nil, []string{groupPartner}, time.Hour)
	_, b, _ = a.c.do("GET", "/api/tenants/"+tenantT+"/agents", partner, "")
	if strings.Contains(b, "Anna") || strings.Contains(b, "anna@") || strings.Contains(b, agentAnna) || !strings.Contains(b, `"A*** M*****"`) {
		t.Errorf("partner sees: %s", b)
	}
	_, b, _ = a.c.do("GET", "/api/tenants/"+tenantT+"/audit", partner, "")
	if strings.Contains(b, agentAnna) {
		t.Errorf("partner sees an agent id in the audit log: %s", b)
	}
	admin := a.is.token(t, tenantT, "ta-1", nil, []string{groupAdmins}, time.Hour)
	_, b, _ = a.c.do("GET", "/api/tenants/"+tenantT+"/agents", admin, "")
	if !strings.Contains(b, `"Anna Muster"`) || !strings.Contains(b, "anna@contoso.com") {
		t.Errorf("tenant admin sees: %s", b)
	}
	_, b, _ = a.c.do("GET", "/api/tenants/"+tenantT+"/services", partner, "")
	if !strings.Contains(b, `"id":"sales"`) || strings.Contains(b, ownerSales) {
		t.Errorf("partner sees service owners unmasked: %s", b)
	}
	if status, _, _ := a.c.do("GET", "/api/tenants/"+tenantT+"/agents", "", ""); status != http.StatusUnauthorized {
		t.Errorf("no token: %d", status)
	}
}

// Deleting a tenant stops its services at once; the provisioning run (the timer, with
// the host's envelope) then removes them with their tasks, and running it again
// changes nothing. Another tenant's services are untouched.
func TestTenantDeletionThenTheProvisioningRunRemovesItsServices(t *testing.T) {
	a := startServices(t)
	ctx := context.Background()
	op := a.is.token(t, guestTID, "op-1", []string{"Platform.Operator"}, nil, time.Hour)
	if _, err := a.store.CreateService(ctx, routing.Service{TenantID: tenantT2, ID: "sales", Type: routing.TeamsBased}); err != nil {
		t.Fatal(err)
	}
	for _, tenantID := range []string{tenantT, tenantT2} {
		if _, err := a.store.CreateTask(ctx, routing.Task{TenantID: tenantID, ServiceID: "sales", ID: "waiting", State: routing.Waiting,
			Priority: routing.Normal, Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if status, b, _ := a.c.do("DELETE", "/api/tenants/"+tenantT, op, `{"confirm":"YES"}`); status != 202 {
		t.Fatalf("delete tenant: %d %s", status, b)
	}
	timer := `{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{"sys":{"MethodName":"ProvisioningRun","UtcNow":"2026-11-24T10:30:00Z"}}}`
	for run := range 2 {
		if status, b := postTB(t, a.c.base+"/ProvisioningRun", timer); status != 200 || !strings.Contains(b, `"ReturnValue":null`) {
			t.Fatalf("run %d: %d %s", run, status, b)
		}
		if svcs, _ := a.store.ListServices(ctx, tenantT); len(svcs) != 0 {
			t.Fatalf("run %d: the deleted tenant still has %d services", run, len(svcs))
		}
		if _, err := a.store.GetTask(ctx, tenantT, "sales", "waiting"); !errors.Is(err, fault.ErrNotFound) {
			t.Fatalf("run %d: a task of a removed service is left: %v", run, err)
		}
		if _, err := a.store.GetTask(ctx, tenantT2, "sales", "waiting"); err != nil {
			t.Fatalf("run %d: another tenant's task was removed: %v", run, err)
		}
	}
	if status, _, _ := a.c.do("DELETE", "/api/tenants/"+tenantT, op, `{"confirm":"YES"}`); status != 202 {
		t.Fatalf("deleting again after the run: %d", status)
	}
}

// Agent self-service and supervisors: an agent reads their own profile, goes off
// duty, ends their after-call work and resets their RONA, and may touch nothing of
// another agent's; a supervisor reads explanations, reports and call timelines and
// changes nothing.
func TestAgentSelfServiceAndSupervisorRoleMatrix(t *testing.T) {
	a := startServices(t)
	is, c, hour := a.is, a.c, time.Hour
	ctx := context.Background()
	if _, err := a.store.CreateTask(ctx, routing.Task{TenantID: tenantT, ServiceID: "sales", ID: "t1", State: routing.Waiting, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	callers := []struct{ name, token string }{
		{"operator", is.token(t, guestTID, "op-1", []string{"Platform.Operator"}, nil, hour)},
		{"tenantAdmin", is.token(t, tenantT, "ta-1", nil, []string{groupAdmins}, hour)},
		{"partner", is.token(t, partnerTID, "pa-1", nil, []string{groupPartner}, hour)},
		{"supervisor", is.token(t, tenantT, "su-1", nil, []string{groupSupervise}, hour)},
		{"anna", is.token(t, tenantT, agentAnna, nil, nil, hour)},
		{"ben", is.token(t, tenantT, agentBen, nil, nil, hour)},
		{"owner", is.token(t, tenantT, ownerSales, nil, nil, hour)},
		{"annaElsewhere", is.token(t, guestTID, agentAnna, nil, nil, hour)}, // Anna's id, signed in to another tenant
	}
	T := "/api/tenants/" + tenantT
	anna := T + "/agents/" + agentAnna
	ops := []struct{ name, method, path, body string }{
		{"read Anna", "GET", anna, ""},
		{"Anna goes off duty", "PATCH", anna, `{"duty":{"offDuty":true}}`},
		{"Anna's skills", "PATCH", anna, `{"skills":{"de":5}}`},
		{"Anna's duty services", "PATCH", anna, `{"duty":{"services":["support"]}}`},
		{"end Anna's ACW", "POST", anna + "/acw", `{"action":"end"}`},
		{"reset Anna's RONA", "POST", anna + "/rona/reset", ""},
		{"explain a task", "GET", T + "/services/sales/tasks/t1/explain", ""},
		{"user-state report", "GET", T + "/reports/user-states", ""},
		{"a call's timeline", "GET", T + "/calls/nope", ""}, // calls not configured here: 404 once past the guard
		{"change distribution", "PATCH", T + "/services/sales", `{"distribution":{"ringTimeoutSeconds":25}}`},
	}
	want := map[string][]int{
		//                      op   ta   pa   sup  anna ben  own  elsewhere
		"read Anna":            {200, 200, 200, 403, 200, 403, 200, 403},
		"Anna goes off duty":   {200, 200, 200, 403, 200, 403, 403, 403},
		"Anna's skills":        {200, 200, 200, 403, 403, 403, 403, 403},
		"Anna's duty services": {200, 200, 200, 403, 403, 403, 403, 403},
		"end Anna's ACW":       {200, 200, 403, 403, 200, 403, 403, 403},
		"reset Anna's RONA":    {200, 200, 403, 403, 200, 403, 403, 403},
		"explain a task":       {200, 200, 200, 200, 403, 403, 403, 403},
		"user-state report":    {200, 200, 200, 200, 403, 403, 403, 403},
		"a call's timeline":    {404, 404, 404, 404, 403, 403, 403, 403},
		"change distribution":  {200, 200, 200, 403, 403, 403, 200, 403},
	}
	reset := func() {
		now := time.Now().UTC()
		if _, err := a.store.UpdateAgentState(ctx, tenantT, agentAnna, func(s *routing.AgentState) error {
			s.Skills, s.Duty = map[string]int{"de": 3}, routing.Duty{}
			s.RONAUntil, s.ACWUntil, s.ACWEarlyEnd = now.Add(hour), now.Add(hour), true
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range ops {
		for i, caller := range callers {
			reset()
			var headers []string
			if o.name == "change distribution" {
				headers = []string{"If-Match", a.version(t, "sales")}
			}
			before := a.snapshot(t)
			status, b, _ := c.do(o.method, o.path, caller.token, o.body, headers...)
			if status != want[o.name][i] {
				t.Errorf("%s by %s: %d, want %d (%s)", o.name, caller.name, status, want[o.name][i], strings.TrimSpace(b))
			}
			if status >= 400 && a.snapshot(t) != before {
				t.Errorf("%s by %s was refused but wrote something", o.name, caller.name)
			}
		}
	}
	// A refused field of Anna's own profile is named.
	reset()
	status, b, _ := c.do("PATCH", anna, callers[4].token, `{"duty":{"services":["support"]}}`)
	if status != 403 || !strings.Contains(b, `"field":"duty.services"`) {
		t.Errorf("Anna choosing her services: %d %s", status, b)
	}
}
