package main

import (
	"context"

	"github.com/teamscc/teamscc/shared/funchost"
	"github.com/teamscc/teamscc/shared/retention"
)

// newRetention is the provisioning run's retention, on the store routing uses when it
// implements retention.Store (both adapters do); nil otherwise.
func newRetention(d deps) *retention.Sweeper {
	st, ok := d.routes.(retention.Store)
	if !ok {
		return nil
	}
	return retention.NewSweeper(retention.Options{Store: st, Now: d.now, Budget: retention.DefaultBudget})
}

// applyRetention deletes what each tenant keeps no longer (and old parked messages),
// within the sweeper's time budget; what is left the next run continues. It logs the
// counts per kind, never an identifier of what was deleted; a failure is logged with
// its tenant and kind and tried again by the next run.
func (h *serviceAdmin) applyRetention(ctx context.Context, scopes []retention.Scope) {
	if h.retention == nil {
		return
	}
	rep := h.retention.Run(ctx, scopes)
	log := funchost.Logger(ctx)
	for _, f := range rep.Failures {
		log.Error("retention: not applied", "tenant", f.TenantID, "kind", string(f.Kind), "err", f.Err)
	}
	attrs := []any{"tenants", len(scopes), "calls", rep.Calls, "pending", rep.Pending, "failures", len(rep.Failures)}
	for _, k := range retention.Kinds {
		attrs = append(attrs, string(k), rep.Deleted[k])
	}
	log.Info("retention run", attrs...)
}
