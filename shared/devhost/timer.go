package devhost

import (
	"context"
	"errors"
	"time"
)

var errTimerRunning = errors.New("timer run still outstanding")

// timerData is Data.<binding> of a timer invocation.
type timerData struct {
	Schedule       timerSchedule   `json:"Schedule"`
	ScheduleStatus *scheduleStatus `json:"ScheduleStatus"`
	IsPastDue      bool            `json:"IsPastDue"`
}

type timerSchedule struct {
	AdjustForDST bool `json:"AdjustForDST"`
}

// runTimer fires fn on its schedule from 'start' until ctx is done. The next occurrence
// is computed from the clock after each tick, so missed occurrences are not caught up.
func (h *Host) runTimer(ctx context.Context, fn *function, start time.Time) {
	if fn.RunOnStartup {
		_ = h.fireTimer(fn, start, "startup")
	}
	next := fn.schedule.Next(start)
	for {
		wait := min(next.Sub(h.now()), h.poll)
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		now := h.now()
		if now.Before(next) {
			continue
		}
		if err := h.fireTimer(fn, next, "schedule"); errors.Is(err, errTimerRunning) {
			h.log.Warn("timer skipped: previous run still outstanding", "function", fn.Name, "occurrence", next)
		}
		next = fn.schedule.Next(now)
	}
}

// fireTimer starts one run of a timer function for the occurrence 'at'. Like the host it
// never runs a timer twice at once: it returns errTimerRunning while a run is
// outstanding. A failed run is logged and not retried.
func (h *Host) fireTimer(fn *function, at time.Time, why string) error {
	if !fn.running.CompareAndSwap(false, true) {
		return errTimerRunning
	}
	if !h.startInvocation() {
		fn.running.Store(false)
		return errors.New("host is shutting down")
	}
	fn.mu.Lock()
	var status *scheduleStatus
	if !fn.schedule.subMinute() {
		s := fn.status
		status = &s
	}
	fn.mu.Unlock()
	env := envelope{
		Data: map[string]any{fn.Binding: timerData{
			Schedule:       timerSchedule{AdjustForDST: true},
			ScheduleStatus: status,
		}},
		Metadata: map[string]any{"sys": h.sysMetadata(fn)},
	}
	id := newGUID()
	log := h.log.With("function", fn.Name, "invocationId", id)
	log.Info("timer fired", "reason", why, "occurrence", at)
	go func() {
		defer h.invocations.Done()
		defer fn.running.Store(false)
		status, err := h.invoke(h.invokeCtx, fn, id, env, log)
		switch {
		case err != nil:
			log.Error("timer run failed (not retried): handler unreachable", "error", err)
		case status/100 != 2:
			log.Error("timer run failed (not retried)", "status", status)
		default:
			log.Info("timer run succeeded", "status", status)
		}
		now := h.now()
		fn.mu.Lock()
		fn.status = scheduleStatus{Last: at, Next: fn.schedule.Next(at), LastUpdated: now}
		fn.mu.Unlock()
	}()
	return nil
}
