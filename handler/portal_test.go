package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/access"
	"github.com/teamscc/teamscc/shared/config"
	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/simulate"
	"github.com/teamscc/teamscc/shared/tenant"
)

// portalServer serves the app with the given settings; local makes it the local
// runner's (every caller an operator, no token).
func portalServer(t *testing.T, env map[string]string, local bool) string {
	t.Helper()
	cfg, err := config.Load(envFrom(env))
	if err != nil {
		t.Fatal(err)
	}
	s := inmem.New()
	admin := localAdmin(s)
	if !local {
		admin = newAdminAuth(splitList(cfg.Values["AdminAudiences"]), nil, access.Resolver{OperatorRole: "Platform.Operator"}, s)
	}
	app := newApp(cfg, deps{tenants: s, secrets: s, presences: s, parked: s, userStates: s, interact: s, routes: s, audit: s,
		sender: unwiredSender{}, reader: simulate.NewReader(nil), now: time.Now, admin: admin}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	return srv.URL
}

func get(t *testing.T, url string, headers ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// The portal's files come out of the binary with their types and headers that keep
// the page to its own code: no inline script, no framing, no referrer (the sign-in's
// code is in the address for a moment); anything else under /api/portal/ is a 404.
func TestPortalServesItsFilesFromTheBinary(t *testing.T) {
	base := portalServer(t, map[string]string{}, true)
	res, body := get(t, base+"/api/portal/")
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, `<script type="module" src="app.js">`) {
		t.Fatalf("the page: %d %s %.200s", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("Content-Security-Policy allows inline code: %q", csp)
	}
	for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"} {
		if got := res.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	// Every file the page and its modules name is served with its type.
	names := map[string]bool{}
	_ = fs.WalkDir(portalFiles, "portal", func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			names[strings.TrimPrefix(p, "portal/")] = true
		}
		return err
	})
	refs := regexp.MustCompile(`(?:src|href)="([a-z-]+\.(?:js|css))"|from '\./([a-z-]+\.js)'`)
	types := map[string]string{".js": "text/javascript", ".css": "text/css", ".html": "text/html"}
	for name := range names {
		res, body := get(t, base+"/api/portal/"+name)
		ext := name[strings.LastIndex(name, "."):]
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), types[ext]) {
			t.Errorf("%s: %d %s", name, res.StatusCode, res.Header.Get("Content-Type"))
		}
		for _, m := range refs.FindAllStringSubmatch(body, -1) {
			ref := m[1] + m[2]
			if !names[ref] {
				t.Errorf("%s refers to %s, which the portal does not have", name, ref)
			}
		}
		if strings.Contains(body, "innerHTML") || strings.Contains(body, "eval(") {
			t.Errorf("%s writes markup or code from strings (innerHTML, eval): API data must go in as text", name)
		}
	}
	if len(names) < 5 {
		t.Fatalf("the portal has %d files: %v", len(names), names)
	}
	// Unchanged files are not sent again.
	res, _ = get(t, base+"/api/portal/app.js")
	if again, _ := get(t, base+"/api/portal/app.js", "If-None-Match", res.Header.Get("ETag")); again.StatusCode != http.StatusNotModified {
		t.Errorf("app.js with its ETag: %d, want 304", again.StatusCode)
	}
	for _, p := range []string{"/api/portal/nope.js", "/api/portal/%2e%2e/portal.go", "/api/portal/portal/app.js"} {
		if res, _ := get(t, base+p); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, res.StatusCode)
		}
	}
	if res, _ := get(t, base+"/api/portal"); res.StatusCode != http.StatusTemporaryRedirect || res.Header.Get("Location") != "/api/portal/" {
		t.Errorf("GET /api/portal: %d %s, want a redirect to /api/portal/", res.StatusCode, res.Header.Get("Location"))
	}
}

// config.json tells the page how to sign in: locally not at all; in Azure with the
// app's registration (GraphClientId) at the tenant-independent endpoint, asking for a
// token for the app itself, and warning when the API would refuse that token.
func TestPortalConfigSaysHowToSignIn(t *testing.T) {
	const id = "5e1f0c1d-0000-4000-8000-00000000c11e"
	read := func(base string) portalConfig {
		t.Helper()
		var c portalConfig
		if status := getJSON(t, base+"/api/portal/config.json", &c); status != http.StatusOK {
			t.Fatalf("config.json: %d", status)
		}
		return c
	}
	if c := read(portalServer(t, map[string]string{}, true)); c.Mode != "local" || c.ClientID != "" || len(c.Scopes) != 0 {
		t.Errorf("local: %+v", c)
	}
	c := read(portalServer(t, map[string]string{"GraphClientId": id, "AdminAudiences": "api://" + id + "," + strings.ToUpper(id)}, false))
	if c.Mode != "entra" || c.ClientID != id || c.Authority != "https://login.microsoftonline.com/organizations" || len(c.Warnings) != 0 ||
		strings.Join(c.Scopes, " ") != id+"/.default openid profile offline_access" {
		t.Errorf("entra: %+v", c)
	}
	res, _ := get(t, portalServer(t, map[string]string{"GraphClientId": id, "AdminAudiences": id}, false)+"/api/portal/")
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self' https://login.microsoftonline.com;") {
		t.Errorf("the page may not reach the token endpoint: %q", csp)
	}
	c = read(portalServer(t, map[string]string{"GraphClientId": id, "AdminAudiences": "api://" + id}, false))
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "AdminAudiences") {
		t.Errorf("a client id the API does not accept tokens for: %+v", c)
	}
	c = read(portalServer(t, map[string]string{"AdminAudiences": "api://x"}, false))
	if c.ClientID != "" || len(c.Scopes) != 0 || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "GraphClientId") {
		t.Errorf("no client id: %+v", c)
	}
}

// The live queue of a service: its open tasks in routing's order with who rings and
// who is connected, its agents with their phase; every user identifier masked for a
// partner the tenant does not let see them; supervisors may read it, members and
// other partners may not.
func TestServiceQueueShowsWhoRingsAndWhoIsConnected(t *testing.T) {
	a := startServices(t)
	ctx := context.Background()
	now := time.Now().UTC()
	for _, task := range []routing.Task{
		{TenantID: tenantT, ServiceID: "sales", ID: "t1", CallID: "call-1", State: routing.Offered, Created: now.Add(-10 * time.Second), Attempts: 1,
			OfferedTo: []string{agentAnna}, OfferedAt: now, RingExpiry: now.Add(20 * time.Second)},
		{TenantID: tenantT, ServiceID: "sales", ID: "w1", CallID: "call-2", State: routing.Waiting, Priority: routing.High, Created: now.Add(-40 * time.Second)},
		{TenantID: tenantT, ServiceID: "sales", ID: "d1", State: routing.Done, Created: now.Add(-time.Hour), Outcome: routing.Completed},
		{TenantID: tenantT, ServiceID: "support", ID: "c1", State: routing.Connected, Created: now.Add(-time.Minute), ConnectedAgent: agentBen, ConnectedAt: now},
	} {
		if _, err := a.store.CreateTask(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.store.UpdateAgentState(ctx, tenantT, agentBen, func(s *routing.AgentState) error {
		s.Hold = &routing.Hold{ServiceID: "support", TaskID: "c1", Phase: routing.HoldConnected, Since: now, Until: now.Add(time.Hour)}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	path := "/api/tenants/" + tenantT + "/services/sales/queue"
	read := func(who, token, p string) (QueueView, string) {
		t.Helper()
		status, b, _ := a.c.do("GET", p, token, "")
		if status != http.StatusOK {
			t.Fatalf("%s: %d %s", who, status, b)
		}
		var v QueueView
		if err := json.Unmarshal([]byte(b), &v); err != nil {
			t.Fatal(err)
		}
		return v, b
	}
	admin := a.is.token(t, tenantT, "ta-1", nil, []string{groupAdmins}, time.Hour)
	v, _ := read("tenant admin", admin, path)
	if len(v.Tasks) != 2 || v.Tasks[0].ID != "w1" || v.Tasks[1].ID != "t1" {
		t.Fatalf("open tasks in routing's order (High first): %+v", v.Tasks)
	}
	w, r := v.Tasks[0], v.Tasks[1]
	if w.State != routing.Waiting || w.WaitingSeconds < 40 || w.Kind != "call" || w.CallID != "call-2" {
		t.Errorf("the waiting task: %+v", w)
	}
	if r.State != routing.Offered || len(r.OfferedTo) != 1 || r.OfferedTo[0] != (QueueRef{ID: agentAnna, DisplayName: "Anna Muster"}) || r.RingExpiry == nil {
		t.Errorf("the ringing task: %+v", r)
	}
	if v.Counts != (QueueCounts{Waiting: 1, Ringing: 1, Agents: 1}) {
		t.Errorf("counts: %+v", v.Counts)
	}
	if len(v.Agents) != 1 || v.Agents[0].ID != agentAnna || v.Agents[0].Phase != routing.PhaseRinging || v.Agents[0].TaskID != "t1" ||
		v.Agents[0].UPN != "anna@contoso.com" || v.Agents[0].Until == nil || !v.Agents[0].Active {
		t.Errorf("agents: %+v", v.Agents)
	}
	s, _ := read("tenant admin", admin, "/api/tenants/"+tenantT+"/services/support/queue")
	if len(s.Tasks) != 1 || s.Tasks[0].ConnectedAgent == nil || s.Tasks[0].ConnectedAgent.DisplayName != "Ben Beispiel" || s.Counts.Connected != 1 ||
		len(s.Agents) != 1 || s.Agents[0].Phase != routing.PhaseConnected || s.Agents[0].TaskID != "c1" {
		t.Errorf("support's queue: %+v", s)
	}

	partner := a.is.token(t, partnerTID, "pa-1", nil, []string{groupPartner}, time.Hour)
	v, b := read("partner", partner, path)
	seesNone(t, "a partner", "queue", b, agentAnna, "Anna Muster", "anna@")
	if v.Tasks[1].OfferedTo[0].ID != access.Mask(agentAnna) || v.Agents[0].ID != access.Mask(agentAnna) || v.Agents[0].DisplayName != "A*** M*****" {
		t.Errorf("a partner's ids are not masked alike: %s", b)
	}
	_, b = read("partner", partner, "/api/tenants/"+tenantT+"/services/support/queue")
	seesNone(t, "a partner", "queue", b, agentBen, "Ben Beispiel")
	read("supervisor", a.is.token(t, tenantT, "su-1", nil, []string{groupSupervise}, time.Hour), path)

	for who, token := range map[string]string{
		"member":        a.is.token(t, tenantT, "me-1", nil, nil, time.Hour),
		"other partner": a.is.token(t, partnerTID, "pa-2", nil, []string{groupOther}, time.Hour),
		"team owner":    a.is.token(t, tenantT, ownerSales, nil, nil, time.Hour),
	} {
		if status, b, _ := a.c.do("GET", path, token, ""); status != http.StatusForbidden {
			t.Errorf("%s: %d %s, want 403", who, status, b)
		}
	}
	op := a.is.token(t, guestTID, "op-1", []string{"Platform.Operator"}, nil, time.Hour)
	if status, b, _ := a.c.do("GET", "/api/tenants/"+tenantT+"/services/nope/queue", op, ""); status != http.StatusNotFound {
		t.Errorf("an unknown service: %d %s", status, b)
	}
	if status, b, _ := a.c.do("GET", "/api/tenants/"+tenantT+"/services/Not%20an%20id/queue", op, ""); status != http.StatusBadRequest || !strings.Contains(b, `"field":"serviceId"`) {
		t.Errorf("a malformed service id: %d %s", status, b)
	}
}

// The live queue reads the tenant's agent names at most every namesTTL, and at once
// when a member it has no name for appears: a portal polling every few seconds does
// not read the whole tenant each time.
func TestTheLiveQueueReadsAgentNamesOnlyWhenStaleOrNew(t *testing.T) {
	s := inmem.New()
	ctx := context.Background()
	must(t, s.PutTenant(ctx, tenant.New(tenantT, "Contoso")))
	must(t, s.PutAgents(ctx, tenantT, []tenant.Agent{{TenantID: tenantT, ID: "a1", DisplayName: "Ann"}}))
	reads := 0
	c := &agentNames{list: func(ctx context.Context, id string) ([]tenant.Agent, error) {
		reads++
		return s.ListAgents(ctx, id)
	}}
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for i := range 5 { // five polls, 3 s apart
		names, err := c.get(ctx, tenantT, []string{"a1"}, now.Add(time.Duration(i)*3*time.Second))
		if err != nil || names["a1"].DisplayName != "Ann" {
			t.Fatalf("poll %d: %v %v", i, names, err)
		}
	}
	if reads != 1 {
		t.Fatalf("five polls within %v read the agents %d times, want 1", namesTTL, reads)
	}
	must(t, s.PutAgents(ctx, tenantT, []tenant.Agent{{TenantID: tenantT, ID: "a2", DisplayName: "Bob"}}))
	names, err := c.get(ctx, tenantT, []string{"a1", "a2"}, now.Add(13*time.Second))
	if err != nil || names["a2"].DisplayName != "Bob" || reads != 2 {
		t.Fatalf("a new member: names %v, %d reads (want 2), %v", names, reads, err)
	}
	// A member without a directory entry is read for once, not at every poll.
	for i := range 3 {
		names, err := c.get(ctx, tenantT, []string{"a1", "ghost"}, now.Add(time.Duration(14+i)*time.Second))
		if err != nil || names["ghost"] != (AgentRef{}) {
			t.Fatalf("a nameless member: %v %v", names, err)
		}
	}
	if reads != 3 {
		t.Fatalf("three polls with a nameless member: %d reads in all, want 3", reads)
	}
	if _, err := c.get(ctx, tenantT, []string{"a1"}, now.Add(14*time.Second+namesTTL)); err != nil || reads != 4 {
		t.Fatalf("after %v: %d reads, want 4 (%v)", namesTTL, reads, err)
	}
}

// The live queue on Table storage (Azurite), polled as the portal polls it: each poll
// reads the service's queue partition (roster, open tasks, service), whatever the
// size of the tenant; the tenant's agent names are read on the first poll only.
func TestTheLiveQueuesTableRequestsFollowTheService(t *testing.T) {
	a := newTableApp(t, 1)
	const members, others, waiting = 10, 300, 5
	all := make([]string, members+others)
	for i := range all {
		all[i] = fmt.Sprintf("a0000000-0000-4000-8000-%012d", i)
	}
	a.seedStorm(t, []string{"small"}, 0, 0)
	ctx := context.Background()
	must(t, a.store.PutService(ctx, routing.Service{TenantID: stormTenant, ID: "big", Type: routing.TeamsBased}))
	dir := make([]tenant.Agent, len(all))
	for i, id := range all {
		sv := "big"
		if i < members {
			sv = "small"
		}
		if _, err := a.store.UpdateAgentState(ctx, stormTenant, id, func(x *routing.AgentState) error { x.Services = []string{sv}; return nil }); err != nil {
			t.Fatal(err)
		}
		dir[i] = tenant.Agent{TenantID: stormTenant, ID: id, DisplayName: fmt.Sprintf("Agent %03d", i), Services: []string{sv}}
	}
	must(t, a.store.PutAgents(ctx, stormTenant, dir))
	e := routing.NewEngine(routing.Options{Store: a.store, Tenants: a.store, Presences: a.store, Sender: a.bus, Queue: "calls"})
	for i := range waiting {
		if _, err := e.IncomingCall(ctx, routing.IncomingCall{TenantID: stormTenant, ServiceID: "small", CallID: fmt.Sprintf("call-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	poll := func() int64 {
		before := a.requests()
		var v QueueView
		if status := getJSON(t, a.base+"/api/tenants/"+stormTenant+"/services/small/queue", &v); status != http.StatusOK ||
			v.Counts.Waiting != waiting || len(v.Agents) != members || v.Agents[0].DisplayName != "Agent 000" {
			t.Fatalf("the live queue: %d %+v", status, v.Counts)
		}
		return a.requests() - before
	}
	first := poll()
	var next []int64
	for range 5 {
		next = append(next, poll())
	}
	t.Logf("live queue of a service with %d agents and %d waiting calls, in a tenant of %d agents: table requests: first poll %d, each next poll %v",
		members, waiting, len(all), first, next)
	for _, n := range next {
		if n != next[0] || n > 2 {
			t.Errorf("polls after the first made %v table requests, want the same small number each (the queue partition only)", next)
			break
		}
	}
	if first <= next[0] {
		t.Errorf("the first poll made %d requests, the next %d: the first reads the agents' names too", first, next[0])
	}
}
