package main

import (
	"net/http"

	"github.com/teamscc/teamscc/shared/funchost"
)

// routes is every function of the app, one line each. The function names are the
// folders under functions/; a test keeps the two in step.
func routes(app *funchost.App, h *handlers) {
	app.Timer("PresenceRefresh", h.presenceRefresh)
	app.ServiceBus("PresenceRefreshTenant", h.presenceRefreshTenant)
	app.HTTP("PresenceHealth", "GET /api/tenants/{tenantId}/presence/health", http.HandlerFunc(h.presenceHealth))
	app.HTTP("PresenceList", "GET /api/tenants/{tenantId}/presence", http.HandlerFunc(h.presenceList))
	app.HTTP("PresenceTest", "POST /api/tenants/{tenantId}/presence/test", http.HandlerFunc(h.presenceTest))
	app.HTTP("ParkedMessages", "GET /api/ops/parked", http.HandlerFunc(h.parkedMessages))
}
