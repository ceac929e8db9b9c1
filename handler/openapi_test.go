package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/teamscc/teamscc/shared/config"
	"github.com/teamscc/teamscc/shared/funchost"
	"github.com/teamscc/teamscc/shared/graph"
	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/simulate"
)

// registeredHTTP is every HTTP registration of the app: "METHOD /path" → function.
func registeredHTTP(t *testing.T) map[string]string {
	t.Helper()
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	s := inmem.New()
	app := newApp(cfg, deps{tenants: s, secrets: s, presences: s, parked: s, userStates: s, reader: simulate.NewReader(nil), admin: localAdmin(s)},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	out := map[string]string{}
	for _, f := range app.Functions() {
		if f.Kind == funchost.KindHTTP {
			out[f.Pattern] = f.Name
		}
	}
	return out
}

// loadDescription reads the served description with kin-openapi.
func loadDescription(t *testing.T, raw []byte) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatalf("the description does not load: %v", err)
	}
	return doc
}

// Every HTTP route registered in routes.go is in the description with its method, and
// nothing else is: a route added without its description, or a description left
// behind by a removed route, fails here. The two routes left out say why.
func TestTheOpenAPIDescriptionCoversEveryRoute(t *testing.T) {
	registered := registeredHTTP(t)
	var missing, extra []string
	documented := map[string]bool{}
	for _, op := range apiOps {
		key := op.method + " " + op.path
		documented[key] = true
		fn, ok := registered[key]
		switch {
		case !ok:
			extra = append(extra, key+" (no such route in routes.go)")
		case fn != op.fn:
			t.Errorf("%s is registered as function %s, documented as %s", key, fn, op.fn)
		}
	}
	excludedSeen := map[string]bool{}
	for pattern, fn := range registered {
		if why, ok := undocumentedRoutes[fn]; ok {
			excludedSeen[fn] = true
			if why == "" {
				t.Errorf("%s is left out without a reason", fn)
			}
			continue
		}
		if !documented[pattern] {
			missing = append(missing, pattern+" ("+fn+")")
		}
	}
	for fn := range undocumentedRoutes {
		if !excludedSeen[fn] {
			t.Errorf("undocumentedRoutes names %s, which registers no HTTP route", fn)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	for _, m := range missing {
		t.Errorf("route not in the OpenAPI description: %s", m)
	}
	for _, e := range extra {
		t.Errorf("documented but not registered: %s", e)
	}

	// The same holds for the document as served: every path and method of it.
	doc := loadDescription(t, mustJSON(t, apiDescription()))
	served := 0
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			served++
			if _, ok := registered[method+" "+path]; !ok {
				t.Errorf("the served description has %s %s, which is not registered", method, path)
			}
		}
	}
	if served != len(apiOps) || served < 40 {
		t.Fatalf("the served description has %d operations, apiOps %d", served, len(apiOps))
	}
}

// The description is a valid OpenAPI 3 document, its examples agree with their
// schemas, and every operation says how it authenticates and how it fails.
func TestTheOpenAPIDescriptionValidatesWithItsExamples(t *testing.T) {
	a := newCallsApp(t, graph.CallingOptions{})
	res, err := http.Get(a.base + "/api/openapi.json") // no token: the description is public
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/openapi.json: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	doc := loadDescription(t, raw)
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation(), openapi3.EnableSchemaPatternValidation()); err != nil {
		t.Fatalf("the description is not valid OpenAPI 3: %v", err)
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != a.base {
		t.Errorf("servers = %+v, want this deployment's %s", doc.Servers, a.base)
	}
	schemes := doc.Components.SecuritySchemes
	if s := schemes["entraToken"]; s == nil || s.Value.Type != "http" || s.Value.Scheme != "bearer" {
		t.Errorf("no Entra bearer scheme: %+v", s)
	}
	if s := schemes["widgetKey"]; s == nil || s.Value.Type != "apiKey" || s.Value.In != "header" || s.Value.Name != "X-Widget-Key" {
		t.Errorf("no widget key header scheme: %+v", s)
	}
	// The error shape names the field and the rule.
	e := doc.Components.Schemas["Error"].Value.Properties["error"].Value
	for _, p := range []string{"code", "message", "field", "rule"} {
		if e.Properties[p] == nil {
			t.Errorf("the Error schema has no %s", p)
		}
	}
	examples := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			widget := strings.HasPrefix(path, "/api/interact/")
			switch {
			case method == "OPTIONS" || path == "/api/openapi.json":
				if op.Security == nil || len(*op.Security) != 0 {
					t.Errorf("%s: should need no credential", name)
				}
				continue
			case widget:
				if op.Security == nil || len(*op.Security) == 0 || (*op.Security)[0]["widgetKey"] == nil {
					t.Errorf("%s: the widget's routes take the widget key", name)
				}
			default:
				if op.Security != nil {
					t.Errorf("%s: an admin route takes the document's Entra token, not %+v", name, *op.Security)
				}
			}
			for _, st := range []int{400, 401, 403} {
				r := op.Responses.Status(st)
				if r == nil {
					t.Errorf("%s: no %d answer", name, st)
					continue
				}
				if mt := r.Value.Content.Get("application/json"); mt == nil || mt.Schema.Ref != "#/components/schemas/Error" {
					t.Errorf("%s: the %d answer is not the Error shape", name, st)
				}
			}
			if op.RequestBody != nil {
				for _, mt := range op.RequestBody.Value.Content {
					if mt.Example != nil {
						examples++
					}
				}
			}
			for _, r := range op.Responses.Map() {
				for _, mt := range r.Value.Content {
					if mt.Example != nil {
						examples++
					}
				}
			}
		}
	}
	if examples < 10 {
		t.Fatalf("only %d examples: the validation above proves little", examples)
	}

	// A wrong example is caught: the check above is not vacuous.
	broken := loadDescription(t, raw)
	op := broken.Paths.Find("/api/tenants/{tenantId}/services/{serviceId}/outbound").Post
	op.RequestBody.Value.Content.Get("application/json").Example = map[string]any{"taskId": 7, "customer": "+41445551234", "due": "soon"}
	if err := broken.Validate(context.Background(), openapi3.EnableExamplesValidation()); err == nil {
		t.Fatal("an example with a number for taskId passed validation")
	}
}

// The description matches what the app really answers: requests of the main flows are
// checked against it (parameters and bodies), and so are the answers (status, headers,
// body), errors included.
func TestTheOpenAPIDescriptionMatchesRealAnswers(t *testing.T) {
	a := newCallsApp(t, graph.CallingOptions{})
	a.trackUserStates(t, true)
	res, err := http.Get(a.base + "/api/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	doc := loadDescription(t, raw)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	T := "/api/tenants/" + simulate.ContosoID
	due := a.clk.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	steps := []struct {
		method, path, body string
		headers            []string
		want               int
	}{
		{"GET", "/api/tenants", "", nil, 200},
		{"GET", T, "", nil, 200},
		{"GET", T + "/services", "", nil, 200},
		{"GET", T + "/services/sales", "", nil, 200},
		{"GET", T + "/services/nope", "", nil, 404},
		{"GET", T + "/agents", "", nil, 200},
		{"GET", T + "/presence", "", nil, 200},
		{"GET", T + "/presence/health", "", nil, 200},
		{"GET", T + "/interact", "", nil, 200},
		{"GET", T + "/audit?limit=5", "", nil, 200},
		{"POST", T + "/services/sales/outbound", `{"taskId":"t-1","customer":"+41445551234","due":"` + due + `","priority":"High","params":{"k":"v"}}`, nil, 201},
		{"POST", T + "/services/sales/outbound", `{"taskId":"t-1","customer":"+41445551234","due":"` + due + `","priority":"High","params":{"k":"v"}}`, nil, 200},
		{"POST", T + "/services/sales/outbound", `{"taskId":"t-2","customer":"+41445551234","due":"tomorrow"}`, nil, 400},
		{"GET", T + "/services/sales/outbound", "", nil, 200},
		{"DELETE", T + "/services/sales/outbound/t-1", "", nil, 200},
		{"GET", T + "/reports", "", nil, 200},
		{"GET", T + "/reports/user-states?$top=3&$select=agentId,kind,start", "", nil, 200},
		{"GET", T + "/reports/user-states", "", []string{"Prefer", "odata.maxpagesize=2"}, 200},
		{"GET", T + "/reports/user-states?$skip=2", "", nil, 501},
		{"PATCH", T, `{"name":"Contoso Ltd"}`, nil, 428},
	}
	checked := 0
	for _, s := range steps {
		req, _ := http.NewRequest(s.method, a.base+s.path, strings.NewReader(s.body))
		if s.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(s.headers); i += 2 {
			req.Header.Set(s.headers[i], s.headers[i+1])
		}
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Errorf("%s %s: not in the description: %v", s.method, s.path, err)
			continue
		}
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		// Only requests the app accepts must satisfy the description; a refused one is
		// the point of its step.
		if s.want < 400 {
			if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
				t.Errorf("%s %s: the request does not match the description: %v", s.method, s.path, err)
			}
		}
		if s.body != "" {
			req.Body = io.NopCloser(strings.NewReader(s.body))
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != s.want {
			t.Errorf("%s %s: %d %s, want %d", s.method, s.path, res.StatusCode, body, s.want)
			continue
		}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: res.StatusCode, Header: res.Header,
			Body: io.NopCloser(bytes.NewReader(body)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			t.Errorf("%s %s: the %d answer does not match the description: %v\n%s", s.method, s.path, res.StatusCode, err, body)
		}
		checked++
	}
	if checked != len(steps) {
		t.Fatalf("checked %d of %d answers", checked, len(steps))
	}
}

// mustJSON encodes v.
func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
