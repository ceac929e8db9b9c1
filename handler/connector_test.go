package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
)

// The Power Automate custom connector (connector/) is generated from the OpenAPI
// description: its outbound operations, converted to the Swagger 2.0 Power Automate
// imports, with Entra ID (Azure AD) OAuth 2.0. Regenerate it after the outbound API
// changes with
//
//	go test ./handler -run TestThePowerAutomateConnectorIsUpToDate -update
var update = flag.Bool("update", false, "rewrite the generated files (connector/) instead of comparing them")

// connectorOps are the operations the connector offers, as operationIds.
var connectorOps = []string{"scheduleOutboundTask", "listOutboundTasks", "cancelOutboundTask"}

// actionNames are their names in the flow designer.
var actionNames = map[string]string{"scheduleOutboundTask": "Schedule an outbound call",
	"listOutboundTasks": "List a service's scheduled outbound calls", "cancelOutboundTask": "Cancel a scheduled outbound call"}

// connectorHost stands for the function app's host name; the import steps replace it.
const connectorHost = "your-function-app.azurewebsites.net"

// connectorFiles generates the connector: apiDefinition.swagger.json and apiProperties.json.
func connectorFiles(t *testing.T) map[string][]byte {
	t.Helper()
	doc3 := loadDescription(t, mustJSON(t, connectorSubset(t, apiDescription())))
	doc3.Servers = openapi3.Servers{{URL: "https://" + connectorHost}}
	doc2, err := openapi2conv.FromV3(doc3)
	if err != nil {
		t.Fatalf("convert to Swagger 2.0: %v", err)
	}
	raw, err := json.Marshal(doc2)
	if err != nil {
		t.Fatal(err)
	}
	var def map[string]any
	if err := json.Unmarshal(raw, &def); err != nil {
		t.Fatal(err)
	}
	// What Power Automate needs beyond the conversion: its connection's OAuth 2.0
	// (the flow it names accessCode, against Entra's v1 endpoint, as its Azure AD
	// identity provider does), a title it accepts (at most 30 characters), and
	// labels for the parameters its designer shows.
	def["info"] = map[string]any{"title": "teamscc outbound", "version": "1.0.0",
		"description": "Schedule, list and cancel outbound calls of a teamscc contact-center service: " +
			"each task rings an available agent at its due time and calls the customer once the agent accepts.",
		"contact": map[string]any{"name": "teamscc", "url": "https://github.com/teamscc/teamscc"}}
	def["securityDefinitions"] = map[string]any{"oauth2-auth": map[string]any{"type": "oauth2", "flow": "accessCode",
		"authorizationUrl": "https://login.microsoftonline.com/common/oauth2/authorize",
		"tokenUrl":         "https://login.microsoftonline.com/common/oauth2/token", "scopes": map[string]any{}}}
	def["security"] = []any{map[string]any{"oauth2-auth": []any{}}}
	def["x-ms-connector-metadata"] = []any{
		map[string]any{"propertyName": "Website", "propertyValue": "https://github.com/teamscc/teamscc"},
		map[string]any{"propertyName": "Privacy policy", "propertyValue": "https://github.com/teamscc/teamscc"},
		map[string]any{"propertyName": "Categories", "propertyValue": "Communication;IT Operations"},
	}
	delete(def, "tags")
	summaries := map[string]string{"tenantId": "Tenant ID", "serviceId": "Service ID", "taskId": "Task ID", "body": "Task"}
	for _, item := range def["paths"].(map[string]any) {
		for _, o := range item.(map[string]any) {
			op := o.(map[string]any)
			delete(op, "tags")
			// The designer shows the summary as the action's name: short, no sentence.
			if _, ok := op["description"]; !ok {
				op["description"] = op["summary"]
			}
			op["summary"] = actionNames[op["operationId"].(string)]
			for _, p := range op["parameters"].([]any) {
				p := p.(map[string]any)
				if s, ok := summaries[p["name"].(string)]; ok {
					p["x-ms-summary"] = s
				}
				if p["in"] == "body" {
					// The path names the tenant and service; the body's copies are for
					// Service Bus messages only.
					props := p["schema"].(map[string]any)["properties"].(map[string]any)
					delete(props, "tenantId")
					delete(props, "serviceId")
				}
			}
		}
	}
	labelProperties(def["definitions"])
	for _, op := range def["paths"].(map[string]any) {
		for _, o := range op.(map[string]any) {
			for _, p := range o.(map[string]any)["parameters"].([]any) {
				labelProperties(p.(map[string]any)["schema"])
			}
		}
	}
	apiDef, err := json.MarshalIndent(def, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	props := map[string]any{"properties": map[string]any{
		"connectionParameters": map[string]any{"token": map[string]any{"type": "oauthSetting", "oAuthSettings": map[string]any{
			"identityProvider": "aad",
			"clientId":         "<client id of the connector's app registration>",
			"scopes":           []any{},
			"redirectMode":     "GlobalPerConnector",
			"redirectUrl":      "https://global.consent.azure-apim.net/redirect",
			"properties":       map[string]any{"IsFirstParty": "False", "AzureActiveDirectoryResourceId": "api://<GRAPH_CLIENT_ID>", "IsOnbehalfofLoginSupported": false},
			"customParameters": map[string]any{
				"loginUri":              map[string]any{"value": "https://login.microsoftonline.com"},
				"tenantId":              map[string]any{"value": "common"},
				"resourceUri":           map[string]any{"value": "api://<GRAPH_CLIENT_ID>"},
				"enableOnbehalfOfLogin": map[string]any{"value": "false"},
			},
		}}},
		"iconBrandColor": "#464EB8",
		"capabilities":   []any{},
		"publisher":      "teamscc",
		"stackOwner":     "teamscc",
	}}
	apiProps, err := json.MarshalIndent(props, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{"apiDefinition.swagger.json": append(apiDef, '\n'), "apiProperties.json": append(apiProps, '\n')}
}

// labelProperties gives every object property an x-ms-summary (its name in words), so
// the flow designer labels the fields.
func labelProperties(v any) {
	switch x := v.(type) {
	case map[string]any:
		if props, ok := x["properties"].(map[string]any); ok {
			for name, p := range props {
				if pm, ok := p.(map[string]any); ok {
					if _, set := pm["x-ms-summary"]; !set {
						pm["x-ms-summary"] = words(name)
					}
				}
			}
		}
		for _, c := range x {
			labelProperties(c)
		}
	case []any:
		for _, c := range x {
			labelProperties(c)
		}
	}
}

// words turns a JSON name into a label: "directInvitePstn" → "Direct invite PSTN".
func words(name string) string {
	var b strings.Builder
	for i, r := range name {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte(' ')
			r += 'a' - 'A'
		}
		if i == 0 && r >= 'a' && r <= 'z' {
			r -= 'a' - 'A'
		}
		b.WriteRune(r)
	}
	ws := strings.Fields(b.String())
	for i, w := range ws {
		if up := strings.ToUpper(w); up == "ID" || up == "PSTN" || up == "UPN" {
			ws[i] = up
		}
	}
	return strings.Join(ws, " ")
}

// connectorSubset is the description cut to the connector's operations and what they
// reference.
func connectorSubset(t *testing.T, doc map[string]any) map[string]any {
	t.Helper()
	doc = jsonValue(doc).(map[string]any) // a copy
	keep := map[string]bool{}
	for _, id := range connectorOps {
		keep[id] = true
	}
	paths := doc["paths"].(map[string]any)
	found := 0
	for p, item := range paths {
		ops := item.(map[string]any)
		for m, o := range ops {
			if keep[o.(map[string]any)["operationId"].(string)] {
				found++
			} else {
				delete(ops, m)
			}
		}
		if len(ops) == 0 {
			delete(paths, p)
		}
	}
	if found != len(connectorOps) {
		t.Fatalf("found %d of the connector's operations %v", found, connectorOps)
	}
	// Keep the components the kept operations reach.
	comps := doc["components"].(map[string]any)
	used := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok && !used[ref] {
				used[ref] = true
				parts := strings.Split(strings.TrimPrefix(ref, "#/components/"), "/")
				walk(comps[parts[0]].(map[string]any)[parts[1]])
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(paths)
	for _, kind := range []string{"schemas", "responses"} {
		for name := range comps[kind].(map[string]any) {
			if !used["#/components/"+kind+"/"+name] {
				delete(comps[kind].(map[string]any), name)
			}
		}
	}
	delete(comps["securitySchemes"].(map[string]any), "widgetKey")
	delete(comps["securitySchemes"].(map[string]any), "widgetToken")
	return doc
}

// The checked-in connector is what the description generates now, it is valid
// Swagger 2.0 with its outbound operations, and its OAuth is Entra ID's.
func TestThePowerAutomateConnectorIsUpToDate(t *testing.T) {
	files := connectorFiles(t)
	dir := filepath.Join("..", "connector")
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("connector/%s is not what the OpenAPI description generates (%v): run "+
				"go test ./handler -run TestThePowerAutomateConnectorIsUpToDate -update", name, err)
		}
	}

	var doc2 openapi2.T
	if err := json.Unmarshal(files["apiDefinition.swagger.json"], &doc2); err != nil {
		t.Fatalf("apiDefinition.swagger.json: %v", err)
	}
	// Swagger 2.0 has no validator of its own here: converted back to OpenAPI 3, with
	// every reference resolved, it must validate.
	back, err := openapi2conv.ToV3(&doc2)
	if err == nil {
		err = openapi3.NewLoader().ResolveRefsIn(back, nil)
	}
	if err == nil {
		err = back.Validate(context.Background(), openapi3.EnableExamplesValidation())
	}
	if err != nil {
		t.Fatalf("apiDefinition.swagger.json does not hold together: %v", err)
	}
	if doc2.Swagger != "2.0" || doc2.Host != connectorHost || len(doc2.Schemes) != 1 || doc2.Schemes[0] != "https" || len(doc2.Info.Title) > 30 {
		t.Fatalf("swagger %q, host %q, schemes %v, title %q", doc2.Swagger, doc2.Host, doc2.Schemes, doc2.Info.Title)
	}
	ids := map[string]string{}
	for path, item := range doc2.Paths {
		for method, op := range item.Operations() {
			ids[op.OperationID] = method + " " + path
			if len(op.Summary) == 0 || len(op.Summary) > 80 || strings.HasSuffix(op.Summary, ".") {
				t.Errorf("%s: summary %q", op.OperationID, op.Summary)
			}
		}
	}
	want := map[string]string{
		"scheduleOutboundTask": "POST /api/tenants/{tenantId}/services/{serviceId}/outbound",
		"listOutboundTasks":    "GET /api/tenants/{tenantId}/services/{serviceId}/outbound",
		"cancelOutboundTask":   "DELETE /api/tenants/{tenantId}/services/{serviceId}/outbound/{taskId}",
	}
	if len(ids) != len(want) {
		t.Errorf("operations %v, want %v", ids, want)
	}
	for id, route := range want {
		if ids[id] != route {
			t.Errorf("%s is %q, want %q", id, ids[id], route)
		}
	}
	sd := doc2.SecurityDefinitions["oauth2-auth"]
	if sd == nil || sd.Type != "oauth2" || sd.Flow != "accessCode" || !strings.HasPrefix(sd.AuthorizationURL, "https://login.microsoftonline.com/") {
		t.Fatalf("security definition %+v", sd)
	}
	// The schedule action takes the task's fields as a flat body with the required ones.
	sched := doc2.Paths["/api/tenants/{tenantId}/services/{serviceId}/outbound"].Post
	var body *openapi2.Parameter
	for _, p := range sched.Parameters {
		if p.In == "body" {
			body = p
		}
	}
	if body == nil || body.Schema == nil || body.Schema.Value == nil || strings.Join(body.Schema.Value.Required, ",") != "taskId,customer,due" {
		t.Fatalf("the schedule action's body: %+v", body)
	}

	var props struct {
		Properties struct {
			ConnectionParameters map[string]struct {
				Type          string
				OAuthSettings struct {
					IdentityProvider string
					CustomParameters map[string]struct{ Value string }
				}
			}
		}
	}
	if err := json.Unmarshal(files["apiProperties.json"], &props); err != nil {
		t.Fatal(err)
	}
	tok := props.Properties.ConnectionParameters["token"]
	if tok.Type != "oauthSetting" || tok.OAuthSettings.IdentityProvider != "aad" ||
		!strings.HasPrefix(tok.OAuthSettings.CustomParameters["resourceUri"].Value, "api://") {
		t.Fatalf("apiProperties.json connection: %+v", tok)
	}
}
