package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/config"
	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/interact"
	"github.com/teamscc/teamscc/shared/parking"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/simulate"
	"github.com/teamscc/teamscc/shared/tenant"
	"github.com/teamscc/teamscc/shared/userstate"
)

// The retention settings are tenant settings: shown with their defaults until set,
// changed with PATCH (a value out of range is a 400 naming the field and the rule),
// the user-state retention only by the tenant (not its partner), like tracking.
func TestRetentionSettingsThroughTheTenantAPI(t *testing.T) {
	a := startServices(t)
	op := a.is.token(t, guestTID, "op-1", []string{"Platform.Operator"}, nil, time.Hour)
	admin := a.is.token(t, tenantT, "ta-1", nil, []string{groupAdmins}, time.Hour)
	partner := a.is.token(t, partnerTID, "pa-1", nil, []string{groupPartner}, time.Hour)
	get := func() (tenant.Retention, string) {
		t.Helper()
		status, b, etag := a.c.do("GET", "/api/tenants/"+tenantT, op, "")
		var v struct{ Retention tenant.Retention }
		if status != 200 || json.Unmarshal([]byte(b), &v) != nil {
			t.Fatalf("GET tenant: %d %s", status, b)
		}
		return v.Retention, etag
	}
	r, etag := get()
	if r != (tenant.Retention{}).Effective() {
		t.Fatalf("retention of a tenant that set none: %+v; want the defaults", r)
	}
	status, b, _ := a.c.do("PATCH", "/api/tenants/"+tenantT, admin, `{"retention":{"closedSessionsDays":366}}`, "If-Match", etag)
	if status != 400 || !strings.Contains(b, `"field":"retention.closedSessionsDays"`) || !strings.Contains(b, "1..365") {
		t.Fatalf("out of range: %d %s; want 400 naming the field and the rule", status, b)
	}
	status, b, _ = a.c.do("PATCH", "/api/tenants/"+tenantT, partner, `{"retention":{"userStatesDays":30}}`, "If-Match", etag)
	if status != 403 || !strings.Contains(b, "retention.userStatesDays") {
		t.Fatalf("partner changing the user-state retention: %d %s; want 403 naming it", status, b)
	}
	status, b, _ = a.c.do("PATCH", "/api/tenants/"+tenantT, admin, `{"retention":{"userStatesDays":30,"finishedTasksDays":10}}`, "If-Match", etag)
	if status != 200 {
		t.Fatalf("tenant admin: %d %s", status, b)
	}
	r, _ = get()
	if r.UserStatesDays != 30 || r.FinishedTasksDays != 10 || r.EndedCallsDays != tenant.DefaultEndedCallsDays {
		t.Fatalf("after PATCH: %+v", r)
	}
	es, _ := a.store.ListAudit(context.Background(), tenantT, time.Time{}, time.Time{}, 1)
	if len(es) != 1 || es[0].Fields["retention.userStatesDays"] != "30" {
		t.Fatalf("audit: %+v", es)
	}
}

// The provisioning run (the timer, with the host's envelope) deletes what each tenant
// keeps no longer, by that tenant's settings, keeps the rest and the other tenant's,
// and logs the counts without an identifier of what it deleted.
func TestTheProvisioningRunAppliesEachTenantsRetention(t *testing.T) {
	ctx := context.Background()
	s := inmem.New()
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	app := newApp(cfg, deps{tenants: s, secrets: s, presences: s, parked: s, userStates: s, interact: s, routes: s, audit: s,
		reader: simulate.NewReader(nil), now: time.Now, admin: localAdmin(s)}, slog.New(slog.NewJSONHandler(logs, nil)))
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	now := time.Now().UTC()
	ago := func(days float64) time.Time { return now.Add(-time.Duration(days * 24 * float64(time.Hour))) }
	short := tenant.New(tenantT, "Contoso")
	short.Retention.FinishedTasksDays = 10
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.PutTenant(ctx, short))
	must(s.PutTenant(ctx, tenant.New(tenantT2, "Fabrikam")))
	for _, tid := range []string{tenantT, tenantT2} {
		_, err := s.CreateService(ctx, routing.Service{TenantID: tid, ID: "sales", Type: routing.TeamsBased})
		must(err)
		for id, ended := range map[string]time.Time{"task-15d": ago(15), "task-5d": ago(5)} {
			_, err := s.CreateTask(ctx, routing.Task{TenantID: tid, ServiceID: "sales", ID: id, Priority: routing.Normal, Created: ended.Add(-time.Hour),
				State: routing.Done, Outcome: routing.Completed, EndedAt: ended})
			must(err)
		}
	}
	_, err = s.CreateTask(ctx, routing.Task{TenantID: tenantT, ServiceID: "sales", ID: "waiting-for-ever", Priority: routing.Normal, Created: ago(400), State: routing.Waiting})
	must(err)
	const customer = "+41790000001"
	must(s.CreateSession(ctx, interact.Session{TenantID: tenantT, ID: "3f2504e0-4f89-41d3-9a0c-0305e82c3301", CustomerID: customer,
		State: interact.SessionClosed, CreatedAt: ago(9), ClosedAt: ago(8)}))
	_, err = s.CreateCall(ctx, calls.Call{TenantID: tenantT, ID: "call-old", Direction: calls.Inbound, ServiceID: "sales", Phase: calls.PhaseEnded,
		Caller: calls.Party{Kind: calls.Phone, ID: customer}, Created: ago(40), EndedAt: ago(40)})
	must(err)
	must(s.CommitUserStates(ctx, userstate.Cursor{TenantID: tenantT, AgentID: agentAnna, At: now}, false, []userstate.Record{
		{TenantID: tenantT, AgentID: agentAnna, Kind: userstate.KindDuty, Value: userstate.OnDuty, Start: ago(100), End: ago(99.9)}}))
	must(s.Park(ctx, parking.Message{Function: "ScheduleOutbound", MessageID: "m1", Reason: "bad", Body: customer, ParkedAt: ago(15)}))

	timer := `{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{"sys":{"MethodName":"ProvisioningRun"}}}`
	if status, b := postTB(t, srv.URL+"/ProvisioningRun", timer); status != 200 {
		t.Fatalf("run: %d %s", status, b)
	}
	for tid, want := range map[string]map[string]bool{tenantT: {"task-15d": false, "task-5d": true, "waiting-for-ever": true}, tenantT2: {"task-15d": true, "task-5d": true}} {
		for id, kept := range want {
			_, err := s.GetTask(ctx, tid, "sales", id)
			if kept != (err == nil) || !kept && !errors.Is(err, fault.ErrNotFound) {
				t.Errorf("%s task %s: %v; want kept %v", tid, id, err, kept)
			}
		}
	}
	if _, err := s.GetSession(ctx, tenantT, "3f2504e0-4f89-41d3-9a0c-0305e82c3301"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("closed session: %v", err)
	}
	if _, err := s.GetCall(ctx, tenantT, "call-old"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("ended call: %v", err)
	}
	if recs, _, _ := s.ListUserStates(ctx, tenantT, userstate.Query{From: ago(101), To: now}); len(recs) != 0 {
		t.Errorf("user-state records left: %+v", recs)
	}
	if ms, _ := s.ListParked(ctx, "", 0); len(ms) != 0 {
		t.Errorf("parked left: %+v", ms)
	}
	var line map[string]any
	for l := range strings.SplitSeq(logs.String(), "\n") {
		if strings.Contains(l, `"msg":"retention run"`) {
			must(json.Unmarshal([]byte(l), &line))
		}
	}
	want := map[string]float64{"tenants": 2, "finishedTasks": 1, "endedCalls": 1, "sessions": 1,
		"userStates": 1, "parked": 1, "failures": 0, "pending": 0}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("log %s = %v, want %v (line %v)", k, line[k], v, line)
		}
	}
	for _, id := range []string{customer, "call-old", "task-15d", "3f2504e0-4f89-41d3-9a0c-0305e82c3301", "event-old", agentAnna} {
		if strings.Contains(logs.String(), id) {
			t.Errorf("the log names %q", id)
		}
	}
	// A second run finds nothing more.
	before := len(logs.String())
	if status, b := postTB(t, srv.URL+"/ProvisioningRun", timer); status != 200 {
		t.Fatalf("second run: %d %s", status, b)
	}
	if !strings.Contains(logs.String()[before:], `"finishedTasks":0,"endedCalls":0,"sessions":0,"userStates":0,"parked":0`) {
		t.Errorf("second run: %s", logs.String()[before:])
	}
}
