package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/fault"
)

// Calls is the conformance suite of calls.Store. newStore must return an empty,
// isolated store each call. It checks that every field survives a round trip (times
// by Equal), that creates and updates are exclusive under races (one create wins, no
// update is lost, a conditional transition happens once), that an update's fn is the
// only writer (its error writes nothing, the ids stay), the Call limits, and that
// DueCalls returns exactly the calls due at an instant, across pages.
func Calls(t *testing.T, newStore func(t *testing.T) calls.Store) {
	t.Run("RoundTrip", func(t *testing.T) { testCallRoundTrip(t, newStore(t)) })
	t.Run("CreateExistingIsConflict", func(t *testing.T) { testCallCreateTwice(t, newStore(t)) })
	t.Run("Missing", func(t *testing.T) { testCallMissing(t, newStore(t)) })
	t.Run("Update", func(t *testing.T) { testCallUpdate(t, newStore(t)) })
	t.Run("UpdateErrorWritesNothing", func(t *testing.T) { testCallUpdateError(t, newStore(t)) })
	t.Run("UpdateKeepsIDs", func(t *testing.T) { testCallUpdateKeepsIDs(t, newStore(t)) })
	t.Run("Limits", func(t *testing.T) { testCallLimits(t, newStore(t)) })
	t.Run("LargeCall", func(t *testing.T) { testCallLarge(t, newStore(t)) })
	t.Run("DueCalls", func(t *testing.T) { testDueCalls(t, newStore(t)) })
	t.Run("DueCallsFollowsEveryPage", func(t *testing.T) { testDueCallsPages(t, newStore(t)) })
	t.Run("ConcurrentUpdatesLoseNothing", func(t *testing.T) { testCallUpdateRace(t, newStore(t)) })
	t.Run("ConcurrentCreatesOneWinner", func(t *testing.T) { testCallCreateRace(t, newStore(t)) })
	t.Run("ConcurrentTransitionOneWinner", func(t *testing.T) { testCallTransitionRace(t, newStore(t)) })
}

// Call ids as the store sees them: a platform call id (inbound) and "o-" + an
// outbound task id.
const (
	callIn  = "421f0c00-83a1-4b3a-a9b0-5d4e2c1f7a10"
	callOut = "o-7c1e9a52-0b7d-4d8e-9f3a-6b2c1d0e4f58"
)

// fullCall is a call with every field set (fullCallTest checks that none is zero, so
// a field added to calls.Call must be added here). Some times carry nanoseconds and
// a zone other than UTC: stores keep the instant, compared with Equal.
func fullCall(id string) calls.Call {
	cet := time.FixedZone("CET", 3600)
	return calls.Call{
		TenantID: tenantA, ID: id, GraphID: "5a1f0c00-83a1-4b3a-a9b0-5d4e2c1f7a11",
		Direction: calls.Outbound, ServiceID: "support", TaskID: "t-42",
		FirstService: "sales", FirstServicePSTN: true,
		Caller:       calls.Party{Kind: calls.Phone, ID: "+15555550100"},
		Customer:     calls.Party{Kind: calls.User, ID: "0d1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5e6"},
		DirectInvite: true,
		Phase:        calls.PhaseConnected,
		Media:        calls.Media{Kind: calls.MediaMusic, Context: "music-3", Since: at.Add(2 * time.Second).In(cet), Seq: 3},
		Exit:         calls.ExitTransferFailed, Exits: 2,
		CustomerParticipant: "p-customer", Agent: "agent01", AgentParticipant: "p-agent", AgentJoined: true, Group: true,
		LegBase: 5,
		Legs: []calls.Leg{
			{N: 5, AgentID: "agent02", ServiceID: "sales", TaskID: "t-41", Attempt: 1, CallID: "leg-0", State: calls.LegCancelled,
				At: at.Add(3 * time.Second), Deadline: at.Add(23 * time.Second)},
			{N: 6, AgentID: "agent01", ServiceID: "support", TaskID: "t-42", Attempt: 2, CallID: "leg-1", State: calls.LegJoined,
				At: at.Add(30*time.Second + 7*time.Nanosecond), Deadline: at.Add(50 * time.Second).In(cet)},
		},
		Created:     at,
		AnsweredAt:  at.Add(time.Second),
		ConnectedAt: at.Add(31 * time.Second),
		EndedAt:     at.Add(10 * time.Minute),
		EndReason:   "caller hung up",
		KeepAliveAt: at.Add(40 * time.Minute).In(cet),
		Due:         at.Add(11*time.Minute + 5*time.Nanosecond).In(cet),
		NextAt:      at.Add(45*time.Minute + 3*time.Nanosecond),
		Steps: []calls.Step{
			{At: at, What: "answered", Agent: "agent00", Detail: "first"},
			{At: at.Add(31 * time.Second), What: "connected", Agent: "agent01", Detail: "Zürich ☎ 😀"},
		},
		StepsDropped: 4,
		ETag:         "ignored on create",
	}
}

// zeroFields lists the zero fields of v (a struct), descending into structs other
// than time.Time and into the last element of slices.
func zeroFields(v reflect.Value, path string) []string {
	var out []string
	for i := 0; i < v.NumField(); i++ {
		f, name := v.Field(i), path+v.Type().Field(i).Name
		switch {
		case name == "ETag":
		case f.IsZero():
			out = append(out, name)
		case f.Kind() == reflect.Struct && f.Type() != reflect.TypeFor[time.Time]():
			out = append(out, zeroFields(f, name+".")...)
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct:
			out = append(out, zeroFields(f.Index(f.Len()-1), name+"[last].")...)
		}
	}
	return out
}

// normCall makes every time UTC without a monotonic reading, so reflect.DeepEqual
// compares instants (time.Time.Equal) and everything else exactly.
func normCall(c calls.Call) calls.Call {
	c = c.Clone()
	utcTimes(reflect.ValueOf(&c).Elem())
	return c
}

// utcTimes replaces every time.Time in v (settable) by its UTC form, through structs
// and slices.
func utcTimes(v reflect.Value) {
	switch {
	case v.Type() == reflect.TypeFor[time.Time]():
		v.Set(reflect.ValueOf(v.Interface().(time.Time).UTC()))
	case v.Kind() == reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				utcTimes(v.Field(i))
			}
		}
	case v.Kind() == reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			utcTimes(v.Index(i))
		}
	}
}

// sameCall fails t unless got is want with every instant Equal and the ETag etag.
func sameCall(t *testing.T, what string, got, want calls.Call, etag string) {
	t.Helper()
	want.ETag = etag
	if g, w := normCall(got), normCall(want); !reflect.DeepEqual(g, w) {
		gj, _ := json.Marshal(g)
		wj, _ := json.Marshal(w)
		t.Fatalf("%s:\n got %s (ETag %q)\nwant %s (ETag %q)", what, gj, g.ETag, wj, w.ETag)
	}
}

func mustCreateCall(t *testing.T, s calls.Store, c calls.Call) calls.Call {
	t.Helper()
	got, err := s.CreateCall(context.Background(), c)
	if err != nil {
		t.Fatalf("create call %s: %v", c.ID, err)
	}
	if got.ETag == "" {
		t.Fatalf("create call %s: no ETag", c.ID)
	}
	return got
}

func mustGetCall(t *testing.T, s calls.Store, tenantID, id string) calls.Call {
	t.Helper()
	got, err := s.GetCall(context.Background(), tenantID, id)
	if err != nil {
		t.Fatalf("get call %s: %v", id, err)
	}
	return got
}

func testCallRoundTrip(t *testing.T, s calls.Store) {
	in := fullCall(callIn)
	if zero := zeroFields(reflect.ValueOf(in), ""); len(zero) > 0 {
		t.Fatalf("the fixture leaves %v zero: set them so the round trip covers them", zero)
	}
	for _, c := range []calls.Call{in, fullCall(callOut)} {
		created := mustCreateCall(t, s, c)
		sameCall(t, "create returns", created, c, created.ETag)
		sameCall(t, "get returns", mustGetCall(t, s, tenantA, c.ID), c, created.ETag)
	}
	// The value handed to CreateCall is the caller's: changing it later changes nothing.
	c := fullCall("c3")
	created := mustCreateCall(t, s, c)
	c.Legs[0].State, c.Steps[0].What = calls.LegEnded, "changed"
	created.Legs[1].State, created.Steps[1].What = calls.LegEnded, "changed"
	sameCall(t, "a stored call shares no memory with the caller's", mustGetCall(t, s, tenantA, "c3"), fullCall("c3"), created.ETag)
	// A call without the optional fields comes back without them.
	bare := calls.Call{TenantID: tenantA, ID: "bare", Direction: calls.Inbound, ServiceID: "sales", FirstService: "sales",
		Phase: calls.PhaseAnswering, Created: at}
	created = mustCreateCall(t, s, bare)
	sameCall(t, "bare call", mustGetCall(t, s, tenantA, "bare"), bare, created.ETag)
}

func testCallCreateTwice(t *testing.T, s calls.Store) {
	ctx := context.Background()
	first := fullCall(callIn)
	created := mustCreateCall(t, s, first)
	second := fullCall(callIn)
	second.Phase, second.ServiceID = calls.PhaseQueued, "billing"
	if _, err := s.CreateCall(ctx, second); !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("second create = %v; want fault.ErrConflict", err)
	}
	sameCall(t, "a refused create leaves the call", mustGetCall(t, s, tenantA, callIn), first, created.ETag)
	// The same id in another tenant is another call.
	other := second
	other.TenantID = tenantB
	mustCreateCall(t, s, other)
	if got := mustGetCall(t, s, tenantB, callIn); got.ServiceID != "billing" || got.TenantID != tenantB {
		t.Fatalf("other tenant's call = %+v", got)
	}
	if got := mustGetCall(t, s, tenantA, callIn); got.ServiceID != first.ServiceID {
		t.Fatalf("tenant A's call changed with tenant B's: %+v", got)
	}
}

func testCallMissing(t *testing.T, s calls.Store) {
	ctx := context.Background()
	_, err := s.GetCall(ctx, tenantA, callIn)
	mustNotFound(t, "get of an unknown call", err)
	called := false
	_, err = s.UpdateCall(ctx, tenantA, callIn, func(*calls.Call) error { called = true; return nil })
	mustNotFound(t, "update of an unknown call", err)
	if called {
		t.Fatal("fn ran for a call that does not exist")
	}
	mustCreateCall(t, s, fullCall(callIn))
	_, err = s.GetCall(ctx, tenantB, callIn)
	mustNotFound(t, "get of another tenant's call", err)
	_, err = s.UpdateCall(ctx, tenantB, callIn, func(*calls.Call) error { return nil })
	mustNotFound(t, "update of another tenant's call", err)
}

func testCallUpdate(t *testing.T, s calls.Store) {
	ctx := context.Background()
	in := fullCall(callIn)
	in.Phase, in.NextAt = calls.PhaseQueued, at.Add(time.Minute)
	created := mustCreateCall(t, s, in)
	want := in.Clone()
	want.Phase, want.NextAt, want.Agent = calls.PhaseOffering, time.Time{}, "agent07"
	want.Legs = append(want.Legs, calls.Leg{N: 2, AgentID: "agent07", ServiceID: "support", TaskID: "t-42", Attempt: 3,
		State: calls.LegDialing, At: at.Add(time.Hour), Deadline: at.Add(time.Hour + 20*time.Second)})
	want.Steps = append(want.Steps, calls.Step{At: at.Add(time.Hour), What: "offered", Agent: "agent07"})
	got, err := s.UpdateCall(ctx, tenantA, callIn, func(c *calls.Call) error {
		if c.ETag != created.ETag {
			return fmt.Errorf("fn got ETag %q; want the stored %q", c.ETag, created.ETag)
		}
		if g, w := normCall(*c), normCall(created); !reflect.DeepEqual(g, w) {
			return fmt.Errorf("fn got %+v; want the stored call", *c)
		}
		c.Phase, c.NextAt, c.Agent = want.Phase, want.NextAt, want.Agent
		c.Legs = append(c.Legs, want.Legs[2])
		c.Steps = append(c.Steps, want.Steps[2])
		return nil
	})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if got.ETag == "" || got.ETag == created.ETag {
		t.Fatalf("update returned ETag %q; want a new one (was %q)", got.ETag, created.ETag)
	}
	sameCall(t, "update returns the stored value", got, want, got.ETag)
	sameCall(t, "get after update", mustGetCall(t, s, tenantA, callIn), want, got.ETag)
	// An update that changes nothing still writes a new version.
	again, err := s.UpdateCall(ctx, tenantA, callIn, func(*calls.Call) error { return nil })
	if err != nil || again.ETag == got.ETag {
		t.Fatalf("empty update = ETag %q, %v; want a new ETag", again.ETag, err)
	}
	sameCall(t, "empty update", again, want, again.ETag)
}

func testCallUpdateError(t *testing.T, s calls.Store) {
	ctx := context.Background()
	in := fullCall(callIn)
	created := mustCreateCall(t, s, in)
	boom := errors.New("boom")
	_, err := s.UpdateCall(ctx, tenantA, callIn, func(c *calls.Call) error {
		c.Phase, c.NextAt = calls.PhaseEnded, time.Time{}
		c.Steps = append(c.Steps, calls.Step{At: at, What: "ended"})
		return boom
	})
	if err != boom { // identity, not errors.Is: the contract returns fn's error as is
		t.Fatalf("update whose fn fails = %v; want fn's error as is", err)
	}
	sameCall(t, "a failed update wrote", mustGetCall(t, s, tenantA, callIn), in, created.ETag)
}

func testCallUpdateKeepsIDs(t *testing.T, s calls.Store) {
	ctx := context.Background()
	mustCreateCall(t, s, fullCall(callIn))
	got, err := s.UpdateCall(ctx, tenantA, callIn, func(c *calls.Call) error {
		c.TenantID, c.ID, c.Phase = tenantB, "renamed", calls.PhaseEnded
		return nil
	})
	if err != nil || got.TenantID != tenantA || got.ID != callIn || got.Phase != calls.PhaseEnded {
		t.Fatalf("update changing the ids = %s/%s %s, %v; want %s/%s Ended", got.TenantID, got.ID, got.Phase, err, tenantA, callIn)
	}
	if cur := mustGetCall(t, s, tenantA, callIn); cur.TenantID != tenantA || cur.ID != callIn || cur.Phase != calls.PhaseEnded || cur.ETag != got.ETag {
		t.Fatalf("stored after an update changing the ids: %s/%s %s %q", cur.TenantID, cur.ID, cur.Phase, cur.ETag)
	}
	for _, k := range [][2]string{{tenantB, "renamed"}, {tenantA, "renamed"}, {tenantB, callIn}} {
		_, err := s.GetCall(ctx, k[0], k[1])
		mustNotFound(t, "a call under the ids fn set", err)
	}
}

// testCallLimits: a call without its keys, or with more than calls.MaxSteps steps, is
// refused with a *fault.FieldError and nothing is written.
func testCallLimits(t *testing.T, s calls.Store) {
	ctx := context.Background()
	var fe *fault.FieldError
	for _, c := range []calls.Call{{ID: callIn, Phase: calls.PhaseAnswering}, {TenantID: tenantA, Phase: calls.PhaseAnswering}} {
		if _, err := s.CreateCall(ctx, c); !errors.As(err, &fe) {
			t.Fatalf("create %q/%q = %v; want a *fault.FieldError", c.TenantID, c.ID, err)
		}
	}
	steps := func(n int) []calls.Step {
		out := make([]calls.Step, n)
		for i := range out {
			out[i] = calls.Step{At: at.Add(time.Duration(i) * time.Second), What: "prompt", Detail: fmt.Sprint(i)}
		}
		return out
	}
	over := fullCall(callIn)
	over.Steps = steps(calls.MaxSteps + 1)
	if _, err := s.CreateCall(ctx, over); !errors.As(err, &fe) {
		t.Fatalf("create with %d steps = %v; want a *fault.FieldError", len(over.Steps), err)
	}
	_, err := s.GetCall(ctx, tenantA, callIn)
	mustNotFound(t, "a refused create", err)
	full := fullCall(callIn)
	full.Steps = steps(calls.MaxSteps)
	created := mustCreateCall(t, s, full)
	if _, err := s.UpdateCall(ctx, tenantA, callIn, func(c *calls.Call) error {
		c.Steps = append(c.Steps, calls.Step{At: at, What: "one too many"})
		return nil
	}); !errors.As(err, &fe) {
		t.Fatalf("update to %d steps = %v; want a *fault.FieldError", calls.MaxSteps+1, err)
	}
	sameCall(t, "a refused update wrote", mustGetCall(t, s, tenantA, callIn), full, created.ETag)
}

// testCallLarge: a long call (a full timeline, hundreds of offer legs, text outside
// the BMP) is stored whole, even when its JSON is far beyond 64 KiB.
func testCallLarge(t *testing.T, s calls.Store) {
	ctx := context.Background()
	c := fullCall(callIn)
	c.Steps = c.Steps[:0]
	for i := 0; i < calls.MaxSteps; i++ {
		c.Steps = append(c.Steps, calls.Step{At: at.Add(time.Duration(i) * time.Second), What: "offered",
			Agent: fmt.Sprintf("0d1e2f3a-4b5c-4d6e-8f70-%012d", i), Detail: strings.Repeat("Zürich ☎ 😀 ", 8)})
	}
	for i := 2; i < 400; i++ {
		c.Legs = append(c.Legs, calls.Leg{N: i, AgentID: fmt.Sprintf("0d1e2f3a-4b5c-4d6e-8f70-%012d", i), ServiceID: "support",
			TaskID: "t-42", Attempt: i, CallID: fmt.Sprintf("5a1f0c00-83a1-4b3a-a9b0-%012d", i), State: calls.LegEnded,
			At: at.Add(time.Duration(i) * time.Second), Deadline: at.Add(time.Duration(i+20) * time.Second)})
	}
	j, _ := json.Marshal(c)
	if units := len(utf16.Encode([]rune(string(j)))); units < 3*32<<10 {
		t.Fatalf("the fixture's JSON is %d UTF-16 units; it must be well over 64 KiB to prove anything", units)
	}
	created := mustCreateCall(t, s, c)
	sameCall(t, "large call", mustGetCall(t, s, tenantA, callIn), c, created.ETag)
	// Shrinking it leaves nothing of the longer version behind.
	got, err := s.UpdateCall(ctx, tenantA, callIn, func(c *calls.Call) error {
		c.Legs, c.Steps = c.Legs[:1], c.Steps[:1]
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := c.Clone()
	want.Legs, want.Steps = want.Legs[:1], want.Steps[:1]
	sameCall(t, "shrunk call", mustGetCall(t, s, tenantA, callIn), want, got.ETag)
	due, err := s.DueCalls(ctx, tenantA, c.NextAt)
	if err != nil || len(due) != 1 {
		t.Fatalf("due = %d calls, %v; want the shrunk call", len(due), err)
	}
	sameCall(t, "shrunk call, listed", due[0], want, got.ETag)
}

// dueIDs returns the ids of the tenant's calls due at t, sorted, after checking that
// each carries its stored ETag and value.
func dueIDs(t *testing.T, s calls.Store, tenantID string, at time.Time) []string {
	t.Helper()
	due, err := s.DueCalls(context.Background(), tenantID, at)
	if err != nil {
		t.Fatalf("due calls at %v: %v", at, err)
	}
	ids := []string{}
	for _, c := range due {
		if c.TenantID != tenantID {
			t.Fatalf("due calls of %s returned a call of %s", tenantID, c.TenantID)
		}
		stored := mustGetCall(t, s, tenantID, c.ID)
		sameCall(t, "a due call as listed", c, stored, stored.ETag)
		ids = append(ids, c.ID)
	}
	slices.Sort(ids)
	return ids
}

func testDueCalls(t *testing.T, s calls.Store) {
	ctx := context.Background()
	if ids := dueIDs(t, s, tenantA, at); len(ids) != 0 {
		t.Fatalf("due calls of an empty store: %v", ids)
	}
	put := func(tenantID, id string, next time.Time, phase calls.Phase) {
		t.Helper()
		mustCreateCall(t, s, calls.Call{TenantID: tenantID, ID: id, Direction: calls.Inbound, ServiceID: "sales", FirstService: "sales",
			Phase: phase, Created: at.Add(-time.Hour), NextAt: next})
	}
	put(tenantA, "past", at.Add(-time.Minute), calls.PhaseQueued)
	put(tenantA, "now", at, calls.PhaseGreeting)
	put(tenantA, "ended-overdue", at.Add(-time.Hour), calls.PhaseEnded) // due: the reconciler decides what to do
	put(tenantA, "later", at.Add(time.Second), calls.PhaseQueued)
	put(tenantA, "ns-later", at.Add(50*time.Nanosecond), calls.PhaseQueued) // within Table storage's 100 ns tick of t
	put(tenantA, "never", time.Time{}, calls.PhaseConnected)
	put(tenantA, "ended", time.Time{}, calls.PhaseEnded)
	put(tenantB, "other-tenant", at.Add(-time.Hour), calls.PhaseQueued)
	put(tenantA, "cet", at.Add(-time.Second).In(time.FixedZone("CET", 3600)), calls.PhaseQueued) // an instant, whatever its zone

	want := []string{"cet", "ended-overdue", "now", "past"}
	if ids := dueIDs(t, s, tenantA, at); !slices.Equal(ids, want) {
		t.Fatalf("due at t = %v; want %v (0 < NextAt <= t, this tenant)", ids, want)
	}
	if ids := dueIDs(t, s, tenantA, at.In(time.FixedZone("PST", -8*3600))); !slices.Equal(ids, want) {
		t.Fatalf("due at t in another zone = %v; want %v", ids, want)
	}
	if ids := dueIDs(t, s, tenantA, at.Add(-time.Minute-time.Nanosecond)); !slices.Equal(ids, []string{"ended-overdue"}) {
		t.Fatalf("due just before the earliest but one = %v", ids)
	}
	if ids := dueIDs(t, s, tenantA, time.Time{}); len(ids) != 0 {
		t.Fatalf("due at the zero time = %v; want none", ids)
	}
	if ids := dueIDs(t, s, tenantB, at); !slices.Equal(ids, []string{"other-tenant"}) {
		t.Fatalf("due of tenant B = %v", ids)
	}
	if ids := dueIDs(t, s, "5b6c7d8e-9f00-4112-8233-445566778899", at.Add(24*time.Hour)); len(ids) != 0 {
		t.Fatalf("due of a tenant with no calls = %v", ids)
	}
	// Moving a call's NextAt later, or clearing it, drops it; setting one adds it.
	for id, next := range map[string]time.Time{"past": at.Add(time.Hour), "now": {}, "never": at.Add(-time.Second)} {
		if _, err := s.UpdateCall(ctx, tenantA, id, func(c *calls.Call) error { c.NextAt = next; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	want = []string{"cet", "ended-overdue", "never"}
	if ids := dueIDs(t, s, tenantA, at); !slices.Equal(ids, want) {
		t.Fatalf("due after moving NextAt = %v; want %v", ids, want)
	}
	want = []string{"cet", "ended-overdue", "later", "never", "ns-later", "past"}
	if ids := dueIDs(t, s, tenantA, at.Add(time.Hour)); !slices.Equal(ids, want) {
		t.Fatalf("due an hour later = %v; want %v", ids, want)
	}
	far := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	if ids := dueIDs(t, s, tenantA, far); !slices.Equal(ids, want) {
		t.Fatalf("due at the end of the year 9999 = %v; want %v", ids, want)
	}
}

// testDueCallsPages: more due calls than one page of Table storage (1,000) are all
// returned.
func testDueCallsPages(t *testing.T, s calls.Store) {
	ctx := context.Background()
	const n, workers = 1030, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n+5; i += workers {
				next := at.Add(-time.Duration(i) * time.Second)
				if i >= n {
					next = at.Add(time.Duration(i) * time.Second)
				}
				c := calls.Call{TenantID: tenantA, ID: fmt.Sprintf("c%04d", i), Direction: calls.Inbound, ServiceID: "sales",
					FirstService: "sales", Phase: calls.PhaseQueued, Created: at, NextAt: next}
				if _, err := s.CreateCall(ctx, c); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("create: %v", err)
	}
	due, err := s.DueCalls(ctx, tenantA, at)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range due {
		if seen[c.ID] {
			t.Fatalf("call %s returned twice", c.ID)
		}
		seen[c.ID] = true
	}
	if len(due) != n {
		t.Fatalf("%d due calls; want %d", len(due), n)
	}
	for i := 0; i < n; i++ {
		if id := fmt.Sprintf("c%04d", i); !seen[id] {
			t.Fatalf("due call %s missing", id)
		}
	}
}

// testCallUpdateRace: N concurrent updates each append one step: all N are there.
func testCallUpdateRace(t *testing.T, s calls.Store) {
	ctx := context.Background()
	base := fullCall(callIn)
	base.Steps = nil
	mustCreateCall(t, s, base)
	const n = 16
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.UpdateCall(ctx, tenantA, callIn, func(c *calls.Call) error {
				c.Steps = append(c.Steps, calls.Step{At: at, What: "step", Detail: fmt.Sprint(i)})
				return nil
			}); err != nil {
				t.Errorf("update %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	got := mustGetCall(t, s, tenantA, callIn)
	var details []string
	for _, st := range got.Steps {
		details = append(details, st.Detail)
	}
	slices.Sort(details)
	var want []string
	for i := 0; i < n; i++ {
		want = append(want, fmt.Sprint(i))
	}
	slices.Sort(want)
	if !slices.Equal(details, want) {
		t.Fatalf("after %d concurrent appends the steps are %v; want one from each (an update was lost)", n, details)
	}
}

// testCallCreateRace: N concurrent creates of one id: exactly one wins, the others are
// fault.ErrConflict, and the stored call is the winner's.
func testCallCreateRace(t *testing.T, s calls.Store) {
	ctx := context.Background()
	won := oneWinner(t, 16, is(fault.ErrConflict), "fault.ErrConflict", func(i int) error {
		c := fullCall(callIn)
		c.ServiceID = fmt.Sprint("svc", i)
		_, err := s.CreateCall(ctx, c)
		return err
	})
	if got := mustGetCall(t, s, tenantA, callIn); got.ServiceID != fmt.Sprint("svc", won) {
		t.Fatalf("stored call is %s's; want the winner's (svc%d)", got.ServiceID, won)
	}
}

// testCallTransitionRace: N concurrent updates each move the call from Queued to
// Connecting only if it is Queued: exactly one does, the others see Connecting.
func testCallTransitionRace(t *testing.T, s calls.Store) {
	ctx := context.Background()
	base := fullCall(callIn)
	base.Phase, base.Agent = calls.PhaseQueued, ""
	mustCreateCall(t, s, base)
	notQueued := errors.New("not queued")
	// Identity: fn's error comes back as is.
	won := oneWinner(t, 16, func(err error) bool { return err == notQueued }, "fn's error as is", func(i int) error {
		_, err := s.UpdateCall(ctx, tenantA, callIn, func(c *calls.Call) error {
			if c.Phase != calls.PhaseQueued {
				return notQueued
			}
			c.Phase, c.Agent = calls.PhaseConnecting, fmt.Sprint("agent", i)
			return nil
		})
		return err
	})
	if got := mustGetCall(t, s, tenantA, callIn); got.Phase != calls.PhaseConnecting || got.Agent != fmt.Sprint("agent", won) {
		t.Fatalf("stored %s with agent %q; want Connecting with the winner's agent%d", got.Phase, got.Agent, won)
	}
}
