package tables

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/storetest"
)

func TestCallsConformance(t *testing.T) {
	needAzurite(t)
	storetest.Calls(t, func(t *testing.T) calls.Store { return openAzurite(t) })
}

// Round trips: UpdateCall is a read and a conditional write when uncontended;
// DueCalls is one query per page of 1,000; CreateCall and GetCall one request each.
func TestCallsRoundTrips(t *testing.T) {
	s := openAzurite(t)
	ctx := context.Background()
	const tid = "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e"
	now := time.Now().UTC()
	count := func(what string, want int64, f func() error) {
		t.Helper()
		before := s.RoundTrips()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := s.RoundTrips() - before; got != want {
			t.Errorf("%s: %d round trips; want %d", what, got, want)
		}
	}
	for i := 0; i < 5; i++ {
		id := fmt.Sprintf("421f0c00-83a1-4b3a-a9b0-5d4e2c1f7a1%d", i)
		count("create", 1, func() error {
			_, err := s.CreateCall(ctx, calls.Call{TenantID: tid, ID: id, Phase: calls.PhaseAnswering, Created: now, NextAt: now})
			return err
		})
		count("get", 1, func() error { _, err := s.GetCall(ctx, tid, id); return err })
		count("update", 2, func() error {
			_, err := s.UpdateCall(ctx, tid, id, func(c *calls.Call) error { c.Phase = calls.PhaseQueued; return nil })
			return err
		})
	}
	count("due calls", 1, func() error {
		due, err := s.DueCalls(ctx, tid, now)
		if err == nil && len(due) != 5 {
			err = fmt.Errorf("%d due; want 5", len(due))
		}
		return err
	})
}

// The copy columns are what people reading the table see: typed, NextAt only when set.
func TestCallsColumns(t *testing.T) {
	s := openAzurite(t)
	ctx := context.Background()
	const tid = "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e"
	created := time.Date(2026, 11, 24, 10, 30, 15, 123_456_789, time.UTC)
	c := calls.Call{TenantID: tid, ID: "o-t1", Direction: calls.Outbound, ServiceID: "sales", Phase: calls.PhaseDialing,
		Created: created, NextAt: created.Add(time.Minute)}
	if _, err := s.CreateCall(ctx, c); err != nil {
		t.Fatal(err)
	}
	read := func() record {
		t.Helper()
		resp, err := s.client(tableCalls).GetEntity(ctx, tid, "o-t1", nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := decodeRecord(resp.Value)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := read()
	for name, want := range map[string]string{"Phase": "Dialing", "Direction": "Outbound", "ServiceId": "sales",
		"Created@odata.type": "Edm.DateTime", "NextAt@odata.type": "Edm.DateTime"} {
		if got := r.str(name); got != want {
			t.Errorf("%s = %q; want %q", name, got, want)
		}
	}
	if string(r["Open"]) != "true" {
		t.Errorf("Open = %s; want true", r["Open"])
	}
	if got, err := r.time("NextAt"); err != nil || !got.Equal(created.Add(time.Minute).Truncate(100*time.Nanosecond)) {
		t.Errorf("NextAt = %v, %v", got, err)
	}
	if _, err := s.UpdateCall(ctx, tid, "o-t1", func(c *calls.Call) error {
		c.Phase, c.NextAt = calls.PhaseEnded, time.Time{}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r = read()
	if r.has("NextAt") || string(r["Open"]) != "false" || r.str("Phase") != "Ended" {
		t.Errorf("after the call ended: NextAt present %v, Open %s, Phase %q; want absent, false, Ended", r.has("NextAt"), r["Open"], r.str("Phase"))
	}
}
