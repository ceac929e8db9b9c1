package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/access"
	"github.com/teamscc/teamscc/shared/config"
	"github.com/teamscc/teamscc/shared/entra"
	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/outbound"
	"github.com/teamscc/teamscc/shared/queue"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/tenant"
)

// scheduleQueue is Service Bus for the outbound tests: it keeps scheduled messages.
type scheduleQueue struct {
	mu        sync.Mutex
	seq       int64
	scheduled map[int64]queue.Message
}

func (q *scheduleQueue) Send(context.Context, string, queue.Message) error { return nil }
func (q *scheduleQueue) Schedule(_ context.Context, _ string, m queue.Message, _ time.Time) (int64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	q.scheduled[q.seq] = m
	return q.seq, nil
}
func (q *scheduleQueue) Cancel(_ context.Context, _ string, seq int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.scheduled, seq)
	return nil
}

type outboundApp struct {
	adminClient
	store *inmem.Store
	queue *scheduleQueue
	is    *issuer
	logs  *syncBuffer
}

// startOutbound serves the app over HTTP with token checks on, on an embedded store
// holding tenantT (cap 2) and its services.
func startOutbound(t *testing.T) *outboundApp {
	t.Helper()
	ctx := context.Background()
	is := newIssuer(t)
	s := inmem.New()
	te := tenant.New(tenantT, "Contoso")
	te.Security.TenantAdminGroup, te.Security.PartnerAdminGroup = groupAdmins, groupPartner
	te.Extensions.OutboundCap = 2
	if err := s.PutTenant(ctx, te); err != nil {
		t.Fatal(err)
	}
	for _, sv := range []routing.Service{{TenantID: tenantT, ID: "sales", Type: routing.TeamsBased},
		{TenantID: tenantT, ID: "pstn", Type: routing.TeamsBased, PSTNLicence: true}} {
		if err := s.PutService(ctx, sv); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(envFrom(map[string]string{"Storage": "Memory"}))
	if err != nil {
		t.Fatal(err)
	}
	v, err := entra.NewValidator(entra.Options{AuthorityHost: is.authority(), JWKSURL: is.srv.URL + "/keys"})
	if err != nil {
		t.Fatal(err)
	}
	q := &scheduleQueue{scheduled: map[int64]queue.Message{}}
	logs := &syncBuffer{}
	app := newApp(cfg, deps{tenants: s, secrets: s, presences: s, parked: s, userStates: s, interact: s, routes: s, sender: q, audit: s, now: time.Now,
		admin: newAdminAuth([]string{adminAudience}, v, access.Resolver{OperatorRole: "Platform.Operator"}, s)},
		slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	return &outboundApp{adminClient: adminClient{t: t, base: srv.URL}, store: s, queue: q, is: is, logs: logs}
}

func errorOf(t *testing.T, body string) map[string]any {
	t.Helper()
	var v struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil || v.Error == nil {
		t.Fatalf("not an error body: %s", body)
	}
	return v.Error
}

func TestOutboundOverHTTP(t *testing.T) {
	a := startOutbound(t)
	admin := a.is.token(t, tenantT, "ta-1", nil, []string{groupAdmins}, time.Hour)
	member := a.is.token(t, tenantT, "me-1", nil, nil, time.Hour)
	P := "/api/tenants/" + tenantT + "/services/sales/outbound"
	due := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	body := func(id, notes string) string {
		return fmt.Sprintf(`{"taskId":%q,"customer":"jane@contoso.com","due":%q,"priority":"High","notes":%q,"params":{"campaign":"winter"}}`, id, due, notes)
	}

	for _, m := range []string{"GET", "POST", "DELETE"} {
		p := P
		if m == "DELETE" {
			p += "/t1"
		}
		if status, b, _ := a.do(m, p, "", body("t1", "")); status != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d %s", m, status, b)
		}
		if status, b, _ := a.do(m, p, member, body("t1", "")); status != http.StatusForbidden {
			t.Errorf("%s by a member: %d %s", m, status, b)
		}
	}

	status, first, _ := a.do("POST", P, admin, body("t1", "call back"))
	if status != http.StatusCreated {
		t.Fatalf("first: %d %s", status, first)
	}
	var task outbound.Task
	_ = json.Unmarshal([]byte(first), &task)
	if task.ID != "t1" || task.State != outbound.Scheduled || task.Sequence != 1 || task.Priority != routing.High {
		t.Fatalf("task %+v", task)
	}
	status, again, _ := a.do("POST", P, admin, body("t1", "call back"))
	if status != http.StatusOK || again != first {
		t.Fatalf("replay: %d\n%s\nwant 200 and\n%s", status, again, first)
	}
	status, b, _ := a.do("POST", P, admin, body("t1", "other notes"))
	if e := errorOf(t, b); status != http.StatusConflict || e["field"] != "taskId" {
		t.Fatalf("other content: %d %s", status, b)
	}
	for _, c := range []struct{ body, field string }{
		{`{"taskId":"t9","customer":"+41 44","due":"` + due + `"}`, "customer"},
		{`{"taskId":"t9","customer":"+41441234567","due":"` + due + `"}`, "customer"}, // no PSTN licence
		{`{"taskId":"t9","customer":"jane@contoso.com","due":"next week"}`, "due"},
		{`{"taskId":"t9","customer":"jane@contoso.com","due":"2099-01-01T00:00:00Z"}`, "due"},
		{`{"taskId":"t 9","customer":"jane@contoso.com","due":"` + due + `"}`, "taskId"},
		{`{"taskId":"t9","customer":"jane@contoso.com","due":"` + due + `","colour":"red"}`, "colour"},
	} {
		status, b, _ := a.do("POST", P, admin, c.body)
		if e := errorOf(t, b); status != http.StatusBadRequest || e["field"] != c.field {
			t.Errorf("%s: %d %s; want 400 naming %s", c.body, status, b, c.field)
		}
	}
	if status, b, _ := a.do("POST", "/api/tenants/"+tenantT+"/services/nope/outbound", admin, body("t9", "")); status != http.StatusNotFound {
		t.Errorf("unknown service: %d %s", status, b)
	}
	if status, b, _ := a.do("POST", P, admin, body("t2", "")); status != http.StatusCreated {
		t.Fatalf("second: %d %s", status, b)
	}
	status, b, _ = a.do("POST", P, admin, body("t3", ""))
	e := errorOf(t, b)
	if status != http.StatusTooManyRequests || e["code"] != "OutboundLimitReached" || e["limit"] != float64(2) || e["current"] != float64(2) {
		t.Fatalf("over the cap: %d %s", status, b)
	}
	_, b, _ = a.do("GET", P, admin, "")
	var list struct{ Tasks []outbound.Task }
	_ = json.Unmarshal([]byte(b), &list)
	if len(list.Tasks) != 2 || list.Tasks[0].ID != "t1" || list.Tasks[1].ID != "t2" {
		t.Fatalf("list: %s", b)
	}
	status, b, _ = a.do("DELETE", P+"/t1", admin, "")
	if status != http.StatusOK || !strings.Contains(b, `"state":"Cancelled"`) || len(a.queue.scheduled) != 1 {
		t.Fatalf("cancel: %d %s (%d scheduled)", status, b, len(a.queue.scheduled))
	}
	if status, b, _ := a.do("DELETE", P+"/nope", admin, ""); status != http.StatusNotFound {
		t.Errorf("cancel unknown: %d %s", status, b)
	}
	if status, b, _ := a.do("POST", P, admin, body("t3", "")); status != http.StatusCreated {
		t.Fatalf("after a cancel: %d %s", status, b)
	}
	if strings.Contains(a.logs.String(), "jane@contoso.com") {
		t.Error("the logs carry a customer identifier")
	}
}

func TestScheduleOutboundOnServiceBus(t *testing.T) {
	a := startOutbound(t)
	due := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339) // past: as soon as possible
	msg := func(id string) string {
		return fmt.Sprintf(`{"tenantId":%q,"serviceId":"sales","taskId":%q,"customer":"jane@contoso.com","due":%q}`, tenantT, id, due)
	}
	deliver := func(function, body, messageID string) {
		t.Helper()
		status, b := post(t, a.base+"/"+function, sbEnvelope(body, messageID, 1))
		if status != http.StatusOK {
			t.Fatalf("%s: %d %s", function, status, b)
		}
	}
	deliver("ScheduleOutbound", msg("t1"), "m1")
	deliver("ScheduleOutbound", msg("t1"), "m1-resent") // a resend with a new MessageId
	deliver("ScheduleOutbound", msg("t2"), "m2")
	ctx := context.Background()
	if n, _ := a.store.OutboundCounter(ctx, tenantT, "sales"); n != 2 || len(a.queue.scheduled) != 2 {
		t.Fatalf("counter %d, %d scheduled; a redelivery takes no second slot", n, len(a.queue.scheduled))
	}
	deliver("ScheduleOutbound", msg("t3"), "m3") // over the cap: parked, acknowledged
	parked, _ := a.store.ListParked(ctx, "ScheduleOutbound", 10)
	if len(parked) != 1 || parked[0].MessageID != "m3" || !strings.HasPrefix(parked[0].Reason, "OutboundLimitReached") {
		t.Fatalf("parked %+v", parked)
	}
	if _, err := a.store.GetOutbound(ctx, tenantT, "sales", "t3"); err == nil {
		t.Fatal("a task over the cap was stored")
	}
	deliver("ScheduleOutbound", strings.Replace(msg("t1"), `"due"`, `"notes":"x","due"`, 1), "m4") // conflict: parked
	if parked, _ := a.store.ListParked(ctx, "ScheduleOutbound", 10); len(parked) != 2 || !strings.HasPrefix(parked[0].Reason, "taskId:") {
		t.Fatalf("parked %+v", parked)
	}
	// Due: the scheduled messages become routing tasks.
	for seq, m := range a.queue.scheduled {
		deliver("OutboundDue", string(m.Body), fmt.Sprint("due-", seq))
	}
	rt, err := a.store.GetTask(ctx, tenantT, "sales", outbound.RoutingTaskID("t1"))
	if err != nil || rt.Outbound == nil || rt.Outbound.Customer != "jane@contoso.com" {
		t.Fatalf("routing task %+v %v", rt, err)
	}
	// The call ends; the reconciler frees the slot.
	if _, err := a.store.UpdateTask(ctx, tenantT, "sales", rt.ID, func(x *routing.Task) error {
		x.State, x.Outcome = routing.Done, routing.Abandoned
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	status, b := post(t, a.base+"/OutboundReconcile", `{"Data":{"timer":{"Schedule":{},"IsPastDue":false}},"Metadata":{}}`)
	if status != http.StatusOK {
		t.Fatalf("reconcile: %d %s", status, b)
	}
	if n, _ := a.store.OutboundCounter(ctx, tenantT, "sales"); n != 1 {
		t.Fatalf("counter %d after the call ended; want 1", n)
	}
	if strings.Contains(a.logs.String(), "jane@contoso.com") {
		t.Error("the logs carry a customer identifier")
	}
}
