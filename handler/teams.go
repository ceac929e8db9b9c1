package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/entra"
	"github.com/teamscc/teamscc/shared/funchost"
	"github.com/teamscc/teamscc/shared/teams"
)

// callingAuth authenticates the calling platform's callbacks with the calling
// validator: a refused token is teams.ErrUnauthenticated (401); keys that cannot be
// fetched in time are transient (503).
type callingAuth struct{ v *entra.CallingValidator }

func (a callingAuth) Authenticate(ctx context.Context, authorization string) (string, error) {
	c, err := a.v.VerifyHeader(ctx, authorization)
	switch {
	case err == nil:
		return c.TenantID, nil
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return "", fmt.Errorf("calling keys: %w", err)
	}
	return "", fmt.Errorf("%w: %w", teams.ErrUnauthenticated, err)
}

// teamsWebhook is the TeamsNotifications function (POST /api/teams/notifications): the
// calling bot's webhook and the callback of every call the app answers or places.
// Without a calling setup (CallingWebhookUrl, GraphClientId) it answers 503 naming
// what is missing, and stores nothing.
func (h *routingHandlers) teamsWebhook() http.Handler {
	if h.calls == nil || h.callAuth == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			funchost.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]string{
				"code": "not_configured", "message": "calls are not configured: set CallingWebhookUrl and GraphClientId (the bot's app id)"}})
		})
	}
	wh, err := teams.NewWebhook(h.callAuth, h.calls.Handle, 0)
	if err != nil { // both are set: a programming error
		panic(fmt.Sprintf("teams webhook: %v", err))
	}
	return wh
}

// callsReconcile is the CallsReconcile timer: overdue call steps, legs left ringing,
// keep-alives (calls.Controller.Reconcile).
func (h *routingHandlers) callsReconcile(ctx context.Context, _ funchost.Timer) error {
	if h.calls == nil {
		return nil
	}
	res, err := h.calls.Reconcile(ctx)
	if res.Due > 0 {
		funchost.Logger(ctx).Info("calls reconciled", "due", res.Due, "legs_hung_up", res.LegsHungUp, "keep_alives", res.KeepAlives, "steps", res.Steps)
	}
	return err
}

var _ teams.Authenticator = callingAuth{}
var _ routingCalls = (*calls.Controller)(nil)
