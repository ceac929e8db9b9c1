package userstate_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/tenant"
	"github.com/teamscc/teamscc/shared/userstate"
)

const tid = "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e"

var (
	t0       = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	services = []routing.Service{{TenantID: tid, ID: "sales", Type: routing.TeamsBased}}
)

func seen(mut func(*userstate.Seen)) userstate.Seen {
	s := userstate.Seen{Agent: routing.AgentState{TenantID: tid, AgentID: "a1", Services: []string{"sales"}},
		Presence: presence.Presence{AgentID: "a1", Availability: presence.Available, Source: presence.SourceExtended}, HasPresence: true}
	if mut != nil {
		mut(&s)
	}
	return s
}

// show renders records as "kind value start-end" with times as offsets from t0.
func show(rs []userstate.Record) string {
	var b strings.Builder
	for _, r := range rs {
		end := "open"
		if !r.Open() {
			end = r.End.Sub(t0).String()
		}
		fmt.Fprintf(&b, "%s %s %s-%s; ", r.Kind, r.Value, r.Start.Sub(t0), end)
	}
	return b.String()
}

func TestAFreshCursorOpensEveryKind(t *testing.T) {
	c, recs := userstate.Advance(userstate.Cursor{}, seen(nil), services, t0)
	want := "presence Available 0s-open; duty OnDuty 0s-open; routing Idle 0s-open; selectable Selectable 0s-open; "
	if show(recs) != want || c.AgentID != "a1" || !c.At.Equal(t0) {
		t.Fatalf("records = %s\nwant       %s", show(recs), want)
	}
}

func TestStatesThatEndByThemselvesGetTheirTrueEnd(t *testing.T) {
	c, _ := userstate.Advance(userstate.Cursor{}, seen(nil), services, t0)
	// Ringing from 10 s, answered at 20 s, ended at 80 s with 20 s of ACW.
	ring := func(s *userstate.Seen) {
		s.Agent.Hold = &routing.Hold{Phase: routing.HoldOffered, Since: t0.Add(10 * time.Second), Until: t0.Add(45 * time.Second)}
	}
	c, recs := userstate.Advance(c, seen(ring), services, t0.Add(10*time.Second))
	if want := "routing Idle 0s-10s; routing Ringing 10s-open; selectable Selectable 0s-10s; selectable NotSelectable 10s-open; "; show(recs) != want {
		t.Fatalf("ring: %s\nwant  %s", show(recs), want)
	}
	c, _ = userstate.Advance(c, seen(func(s *userstate.Seen) {
		s.Agent.Hold = &routing.Hold{Phase: routing.HoldConnected, Since: t0.Add(20 * time.Second), Until: t0.Add(8 * time.Hour)}
	}), services, t0.Add(20*time.Second))
	c, _ = userstate.Advance(c, seen(func(s *userstate.Seen) { s.Agent.ACWUntil = t0.Add(100 * time.Second) }), services, t0.Add(80*time.Second))
	// Nobody writes when the ACW ends; the next observation (a presence change at
	// 300 s) records the end at 100 s, not at 300 s.
	c, recs = userstate.Advance(c, seen(func(s *userstate.Seen) {
		s.Agent.ACWUntil = t0.Add(100 * time.Second)
		s.Presence.Availability = presence.Away
	}), services, t0.Add(300*time.Second))
	// Not selectable from the ring (10 s) to the end of ACW: one record.
	want := "routing ACW 1m20s-1m40s; routing Idle 1m40s-open; selectable NotSelectable 10s-1m40s; selectable Selectable 1m40s-5m0s; " +
		"presence Available 0s-5m0s; presence Away 5m0s-open; selectable NotSelectable 5m0s-open; "
	if show(recs) != want {
		t.Fatalf("after ACW: %s\nwant        %s", show(recs), want)
	}
	if !c.At.Equal(t0.Add(300 * time.Second)) {
		t.Fatalf("cursor at %v", c.At)
	}
}

func TestRecordsNeverSpanAUTCMidnight(t *testing.T) {
	start := time.Date(2026, 11, 23, 22, 0, 0, 0, time.UTC)
	c, _ := userstate.Advance(userstate.Cursor{}, seen(nil), services, start)
	_, recs := userstate.Advance(c, seen(func(s *userstate.Seen) { s.Presence.Availability = presence.Offline }), services, start.Add(27*time.Hour))
	var presenceRecs []string
	for _, r := range recs {
		if r.Kind == userstate.KindPresence {
			end := "open"
			if !r.Open() {
				end = r.End.Format("01-02T15")
			}
			presenceRecs = append(presenceRecs, r.Value+" "+r.Start.Format("01-02T15")+".."+end)
		}
		if !r.Open() && userstate.DayStart(r.Start) != userstate.DayStart(r.End.Add(-time.Nanosecond)) {
			t.Fatalf("record spans a midnight: %+v", r)
		}
	}
	want := "[Available 11-23T22..11-24T00 Available 11-24T00..11-25T00 Available 11-25T00..11-25T01 Offline 11-25T01..open]"
	if fmt.Sprint(presenceRecs) != want {
		t.Fatalf("presence records = %v\nwant %s", presenceRecs, want)
	}
}

func TestCloseEndsEveryOpenRecord(t *testing.T) {
	c, _ := userstate.Advance(userstate.Cursor{}, seen(func(s *userstate.Seen) { s.Agent.RONAUntil = t0.Add(time.Minute) }), services, t0)
	recs := userstate.Close(c, services, t0.Add(2*time.Minute))
	want := "routing RONA 0s-1m0s; routing Idle 1m0s-2m0s; selectable NotSelectable 0s-1m0s; selectable Selectable 1m0s-2m0s; " +
		"presence Available 0s-2m0s; duty OnDuty 0s-2m0s; "
	if show(recs) != want {
		t.Fatalf("close: %s\nwant   %s", show(recs), want)
	}
}

func TestSelectableFollowsEveryRule(t *testing.T) {
	off := func(s *userstate.Seen) { s.Agent.Duty.OffDuty = true }
	inactive := func(s *userstate.Seen) { s.Agent.Inactive = []string{"sales"} }
	busy := func(s *userstate.Seen) { s.Presence.Availability = presence.Busy }
	unknown := func(s *userstate.Seen) { s.HasPresence = false }
	skill := []routing.Service{{TenantID: tid, ID: "s2", Type: routing.SkillBased}}
	for name, tc := range map[string]struct {
		mut  func(*userstate.Seen)
		svcs []routing.Service
		want string
	}{
		"available member":             {nil, services, userstate.Selectable},
		"inactive in its only service": {inactive, services, userstate.NotSelectable},
		"busy, service refuses busy":   {busy, services, userstate.NotSelectable},
		"busy, service allows busy": {busy, []routing.Service{{TenantID: tid, ID: "sales", Type: routing.TeamsBased,
			Distribution: routing.Distribution{AllowBusy: true}}}, userstate.Selectable},
		"presence unknown":          {unknown, services, userstate.NotSelectable},
		"off duty, skill service":   {func(s *userstate.Seen) { off(s); s.Agent.Duty.Services = []string{"s2"} }, skill, userstate.NotSelectable},
		"on duty for skill service": {func(s *userstate.Seen) { s.Agent.Duty.Services = []string{"s2"} }, skill, userstate.Selectable},
		"service pending deletion": {nil, []routing.Service{{TenantID: tid, ID: "sales", Type: routing.TeamsBased, PendingDeletion: true}},
			userstate.NotSelectable},
	} {
		_, recs := userstate.Advance(userstate.Cursor{}, seen(tc.mut), tc.svcs, t0)
		if got := recs[3].Value; got != tc.want {
			t.Errorf("%s: selectable = %s; want %s", name, got, tc.want)
		}
	}
}

func TestFilterRules(t *testing.T) {
	for _, tc := range []struct{ in, agent, kind, value, err string }{
		{"agentId eq 'a1'", "a1", "", "", ""},
		{"kind eq 'routing' and value eq 'ACW'", "", "routing", "ACW", ""},
		{"  agentId eq 'o''brien'   AND kind eq 'presence' ", "o'brien", "presence", "", ""},
		{"agentId ne 'a1'", "", "", "", "only eq"},
		{"start eq 'x'", "", "", "", "unknown property start"},
		{"kind eq 'mood'", "", "", "", "kind must be one of"},
		{"agentId eq a1", "", "", "", "quoted string"},
		{"agentId eq 'a1", "", "", "", "unterminated"},
		{"agentId eq 'a1' or kind eq 'duty'", "", "", "", "joined by and"},
		{"agentId eq 'a1' and agentId eq 'a2'", "", "", "", "named twice"},
		{"agentId eq 'a1' and", "", "", "", "nothing after and"},
	} {
		var q userstate.Query
		err := userstate.ParseFilter(tc.in, &q)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "$filter") {
				t.Errorf("%q: err = %v; want one naming $filter and %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || q.AgentID != tc.agent || string(q.Kind) != tc.kind || q.Value != tc.value {
			t.Errorf("%q: %+v %v", tc.in, q, err)
		}
	}
}

// racingStore runs a slower observer's stale commit just before the first commit it
// sees, so that commit loses its condition.
type racingStore struct {
	*inmem.Store
	before func()
}

func (s *racingStore) CommitUserStates(ctx context.Context, c userstate.Cursor, remove bool, recs []userstate.Record) error {
	if f := s.before; f != nil {
		s.before = nil
		f()
	}
	return s.Store.CommitUserStates(ctx, c, remove, recs)
}

func TestAnObserverThatLosesTheRaceRecordsTheLatestState(t *testing.T) {
	ctx := context.Background()
	mem := inmem.New()
	tn := tenant.Tenant{ID: tid}
	tn.Privacy.TrackUserStates = true
	_ = mem.PutTenant(ctx, tn)
	_ = mem.PutService(ctx, services[0])
	_ = mem.SavePresences(ctx, tid, []presence.Presence{{AgentID: "a1", Availability: presence.Available, Source: presence.SourceExtended}})
	if _, err := mem.ReplaceAgentState(ctx, seen(nil).Agent); err != nil {
		t.Fatal(err)
	}
	now := t0
	s := &racingStore{Store: mem}
	tr := userstate.NewTracker(userstate.Options{Store: s, Routes: mem, Tenants: mem, Presences: mem, Now: func() time.Time { return now }, TenantCacheTTL: -1})
	if err := tr.ObserveAgent(ctx, tid, "a1"); err != nil {
		t.Fatal(err)
	}
	c0, _ := mem.GetUserStateCursor(ctx, tid, "a1")
	// The agent starts ringing at +10 s, and the stale observer — which read the cursor
	// and the agent before that — commits "Idle, observed at +5 s" first.
	now = t0.Add(10 * time.Second)
	if _, err := mem.UpdateAgentState(ctx, tid, "a1", func(a *routing.AgentState) error {
		a.Hold = &routing.Hold{Phase: routing.HoldOffered, Since: now, Until: now.Add(time.Minute)}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.before = func() {
		stale, recs := userstate.Advance(c0, c0.Seen, services, t0.Add(5*time.Second))
		if err := mem.CommitUserStates(ctx, stale, false, recs); err != nil {
			t.Errorf("stale commit: %v", err)
		}
	}
	if err := tr.ObserveAgent(ctx, tid, "a1"); err != nil {
		t.Fatal(err)
	}
	recs, _, _ := mem.ListUserStates(ctx, tid, userstate.Query{From: t0, To: t0.Add(time.Hour), Kind: userstate.KindRouting})
	if want := "routing Idle 0s-10s; routing Ringing 10s-open; "; show(recs) != want {
		t.Fatalf("routing records = %s; want %s (the loser must retry, not give up)", show(recs), want)
	}
}

func TestTrackingOffRecordsNothing(t *testing.T) {
	ctx := context.Background()
	mem := inmem.New()
	_ = mem.PutTenant(ctx, tenant.Tenant{ID: tid})
	_, _ = mem.ReplaceAgentState(ctx, seen(nil).Agent)
	tr := userstate.NewTracker(userstate.Options{Store: mem, Routes: mem, Tenants: mem, Presences: mem, TenantCacheTTL: -1})
	if err := tr.ObserveAgent(ctx, tid, "a1"); err != nil {
		t.Fatal(err)
	}
	if _, err := mem.GetUserStateCursor(ctx, tid, "a1"); err == nil || !strings.Contains(err.Error(), fault.ErrNotFound.Error()) {
		t.Fatalf("a tenant without tracking got a cursor (%v)", err)
	}
}
