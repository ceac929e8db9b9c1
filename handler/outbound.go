package main

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/teamscc/teamscc/shared/access"
	"github.com/teamscc/teamscc/shared/config"
	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/funchost"
	"github.com/teamscc/teamscc/shared/outbound"
	"github.com/teamscc/teamscc/shared/routing"
)

// outboundRoutes are the outbound scheduling functions: intake on Service Bus (as Power
// Automate sends) and over HTTP, the due messages, and the reconciler.
func outboundRoutes(app *funchost.App, g *adminAuth, h *outboundHandlers) {
	app.ServiceBus("ScheduleOutbound", h.scheduleMessage)
	app.ServiceBus("OutboundDue", h.due)
	app.Timer("OutboundReconcile", h.reconcile)
	app.HTTP("OutboundTasks", "POST /api/tenants/{tenantId}/services/{serviceId}/outbound", g.guard(access.ScheduleOutbound, h.schedule))
	app.HTTP("OutboundTasks", "GET /api/tenants/{tenantId}/services/{serviceId}/outbound", g.guard(access.ScheduleOutbound, h.list))
	app.HTTP("OutboundTask", "DELETE /api/tenants/{tenantId}/services/{serviceId}/outbound/{taskId}", g.guard(access.ScheduleOutbound, h.cancel))
}

type outboundHandlers struct {
	svc *outbound.Service
}

// permanentOutbound marks the cap and a task id conflict permanent, so on Service Bus
// the message is parked with its reason (the cap's text starts OutboundLimitReached).
func permanentOutbound(err error) error {
	if errors.Is(err, outbound.ErrLimitReached) || errors.Is(err, outbound.ErrTaskIDConflict) {
		return fault.Permanent(err)
	}
	return err
}

// scheduleMessage is the ScheduleOutbound Service Bus function: the body is the JSON
// request (tenantId and serviceId included). Accepted (or a replay of an accepted
// request): completed. Over the cap, a conflicting task id, bad input, unknown tenant
// or service: parked with the reason, and nothing else changes. Storage or Service Bus
// failures: redelivered (a redelivery finds its task and finishes the scheduling).
func (h *outboundHandlers) scheduleMessage(ctx context.Context, m funchost.Message) error {
	var req outbound.Request
	if err := decodeStrict(strings.NewReader(string(m.Body)), &req); err != nil {
		return err
	}
	tid, err := tenantID(req.TenantID)
	if err != nil {
		return err
	}
	req.TenantID = tid
	res, err := h.svc.Schedule(ctx, req)
	if err != nil {
		if errors.Is(err, fault.ErrNotFound) {
			return fault.Permanent(err)
		}
		return permanentOutbound(err)
	}
	funchost.Logger(ctx).Debug("outbound request done", "tenant", tid, "service", req.ServiceID, "task", res.Task.ID, "created", res.Created)
	return nil
}

// due is the OutboundDue Service Bus function: a scheduled task became due.
func (h *outboundHandlers) due(ctx context.Context, m funchost.Message) error {
	var d outbound.DueMessage
	if err := decodeStrict(strings.NewReader(string(m.Body)), &d); err != nil {
		return err
	}
	return h.svc.Due(ctx, d)
}

// reconcile is the OutboundReconcile timer.
func (h *outboundHandlers) reconcile(ctx context.Context, _ funchost.Timer) error {
	res, err := h.svc.Reconcile(ctx)
	funchost.Logger(ctx).Info("outbound reconciled", "services", res.Services, "repaired", res.Repaired,
		"scheduled", res.Scheduled, "finished", res.Finished)
	return err
}

// outboundView is a task as the admin API shows it (the customer masked for a partner
// without the tenant's permission).
func outboundView(ctx context.Context, t outbound.Task) outbound.Task {
	t = t.Clone()
	t.Customer = adminFrom(ctx).mask.Customer(t.Customer)
	return t
}

// writeOutboundError answers the outbound errors that need more than WriteError: the
// cap (429 naming the limit and the count) and a task id conflict (409 naming taskId).
func writeOutboundError(w http.ResponseWriter, r *http.Request, err error) {
	var le *outbound.LimitError
	switch {
	case errors.As(err, &le):
		funchost.WriteJSON(w, http.StatusTooManyRequests, map[string]any{"error": map[string]any{
			"code": "OutboundLimitReached", "limit": le.Limit, "current": le.Current, "message": le.Error()}})
	case errors.Is(err, outbound.ErrTaskIDConflict):
		funchost.WriteJSON(w, http.StatusConflict, map[string]any{"error": map[string]any{
			"code": "conflict", "field": "taskId", "message": err.Error()}})
	default:
		funchost.WriteError(w, r, err)
	}
}

// schedule is POST .../outbound: 201 with the task when accepted, 200 with it again for
// a replay of the same request.
func (h *outboundHandlers) schedule(w http.ResponseWriter, r *http.Request) {
	ids, err := pathIDs(r, "tenantId", "serviceId")
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	var req outbound.Request
	if err := decodeStrict(r.Body, &req); err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	if req.TenantID != "" && !strings.EqualFold(req.TenantID, ids[0]) {
		funchost.WriteError(w, r, fault.Invalid("tenantId", "must be the path's tenant or left out"))
		return
	}
	if req.ServiceID != "" && req.ServiceID != ids[1] {
		funchost.WriteError(w, r, fault.Invalid("serviceId", "must be the path's service or left out"))
		return
	}
	req.TenantID, req.ServiceID = ids[0], ids[1]
	res, err := h.svc.Schedule(r.Context(), req)
	if err != nil {
		writeOutboundError(w, r, err)
		return
	}
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	funchost.WriteJSON(w, status, outboundView(r.Context(), res.Task))
}

// list is GET .../outbound: the service's live tasks.
func (h *outboundHandlers) list(w http.ResponseWriter, r *http.Request) {
	ids, err := pathIDs(r, "tenantId", "serviceId")
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	tasks, err := h.svc.List(r.Context(), ids[0], ids[1])
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	out := make([]outbound.Task, len(tasks))
	for i, t := range tasks {
		out[i] = outboundView(r.Context(), t)
	}
	funchost.WriteJSON(w, http.StatusOK, map[string]any{"tasks": out})
}

// cancel is DELETE .../outbound/{taskId}: cancels a scheduled task and frees its slot.
func (h *outboundHandlers) cancel(w http.ResponseWriter, r *http.Request) {
	ids, err := pathIDs(r, "tenantId", "serviceId")
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	t, err := h.svc.Cancel(r.Context(), ids[0], ids[1], r.PathValue("taskId"))
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	funchost.WriteJSON(w, http.StatusOK, outboundView(r.Context(), t))
}

// newOutboundHandlers wires the outbound service on the app's stores and engine.
func newOutboundHandlers(cfg config.Config, d deps, engine *routing.Engine) *outboundHandlers {
	store := d.outbound
	if store == nil {
		store, _ = d.routes.(outbound.Store)
	}
	return &outboundHandlers{svc: outbound.NewService(outbound.Options{Store: store, Tenants: d.tenants, Routes: d.routes,
		Router: engine, Sender: d.sender, Queue: cfg.Values["OutboundDueQueue"], Horizon: cfg.OutboundHorizon,
		Now: d.now, Log: funchost.Logger})}
}
