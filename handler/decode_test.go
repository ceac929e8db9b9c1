package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/graph"
	"github.com/teamscc/teamscc/shared/simulate"
)

// fieldError reads the field and rule of a 400 answer.
func fieldError(t *testing.T, body string) (field, rule string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Field, Rule string }
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code != "invalid" {
		t.Fatalf("not a field error: %s", body)
	}
	return e.Error.Field, e.Error.Rule
}

// everything is what the admin calls of TestBodiesOfTheWrongShapeNameTheField could
// write: the tenants, services, agent states, audit entries and outbound tasks.
func (a *servicesApp) everything(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	ts, err1 := a.store.ListTenants(ctx)
	ob, err2 := a.store.ListOutbound(ctx, tenantT, "support", false)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	b, _ := json.Marshal([]any{ts, ob})
	return a.snapshot(t) + string(b)
}

// A body of the wrong shape is a 400 that names the field by its path and the type it
// must have, an unknown field as unknown, and "body" only for the body as a whole;
// nothing is written.
func TestBodiesOfTheWrongShapeNameTheField(t *testing.T) {
	a := startServices(t)
	op := a.is.token(t, guestTID, "op-1", []string{"Platform.Operator"}, nil, time.Hour)
	const newTenant = "4e4e4e4e-0000-4000-8000-00000000004e"
	T := "/api/tenants/" + tenantT
	tv, err := a.store.GetTenant(context.Background(), tenantT)
	if err != nil {
		t.Fatal(err)
	}
	tenantVersion := strconv.Quote(strconv.FormatInt(tv.Version, 10))
	newService := func(fields string) string { return `{"id":"new","name":"New","type":"SkillBased"` + fields + `}` }
	outbound := func(fields string) string {
		return `{"taskId":"ob-1","customer":"+41441234567","due":"2026-11-26T10:00:00Z"` + fields + `}`
	}
	for _, tc := range []struct {
		name, method, path, body string
		field, rule              string
	}{
		{"tenant id a number", "POST", "/api/tenants", `{"id":123}`, "id", "must be a string"},
		{"tenant name an array", "POST", "/api/tenants", `{"id":"` + newTenant + `","name":["N"]}`, "name", "must be a string"},
		{"tenant nested flag a string", "POST", "/api/tenants", `{"id":"` + newTenant + `","name":"N","privacy":{"trackUserStates":"yes"}}`, "privacy.trackUserStates", "must be true or false"},
		{"tenant unknown field", "POST", "/api/tenants", `{"id":"` + newTenant + `","name":"N","colour":"red"}`, "colour", "unknown field"},
		{"tenant body an array", "POST", "/api/tenants", `[1]`, "body", "must be a JSON object"},
		{"tenant body not JSON", "POST", "/api/tenants", `{"id":`, "body", "must be a JSON object"},
		{"tenant body with more after it", "POST", "/api/tenants", `{"id":"` + newTenant + `","name":"N"} {}`, "body", "must be one JSON value with nothing after it"},
		{"tenant patch number a string", "PATCH", T, `{"extensions":{"outboundCap":"5"}}`, "extensions.outboundCap", "must be a whole number 1..50"},
		{"tenant patch name a number", "PATCH", T, `{"name":5}`, "name", "must be a string"},
		{"tenant patch with more after it", "PATCH", T, `{"name":"X"}]`, "body", "must be one JSON value with nothing after it"},
		{"service nested number a string", "POST", T + "/services", newService(`,"distribution":{"ringTimeoutSeconds":"20"}`), "distribution.ringTimeoutSeconds", "must be a whole number"},
		{"service nested fraction", "POST", T + "/services", newService(`,"distribution":{"ringTimeoutSeconds":20.5}`), "distribution.ringTimeoutSeconds", "must be a whole number"},
		{"service nested unknown field", "POST", T + "/services", newService(`,"distribution":{"rona":{"colour":1}}`), "distribution.rona.colour", "unknown field"},
		{"service array element", "POST", T + "/services", newService(`,"phoneNumbers":[{"number":41441234567,"kind":"DirectRouting"}]`), "phoneNumbers[0].number", "must be a string"},
		{"service flag a string", "POST", T + "/services", newService(`,"pstnLicence":"yes"`), "pstnLicence", "must be true or false"},
		{"service object an array", "POST", T + "/services", newService(`,"distribution":[]`), "distribution", "must be a JSON object"},
		{"service body too large", "POST", T + "/services", newService(`,"name":"` + strings.Repeat("n", 70<<10) + `"`), "body", "must be at most 64 KiB"},
		{"service patch nested number a string", "PATCH", T + "/services/sales", `{"distribution":{"ringTimeoutSeconds":"20"}}`, "distribution.ringTimeoutSeconds", "must be a whole number"},
		{"service patch map value", "PATCH", T + "/services/sales", `{"distribution":{"weights":{"x":"2"}}}`, "distribution.weights.x", "must be a whole number"},
		{"service patch array a string", "PATCH", T + "/services/sales", `{"owners":"` + ownerSales + `"}`, "owners", "must be a JSON array"},
		{"service patch nested unknown field", "PATCH", T + "/services/sales", `{"calls":{"exit":{"colour":1}}}`, "calls.exit.colour", "unknown field"},
		{"service patch body a string", "PATCH", T + "/services/sales", `"name"`, "body", "must be a JSON object"},
		{"agent skill level a string", "PATCH", T + "/agents/" + agentAnna, `{"skills":{"de":"3"}}`, "skills.de", "must be a whole number"},
		{"agent duty flag a string", "PATCH", T + "/agents/" + agentAnna, `{"duty":{"offDuty":"yes"}}`, "duty.offDuty", "must be true or false"},
		{"agent active flag a number", "PATCH", T + "/agents/" + agentAnna, `{"active":{"sales":1}}`, "active.sales", "must be true or false"},
		{"agent duty unknown field", "PATCH", T + "/agents/" + agentAnna, `{"duty":{"colour":1}}`, "duty.colour", "unknown field"},
		{"outbound task id a number", "POST", T + "/services/support/outbound", `{"taskId":7}`, "taskId", "must be a string"},
		{"outbound param a number", "POST", T + "/services/support/outbound", outbound(`,"params":{"ticket":42}`), "params.ticket", "must be a string"},
		{"outbound unknown field", "POST", T + "/services/support/outbound", outbound(`,"agent":"x"`), "agent", "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := a.everything(t)
			headers := []string{"If-Match", tenantVersion}
			if strings.Contains(tc.path, "/services/") && tc.method == "PATCH" {
				headers = []string{"If-Match", a.version(t, "sales")}
			}
			status, b, _ := a.c.do(tc.method, tc.path, op, tc.body, headers...)
			if status != http.StatusBadRequest {
				t.Fatalf("%d %s, want 400", status, b)
			}
			if field, rule := fieldError(t, b); field != tc.field || rule != tc.rule {
				t.Errorf("field %q rule %q, want %q %q", field, rule, tc.field, tc.rule)
			}
			if a.everything(t) != before {
				t.Error("a refused request wrote something")
			}
		})
	}
}

// The call and directory operations decode their bodies the same way.
func TestCallTransferAndDirectoryBodiesNameTheField(t *testing.T) {
	t.Run("call transfer", func(t *testing.T) {
		a := newCallsApp(t, graph.CallingOptions{})
		id := a.fake.PlaceCall(simulate.ContosoID, caller, salesLine)
		a.settle(t)
		path := "/api/tenants/" + simulate.ContosoID + "/calls/" + id + "/transfer"
		for _, tc := range []struct{ body, field, rule string }{
			{`{"service":1}`, "service", "must be a string"},
			{`{"phone":["+41441234567"]}`, "phone", "must be a string"},
			{`{"service":"support","colour":"red"}`, "colour", "unknown field"},
			{`["support"]`, "body", "must be a JSON object"},
		} {
			before := a.call(t, simulate.ContosoID, id)
			status, b, _ := a.do(t, "POST", path, tc.body)
			if status != http.StatusBadRequest {
				t.Fatalf("%s: %d %s, want 400", tc.body, status, b)
			}
			if field, rule := fieldError(t, b); field != tc.field || rule != tc.rule {
				t.Errorf("%s: field %q rule %q, want %q %q", tc.body, field, rule, tc.field, tc.rule)
			}
			if after := a.call(t, simulate.ContosoID, id); after.Phase != before.Phase || after.ServiceID != before.ServiceID || len(after.Steps) != len(before.Steps) {
				t.Errorf("%s: the call changed: %+v, was %+v", tc.body, after, before)
			}
		}
		if x := a.call(t, simulate.ContosoID, id); x.Phase == calls.PhaseTransferring {
			t.Errorf("a refused transfer was started: %+v", x)
		}
	})
	t.Run("directory add agent", func(t *testing.T) {
		a := newDirectoryApp(t)
		ctx := context.Background()
		snapshot := func() string {
			ag, err1 := a.store.ListAgents(ctx, dirTenant)
			st, err2 := a.store.ListAgentStates(ctx, dirTenant)
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			b, _ := json.Marshal([]any{ag, st})
			return string(b)
		}
		for _, tc := range []struct{ body, field, rule string }{
			{`{"user":1}`, "user", "must be a string"},
			{`{"user":{"upn":"user1@contoso.example"}}`, "user", "must be a string"},
			{`{"upn":"user1@contoso.example"}`, "upn", "unknown field"},
			{``, "body", "must be a JSON object"},
		} {
			before := snapshot()
			status, b := a.do(t, "POST", "/api/tenants/"+dirTenant+"/services/support/agents", tc.body)
			if status != http.StatusBadRequest {
				t.Fatalf("%s: %d %s, want 400", tc.body, status, b)
			}
			if field, rule := fieldError(t, b); field != tc.field || rule != tc.rule {
				t.Errorf("%s: field %q rule %q, want %q %q", tc.body, field, rule, tc.field, tc.rule)
			}
			if snapshot() != before {
				t.Errorf("%s was refused but wrote something", tc.body)
			}
		}
	})
}

// The paths decodeJSON names follow encoding/json's matching where no endpoint's body
// reaches today: promoted fields of embedded structs, keys matched ignoring case,
// fields with the ",string" option, and types that decode themselves.
func TestDecodeNamesThePathEncodingJSONFollows(t *testing.T) {
	type Inner struct {
		Level int `json:"level"`
	}
	type Named struct {
		X int `json:"x"`
	}
	type body struct {
		Inner
		Named  `json:"named"`
		Count  int              `json:"count,string"`
		At     time.Time        `json:"at"`
		Groups []map[string]int `json:"groups"`
	}
	for _, tc := range []struct{ in, field, rule string }{
		{`{"level":"1"}`, "level", "must be a whole number"},
		{`{"LEVEL":"1"}`, "LEVEL", "must be a whole number"},
		{`{"x":1}`, "x", "unknown field"},
		{`{"named":{"x":1,"y":2}}`, "named.y", "unknown field"},
		{`{"count":"3","at":"2026-11-26T10:00:00Z","groups":[{"a":1},{"b":"2"}]}`, "groups[1].b", "must be a whole number"},
		{`{"groups":[{"a":1}],"level":1} 1`, "body", "must be one JSON value with nothing after it"},
	} {
		var v body
		err := decodeJSON([]byte(tc.in), &v)
		var fe *fault.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || fe.Rule != tc.rule {
			t.Errorf("%s: %v, want %s: %s", tc.in, err, tc.field, tc.rule)
		}
	}
	var v body
	if err := decodeJSON([]byte(`{"level":2,"named":{"x":1},"count":"3","at":"2026-11-26T10:00:00Z","groups":[{"a":1}]}`), &v); err != nil || v.Level != 2 || v.Count != 3 {
		t.Errorf("a body of the right shape: %v %+v", err, v)
	}
}
