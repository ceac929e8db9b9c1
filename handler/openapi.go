package main

import (
	"encoding/json"
	"maps"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/teamscc/teamscc/shared/audit"
	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/directory"
	"github.com/teamscc/teamscc/shared/funchost"
	"github.com/teamscc/teamscc/shared/interact"
	"github.com/teamscc/teamscc/shared/outbound"
	"github.com/teamscc/teamscc/shared/parking"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/tenant"
)

// The request bodies that are not domain types, named so the OpenAPI description is
// made from the very types the handlers decode.
type (
	// presenceTestBody is POST …/presence/test.
	presenceTestBody struct {
		UPN string `json:"upn"`
	}
	// deleteTenantBody is DELETE /api/tenants/{tenantId}.
	deleteTenantBody struct {
		Confirm string `json:"confirm"`
	}
	// acwBody is POST …/agents/{agentId}/acw.
	acwBody struct {
		Action  string `json:"action"`
		Seconds int    `json:"seconds"`
	}
	// addAgentBody is POST …/services/{serviceId}/agents.
	addAgentBody struct {
		User string `json:"user"`
	}
	// closeSessionBody is POST /api/interact/{tenantId}/sessions/{sessionId}/close.
	closeSessionBody struct {
		CustomerID string `json:"customerId"`
	}
)

// authKind is how an operation's caller proves who they are.
type authKind int

const (
	authAdmin  authKind = iota // an Entra bearer token for this app, and a role for the tenant
	authWidget                 // the tenant's widget key (and a bearer token in the token modes)
	authNone                   // nothing: it grants nothing (the description, CORS preflight)
)

// apiOp describes one route: the function and pattern it is registered under in
// routes.go (a test compares the two), what it takes and what it answers.
type apiOp struct {
	fn, method, path string
	id, tag          string
	summary, desc    string
	auth             authKind
	query            []apiParam
	headers          []apiParam
	body             *apiBody
	ok               []apiAnswer // the answers of success
	errs             []int       // statuses beyond the auth kind's usual ones
	errExamples      map[int]any // an example error body per status
}

// apiParam is a query or header parameter.
type apiParam struct {
	name, desc string
	schema     schema
	required   bool
}

// apiBody is a request body: a Go type read in a mode, or a hand-made schema.
type apiBody struct {
	t        reflect.Type
	mode     schemaMode
	raw      schema
	build    func(*schemaGen) schema // a schema made from Go types with changes
	required []string                // properties the handler requires (modeIn)
	example  any
}

// apiAnswer is one success answer.
type apiAnswer struct {
	status  int
	desc    string
	t       reflect.Type // the Go type written; nil: raw
	raw     schema       // a hand-made schema (wrappers around Go types, small maps)
	media   string       // "" = application/json
	etag    bool         // the answer carries ETag (the version for If-Match)
	example any
}

// t is the reflect.Type of T.
func tOf[T any]() reflect.Type { return reflect.TypeFor[T]() }

// The schema helpers for answers the handlers build as maps.
type prop struct {
	name string
	s    any // schema, or reflect.Type (read in modeOut)
}

func obj(required []string, props ...prop) schema {
	ps := map[string]any{}
	for _, p := range props {
		ps[p.name] = p.s
	}
	out := schema{"type": "object", "properties": ps}
	if len(required) > 0 {
		r := make([]any, len(required))
		for i, n := range required {
			r[i] = n
		}
		out["required"] = r
	}
	return out
}

func arrayOf(t reflect.Type) schema { return schema{"type": "array", "items": t} }

var (
	str      = schema{"type": "string"}
	integer  = schema{"type": "integer", "format": "int64"}
	boolean  = schema{"type": "boolean"}
	dateTime = schema{"type": "string", "format": "date-time"}
)

// pageParams are the paging options of the directory reads.
var pageParams = []apiParam{
	{name: "$top", desc: "users per page, 1..999 (default 25)", schema: schema{"type": "integer", "minimum": 1, "maximum": directory.MaxTop}},
	{name: "$skiptoken", desc: "the token of the next page, from @odata.nextLink", schema: str},
}

var ifMatchHeader = apiParam{name: "If-Match", required: true, schema: str,
	desc: "the ETag (version) the change is based on, as GET answered it; 428 without, 412 when another change came first"}

// apiOps is every HTTP route of the app but those in undocumentedRoutes.
var apiOps = []apiOp{
	// Tenants
	{fn: "Tenants", method: "GET", path: "/api/tenants", id: "listTenants", tag: "Tenants",
		summary: "The tenants the caller administers (all of them for a platform operator)",
		ok:      []apiAnswer{{status: 200, raw: obj([]string{"tenants"}, prop{"tenants", arrayOf(tOf[tenantView]())})}}},
	{fn: "Tenants", method: "POST", path: "/api/tenants", id: "createTenant", tag: "Tenants",
		summary: "Create a tenant (a platform operator, or a partner admin naming their own partner administration group)",
		body:    &apiBody{build: tenantWrite(modeIn), required: []string{"id", "name"}},
		ok:      []apiAnswer{{status: 201, t: tOf[tenantView](), etag: true}}, errs: []int{409}},
	{fn: "Tenant", method: "GET", path: "/api/tenants/{tenantId}", id: "getTenant", tag: "Tenants",
		summary: "One tenant's settings (secrets only as whether they are set)",
		ok:      []apiAnswer{{status: 200, t: tOf[tenantView](), etag: true}}},
	{fn: "Tenant", method: "PATCH", path: "/api/tenants/{tenantId}", id: "updateTenant", tag: "Tenants",
		summary: "Change the fields the body names (a field the caller's role may not change: 403 naming it)",
		headers: []apiParam{ifMatchHeader}, body: &apiBody{build: tenantWrite(modePatch)},
		ok: []apiAnswer{{status: 200, t: tOf[tenantView](), etag: true}}, errs: []int{412, 428}},
	{fn: "Tenant", method: "DELETE", path: "/api/tenants/{tenantId}", id: "deleteTenant", tag: "Tenants",
		summary: "Mark the tenant PendingDeletion: every service stops routing now; the next provisioning run removes the data",
		body:    &apiBody{t: tOf[deleteTenantBody](), required: []string{"confirm"}, example: deleteTenantBody{Confirm: "YES"}},
		ok: []apiAnswer{{status: 202, raw: obj([]string{"tenantId", "status", "services"},
			prop{"tenantId", str}, prop{"status", schema{"type": "string", "enum": []any{"PendingDeletion"}}}, prop{"services", integer})}}},
	{fn: "TenantAudit", method: "GET", path: "/api/tenants/{tenantId}/audit", id: "listAudit", tag: "Tenants",
		summary: "Who changed which fields when (secrets as ***)",
		query: []apiParam{{name: "from", desc: "RFC 3339", schema: dateTime}, {name: "to", desc: "RFC 3339", schema: dateTime},
			{name: "limit", desc: "1..1000 (default 100)", schema: schema{"type": "integer", "minimum": 1, "maximum": 1000}}},
		ok: []apiAnswer{{status: 200, raw: obj([]string{"entries"}, prop{"entries", arrayOf(tOf[audit.Entry]())})}}},

	// Presence
	{fn: "PresenceHealth", method: "GET", path: "/api/tenants/{tenantId}/presence/health", id: "getPresenceHealth", tag: "Presence",
		summary: "Which credential reads presence, since when, the last error and warnings",
		ok:      []apiAnswer{{status: 200, t: tOf[healthView]()}}},
	{fn: "PresenceList", method: "GET", path: "/api/tenants/{tenantId}/presence", id: "listPresence", tag: "Presence",
		summary: "Every agent with the presence routing sees now",
		ok:      []apiAnswer{{status: 200, raw: obj([]string{"agents"}, prop{"agents", arrayOf(tOf[presenceView]())})}}},
	{fn: "PresenceTest", method: "POST", path: "/api/tenants/{tenantId}/presence/test", id: "testPresence", tag: "Presence",
		summary: "Read one user's presence now and say which credential answered",
		body:    &apiBody{t: tOf[presenceTestBody](), required: []string{"upn"}, example: presenceTestBody{UPN: "agent01@contoso.example"}},
		ok:      []apiAnswer{{status: 200, t: tOf[presence.TestResult]()}}},
	{fn: "ParkedMessages", method: "GET", path: "/api/ops/parked", id: "listParkedMessages", tag: "Operations",
		summary: "Service Bus messages parked with their reason, newest first (platform operators)",
		query: []apiParam{{name: "function", desc: "only this function's", schema: str},
			{name: "limit", desc: "1..500 (default 50)", schema: schema{"type": "integer", "minimum": 1, "maximum": 500}}},
		ok: []apiAnswer{{status: 200, raw: obj([]string{"messages"}, prop{"messages", arrayOf(tOf[parking.Message]())})}}},

	// Reports (an OData service for Power BI)
	{fn: "UserStateReport", method: "GET", path: "/api/tenants/{tenantId}/reports/user-states", id: "listUserStates", tag: "Reports",
		summary: "Agent state records overlapping [from, to), in start order: the OData entity set UserStates",
		desc: "An OData v4 JSON page: follow @odata.nextLink until it is absent. Options the feed does not implement " +
			"($skip, $count=true, $expand, $search, an $orderby other than start) answer 501 naming the option.",
		query: []apiParam{
			{name: "from", desc: "RFC 3339 (default: to minus 24 hours)", schema: dateTime},
			{name: "to", desc: "RFC 3339 (default: now, or from plus 24 hours); at most 92 days after from", schema: dateTime},
			{name: "$filter", desc: "agentId, kind and value with eq, joined by and: kind eq 'routing' and value eq 'ACW'", schema: str},
			{name: "$select", desc: "properties to answer, comma-separated", schema: str},
			{name: "$top", desc: "records in all pages together (the next links carry what is left)", schema: schema{"type": "integer", "minimum": 0}},
			{name: "$orderby", desc: "only start (the order records come in)", schema: schema{"type": "string", "enum": []any{"start", "start asc"}}},
			{name: "$skiptoken", desc: "from @odata.nextLink", schema: str}},
		headers: []apiParam{{name: "Prefer", desc: "odata.maxpagesize=N: at most N records a page (1..1000; default 1000)", schema: str}},
		ok:      []apiAnswer{{status: 200, raw: userStatesPage(), example: exampleUserStatesPage}},
		errs:    []int{501}},
	{fn: "Reports", method: "GET", path: "/api/tenants/{tenantId}/reports", id: "getReportsService", tag: "Reports",
		summary: "The reports' OData service document (the service root Power BI's OData feed may be given)",
		ok: []apiAnswer{{status: 200, raw: obj([]string{"@odata.context", "value"},
			prop{"@odata.context", str}, prop{"value", schema{"type": "array", "items": obj([]string{"name", "kind", "url"},
				prop{"name", str}, prop{"kind", str}, prop{"url", str})}})}}},
	{fn: "ReportsMetadata", method: "GET", path: "/api/tenants/{tenantId}/reports/$metadata", id: "getReportsMetadata", tag: "Reports",
		summary: "The reports' OData metadata: the CSDL XML of the UserStates entity set, its properties and capabilities",
		ok:      []apiAnswer{{status: 200, media: "application/xml", raw: str}}},

	// Services and agents
	{fn: "Services", method: "GET", path: "/api/tenants/{tenantId}/services", id: "listServices", tag: "Services",
		summary: "The tenant's services (a team owner: their own)",
		ok:      []apiAnswer{{status: 200, raw: obj([]string{"services"}, prop{"services", arrayOf(tOf[routing.Service]())})}}},
	{fn: "Services", method: "POST", path: "/api/tenants/{tenantId}/services", id: "createService", tag: "Services",
		summary: "Create a service; a Teams-based service naming its team has the Team's members synced before the answer",
		body:    &apiBody{t: tOf[serviceInput](), required: []string{"id", "name", "type"}},
		ok:      []apiAnswer{{status: 201, t: tOf[serviceAnswer](), etag: true}}, errs: []int{409}},
	{fn: "Service", method: "GET", path: "/api/tenants/{tenantId}/services/{serviceId}", id: "getService", tag: "Services",
		summary: "One service", ok: []apiAnswer{{status: 200, t: tOf[routing.Service](), etag: true}}},
	{fn: "Service", method: "PATCH", path: "/api/tenants/{tenantId}/services/{serviceId}", id: "updateService", tag: "Services",
		summary: "Merge-patch a service (objects merge, other values replace, null removes); its type never changes",
		headers: []apiParam{ifMatchHeader}, body: &apiBody{t: tOf[routing.Service](), mode: modePatch},
		ok: []apiAnswer{{status: 200, t: tOf[serviceAnswer](), etag: true}}, errs: []int{412, 428}},
	{fn: "Service", method: "DELETE", path: "/api/tenants/{tenantId}/services/{serviceId}", id: "deleteService", tag: "Services",
		summary: "Mark the service PendingDeletion (it stops routing now)",
		ok: []apiAnswer{{status: 202, raw: obj([]string{"serviceId", "status"}, prop{"serviceId", str},
			prop{"status", schema{"type": "string", "enum": []any{"PendingDeletion"}}})}}},
	{fn: "ServiceQueue", method: "GET", path: "/api/tenants/{tenantId}/services/{serviceId}/queue", id: "getServiceQueue", tag: "Services",
		summary: "The service's live queue: waiting, ringing and connected tasks and its agents' states now",
		ok:      []apiAnswer{{status: 200, t: tOf[QueueView]()}}},
	{fn: "Agents", method: "GET", path: "/api/tenants/{tenantId}/agents", id: "listAgents", tag: "Agents",
		summary: "Agents with their routing profile (a team owner: their services' agents)",
		ok:      []apiAnswer{{status: 200, raw: obj([]string{"agents"}, prop{"agents", arrayOf(tOf[agentView]())})}}},
	{fn: "Agent", method: "GET", path: "/api/tenants/{tenantId}/agents/{agentId}", id: "getAgent", tag: "Agents",
		summary: "One agent's routing profile (an agent may read themselves)", ok: []apiAnswer{{status: 200, t: tOf[agentView]()}}},
	{fn: "Agent", method: "PATCH", path: "/api/tenants/{tenantId}/agents/{agentId}", id: "updateAgent", tag: "Agents",
		summary: "Change an agent's skills, duty profile and active flags (never their ringing, connected, RONA or ACW state)",
		body:    &apiBody{t: tOf[agentPatch]()}, ok: []apiAnswer{{status: 200, t: tOf[agentView]()}}},
	{fn: "AgentAfterCallWork", method: "POST", path: "/api/tenants/{tenantId}/agents/{agentId}/acw", id: "changeAfterCallWork", tag: "Agents",
		summary: "End after-call work now, or extend it, as the service allows",
		body: &apiBody{raw: obj([]string{"action"}, prop{"action", schema{"type": "string", "enum": []any{"end", "extend"}}},
			prop{"seconds", schema{"type": "integer", "minimum": 1, "maximum": 3600, "description": "with extend"}}), example: acwBody{Action: "extend", Seconds: 60}},
		ok: []apiAnswer{{status: 200, raw: obj([]string{"agentId", "acwUntil"}, prop{"agentId", str}, prop{"acwUntil", dateTime})}}, errs: []int{409}},
	{fn: "AgentRona", method: "POST", path: "/api/tenants/{tenantId}/agents/{agentId}/rona/reset", id: "resetRona", tag: "Agents",
		summary: "End the agent's RONA block now",
		ok:      []apiAnswer{{status: 200, raw: obj([]string{"agentId", "ronaUntil"}, prop{"agentId", str}, prop{"ronaUntil", dateTime})}}},

	// Directory
	{fn: "ServiceMembersSync", method: "POST", path: "/api/tenants/{tenantId}/services/{serviceId}/members/sync", id: "syncServiceMembers", tag: "Directory",
		summary: "Bring a Teams-based service's agents and owners in step with its Team now",
		ok:      []apiAnswer{{status: 200, t: tOf[directory.SyncResult]()}}, errs: []int{424}},
	{fn: "ServiceAgents", method: "POST", path: "/api/tenants/{tenantId}/services/{serviceId}/agents", id: "addServiceAgent", tag: "Directory",
		summary: "Make a directory user (UPN or object id) an agent of a skill-based service",
		body:    &apiBody{t: tOf[addAgentBody](), required: []string{"user"}, example: addAgentBody{User: "newhire1@contoso.example"}},
		ok: []apiAnswer{{status: 200, raw: obj([]string{"id", "upn", "displayName", "serviceId"},
			prop{"id", str}, prop{"upn", str}, prop{"displayName", str}, prop{"serviceId", str})}}, errs: []int{424}},
	{fn: "ServiceAgent", method: "DELETE", path: "/api/tenants/{tenantId}/services/{serviceId}/agents/{agentId}", id: "removeServiceAgent", tag: "Directory",
		summary: "Take an agent off a skill-based service (their history stays)", ok: []apiAnswer{{status: 204}}, errs: []int{424}},
	{fn: "DirectoryUsers", method: "GET", path: "/api/tenants/{tenantId}/directory/users", id: "searchDirectoryUsers", tag: "Directory",
		summary: "Users of the tenant's directory whose name, UPN or mail starts with search",
		query:   append([]apiParam{{name: "search", desc: "the start of a name, UPN or mail", schema: str}}, pageParams...),
		ok: []apiAnswer{{status: 200, raw: obj([]string{"value"}, prop{"value", arrayOf(tOf[userView]())},
			prop{"@odata.nextLink", str})}}, errs: []int{424}},
	{fn: "DirectoryGroup", method: "GET", path: "/api/tenants/{tenantId}/groups/{groupId}", id: "getDirectoryGroup", tag: "Directory",
		summary: "A group of the tenant's directory with a page of its members", query: pageParams,
		ok: []apiAnswer{{status: 200, raw: obj([]string{"id", "displayName", "members"}, prop{"id", str}, prop{"displayName", str},
			prop{"members", arrayOf(tOf[userView]())}, prop{"@odata.nextLink", str})}}, errs: []int{424}},

	// Routing and calls
	{fn: "RoutingExplain", method: "GET", path: "/api/tenants/{tenantId}/services/{serviceId}/tasks/{taskId}/explain", id: "explainTask", tag: "Routing",
		summary: "A task and its last routing attempt: every agent considered and why each was chosen or skipped",
		ok:      []apiAnswer{{status: 200, t: tOf[ExplainView]()}}},
	{fn: "Call", method: "GET", path: "/api/tenants/{tenantId}/calls/{callId}", id: "getCall", tag: "Calls",
		summary: "A call's timeline", ok: []apiAnswer{{status: 200, t: tOf[CallView]()}}},
	{fn: "Call", method: "DELETE", path: "/api/tenants/{tenantId}/calls/{callId}", id: "hangUpCall", tag: "Calls",
		summary: "Hang the call up now", ok: []apiAnswer{{status: 200, t: tOf[CallView]()}}},
	{fn: "CallTransfer", method: "POST", path: "/api/tenants/{tenantId}/calls/{callId}/transfer", id: "transferCall", tag: "Calls",
		summary: "Transfer a connected call to another service or to a phone number (E.164)",
		body:    &apiBody{t: tOf[calls.TransferTo](), example: calls.TransferTo{Service: "support"}},
		ok:      []apiAnswer{{status: 200, t: tOf[CallView]()}}, errs: []int{409}},

	// Outbound
	{fn: "OutboundTasks", method: "POST", path: "/api/tenants/{tenantId}/services/{serviceId}/outbound", id: "scheduleOutboundTask", tag: "Outbound",
		summary: "Schedule an outbound task: the customer is called when it is due and an agent accepts",
		desc: "201 for a new task; the same taskId with the same content again answers 200 with the same task. " +
			"Over the service's cap: 429 OutboundLimitReached with the limit and the count, and nothing changes.",
		body: &apiBody{t: tOf[outbound.Request](), required: []string{"taskId", "customer", "due"}, example: exampleOutboundRequest},
		ok: []apiAnswer{{status: 201, desc: "scheduled", t: tOf[outbound.Task](), example: exampleOutboundTask},
			{status: 200, desc: "the same request again: the task as scheduled the first time", t: tOf[outbound.Task]()}},
		errs: []int{409, 429}, errExamples: map[int]any{400: exampleInvalidDue, 429: exampleLimitReached}},
	{fn: "OutboundTasks", method: "GET", path: "/api/tenants/{tenantId}/services/{serviceId}/outbound", id: "listOutboundTasks", tag: "Outbound",
		summary: "The service's live outbound tasks (scheduled or in progress)",
		ok: []apiAnswer{{status: 200, raw: obj([]string{"tasks"}, prop{"tasks", arrayOf(tOf[outbound.Task]())}),
			example: map[string]any{"tasks": []outbound.Task{exampleOutboundTask}}}}},
	{fn: "OutboundTask", method: "DELETE", path: "/api/tenants/{tenantId}/services/{serviceId}/outbound/{taskId}", id: "cancelOutboundTask", tag: "Outbound",
		summary: "Cancel a scheduled task: its slot is freed at once",
		ok:      []apiAnswer{{status: 200, desc: "the task, now Cancelled", t: tOf[outbound.Task](), example: exampleCancelledTask}}},

	// Interact: the widget
	{fn: "InteractSessions", method: "POST", path: "/api/interact/{tenantId}/sessions", id: "startInteractSession", tag: "Widget",
		summary: "Start a widget session, or recover one closed within the tenant's recovery timeout",
		auth:    authWidget, body: &apiBody{t: tOf[interact.StartRequest](), required: []string{"customerId"},
			example: interact.StartRequest{CustomerID: "visitor-5f2c"}},
		ok: []apiAnswer{{status: 201, desc: "a new session", t: tOf[interact.Started]()},
			{status: 200, desc: "a recovered session", t: tOf[interact.Started]()}}, errs: []int{502, 503}},
	{fn: "InteractSessions", method: "OPTIONS", path: "/api/interact/{tenantId}/sessions", id: "preflightInteractSessions", tag: "Widget",
		summary: "CORS preflight (the allowed origins are the tenant's)", auth: authNone, ok: []apiAnswer{{status: 204}}},
	{fn: "InteractSessionClose", method: "POST", path: "/api/interact/{tenantId}/sessions/{sessionId}/close", id: "closeInteractSession", tag: "Widget",
		summary: "The customer closes a session (recoverable within the tenant's timeout)",
		auth:    authWidget, body: &apiBody{t: tOf[closeSessionBody](), required: []string{"customerId"}, example: closeSessionBody{CustomerID: "visitor-5f2c"}},
		ok: []apiAnswer{{status: 204}}},
	{fn: "InteractSessionClose", method: "OPTIONS", path: "/api/interact/{tenantId}/sessions/{sessionId}/close", id: "preflightInteractSessionClose", tag: "Widget",
		summary: "CORS preflight", auth: authNone, ok: []apiAnswer{{status: 204}}},

	// Interact: administration
	{fn: "InteractSettings", method: "GET", path: "/api/tenants/{tenantId}/interact", id: "getInteractSettings", tag: "Interact",
		summary: "Interact settings and the widget key; the ACS connection string only as whether it is set",
		ok:      []apiAnswer{{status: 200, t: tOf[interact.View]()}}},
	{fn: "InteractSettings", method: "PATCH", path: "/api/tenants/{tenantId}/interact", id: "updateInteractSettings", tag: "Interact",
		summary: "Change the fields the body names; the ACS connection string is write-only",
		body:    &apiBody{t: tOf[interact.Patch]()}, ok: []apiAnswer{{status: 200, t: tOf[interact.View]()}}},
	{fn: "InteractKeyRefresh", method: "POST", path: "/api/tenants/{tenantId}/interact/widget-key/refresh", id: "refreshWidgetKey", tag: "Interact",
		summary: "A new widget key; the old one is refused after the grace period", ok: []apiAnswer{{status: 200, t: tOf[interact.View]()}}},
	{fn: "InteractAcsCheck", method: "POST", path: "/api/tenants/{tenantId}/interact/acs/check", id: "checkInteractAcs", tag: "Interact",
		summary: "Create and delete an ACS identity with the tenant's connection string",
		ok:      []apiAnswer{{status: 200, t: tOf[interact.CheckResult]()}}, errs: []int{502}},

	// The description itself
	{fn: "OpenAPI", method: "GET", path: "/api/openapi.json", id: "getOpenApiDescription", tag: "Meta",
		summary: "This OpenAPI description", auth: authNone, ok: []apiAnswer{{status: 200, raw: schema{"type": "object"}}}},
}

// undocumentedRoutes are the HTTP functions the description leaves out, and why.
var undocumentedRoutes = map[string]string{
	"TeamsNotifications": "the calling bot's webhook: only Microsoft's calling platform calls it, with Graph's commsNotifications " +
		"payload (Microsoft's schema, not ours) and a token the platform signs; no client of this API has anything to send it",
	"Portal": "the admin portal's static files (HTML, JavaScript, CSS) for a browser: not an API",
}

// tenantWrite is the body of a tenant create or change: the tenant's fields (the
// technical ones only for partner admins and operators) and the presence accounts'
// passwords, which are stored apart and never shown.
func tenantWrite(m schemaMode) func(*schemaGen) schema {
	return func(g *schemaGen) schema { return tenantWriteSchema(g, m) }
}

func tenantWriteSchema(g *schemaGen, m schemaMode) schema {
	s := g.object(tOf[tenant.Tenant](), m)
	props := s["properties"].(map[string]any)
	for _, readOnly := range []string{"updatedAt", "version", "deleted"} {
		delete(props, readOnly)
	}
	if m == modePatch {
		delete(props, "id")
	}
	// The passwords sit in the presence object beside its fields (tenant.ParseChange).
	pw := schema{"type": "string", "writeOnly": true, "description": "stored as a secret, never shown"}
	props["presence"] = schema{"allOf": []any{props["presence"], schema{"type": "object", "properties": map[string]any{
		"account1Password": pw, "account2Password": pw}}}}
	return s
}

// userStatesPage is the schema of a feed page.
func userStatesPage() schema {
	return obj([]string{"@odata.context", "value"}, prop{"@odata.context", str}, prop{"value", arrayOf(tOf[userStateRow]())},
		prop{"@odata.nextLink", str}, prop{trackingAnnotation, boolean})
}

// The examples: real values of the real types, so they cannot say what the code would not.
var (
	exampleDue             = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	exampleOutboundRequest = outbound.Request{TaskID: "callback-4711", Customer: "+41445551234", Due: exampleDue.Format(time.RFC3339),
		Priority: "High", Notes: "Call back about invoice 4711", Params: map[string]string{"invoice": "4711"}}
	exampleOutboundTask = outbound.Task{TenantID: "c0a7b0a1-0000-4000-8000-00000000c0de", ServiceID: "sales", ID: "callback-4711",
		Customer: "+41445551234", CustomerKind: outbound.PSTN, Due: exampleDue, Priority: routing.High, Notes: "Call back about invoice 4711",
		Params: map[string]string{"invoice": "4711"}, State: outbound.Scheduled, Accepted: exampleDue.Add(-2 * time.Hour),
		UpdatedAt: exampleDue.Add(-2 * time.Hour), Sequence: 42, ScheduledAt: exampleDue}
	exampleCancelledTask = func() outbound.Task {
		t := exampleOutboundTask.Clone()
		t.State, t.UpdatedAt = outbound.Cancelled, exampleDue.Add(-time.Hour)
		return t
	}()
	exampleInvalidDue = map[string]any{"error": map[string]string{"code": "invalid", "field": "due",
		"rule": "not an RFC 3339 time (2026-11-24T10:00:00Z)", "message": "due: not an RFC 3339 time (2026-11-24T10:00:00Z)"}}
	exampleLimitReached = map[string]any{"error": map[string]any{"code": "OutboundLimitReached", "limit": 20, "current": 20,
		"message": (&outbound.LimitError{Limit: 20, Current: 20}).Error()}}
	exampleUserStatesPage = func() feedPage {
		end, secs := exampleDue.Add(95*time.Second), 95.0
		root := "https://func-api-example.azurewebsites.net/api/tenants/c0a7b0a1-0000-4000-8000-00000000c0de/reports"
		return feedPage{Context: root + "/$metadata#" + userStatesSet, TrackingEnabled: true,
			Value: []any{
				userStateRow{AgentID: "7d1f0c2e-0000-4000-8000-000000000001", Kind: "routing", Value: "Connected", Start: exampleDue, End: &end, DurationSeconds: &secs},
				userStateRow{AgentID: "7d1f0c2e-0000-4000-8000-000000000001", Kind: "routing", Value: "ACW", Start: end, Open: true}},
			NextLink: root + "/user-states?%24skiptoken=…&from=2026-11-24T00%3A00%3A00Z&to=2026-11-25T00%3A00%3A00Z"}
	}()
)

// errorSchema is the JSON shape of every error answer (funchost.WriteError and the
// handlers' own refusals): a code, a message, and for a bad field its name and rule.
var errorSchema = obj([]string{"error"}, prop{"error", obj([]string{"code", "message"},
	prop{"code", schema{"type": "string", "description": "invalid, unauthorized, forbidden, not_found, conflict, precondition_failed, " +
		"preconditionRequired, rate_limited, OutboundLimitReached, no_directory_access, acs_refused, acs_error, acs_unreachable, unavailable, not_implemented, internal"}},
	prop{"message", str},
	prop{"field", schema{"type": "string", "description": "the field, parameter or header at fault"}},
	prop{"rule", schema{"type": "string", "description": "the rule it broke"}},
	prop{"limit", schema{"type": "integer", "description": "OutboundLimitReached: the service's cap"}},
	prop{"current", schema{"type": "integer", "description": "OutboundLimitReached: its live tasks now"}})})

// errorAnswers describe each error status, with an example.
var errorAnswers = map[int]struct {
	name, desc string
	example    any
}{
	400: {"Invalid", "a field, parameter or header broke a rule: the error names it and the rule",
		map[string]any{"error": map[string]string{"code": "invalid", "field": "tenantId", "rule": "must be a GUID", "message": "tenantId: must be a GUID"}}},
	401: {"Unauthorized", "no valid bearer token (or, for the widget, no valid widget key or token); WWW-Authenticate says where to sign in",
		map[string]any{"error": map[string]string{"code": "unauthorized", "message": "a valid bearer token for this app is required"}}},
	403: {"Forbidden", "no role of the caller allows this (a field the role may not change is named)",
		map[string]any{"error": map[string]string{"code": "forbidden", "field": "security.partnerAdminGroup", "message": "security.partnerAdminGroup: your role may not change this field"}}},
	404: {"NotFound", "no such tenant, service, agent, task, call or session",
		map[string]any{"error": map[string]string{"code": "not_found", "message": "not found"}}},
	409: {"Conflict", "the id exists, or the state does not allow this now",
		map[string]any{"error": map[string]string{"code": "conflict", "field": "taskId", "message": "taskId: a task with this id exists with other content"}}},
	412: {"PreconditionFailed", "If-Match names a version another change replaced: read again and retry",
		map[string]any{"error": map[string]string{"code": "precondition_failed", "message": "precondition failed"}}},
	424: {"NoDirectoryAccess", "no credential may read the tenant's directory",
		map[string]any{"error": map[string]string{"code": "no_directory_access", "message": "no credential may read the tenant's directory"}}},
	428: {"PreconditionRequired", "If-Match is missing",
		map[string]any{"error": map[string]string{"code": "preconditionRequired", "field": "If-Match", "message": "If-Match: must carry the ETag (version) the change is based on"}}},
	429: {"TooManyRequests", "too many failed attempts (Retry-After says when to try again), or a cap reached",
		map[string]any{"error": map[string]string{"code": "rate_limited", "message": "too many failed attempts"}}},
	501: {"NotImplemented", "a query option the feed does not implement: the error names it",
		map[string]any{"error": map[string]string{"code": "not_implemented", "field": "$skip", "rule": "not supported: page with @odata.nextLink", "message": "$skip: not supported: page with @odata.nextLink"}}},
	502: {"BadGateway", "the tenant's Azure Communication Services refused or failed",
		map[string]any{"error": map[string]string{"code": "acs_refused", "message": "Azure Communication Services refused the tenant's access key"}}},
	503: {"Unavailable", "a dependency did not answer in time (Retry-After), or the tenant's ACS could not be reached",
		map[string]any{"error": map[string]string{"code": "unavailable", "message": "a service the app depends on did not answer in time; retry in a few seconds"}}},
}

// usualErrors are the error statuses every operation of an auth kind may answer.
var usualErrors = map[authKind][]int{
	authAdmin:  {400, 401, 403, 404, 503},
	authWidget: {400, 401, 403, 404, 429, 503},
	authNone:   nil,
}

// pathParams describe the path parameters by name.
var pathParams = map[string]apiParam{
	"tenantId":  {desc: "the customer's Microsoft 365 (Entra) tenant id", schema: schema{"type": "string", "format": "uuid"}},
	"serviceId": {desc: "the service's id", schema: schema{"type": "string", "pattern": "^[a-z0-9-]{1,40}$"}},
	"agentId":   {desc: "the agent's Entra object id", schema: str},
	"taskId":    {desc: "the task's id", schema: str},
	"callId":    {desc: "the call's id", schema: str},
	"sessionId": {desc: "the session's id", schema: str},
	"groupId":   {desc: "the group's Entra object id", schema: schema{"type": "string", "format": "uuid"}},
}

var pathParam = regexp.MustCompile(`\{([A-Za-z]+)\}`)

// openAPIDocument builds the description of apiOps (without servers): a JSON object
// as encoding/json writes it, its keys sorted, so it is byte-for-byte repeatable.
func openAPIDocument() map[string]any {
	g := newSchemaGen()
	resolve := func(s any) any { return resolveTypes(g, s) }
	paths := map[string]any{}
	for _, op := range apiOps {
		o := map[string]any{"operationId": op.id, "summary": op.summary, "tags": []any{op.tag}}
		if op.desc != "" {
			o["description"] = op.desc
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(op.path, -1) {
			p := pathParams[m[1]]
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "description": p.desc, "schema": p.schema})
		}
		for _, in := range []struct {
			where string
			ps    []apiParam
		}{{"query", op.query}, {"header", op.headers}} {
			for _, p := range in.ps {
				params = append(params, map[string]any{"name": p.name, "in": in.where, "required": p.required, "description": p.desc, "schema": p.schema})
			}
		}
		if len(params) > 0 {
			o["parameters"] = params
		}
		if b := op.body; b != nil {
			var s schema
			raw := b.raw
			if b.build != nil {
				raw = b.build(g)
			}
			if raw != nil {
				s = raw
			} else {
				mode := b.mode
				if mode == modeOut {
					mode = modeIn
				}
				s = g.of(b.t, mode)
				if len(b.required) > 0 {
					// Inline, with what the handler requires (a client such as Power
					// Automate shows the fields of a flat object, not of an allOf).
					s = g.object(b.t, mode)
					raw = s
				}
			}
			if raw != nil && len(b.required) > 0 {
				s = maps.Clone(s)
				r := []any{}
				for _, n := range b.required {
					r = append(r, n)
				}
				s["required"] = r
			}
			media := map[string]any{"schema": resolve(s)}
			if b.example != nil {
				media["example"] = jsonValue(b.example)
			}
			ct := "application/json"
			if b.mode == modePatch {
				ct = "application/merge-patch+json"
			}
			content := map[string]any{ct: media}
			if ct != "application/json" {
				content["application/json"] = media // what most clients send; the handler reads either
			}
			o["requestBody"] = map[string]any{"required": true, "content": content}
		}
		resps := map[string]any{}
		for _, a := range op.ok {
			desc := a.desc
			if desc == "" {
				desc = http.StatusText(a.status)
			}
			r := map[string]any{"description": desc}
			if a.t != nil || a.raw != nil {
				var s any = a.raw
				if a.t != nil {
					s = g.of(a.t, modeOut)
				}
				media := map[string]any{"schema": resolve(s)}
				if a.example != nil {
					media["example"] = jsonValue(a.example)
				}
				ct := a.media
				if ct == "" {
					ct = "application/json"
				}
				r["content"] = map[string]any{ct: media}
			}
			if a.etag {
				r["headers"] = map[string]any{"ETag": map[string]any{"description": "the version, for If-Match", "schema": str}}
			}
			resps[itoa(a.status)] = r
		}
		for _, st := range append(append([]int{}, usualErrors[op.auth]...), op.errs...) {
			if ex, ok := op.errExamples[st]; ok {
				resps[itoa(st)] = map[string]any{"description": errorAnswers[st].desc,
					"content": map[string]any{"application/json": map[string]any{"schema": schema{"$ref": "#/components/schemas/Error"}, "example": jsonValue(ex)}}}
				continue
			}
			resps[itoa(st)] = map[string]any{"$ref": "#/components/responses/" + errorAnswers[st].name}
		}
		o["responses"] = resps
		switch op.auth {
		case authNone:
			o["security"] = []any{}
		case authWidget:
			o["security"] = []any{map[string]any{"widgetKey": []any{}}, map[string]any{"widgetKey": []any{}, "widgetToken": []any{}}}
		}
		item, _ := paths[op.path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[op.path] = item
		}
		item[strings.ToLower(op.method)] = o
	}
	responses := map[string]any{}
	for st, e := range errorAnswers {
		r := map[string]any{"description": e.desc, "content": map[string]any{"application/json": map[string]any{
			"schema": schema{"$ref": "#/components/schemas/Error"}, "example": jsonValue(e.example)}}}
		if st == 401 {
			r["headers"] = map[string]any{"WWW-Authenticate": map[string]any{"schema": str,
				"description": `Bearer realm="…", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize" (admin routes)`}}
		}
		responses[e.name] = r
	}
	comps := map[string]any{"Error": errorSchema}
	for k, v := range g.comps {
		comps[k] = v
	}
	var tags []any
	seen := map[string]bool{}
	for _, op := range apiOps {
		if !seen[op.tag] {
			seen[op.tag] = true
			tags = append(tags, map[string]any{"name": op.tag})
		}
	}
	doc := map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{"title": "teamscc", "version": "1.0.0", "description": "The admin, outbound, reports and Interact API of teamscc, " +
			"an open-source contact-center backend for Microsoft Teams. Admin routes take an Entra ID bearer token for this app " +
			"(its audience is one of the app setting AdminAudiences) and a role for the tenant in the path; the widget's routes take the tenant's widget key. " +
			"Errors are JSON naming the field and the rule.",
			"license": map[string]any{"name": "see the repository"}},
		"tags":     tags,
		"paths":    paths,
		"security": []any{map[string]any{"entraToken": []any{}}},
		"components": map[string]any{
			"schemas":   comps,
			"responses": responses,
			"securitySchemes": map[string]any{
				"entraToken": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
					"description": "An Entra ID access token for this app (audience: AdminAudiences, e.g. api://<client id>; scope Admin.Access)."},
				"widgetKey": map[string]any{"type": "apiKey", "in": "header", "name": "X-Widget-Key",
					"description": "The tenant's widget key (Interact settings)."},
				"widgetToken": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
					"description": "With authorization mode VerifyToken or VerifyTokenAndTenant: the customer's Entra token."},
			},
		},
	}
	// A round trip turns every value into plain JSON (structs, typed strings), so the
	// document is what is served and nothing else.
	return jsonValue(doc).(map[string]any)
}

// resolveTypes replaces reflect.Types inside hand-made schemas by their schemas.
func resolveTypes(g *schemaGen, s any) any {
	switch v := s.(type) {
	case reflect.Type:
		return g.of(v, modeOut)
	case schema:
		out := make(schema, len(v))
		for k, x := range v {
			out[k] = resolveTypes(g, x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = resolveTypes(g, x)
		}
		return out
	}
	return s
}

// jsonValue is v as encoding/json writes it, read back as plain values.
func jsonValue(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		panic("openapi: " + err.Error())
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		panic("openapi: " + err.Error())
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

// apiDescription is the document, built once.
var apiDescription = sync.OnceValue(openAPIDocument)

// openAPI is GET /api/openapi.json: the description, with this deployment as its
// server. Anonymous: it describes the API and grants nothing.
func openAPI(w http.ResponseWriter, r *http.Request) {
	doc := maps.Clone(apiDescription())
	doc["servers"] = []any{map[string]any{"url": baseURL(r)}}
	w.Header().Set("Cache-Control", "public, max-age=300")
	funchost.WriteJSON(w, http.StatusOK, doc)
}
