package main

import (
	"net/http"

	"github.com/teamscc/teamscc/shared/access"
	"github.com/teamscc/teamscc/shared/funchost"
)

// routes is every function of the app, one line each. The function names are the
// folders under functions/; a test keeps the two in step. Every admin route goes
// through g (an Entra token and a role for the tenant); the widget's and Teams' routes
// authenticate callers themselves (the widget key; the calling platform's signed token).
func routes(app *funchost.App, g *adminAuth, h *handlers, ta *tenantAdmin, rp *reports) {
	app.Timer("PresenceRefresh", h.presenceRefresh)
	app.ServiceBus("PresenceRefreshTenant", h.presenceRefreshTenant)
	app.HTTP("PresenceHealth", "GET /api/tenants/{tenantId}/presence/health", g.guard(access.ReadPresence, h.presenceHealth))
	app.HTTP("PresenceList", "GET /api/tenants/{tenantId}/presence", g.guard(access.ReadPresence, h.presenceList))
	app.HTTP("PresenceTest", "POST /api/tenants/{tenantId}/presence/test", g.guard(access.TestPresence, h.presenceTest))
	app.HTTP("ParkedMessages", "GET /api/ops/parked", g.guard(access.ReadParked, h.parkedMessages))

	app.HTTP("Tenants", "GET /api/tenants", g.authenticated(ta.list(g)))
	app.HTTP("Tenants", "POST /api/tenants", g.authenticated(ta.create(g)))
	app.HTTP("Tenant", "GET /api/tenants/{tenantId}", g.guard(access.ReadTenant, ta.get))
	app.HTTP("Tenant", "PATCH /api/tenants/{tenantId}", g.guard(access.UpdateTenant, ta.update))
	app.HTTP("Tenant", "DELETE /api/tenants/{tenantId}", g.guard(access.DeleteTenant, ta.remove))
	app.HTTP("TenantAudit", "GET /api/tenants/{tenantId}/audit", g.guard(access.ReadAudit, ta.auditLog))
	app.HTTP("UserStateReport", "GET /api/tenants/{tenantId}/reports/user-states", g.guard(access.ReadReports, rp.userStates))
	app.HTTP("Reports", "GET /api/tenants/{tenantId}/reports", g.guard(access.ReadReports, rp.reportsService))
	app.HTTP("ReportsMetadata", "GET /api/tenants/{tenantId}/reports/$metadata", g.guard(access.ReadReports, rp.reportsMetadata))
	app.HTTP("OpenAPI", "GET /api/openapi.json", http.HandlerFunc(openAPI)) // anonymous: it describes, it grants nothing
}

// routingRoutes are the call-routing functions.
func routingRoutes(app *funchost.App, g *adminAuth, h *routingHandlers) {
	app.ServiceBus("RouteCall", h.routeCall)
	app.HTTP("RoutingExplain", "GET /api/tenants/{tenantId}/services/{serviceId}/tasks/{taskId}/explain", g.guard(access.ReadRouting, h.explain))
	app.HTTP("AgentAfterCallWork", "POST /api/tenants/{tenantId}/agents/{agentId}/acw", g.guard(access.OperateAgent, h.afterCallWork))
	app.HTTP("AgentRona", "POST /api/tenants/{tenantId}/agents/{agentId}/rona/reset", g.guard(access.OperateAgent, h.resetRONA))
	app.HTTP("TeamsNotifications", "POST /api/teams/notifications", h.teamsWebhook())
	app.Timer("CallsReconcile", h.callsReconcile)
	app.HTTP("Call", "GET /api/tenants/{tenantId}/calls/{callId}", g.guard(access.ReadRouting, h.callTimeline))
	app.HTTP("Call", "DELETE /api/tenants/{tenantId}/calls/{callId}", g.guard(access.OperateCalls, h.callHangUp))
	app.HTTP("CallTransfer", "POST /api/tenants/{tenantId}/calls/{callId}/transfer", g.guard(access.OperateCalls, h.callTransfer))
}

// interactRoutes are the Interact functions: the widget's (checked by widget key) and
// the admin operations.
func interactRoutes(app *funchost.App, g *adminAuth, h *interactHandler) {
	app.HTTP("InteractSessions", "POST /api/interact/{tenantId}/sessions", http.HandlerFunc(h.sessions))
	app.HTTP("InteractSessions", "OPTIONS /api/interact/{tenantId}/sessions", http.HandlerFunc(h.preflight))
	app.HTTP("InteractSessionClose", "POST /api/interact/{tenantId}/sessions/{sessionId}/close", http.HandlerFunc(h.closeSession))
	app.HTTP("InteractSessionClose", "OPTIONS /api/interact/{tenantId}/sessions/{sessionId}/close", http.HandlerFunc(h.preflight))
	app.HTTP("InteractSettings", "GET /api/tenants/{tenantId}/interact", g.guard(access.ManageInteract, h.getSettings))
	app.HTTP("InteractSettings", "PATCH /api/tenants/{tenantId}/interact", g.guard(access.ManageInteract, h.patchSettings))
	app.HTTP("InteractKeyRefresh", "POST /api/tenants/{tenantId}/interact/widget-key/refresh", g.guard(access.ManageInteract, h.refreshKey))
	app.HTTP("InteractAcsCheck", "POST /api/tenants/{tenantId}/interact/acs/check", g.guard(access.ManageInteract, h.checkACS))
}

// serviceRoutes are the services and agents administration functions (team owners
// pass the guard for these operations and are checked per service by the handler).
func serviceRoutes(app *funchost.App, g *adminAuth, h *serviceAdmin) {
	app.HTTP("Services", "GET /api/tenants/{tenantId}/services", g.guard(access.ReadServices, h.list))
	app.HTTP("Services", "POST /api/tenants/{tenantId}/services", g.guard(access.ManageServices, h.create))
	app.HTTP("Service", "GET /api/tenants/{tenantId}/services/{serviceId}", g.guard(access.ReadServices, h.get))
	app.HTTP("Service", "PATCH /api/tenants/{tenantId}/services/{serviceId}", g.guard(access.ManageServices, h.update))
	app.HTTP("Service", "DELETE /api/tenants/{tenantId}/services/{serviceId}", g.guard(access.ManageServices, h.remove))
	app.HTTP("Agents", "GET /api/tenants/{tenantId}/agents", g.guard(access.ReadServices, h.listAgents))
	app.HTTP("Agent", "GET /api/tenants/{tenantId}/agents/{agentId}", g.guard(access.ReadServices, h.getAgent))
	app.HTTP("Agent", "PATCH /api/tenants/{tenantId}/agents/{agentId}", g.guard(access.ManageServices, h.updateAgent))
	app.Timer("ProvisioningRun", h.provisioningRun)
}

// directoryRoutes bring people in from the tenants' directories.
func directoryRoutes(app *funchost.App, g *adminAuth, h *directoryAdmin) {
	app.HTTP("ServiceMembersSync", "POST /api/tenants/{tenantId}/services/{serviceId}/members/sync", g.guard(access.ReadDirectory, h.syncMembers))
	app.HTTP("ServiceAgents", "POST /api/tenants/{tenantId}/services/{serviceId}/agents", g.guard(access.ReadDirectory, h.addAgent))
	app.HTTP("ServiceAgent", "DELETE /api/tenants/{tenantId}/services/{serviceId}/agents/{agentId}", g.guard(access.ReadDirectory, h.removeAgent))
	app.HTTP("DirectoryUsers", "GET /api/tenants/{tenantId}/directory/users", g.guard(access.ReadDirectory, h.searchUsers))
	app.HTTP("DirectoryGroup", "GET /api/tenants/{tenantId}/groups/{groupId}", g.guard(access.ReadDirectory, h.group))
	app.Timer("DirectorySync", h.syncAll)
}
