package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/teamscc/teamscc/shared/config"
	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/simulate"
)

type binding struct {
	Name      string   `json:"name"`
	Type      string   `json:"type"`
	Direction string   `json:"direction"`
	Schedule  string   `json:"schedule"`
	QueueName string   `json:"queueName"`
	Conn      string   `json:"connection"`
	Route     string   `json:"route"`
	Methods   []string `json:"methods"`
	AuthLevel string   `json:"authLevel"`
}

func readFunctionJSON(t *testing.T) map[string][]binding {
	t.Helper()
	dirs, err := filepath.Glob("../functions/*/function.json")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no functions/*/function.json: %v", err)
	}
	out := map[string][]binding{}
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var f struct{ Bindings []binding }
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[filepath.Base(filepath.Dir(p))] = f.Bindings
	}
	return out
}

// Every function folder has a route in routes.go and every route a folder, with the
// same trigger kind, method and path.
func TestEveryFunctionFolderHasARouteAndViceVersa(t *testing.T) {
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	s := inmem.New()
	app := newApp(cfg, deps{tenants: s, secrets: s, presences: s, parked: s, userStates: s, reader: simulate.NewReader(nil), admin: localAdmin(s)}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	folders := readFunctionJSON(t)
	kinds := map[string]string{"timerTrigger": "timer", "serviceBusTrigger": "serviceBus", "httpTrigger": "http"}
	registered := map[string]bool{}
	patterns := map[string]bool{}
	for _, f := range app.Functions() {
		registered[f.Name] = true
		patterns[f.Name+" "+f.Pattern] = true
		bs, ok := folders[f.Name]
		if !ok {
			t.Errorf("route %s has no functions/%s/function.json", f.Name, f.Name)
			continue
		}
		if kinds[bs[0].Type] != f.Kind {
			t.Errorf("%s: function.json trigger %s, route registered as %s", f.Name, bs[0].Type, f.Kind)
		}
	}
	// Every method of every HTTP function has its pattern, and no other pattern is
	// registered under that function.
	for name, bs := range folders {
		trigger := bs[0]
		if trigger.Type != "httpTrigger" {
			continue
		}
		if trigger.AuthLevel != "anonymous" {
			// The app authenticates every HTTP caller itself (TestEveryAdminRouteNeedsAToken);
			// a host function key on top would be a shared secret admin UIs must carry.
			t.Errorf("%s: authLevel %q; every HTTP function is anonymous at the host and checked by the app", name, trigger.AuthLevel)
		}
		if len(trigger.Methods) == 0 {
			t.Errorf("%s: function.json lists no methods", name)
		}
		for _, m := range trigger.Methods {
			// A catch-all {*rest} of the host's routes is {rest...} in a ServeMux pattern.
			want := name + " " + strings.ToUpper(m) + " /api/" + catchAll.ReplaceAllString(trigger.Route, "{$1...}")
			if !patterns[want] {
				t.Errorf("%s: function.json declares %s /api/%s but routes.go does not register it", name, strings.ToUpper(m), trigger.Route)
			}
			delete(patterns, want)
		}
	}
	for p := range patterns {
		if name := strings.Fields(p)[0]; len(folders[name]) > 0 && folders[name][0].Type == "httpTrigger" {
			t.Errorf("routes.go registers %q, which function.json does not declare", p)
		}
	}
	for name := range folders {
		if !registered[name] {
			t.Errorf("functions/%s has no route in routes.go", name)
		}
	}
}

// selfAuthenticating lists the HTTP functions that are not admin routes: they check
// their callers by other means (the widget key, Graph's clientState), or serve nothing
// but public files (the admin portal's page, which then calls the admin routes with a
// token). Every other HTTP function must refuse a caller without an admin token.
var selfAuthenticating = map[string]bool{"InteractSessions": true, "InteractSessionClose": true, "TeamsNotifications": true, "Portal": true,
	"OpenAPI": true} // OpenAPI: the API's description, public like the portal's files

var catchAll = regexp.MustCompile(`\{\*([A-Za-z0-9_]+)\}`)

var settingRef = regexp.MustCompile(`^%([A-Za-z0-9_]+)%$`)

// Queue names and schedules are %AppSetting% references, each declared in
// local.settings.json.example and read by config; and config's settings are all in the
// example, so a newcomer sees every knob.
func TestQueueNamesAndSchedulesAreSettingsDeclaredEverywhere(t *testing.T) {
	b, err := os.ReadFile("../local.settings.json.example")
	if err != nil {
		t.Fatal(err)
	}
	var example struct{ Values map[string]string }
	if err := json.Unmarshal(b, &example); err != nil {
		t.Fatalf("local.settings.json.example: %v", err)
	}
	known := map[string]bool{}
	for _, s := range config.Settings {
		known[s.Name] = true
		if _, ok := example.Values[s.Name]; !ok && s.Name != "FUNCTIONS_CUSTOMHANDLER_PORT" {
			t.Errorf("setting %s is read by config but missing from local.settings.json.example", s.Name)
		}
	}
	var refs []string
	for name, bs := range readFunctionJSON(t) {
		for _, bd := range bs {
			for field, v := range map[string]string{"schedule": bd.Schedule, "queueName": bd.QueueName} {
				if bd.Type == "timerTrigger" && field == "queueName" || bd.Type == "serviceBusTrigger" && field == "schedule" || bd.Type == "httpTrigger" || bd.Type == "http" {
					continue
				}
				m := settingRef.FindStringSubmatch(v)
				if m == nil {
					t.Errorf("functions/%s: %s %q must be an %%AppSetting%% reference", name, field, v)
					continue
				}
				refs = append(refs, m[1])
			}
			if bd.Type == "serviceBusTrigger" && !known[bd.Conn+"__fullyQualifiedNamespace"] {
				t.Errorf("functions/%s: connection %s has no %s__fullyQualifiedNamespace setting", name, bd.Conn, bd.Conn)
			}
		}
	}
	sort.Strings(refs)
	for _, r := range refs {
		if _, ok := example.Values[r]; !ok {
			t.Errorf("%%%s%% is not in local.settings.json.example", r)
		}
		if !known[r] {
			t.Errorf("%%%s%% is not a config setting (shared/config.Settings)", r)
		}
	}
	if len(refs) == 0 {
		t.Fatal("no setting references found: the test would prove nothing")
	}
}

// The README's configuration table names every setting with its default.
func TestReadmeDocumentsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, s := range config.Settings {
		row := "| `" + s.Name + "` | "
		if s.Default != "" {
			row += "`" + s.Default + "` |"
		}
		if !strings.Contains(readme, row) {
			t.Errorf("README configuration table has no row %q", row)
		}
	}
}
