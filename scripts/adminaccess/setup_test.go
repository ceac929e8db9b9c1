package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeGraph holds one application, its service principal (once created) and its role
// assignments, and records the writes.
type fakeGraph struct {
	mu          sync.Mutex
	app         map[string]any
	sp          string
	assignments []map[string]any
	writes      []string
}

const (
	testClientID = "c11e0000-0000-4000-8000-00000000c11e"
	testAppObj   = "a990b000-0000-4000-8000-00000000a990"
	testUser     = "05e40000-0000-4000-8000-0000000005e4"
)

func newFakeGraph(t *testing.T, app string) (*fakeGraph, *graph) {
	t.Helper()
	f := &fakeGraph{}
	if err := json.Unmarshal([]byte(app), &f.app); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	return f, &graph{base: srv.URL, token: "t0ken", http: srv.Client()}
}

func (f *fakeGraph) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer t0ken" {
		http.Error(w, `{"error":{"code":"InvalidAuthenticationToken"}}`, http.StatusUnauthorized)
		return
	}
	body := map[string]any{}
	if b, _ := io.ReadAll(r.Body); len(b) > 0 {
		_ = json.Unmarshal(b, &body)
	}
	path := r.URL.Path
	if r.Method != http.MethodGet {
		f.writes = append(f.writes, r.Method+" "+path)
	}
	answer := func(v any) { _ = json.NewEncoder(w).Encode(v) }
	switch {
	case r.Method == http.MethodGet && path == "/applications(appId='"+testClientID+"')":
		answer(f.app)
	case r.Method == http.MethodPatch && path == "/applications/"+testAppObj:
		if uris, ok := body["identifierUris"].([]any); ok {
			for _, u := range uris {
				// The tenant's verified domains: contoso.com and contoso.example.
				if s, _ := u.(string); strings.HasPrefix(s, "https://") && !strings.HasPrefix(s, "https://contact.contoso.com") && !strings.HasPrefix(s, "https://contoso.example") {
					http.Error(w, `{"error":{"code":"HostNameNotOnVerifiedDomain","message":"Values of identifierUris property must use a verified domain of the organization or its subdomain"}}`, http.StatusBadRequest)
					return
				}
			}
		}
		for k, v := range body {
			if k == "api" { // a patch of api merges its properties
				api, _ := f.app["api"].(map[string]any)
				if api == nil {
					api = map[string]any{}
				}
				for ak, av := range v.(map[string]any) {
					api[ak] = av
				}
				f.app["api"] = api
				continue
			}
			f.app[k] = v
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet && path == "/servicePrincipals(appId='"+testClientID+"')":
		if f.sp == "" {
			http.Error(w, `{"error":{"code":"Request_ResourceNotFound"}}`, http.StatusNotFound)
			return
		}
		answer(map[string]any{"id": f.sp})
	case r.Method == http.MethodPost && path == "/servicePrincipals":
		f.sp = "5b000000-0000-4000-8000-0000000005b0"
		answer(map[string]any{"id": f.sp})
	case r.Method == http.MethodGet && path == "/me":
		answer(map[string]any{"id": testUser})
	case path == "/servicePrincipals/"+f.sp+"/appRoleAssignedTo" && r.Method == http.MethodGet:
		answer(map[string]any{"value": f.assignments})
	case path == "/servicePrincipals/"+f.sp+"/appRoleAssignedTo" && r.Method == http.MethodPost:
		f.assignments = append(f.assignments, body)
		answer(body)
	default:
		http.Error(w, `{"error":{"code":"NotSupportedByTheFake"}}`, http.StatusBadRequest)
	}
}

// A registration with something of its own: it gets the URI, scope, role,
// pre-authorisation and operator assignment; what it had stays; a second run writes
// nothing.
func TestSetupAddsWhatTheAdminAPINeedsAndKeepsTheRest(t *testing.T) {
	f, g := newFakeGraph(t, `{"id":"`+testAppObj+`","appId":"`+testClientID+`","identifierUris":["https://contoso.example/cc"],
		"appRoles":[{"id":"11111111-0000-4000-8000-000000000001","value":"Reports.Reader","allowedMemberTypes":["User"],"isEnabled":true}],
		"api":{"oauth2PermissionScopes":[{"id":"22222222-0000-4000-8000-000000000002","value":"user_impersonation","type":"User","isEnabled":true}],
		"preAuthorizedApplications":[{"appId":"33333333-0000-4000-8000-000000000003","delegatedPermissionIds":["22222222-0000-4000-8000-000000000002"]}]},
		"spa":{"redirectUris":["https://localhost:5173/"]}}`)
	const portal = "https://func-cc.azurewebsites.net/api/portal/"
	opts := Options{Assign: true, PortalRedirect: portal}
	res, err := Setup(context.Background(), g, testClientID, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.IdentifierURI || !res.Scope || !res.Role || !res.PreAuthorized || !res.PortalRedirect || !res.ServicePrinc || !res.OperatorAssign {
		t.Fatalf("first run: %+v", res)
	}
	app, _ := json.Marshal(f.app)
	for _, want := range []string{`"https://contoso.example/cc"`, `"api://` + testClientID + `"`, `"Reports.Reader"`, `"` + RoleValue + `"`,
		`"user_impersonation"`, `"` + ScopeValue + `"`, `"33333333-0000-4000-8000-000000000003"`, `"appId":"` + AzureCLIAppID + `","delegatedPermissionIds":["` + scopeID + `"]`,
		`"spa":{"redirectUris":["https://localhost:5173/","` + portal + `"]}`} {
		if !strings.Contains(string(app), want) {
			t.Errorf("the registration lacks %s: %s", want, app)
		}
	}
	if len(f.assignments) != 1 || f.assignments[0]["principalId"] != testUser || f.assignments[0]["appRoleId"] != roleID {
		t.Fatalf("assignments: %+v", f.assignments)
	}
	writes := len(f.writes)
	again, err := Setup(context.Background(), g, testClientID, opts)
	if err != nil {
		t.Fatal(err)
	}
	if again != (Result{AppIDURI: res.AppIDURI}) || len(f.writes) != writes {
		t.Fatalf("second run changed %+v, wrote %v", again, f.writes[writes:])
	}
}

// Without the right to read the registration, Setup fails saying so, and writes
// nothing.
func TestSetupNamesWhatGraphRefused(t *testing.T) {
	f, g := newFakeGraph(t, `{}`)
	g.token = "expired"
	_, err := Setup(context.Background(), g, testClientID, Options{Assign: true})
	if err == nil || !strings.Contains(err.Error(), "read the app registration") || !strings.Contains(err.Error(), "401") ||
		strings.Contains(err.Error(), "expired") || len(f.writes) != 0 {
		t.Fatalf("err %v, writes %v", err, f.writes)
	}
}

// With a reports URL, the registration also gets what Power BI needs: the URL as an
// Application ID URI, the user_impersonation scope, and Power Query's clients
// pre-authorised for it; a second run writes nothing.
func TestSetupPreparesPowerBI(t *testing.T) {
	f, g := newFakeGraph(t, `{"id":"`+testAppObj+`","appId":"`+testClientID+`"}`)
	opts := Options{ReportsURI: "https://contact.contoso.com"}
	res, err := Setup(context.Background(), g, testClientID, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Reports || !res.Scope || !res.PreAuthorized {
		t.Fatalf("first run: %+v", res)
	}
	app, _ := json.Marshal(f.app)
	for _, want := range []string{`"identifierUris":["api://` + testClientID + `","https://contact.contoso.com"]`,
		`"value":"` + ScopeValue + `"`, `"value":"` + ReportsScopeValue + `"`,
		`{"appId":"` + PowerQueryClients[0] + `","delegatedPermissionIds":["` + reportsScopeID + `"]}`,
		`{"appId":"` + PowerQueryClients[1] + `","delegatedPermissionIds":["` + reportsScopeID + `"]}`,
		`{"appId":"` + AzureCLIAppID + `","delegatedPermissionIds":["` + scopeID + `"]}`} {
		if !strings.Contains(string(app), want) {
			t.Errorf("the registration lacks %s: %s", want, app)
		}
	}
	writes := len(f.writes)
	if again, err := Setup(context.Background(), g, testClientID, opts); err != nil || again != (Result{AppIDURI: res.AppIDURI}) || len(f.writes) != writes {
		t.Fatalf("second run: %+v %v, wrote %v", again, err, f.writes[writes:])
	}
}

// A reports URL on a domain Entra does not accept fails naming the cause, after the
// admin API's settings are in place.
func TestSetupSaysWhyTheReportsURIWasRefused(t *testing.T) {
	f, g := newFakeGraph(t, `{"id":"`+testAppObj+`","appId":"`+testClientID+`"}`)
	_, err := Setup(context.Background(), g, testClientID, Options{ReportsURI: "https://reports.fabrikam.example"})
	if err == nil || !strings.Contains(err.Error(), "verified") || !strings.Contains(err.Error(), "HostNameNotOnVerifiedDomain") {
		t.Fatalf("err %v", err)
	}
	app, _ := json.Marshal(f.app)
	if !strings.Contains(string(app), `"api://`+testClientID+`"`) || !strings.Contains(string(app), `"value":"`+ScopeValue+`"`) {
		t.Errorf("the admin API's settings are missing after the refusal: %s", app)
	}
}

func TestReportsURLAndAudiences(t *testing.T) {
	for raw, want := range map[string]string{"https://contact.contoso.com": "https://contact.contoso.com", "https://contact.contoso.com/": "https://contact.contoso.com",
		"http://contact.contoso.com": "", "https://contact.contoso.com/api": "", "https://func-cc.azurewebsites.net": "", "contact.contoso.com": ""} {
		got, err := reportsURI(raw)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("reportsURI(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
	const id, uri, rep = "c11e", "api://c11e", "https://contact.contoso.com"
	for _, c := range []struct{ have, reports, want string }{
		{"", "", uri + "," + id},
		{"", rep, uri + "," + id + "," + rep},
		{"api://x", "", "api://x," + id},
		{"api://x", rep, "api://x," + id + "," + rep},
		{"api://x, " + rep + " ," + id, rep, "api://x, " + rep + " ," + id},
	} {
		if got := audiences(c.have, uri, id, c.reports); got != c.want {
			t.Errorf("audiences(%q, reports %q) = %q, want %q", c.have, c.reports, got, c.want)
		}
	}
}
