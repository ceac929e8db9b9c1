package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/directory"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/simulate"
)

// syncBuffer is an io.Writer tests can read while the app writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func envFrom(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if v != nil {
		if err := json.NewDecoder(res.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
	return res.StatusCode
}

func post(t *testing.T, url, body string, headers ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// startHandler runs the handler as the host would start it (run, Azure mode, embedded
// storage) and returns its base URL once GET / answers.
func startHandler(t *testing.T, env map[string]string) (string, *syncBuffer) {
	t.Helper()
	port := freePort(t)
	env["FUNCTIONS_CUSTOMHANDLER_PORT"] = port
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, envFrom(env), out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	base := "http://127.0.0.1:" + port
	waitFor(t, "GET / to answer", func() bool {
		res, err := http.Get(base + "/")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	return base, out
}

func TestTheHandlerAnswersTheHostsEnvelopes(t *testing.T) {
	is := newIssuer(t)
	base, logs := startHandler(t, map[string]string{"Storage": "Memory", "AdminAudiences": adminAudience,
		"EntraAuthorityHost": is.authority(), "EntraJwksUrl": is.srv.URL + "/keys"})
	admin := adminClient{t: t, base: base}
	op := is.token(t, "6e6e6e6e-0000-4000-8000-000000000006", "op-1", []string{"Platform.Operator"}, nil, time.Hour)
	// A Service Bus envelope as the host sends it: the body's properties merged into
	// Metadata, strings in Data JSON-encoded twice.
	// A Service Bus envelope as the host sends it: a string body JSON-encoded twice in
	// Data, and a colliding property in Metadata that must not be taken as the body.
	envelope := func(body string) string {
		once, _ := json.Marshal(body)
		twice, _ := json.Marshal(string(once))
		return fmt.Sprintf(`{"Data":{"message":%s},"Metadata":{"DeliveryCount":"1","MessageId":"m-%d","tenantId":%q,"sys":{"MethodName":"PresenceRefreshTenant","UtcNow":"2026-11-24T10:00:00Z","RandGuid":"0f0f"}}}`,
			twice, time.Now().UnixNano(), simulate.FabrikamID)
	}
	for name, tc := range map[string]struct{ body, reason string }{
		"malformed body": {`{"tenantId":`, "body: must be a JSON object"},
		"unknown field":  {`{"tenant":"x"}`, "tenant: unknown field"},
		"not a GUID":     {`{"tenantId":"contoso"}`, "tenantId: must be a GUID"},
		"unknown tenant": {`{"tenantId":"` + simulate.ContosoID + `"}`, "tenantId: unknown tenant"},
	} {
		status, resp := post(t, base+"/PresenceRefreshTenant", envelope(tc.body), "X-Azure-Functions-InvocationId", "inv-"+strings.ReplaceAll(name, " ", "-"))
		if status != http.StatusOK || !strings.Contains(resp, `"Outputs"`) {
			t.Errorf("%s: %d %s; want 200 with the host's response shape (parked, not retried)", name, status, resp)
		}
		var parked struct {
			Messages []struct{ Reason, InvocationID string }
		}
		_, b, _ := admin.do("GET", "/api/ops/parked?function=PresenceRefreshTenant&limit=1", op, "")
		_ = json.Unmarshal([]byte(b), &parked)
		if len(parked.Messages) != 1 || !strings.Contains(parked.Messages[0].Reason, tc.reason) {
			t.Errorf("%s: newest parked = %+v; want reason %q", name, parked.Messages, tc.reason)
		}
	}
	if !strings.Contains(logs.String(), `"invocation_id":"inv-unknown-tenant"`) {
		t.Errorf("logs do not carry the invocation id:\n%s", logs)
	}

	timer := `{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{"sys":{"MethodName":"PresenceRefresh","UtcNow":"2026-11-24T10:00:00Z"}}}`
	if status, resp := post(t, base+"/PresenceRefresh", timer); status != http.StatusOK || !strings.Contains(resp, `"ReturnValue":null`) {
		t.Errorf("timer: %d %s", status, resp)
	}
	if status, _, _ := admin.do("GET", "/api/tenants/not-a-guid/presence/health", op, ""); status != http.StatusBadRequest {
		t.Errorf("health of a bad tenant id: %d, want 400", status)
	}
	if status, _, _ := admin.do("GET", "/api/tenants/"+simulate.ContosoID+"/presence/health", op, ""); status != http.StatusNotFound {
		t.Errorf("health of an unknown tenant (operator): %d, want 404", status)
	}
}

func TestBadSettingsStopTheHandlerWithTheirNames(t *testing.T) {
	err := run(context.Background(), nil, envFrom(map[string]string{"PresenceMaxInFlight": "0"}), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "PresenceMaxInFlight: must be a whole number 1..64") {
		t.Fatalf("run with a bad setting: %v", err)
	}
}

// The local runner end to end: the timer refreshes the simulated tenants, health shows
// the account fallback, Test UPN answers, a bad message is parked.
func TestLocalRunnerRunsTheAppOnSimulatedTenants(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	env := map[string]string{"PresenceRefreshSchedule": "* * * * * *", "LogLevel": "warn"}
	go func() {
		done <- run(ctx, []string{"-local", "-root", "..", "-listen", "127.0.0.1:0"}, envFrom(env), out)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("local run: %v", err)
		}
	}()
	addrRE := regexp.MustCompile(`running locally on (http://127\.0\.0\.1:\d+)`)
	var base string
	waitFor(t, "the banner", func() bool {
		m := addrRE.FindStringSubmatch(out.String())
		if m != nil {
			base = m[1]
		}
		return m != nil
	})

	var contoso, fabrikam healthView
	waitFor(t, "both demo tenants polled", func() bool {
		getJSON(t, base+"/api/tenants/"+simulate.ContosoID+"/presence/health", &contoso)
		getJSON(t, base+"/api/tenants/"+simulate.FabrikamID+"/presence/health", &fabrikam)
		return contoso.Health != nil && fabrikam.Health != nil
	})
	if contoso.Status != "ok" || contoso.Health.Active != presence.CredAccount1 || contoso.Health.Agents != 20 {
		t.Errorf("Contoso health: %+v %+v", contoso, contoso.Health)
	}
	if fabrikam.Status != "degraded" || fabrikam.Health.Active != presence.CredAccount2 || fabrikam.Health.Account1.ErrorCode != "AADSTS50076" {
		t.Errorf("Fabrikam health: %+v %+v", fabrikam, fabrikam.Health)
	}

	var list struct {
		Agents []presenceView
	}
	if status := getJSON(t, base+"/api/tenants/"+simulate.ContosoID+"/presence", &list); status != http.StatusOK || len(list.Agents) != 20 ||
		list.Agents[0].Source != presence.SourceSimulated || list.Agents[0].DisplayName == "" {
		t.Errorf("presence list: %d %+v", status, list.Agents)
	}

	status, body := post(t, base+"/api/tenants/"+simulate.FabrikamID+"/presence/test", `{"upn":"agent01@fabrikam.example"}`)
	var tr presence.TestResult
	_ = json.Unmarshal([]byte(body), &tr)
	if status != http.StatusOK || tr.AnsweredBy != presence.CredAccount2 || len(tr.Attempts) != 2 {
		t.Errorf("test UPN: %d %s", status, body)
	}
	status, body = post(t, base+"/api/tenants/"+simulate.ContosoID+"/presence/test", `{"upn":"no spaces@x"}`)
	if status != http.StatusBadRequest || !strings.Contains(body, `"field":"upn"`) {
		t.Errorf("bad UPN: %d %s", status, body)
	}

	// The simulated Contoso's directory: its people can be found and added, its
	// Teams-based services follow their Teams (already in step: nothing changes).
	C := base + "/api/tenants/" + simulate.ContosoID
	var found struct{ Value []userView }
	if status := getJSON(t, C+"/directory/users?search=New%20Hire", &found); status != http.StatusOK || len(found.Value) != 5 {
		t.Errorf("directory search: %d %+v", status, found)
	}
	status, body = post(t, C+"/services/support/agents", `{"user":"newhire1@contoso.example"}`)
	if status != http.StatusOK || !strings.Contains(body, "New Hire 1") {
		t.Errorf("add a directory user: %d %s", status, body)
	}
	status, body = post(t, C+"/services/sales/members/sync", "")
	var synced directory.SyncResult
	_ = json.Unmarshal([]byte(body), &synced)
	if status != http.StatusOK || synced.Members == 0 || synced.Added != 0 || synced.Removed != 0 {
		t.Errorf("sync of the demo Team: %d %s", status, body)
	}

	// A simulated caller calls Contoso sales; simulated agents answer most offers
	// within seconds (some decline or let it ring, so another caller tries every
	// 10 s): a call ends up connected to an agent, as `make run` shows.
	var connected CallView
	var placed []string
	deadline := time.Now().Add(90 * time.Second)
	for connected.ConnectedAt == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no simulated call was connected in 90 s: %v\n%s", placed, out)
		}
		status, body := post(t, base+"/sim/calls", `{"to":"+15555550100"}`)
		var sim struct{ CallID, Timeline string }
		if err := json.Unmarshal([]byte(body), &sim); status != http.StatusAccepted || err != nil || sim.CallID == "" {
			t.Fatalf("place a call: %d %s", status, body)
		}
		placed = append(placed, sim.CallID)
		for wait := time.Now().Add(10 * time.Second); time.Now().Before(wait) && connected.ConnectedAt == nil; time.Sleep(200 * time.Millisecond) {
			for _, id := range placed {
				var v CallView
				if getJSON(t, base+"/api/tenants/"+simulate.ContosoID+"/calls/"+id, &v) == http.StatusOK && v.ConnectedAt != nil {
					connected = v
				}
			}
		}
	}
	var what []string
	for _, s := range connected.Steps {
		what = append(what, s.What)
	}
	if got := strings.Join(what, " "); !strings.HasPrefix(got, "incoming answered established greeting queued music offered") ||
		!strings.Contains(got, "accepted") || connected.Agents[connected.Agent].UPN == "" {
		t.Errorf("the connected call's timeline: %s %+v", got, connected.Agents)
	}

	if status, _ := post(t, base+"/admin/functions/PresenceRefreshTenant", `{"input":"{\"tenantId\":\"11111111-1111-1111-1111-111111111111\"}"}`); status != http.StatusAccepted {
		t.Fatalf("enqueue: %d", status)
	}
	waitFor(t, "the unknown tenant's message to be parked", func() bool {
		var parked struct{ Messages []struct{ Reason string } }
		getJSON(t, base+"/api/ops/parked", &parked)
		return len(parked.Messages) == 1 && strings.Contains(parked.Messages[0].Reason, "unknown tenant")
	})
}
