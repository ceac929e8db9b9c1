package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/config"
	"github.com/teamscc/teamscc/shared/directory"
	"github.com/teamscc/teamscc/shared/graph"
	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/simulate"
)

// directoryApp is the app on an empty embedded store (no simulated tenants) with
// Graph played by the fake: the people come from the fake's directory only.
type directoryApp struct {
	base  string
	store *inmem.Store
	fake  *graph.Fake
}

const (
	dirTenant = "d1d1d1d1-0000-4000-8000-00000000d1d1"
	salesTeam = "5a1e5a1e-0000-4000-8000-000000005a1e"
)

func user(i int) directory.User {
	return directory.User{ID: fmt.Sprintf("a0000000-0000-4000-8000-%012d", i), UPN: fmt.Sprintf("user%d@contoso.example", i),
		DisplayName: fmt.Sprintf("User %d", i)}
}

func newDirectoryApp(t *testing.T) *directoryApp {
	t.Helper()
	s := inmem.New()
	f := graph.NewFake()
	t.Cleanup(f.Close)
	r, err := graph.New(f.Options("dir-app"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(envFrom(nil))
	if err != nil {
		t.Fatal(err)
	}
	app := newApp(cfg, deps{tenants: s, secrets: s, presences: s, parked: s, userStates: s, interact: s, routes: s,
		sender: &busQueue{clk: &clock{t: time.Now()}, seen: map[string]time.Time{}}, audit: s, calls: s, dirSyncs: s, dirGraph: r,
		admin: localAdmin(s), reader: simulate.NewReader(nil), now: time.Now}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	a := &directoryApp{base: srv.URL, store: s, fake: f}
	if status, b := a.do(t, "POST", "/api/tenants", `{"id":"`+dirTenant+`","name":"Contoso"}`); status != http.StatusCreated {
		t.Fatalf("create tenant: %d %s", status, b)
	}
	return a
}

func (a *directoryApp) do(t *testing.T, method, path, body string, headers ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, a.base+path, strings.NewReader(body))
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

// agents returns the tenant's agents as the API lists them: id → services and duty.
func (a *directoryApp) agents(t *testing.T) map[string]agentView {
	t.Helper()
	status, b := a.do(t, "GET", "/api/tenants/"+dirTenant+"/agents", "")
	if status != http.StatusOK {
		t.Fatalf("agents: %d %s", status, b)
	}
	var v struct{ Agents []agentView }
	if err := json.Unmarshal([]byte(b), &v); err != nil {
		t.Fatal(err)
	}
	out := map[string]agentView{}
	for _, x := range v.Agents {
		out[x.ID] = x
	}
	return out
}

// With nothing but the directory: a Teams-based service following a Team gets its
// members as agents when it is created and its owners as team owners; members added and removed in the
// Team follow after the next sync (only the changes are read); a skill-based service
// adds a directory user by UPN, and an unknown user is a 400 naming the field.
func TestAgentsComeFromTheDirectory(t *testing.T) {
	a := newDirectoryApp(t)
	T := "/api/tenants/" + dirTenant
	for i := 1; i <= 12; i++ {
		a.fake.AddUser(user(i))
	}
	a.fake.AddGroup(directory.Group{ID: salesTeam, DisplayName: "Sales"})
	a.fake.AddMembers(salesTeam, user(1).ID, user(2).ID, user(3).ID, user(4).ID, user(5).ID)
	a.fake.AddOwners(salesTeam, user(1).ID)
	// Creating the service syncs its Team before answering.
	status, b := a.do(t, "POST", T+"/services", `{"id":"sales","name":"Sales","type":"TeamsBased","team":"`+salesTeam+`"}`)
	var created serviceAnswer
	_ = json.Unmarshal([]byte(b), &created)
	if status != http.StatusCreated || created.Sync == nil || !created.Sync.Full || created.Sync.Added != 5 || created.Sync.OwnersAdded != 1 ||
		!slices.Equal(created.Owners, []string{user(1).ID}) {
		t.Fatalf("create service: %d %s", status, b)
	}
	// Its ETag is the version after the sync wrote the owners: a patch with it works.
	if status, b := a.do(t, "PATCH", T+"/services/sales", `{"name":"Sales DE"}`, "If-Match", fmt.Sprintf("%q", fmt.Sprint(created.Version))); status != http.StatusOK {
		t.Fatalf("patch with the created ETag: %d %s", status, b)
	}
	// A Team the directory does not know: the service is created, with a warning.
	status, b = a.do(t, "POST", T+"/services", `{"id":"ghost","name":"Ghost","type":"TeamsBased","team":"00000000-0000-4000-8000-00000000cafe"}`)
	if status != http.StatusCreated || !strings.Contains(b, `"warnings":["team: members not synced yet (the Team was not found`) {
		t.Fatalf("create with an unknown Team: %d %s", status, b)
	}
	status, b = a.do(t, "POST", T+"/services/sales/members/sync", "")
	var res directory.SyncResult
	_ = json.Unmarshal([]byte(b), &res)
	if status != http.StatusOK || res.Full || res.Added != 0 || res.Members != 5 {
		t.Fatalf("sync on demand after the create: %d %s", status, b)
	}
	got := a.agents(t)
	if len(got) != 5 || got[user(3).ID].UPN != user(3).UPN || !slices.Equal(got[user(3).ID].Services, []string{"sales"}) {
		t.Fatalf("agents after the first sync: %+v", got)
	}
	st, err := a.store.GetAgentState(context.Background(), dirTenant, user(3).ID)
	if err != nil || !slices.Equal(st.Services, []string{"sales"}) {
		t.Fatalf("routing membership: %+v %v", st, err)
	}
	_, b = a.do(t, "GET", T+"/services/sales", "")
	if !strings.Contains(b, user(1).ID) {
		t.Fatalf("the Team's owner is not the service's owner: %s", b)
	}

	// Changes in the Team follow at the next (timer) sync; only the delta is read.
	a.fake.RemoveMembers(salesTeam, user(2).ID)
	a.fake.AddMembers(salesTeam, user(6).ID)
	a.fake.AddOwners(salesTeam, user(6).ID)
	before := a.fake.DirectoryRequests()
	if status, b := a.do(t, "POST", "/DirectorySync", `{"Data":{"timer":{"IsPastDue":false}},"Metadata":{}}`); status != http.StatusOK {
		t.Fatalf("DirectorySync: %d %s", status, b)
	}
	if n := a.fake.DirectoryRequests() - before; n > 3 {
		t.Errorf("a sync of two changes read %d pages/requests; want ≤ 3 (delta + the new member)", n)
	}
	got = a.agents(t)
	if !slices.Equal(got[user(6).ID].Services, []string{"sales"}) || len(got[user(2).ID].Services) != 0 {
		t.Fatalf("after the Team changed: 6 %+v, 2 %+v", got[user(6).ID], got[user(2).ID])
	}
	if _, ok := got[user(2).ID]; !ok {
		t.Fatal("a member who left lost their agent entry (and history)")
	}
	if st, _ := a.store.GetAgentState(context.Background(), dirTenant, user(2).ID); slices.Contains(st.Services, "sales") {
		t.Fatalf("a member who left still gets the service's calls: %+v", st)
	}
	_, b = a.do(t, "GET", T+"/services/sales", "")
	if !strings.Contains(b, user(6).ID) {
		t.Fatalf("a new Team owner is not a service owner: %s", b)
	}

	// Skill-based: a directory user by UPN; an unknown user is refused by field.
	if status, b := a.do(t, "POST", T+"/services", `{"id":"support","name":"Support","type":"SkillBased"}`); status != http.StatusCreated {
		t.Fatalf("create support: %d %s", status, b)
	}
	if status, b := a.do(t, "POST", T+"/services/support/agents", `{"user":"`+user(9).UPN+`"}`); status != http.StatusOK || !strings.Contains(b, user(9).ID) {
		t.Fatalf("add by UPN: %d %s", status, b)
	}
	if st, _ := a.store.GetAgentState(context.Background(), dirTenant, user(9).ID); !slices.Equal(st.Duty.Services, []string{"support"}) {
		t.Fatalf("the added user is not on duty for support: %+v", st)
	}
	// A UPN with an apostrophe is a UPN like any other.
	oneil := directory.User{ID: "0e11a000-0000-4000-8000-0000000000e1", UPN: "jane.o'neil@" + "contoso.example", DisplayName: "Jane O'Neil"}
	a.fake.AddUser(oneil)
	if status, b := a.do(t, "POST", T+"/services/support/agents", `{"user":"jane.o'neil@contoso.example"}`); status != http.StatusOK || !strings.Contains(b, oneil.ID) {
		t.Fatalf("add a UPN with an apostrophe: %d %s", status, b)
	}
	for body, field := range map[string]string{
		`{"user":"nobody@contoso.example"}`:    "user",
		`{"user":""}`:                          "user",
		`{"user":"no spaces@contoso.example"}`: "user",
		`{"upn":"x"}`:                          "upn",
	} {
		status, b := a.do(t, "POST", T+"/services/support/agents", body)
		if status != http.StatusBadRequest || !strings.Contains(b, `"field":"`+field+`"`) {
			t.Errorf("%s: %d %s; want 400 naming %s", body, status, b, field)
		}
	}
	if status, b := a.do(t, "POST", T+"/services/sales/agents", `{"user":"`+user(9).UPN+`"}`); status != http.StatusBadRequest || !strings.Contains(b, `"field":"type"`) {
		t.Errorf("adding to a Teams-based service: %d %s", status, b)
	}
	if status, _ := a.do(t, "DELETE", T+"/services/support/agents/"+user(9).ID, ""); status != http.StatusNoContent {
		t.Fatalf("remove: %d", status)
	}
	if st, _ := a.store.GetAgentState(context.Background(), dirTenant, user(9).ID); len(st.Duty.Services) != 0 {
		t.Fatalf("removed agent still on duty: %+v", st)
	}

	// Directory search and a group's members, paged.
	status, b = a.do(t, "GET", T+"/directory/users?search=User%201&$top=2", "")
	var page struct {
		Value    []userView
		NextLink string `json:"@odata.nextLink"`
	}
	_ = json.Unmarshal([]byte(b), &page)
	if status != http.StatusOK || len(page.Value) != 2 || page.NextLink == "" {
		t.Fatalf("search: %d %s", status, b)
	}
	status, b = a.do(t, "GET", page.NextLink, "")
	if status != http.StatusOK || !strings.Contains(b, "User 1") {
		t.Fatalf("search next page: %d %s", status, b)
	}
	if status, b := a.do(t, "GET", T+"/directory/users?search=%22x", ""); status != http.StatusBadRequest || !strings.Contains(b, `"field":"search"`) {
		t.Errorf("bad search: %d %s", status, b)
	}
	status, b = a.do(t, "GET", T+"/groups/"+salesTeam, "")
	if status != http.StatusOK || !strings.Contains(b, `"displayName":"Sales"`) || !strings.Contains(b, user(6).UPN) || strings.Contains(b, user(2).UPN) {
		t.Fatalf("group: %d %s", status, b)
	}
	if status, _ := a.do(t, "GET", T+"/groups/00000000-0000-4000-8000-000000000000", ""); status != http.StatusNotFound {
		t.Errorf("unknown group: %d", status)
	}
}

// Admin groups are checked against the tenant's directory: an unknown group is a 400
// naming the field and changes nothing.
func TestAdminGroupsMustExistInTheDirectory(t *testing.T) {
	a := newDirectoryApp(t)
	a.fake.AddGroup(directory.Group{ID: salesTeam, DisplayName: "CC Admins"})
	T := "/api/tenants/" + dirTenant
	etag := func() string {
		req, _ := http.NewRequest("GET", a.base+T, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.Header.Get("ETag")
	}
	e := etag()
	status, b := a.do(t, "PATCH", T, `{"security":{"supervisorGroup":"00000000-0000-4000-8000-000000000000"}}`, "If-Match", e)
	if status != http.StatusBadRequest || !strings.Contains(b, `"field":"security.supervisorGroup"`) || etag() != e {
		t.Fatalf("unknown group: %d %s", status, b)
	}
	if status, b := a.do(t, "PATCH", T, `{"security":{"tenantAdminGroup":"`+salesTeam+`"}}`, "If-Match", e); status != http.StatusOK {
		t.Fatalf("existing group: %d %s", status, b)
	}
}
