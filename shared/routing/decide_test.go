package routing

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/presence"
)

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

func pres(a presence.Availability, act string, src presence.Source) presence.Presence {
	return presence.Presence{Availability: a, Activity: act, Source: src}
}

func TestPresencePolicy(t *testing.T) {
	ext, basic := presence.SourceExtended, presence.SourceBasic
	for _, tc := range []struct {
		name       string
		p          presence.Presence
		busy, away bool
		want       string
		noPresence bool
	}{
		{"available", pres(presence.Available, "Available", ext), false, false, "", false},
		{"available idle", pres(presence.AvailableIdle, "Available", ext), false, false, "", false},
		{"busy not allowed", pres(presence.Busy, "Busy", ext), false, false, ReasonBusy, false},
		{"busy allowed", pres(presence.Busy, "Busy", ext), true, false, "", false},
		{"busy in a meeting allowed", pres(presence.Busy, presence.ActivityInAMeeting, ext), true, false, "", false},
		{"extended: in a call never, even with Busy allowed", pres(presence.Busy, presence.ActivityInACall, ext), true, true, ReasonInACall, false},
		{"extended: conference call never", pres(presence.Busy, presence.ActivityInAConferenceCall, ext), true, true, ReasonInConference, false},
		{"simulated counts as extended", pres(presence.Busy, presence.ActivityInACall, presence.SourceSimulated), true, true, ReasonInACall, false},
		{"basic: Busy allowed may hide a call", pres(presence.Busy, "", basic), true, false, "", false},
		{"basic: do not distribute while Busy", pres(presence.Busy, "", basic), false, false, ReasonBusy, false},
		{"away not allowed", pres(presence.Away, "Away", ext), true, false, ReasonAway, false},
		{"away allowed", pres(presence.Away, "Away", ext), false, true, "", false},
		{"brb allowed with away", pres(presence.BeRightBack, "BeRightBack", ext), false, true, "", false},
		{"dnd never", pres(presence.DoNotDisturb, "DoNotDisturb", ext), true, true, ReasonDoNotDisturb, false},
		{"presenting never", pres(presence.DoNotDisturb, presence.ActivityPresenting, ext), true, true, ReasonPresenting, false},
		{"offline never", pres(presence.Offline, "Offline", ext), true, true, ReasonOffline, false},
		{"unknown never", pres(presence.PresenceUnknown, "", ext), true, true, ReasonUnknown, false},
		{"no presence never", presence.Presence{}, true, true, ReasonNoPresence, true},
	} {
		d := &Distribution{AllowBusy: tc.busy, AllowAway: tc.away}
		if got := PresenceReason(tc.p, !tc.noPresence, d); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func agent(id string, services ...string) AgentState {
	return AgentState{TenantID: "t", AgentID: id, Services: services}
}

func available(ids ...string) map[string]presence.Presence {
	m := map[string]presence.Presence{}
	for _, id := range ids {
		m[id] = presence.Presence{AgentID: id, Availability: presence.Available, Activity: "Available", Source: presence.SourceExtended}
	}
	return m
}

// members pairs agents with their presence (by agent id) as a service's roster does.
func members(agents []AgentState, p map[string]presence.Presence) []Member {
	out := make([]Member, len(agents))
	for i, a := range agents {
		x, ok := p[a.AgentID]
		out[i] = Member{State: a, Presence: x, HasPresence: ok}
	}
	return out
}

func reasons(d Decision) map[string]string {
	out := map[string]string{}
	for _, e := range d.Entries {
		out[e.AgentID] = e.Reason + e.Detail
	}
	return out
}

func TestEveryRuleHasItsReason(t *testing.T) {
	now := t0
	svc := Service{TenantID: "t", ID: "sales", Type: TeamsBased}
	agents := []AgentState{
		agent("ok", "sales"),
		agent("other-service", "support"),
		{TenantID: "t", AgentID: "inactive", Services: []string{"sales"}, Inactive: []string{"sales"}},
		{TenantID: "t", AgentID: "ringing-elsewhere", Services: []string{"sales"}, Hold: &Hold{ServiceID: "support", TaskID: "x", Phase: HoldOffered, Until: now.Add(time.Second)}},
		{TenantID: "t", AgentID: "connected-elsewhere", Services: []string{"sales"}, Hold: &Hold{ServiceID: "billing", TaskID: "y", Phase: HoldConnected, Until: now.Add(time.Hour)}},
		{TenantID: "t", AgentID: "lapsed-reservation", Services: []string{"sales"}, Hold: &Hold{ServiceID: "support", TaskID: "z", Phase: HoldOffered, Until: now}},
		{TenantID: "t", AgentID: "rona", Services: []string{"sales"}, RONAUntil: now.Add(time.Minute), RONAReason: ResultNoAnswer},
		{TenantID: "t", AgentID: "rona-over", Services: []string{"sales"}, RONAUntil: now},
		{TenantID: "t", AgentID: "acw", Services: []string{"sales"}, ACWUntil: now.Add(time.Second)},
		agent("in-call", "sales"),
		agent("no-presence", "sales"),
	}
	p := available("ok", "inactive", "ringing-elsewhere", "connected-elsewhere", "lapsed-reservation", "rona", "rona-over", "acw")
	p["in-call"] = presence.Presence{Availability: presence.Busy, Activity: presence.ActivityInACall, Source: presence.SourceExtended}
	d := Decide(Input{Service: svc, Task: Task{ID: "task", Created: now}, Members: members(agents, p), Now: now})
	want := map[string]string{
		"ok": ReasonEligible, "inactive": ReasonInactive, "ringing-elsewhere": ReasonRinging, "connected-elsewhere": ReasonConnected,
		"lapsed-reservation": ReasonEligible, "rona": ReasonRONA + ResultNoAnswer, "rona-over": ReasonEligible, "acw": ReasonACW,
		"in-call": ReasonInACall, "no-presence": ReasonNoPresence,
	}
	got := reasons(d)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("reasons:\n got %v\nwant %v", got, want)
	}
	if got := order(&d); len(got) != 3 || d.Eligible() != 3 {
		t.Errorf("order %v; want the 3 eligible", got)
	}

	// Skill-based: duty and skills with levels, relaxing with waiting time.
	sk := Service{TenantID: "t", ID: "support", Type: SkillBased, Distribution: Distribution{
		Skills: []SkillRequirement{{Skill: "de", MinLevel: 5}},
		Relax:  []RelaxStep{{AfterSeconds: 60, Skills: []SkillRequirement{{Skill: "de", MinLevel: 2}}}}}}
	agents = []AgentState{
		{AgentID: "expert", Duty: Duty{Services: []string{"support"}}, Skills: map[string]int{"de": 7}},
		{AgentID: "novice", Duty: Duty{Services: []string{"support"}}, Skills: map[string]int{"de": 3}},
		{AgentID: "off-duty", Services: []string{"support"}, Duty: Duty{OffDuty: true}, Skills: map[string]int{"de": 9}},
		{AgentID: "not-on-duty", Services: []string{"support"}, Skills: map[string]int{"de": 9}},
		{AgentID: "skill-off-duty", Duty: Duty{Services: []string{"support"}, Skills: []string{"fr"}}, Skills: map[string]int{"de": 9}},
		{AgentID: "stranger", Skills: map[string]int{"de": 9}},
	}
	p = available("expert", "novice", "off-duty", "not-on-duty", "skill-off-duty", "stranger")
	d = Decide(Input{Service: sk, Task: Task{ID: "t", Created: now}, Members: members(agents, p), Now: now})
	want = map[string]string{"expert": ReasonEligible, "novice": ReasonMissingSkill + "de ≥ 5", "off-duty": ReasonOffDuty,
		"not-on-duty": ReasonNotOnDuty, "skill-off-duty": ReasonMissingSkill + "de ≥ 5"}
	if got := reasons(d); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("skill-based:\n got %v\nwant %v", got, want)
	}
	d = Decide(Input{Service: sk, Task: Task{ID: "t", Created: now.Add(-61 * time.Second)}, Members: members(agents, p), Now: now})
	if got := reasons(d); got["novice"] != ReasonEligible || d.Eligible() != 2 {
		t.Errorf("after 61 s the requirement relaxes to de ≥ 2: %v", got)
	}

	// A pending-deletion service routes nothing.
	svc.PendingDeletion = true
	if d := Decide(Input{Service: svc, Members: members([]AgentState{agent("ok", "sales")}, available("ok")), Now: now}); d.Eligible() != 0 || d.Ranked(0) != -1 {
		t.Errorf("pending deletion routed %v", order(&d))
	}
}

// order is the whole ranking, asked for k = 0, 1, … as the engine does.
func order(d *Decision) []int {
	var out []int
	for k := 0; ; k++ {
		i := d.Ranked(k)
		if i < 0 {
			return out
		}
		out = append(out, i)
	}
}

func ids(in Input, d Decision) []string {
	var out []string
	for _, i := range order(&d) {
		out = append(out, in.Members[i].State.AgentID)
	}
	return out
}

func TestStrategiesOrderTheEligible(t *testing.T) {
	now := t0
	mk := func(id string, idle time.Duration, offered time.Duration, de int) AgentState {
		a := agent(id, "s")
		a.LastCallEnded = now.Add(-idle)
		a.LastOffered = map[string]time.Time{"s": now.Add(-offered)}
		a.Skills = map[string]int{"de": de}
		return a
	}
	agents := []AgentState{mk("a", 1*time.Minute, 5*time.Minute, 1), mk("b", 10*time.Minute, 1*time.Minute, 9), mk("c", 5*time.Minute, 10*time.Minute, 5)}
	p := available("a", "b", "c")
	for _, tc := range []struct {
		d    Distribution
		want string
	}{
		{Distribution{}, "[b c a]"}, // longest idle
		{Distribution{Strategy: RoundRobin}, "[c a b]"},
		{Distribution{Strategy: Serial, SerialOrder: []string{"c", "a"}}, "[c a b]"},
		{Distribution{Strategy: Serial}, "[a b c]"},
		{Distribution{Strategy: Broadcast}, "[b c a]"},
		{Distribution{Strategy: BestSkill, Skills: []SkillRequirement{{Skill: "de"}}}, "[b c a]"},
		{Distribution{Strategy: WeightedRandom, Weights: map[string]int{"a": 0, "c": 0}}, "[b]"},
	} {
		in := Input{Service: Service{ID: "s", Type: TeamsBased, Distribution: tc.d}, Task: Task{ID: "t", Created: now}, Members: members(agents, p), Now: now}
		if got := fmt.Sprint(ids(in, Decide(in))); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.d.Strategy, got, tc.want)
		}
	}
	// Weighted random follows the weights: b (weight 8) first about 8 times in 10.
	in := Input{Service: Service{ID: "s", Type: TeamsBased, Distribution: Distribution{Strategy: WeightedRandom, Weights: map[string]int{"a": 1, "b": 8, "c": 1}}},
		Task: Task{ID: "t", Created: now}, Members: members(agents, p), Now: now, Rand: rand.New(rand.NewPCG(1, 2))}
	first := map[string]int{}
	for range 2000 {
		first[ids(in, Decide(in))[0]]++
	}
	if first["b"] < 1450 || first["b"] > 1750 || first["a"] < 100 || first["c"] < 100 {
		t.Errorf("weighted draw off: %v", first)
	}
	// Agents who already let the task go come last, only when nobody else is eligible.
	in = Input{Service: Service{ID: "s", Type: TeamsBased}, Task: Task{ID: "t", Created: now, Tried: []string{"b"}}, Members: members(agents, p), Now: now}
	d := Decide(in)
	if got := fmt.Sprint(ids(in, d)); got != "[c a]" || reasons(d)["b"] != ReasonAlreadyTried {
		t.Errorf("tried agent: %s %v", got, reasons(d))
	}
	in.Task.Tried = []string{"a", "b", "c"}
	if got := fmt.Sprint(ids(in, Decide(in))); got != "[b c a]" {
		t.Errorf("everybody tried: %s; want all again", got)
	}
}

func TestTaskOrderIsPriorityThenAge(t *testing.T) {
	old := Task{ID: "old", Priority: Normal, Created: t0}
	young := Task{ID: "young", Priority: Normal, Created: t0.Add(time.Second)}
	high := Task{ID: "high", Priority: High, Created: t0.Add(time.Minute)}
	strict := Task{ID: "strict", Priority: Strict, Created: t0.Add(time.Hour)}
	if !old.Before(young) || !high.Before(old) || !strict.Before(high) || young.Before(old) {
		t.Fatal("order must be Strict > High > Normal, then oldest first")
	}
}

func TestServiceValidation(t *testing.T) {
	ok := Service{TenantID: "t", ID: "sales", Type: TeamsBased}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mut  func(*Service)
		want string
	}{
		{func(s *Service) { s.Type = "x" }, "type"},
		{func(s *Service) { s.ID = "a/b" }, "serviceId"},
		{func(s *Service) { s.Distribution.RONA.ResetSeconds = 5 }, "distribution.rona.resetSeconds: must be 10..28800 (10 s .. 8 h)"},
		{func(s *Service) { s.Distribution.RONA.ResetSeconds = 28801 }, "distribution.rona.resetSeconds"},
		{func(s *Service) { s.Distribution.Strategy = "Random" }, "distribution.strategy"},
		{func(s *Service) { s.Distribution.BroadcastN = 51 }, "distribution.broadcastN"},
	} {
		s := ok
		tc.mut(&s)
		if err := s.Validate(); err == nil || !contains(err.Error(), tc.want) {
			t.Errorf("%v; want %q", err, tc.want)
		}
	}
	if d := (Service{Distribution: Distribution{RONA: RONASettings{Enabled: true, Persistent: true}}}).RONAFor(); d != 10*time.Minute {
		t.Errorf("persistent RONA default %v; want 10 min", d)
	}
	if d := (Service{}).ACW(); d != 20*time.Second {
		t.Errorf("ACW default %v; want 20 s", d)
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub))
}

// referenceDecide is the straightforward algorithm Decider replaced: rank every
// eligible member, drop those who already tried when somebody untried is eligible,
// sort everything. Kept as the specification the lazy ranking must agree with. The
// only addition is the last tie-break on the member index, which makes the order total
// when an agent id is listed twice (the sort used to leave that unspecified).
func referenceDecide(in Input) (entries []Entry, entryOf []int32, required []SkillRequirement, order []int) {
	svc := &in.Service
	entries = make([]Entry, 0, len(in.Members))
	entryOf = make([]int32, len(in.Members))
	required = svc.Requirements(in.Now.Sub(in.Task.Created))
	if svc.PendingDeletion || svc.Type == None {
		for i := range entryOf {
			entryOf[i] = -1
		}
		return entries, entryOf, required, nil
	}
	strategy := svc.Strategy()
	type rankedRef struct {
		idx   int
		key   float64
		key2  int64
		tried bool
	}
	var rank []rankedRef
	var rng *rand.Rand
	if strategy == WeightedRandom {
		rng = in.Rand
		if rng == nil {
			rng = rand.New(rand.NewPCG(seed(in.Task.ID), uint64(in.Task.Attempts)))
		}
	}
	var serialPos map[string]int
	if strategy == Serial && len(svc.Distribution.SerialOrder) > 0 {
		serialPos = make(map[string]int, len(svc.Distribution.SerialOrder))
		for i, id := range svc.Distribution.SerialOrder {
			serialPos[id] = i
		}
	}
	untried := 0
	for i := range in.Members {
		a := &in.Members[i].State
		if !member(svc, a) {
			entryOf[i] = -1
			continue
		}
		entryOf[i] = int32(len(entries))
		reason, detail := eligible(svc, a, required, in.Now, time.Time{})
		if reason == "" {
			m := &in.Members[i]
			reason = PresenceReason(m.Presence, m.HasPresence, &svc.Distribution)
		}
		var w int
		if reason == "" && strategy == WeightedRandom {
			w = 1
			if v, ok := svc.Distribution.Weights[a.AgentID]; ok {
				w = v
			}
			if w <= 0 {
				reason = ReasonZeroWeight
			}
		}
		if reason != "" {
			entries = append(entries, Entry{AgentID: a.AgentID, Reason: reason, Detail: detail})
			continue
		}
		tried := slices.Contains(in.Task.Tried, a.AgentID)
		if !tried {
			untried++
		}
		entries = append(entries, Entry{AgentID: a.AgentID, Reason: ReasonEligible})
		r := rankedRef{idx: i, tried: tried}
		switch strategy {
		case RoundRobin:
			r.key2 = a.LastOffered[svc.ID].UnixNano()
		case Serial:
			r.key = math.MaxFloat64
			if p, ok := serialPos[a.AgentID]; ok {
				r.key = float64(p)
			}
		case WeightedRandom:
			r.key = rng.ExpFloat64() / float64(w)
		case BestSkill:
			r.key = -float64(skillScore(a, required))
			r.key2 = a.IdleSince().UnixNano()
		default:
			r.key2 = a.IdleSince().UnixNano()
		}
		rank = append(rank, r)
	}
	if untried > 0 && untried < len(rank) {
		kept := rank[:0]
		for _, r := range rank {
			if r.tried {
				entries[entryOf[r.idx]].Reason = ReasonAlreadyTried
				continue
			}
			kept = append(kept, r)
		}
		rank = kept
	}
	slices.SortFunc(rank, func(x, y rankedRef) int {
		if c := cmp.Compare(x.key, y.key); c != 0 {
			return c
		}
		if c := cmp.Compare(x.key2, y.key2); c != 0 {
			return c
		}
		if c := cmp.Compare(in.Members[x.idx].State.AgentID, in.Members[y.idx].State.AgentID); c != 0 {
			return c
		}
		return cmp.Compare(x.idx, y.idx)
	})
	for _, r := range rank {
		order = append(order, r.idx)
	}
	return entries, entryOf, required, order
}

// randomInput draws a service, a task and n members that exercise every rule and every
// tie: few distinct idle and offer times, repeated ids now and then, serial orders
// and tried lists short (linear search) and long (map), weights of 0, skills with
// relax steps, supplied and seeded random draws.
func randomInput(r *rand.Rand, n int) (in Input, rngSeed [2]uint64) {
	now := t0
	pick := func(p float64) bool { return r.Float64() < p }
	id := func() string { return fmt.Sprintf("a%02d", r.IntN(n*2+1)) }
	svc := Service{TenantID: "t", ID: "s", Type: TeamsBased}
	if pick(0.4) {
		svc.Type = SkillBased
	}
	if pick(0.02) {
		svc.Type = None
	}
	if pick(0.02) {
		svc.PendingDeletion = true
	}
	d := &svc.Distribution
	if i := r.IntN(len(strategies) + 1); i < len(strategies) {
		d.Strategy = strategies[i]
	}
	d.AllowBusy, d.AllowAway = pick(0.5), pick(0.5)
	d.BroadcastN = r.IntN(4)
	for range r.IntN(3) * r.IntN(n/2+2) {
		d.SerialOrder = append(d.SerialOrder, id())
	}
	if pick(0.7) {
		d.Weights = map[string]int{}
		for range r.IntN(n + 1) {
			d.Weights[id()] = r.IntN(4)
		}
	}
	skills := []string{"de", "fr", "en"}
	reqs := func() []SkillRequirement {
		var out []SkillRequirement
		for range r.IntN(3) {
			out = append(out, SkillRequirement{Skill: skills[r.IntN(len(skills))], MinLevel: r.IntN(4)})
		}
		return out
	}
	d.Skills = reqs()
	if pick(0.3) {
		d.Relax = []RelaxStep{{AfterSeconds: 30, Skills: reqs()}}
	}
	task := Task{ID: fmt.Sprintf("task-%d", r.IntN(5)), Attempts: r.IntN(3), Created: now.Add(-time.Duration(r.IntN(60)) * time.Second)}
	for range r.IntN(3) * r.IntN(n/2+2) {
		task.Tried = append(task.Tried, id())
	}
	times := func() time.Time { return now.Add(-time.Duration(r.IntN(4)) * time.Minute) }
	avail := []presence.Availability{presence.Available, presence.AvailableIdle, presence.Busy, presence.Away, presence.BeRightBack, presence.DoNotDisturb, presence.Offline, presence.PresenceUnknown}
	acts := []string{"Available", presence.ActivityInACall, presence.ActivityInAMeeting, presence.ActivityPresenting, ""}
	srcs := []presence.Source{presence.SourceExtended, presence.SourceBasic}
	for i := range n {
		a := AgentState{TenantID: "t", AgentID: fmt.Sprintf("a%02d", i)}
		if pick(0.03) {
			a.AgentID = id() // now and then an id twice
		}
		if pick(0.85) {
			a.Services = []string{"x", "s"}
		}
		if pick(0.1) {
			a.Inactive = []string{"s"}
		}
		if pick(0.7) {
			a.Duty.Services = []string{"s"}
		}
		a.Duty.OffDuty = pick(0.1)
		if pick(0.2) {
			a.Duty.Skills = []string{skills[r.IntN(len(skills))]}
		}
		if pick(0.9) {
			a.Skills = map[string]int{}
			for _, s := range skills {
				if pick(0.7) {
					a.Skills[s] = r.IntN(5)
				}
			}
		}
		if pick(0.1) {
			a.Hold = &Hold{Phase: []HoldPhase{HoldOffered, HoldConnected}[r.IntN(2)], Until: now.Add(time.Duration(r.IntN(3)-1) * time.Second)}
		}
		if pick(0.1) {
			a.RONAUntil, a.RONAReason = now.Add(time.Duration(r.IntN(3)-1)*time.Second), ResultNoAnswer
		}
		if pick(0.1) {
			a.ACWUntil = now.Add(time.Duration(r.IntN(3)-1) * time.Second)
		}
		if pick(0.8) {
			a.LastCallEnded = times()
		}
		if pick(0.3) {
			a.ACWUntil = times()
		}
		if pick(0.8) {
			a.LastOffered = map[string]time.Time{"x": now}
			if pick(0.9) {
				a.LastOffered["s"] = times()
			}
		}
		m := Member{State: a, HasPresence: pick(0.95)}
		if m.HasPresence {
			av := presence.Available
			if pick(0.3) {
				av = avail[r.IntN(len(avail))]
			}
			act := "Available"
			if pick(0.2) {
				act = acts[r.IntN(len(acts))]
			}
			m.Presence = presence.Presence{AgentID: a.AgentID, Availability: av, Activity: act, Source: srcs[r.IntN(len(srcs))]}
		}
		in.Members = append(in.Members, m)
	}
	if pick(0.2) { // everybody eligible tried: they are all ranked again
		for _, m := range in.Members {
			task.Tried = append(task.Tried, m.State.AgentID)
		}
	}
	in.Service, in.Task, in.Now = svc, task, now
	if pick(0.2) {
		rngSeed = [2]uint64{r.Uint64(), r.Uint64()}
	}
	return in, rngSeed
}

func withRand(in Input, s [2]uint64) Input {
	if s != ([2]uint64{}) {
		in.Rand = rand.New(rand.NewPCG(s[0], s[1]))
	}
	return in
}

// TestDeciderAgreesWithTheFullSort compares the lazy ranking with referenceDecide on
// random inputs for every strategy: the explanation entries, the member → entry map,
// the requirements and the whole order (every k, as after lost races), through the
// package function and through one Decider reused for all inputs, so that stale
// buffers of a bigger or smaller previous decision would show.
func TestDeciderAgreesWithTheFullSort(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	var dr Decider
	perStrategy := map[Strategy]int{}
	for iter := range 3000 {
		n := []int{0, 1, 2, 3, 5, 10, 30, 120}[r.IntN(8)]
		in, s := randomInput(r, n)
		entries, entryOf, required, want := referenceDecide(withRand(in, s))
		perStrategy[in.Service.Strategy()] += len(want)
		check := func(path string, d *Decision) {
			t.Helper()
			if !slices.Equal(d.Entries, entries) || !slices.Equal(d.EntryOf, entryOf) || !slices.Equal(d.Required, required) {
				t.Fatalf("%d %s %s: entries\n got %v %v\nwant %v %v", iter, path, in.Service.Strategy(), d.Entries, d.EntryOf, entries, entryOf)
			}
			if d.Eligible() != len(want) {
				t.Fatalf("%d %s: %d eligible, want %d", iter, path, d.Eligible(), len(want))
			}
			if got := order(d); !slices.Equal(got, want) {
				t.Fatalf("%d %s %s (tried %v): order\n got %v\nwant %v", iter, path, in.Service.Strategy(), in.Task.Tried, got, want)
			}
			if d.Ranked(len(want)) != -1 || d.Ranked(-1) != -1 {
				t.Fatalf("%d %s: ranked beyond the eligible", iter, path)
			}
		}
		d := Decide(withRand(in, s))
		check("Decide", &d)
		check("Decider", dr.Decide(withRand(in, s)))
		// Any k in any order: the engine asks in order, but nothing may depend on it.
		d2 := dr.Decide(withRand(in, s))
		for _, k := range r.Perm(len(want) + 1) {
			if k < len(want) && d2.Ranked(k) != want[k] || k == len(want) && d2.Ranked(k) != -1 {
				t.Fatalf("%d: Ranked(%d) = %d out of order; want %v", iter, k, d2.Ranked(k), want)
			}
		}
	}
	for _, st := range strategies {
		if perStrategy[st] < 1000 {
			t.Errorf("%s: only %d members ranked over all inputs; the test must exercise every strategy", st, perStrategy[st])
		}
	}
}

func TestRankedOnAZeroDecision(t *testing.T) {
	var d Decision
	if d.Ranked(0) != -1 || d.Eligible() != 0 {
		t.Fatal("a zero Decision ranks nobody")
	}
}

// referenceExplain is the explanation as it was built before: clone every entry, count
// with a map, stable-sort by reason class, truncate.
func referenceExplain(t *Task, svc *Service, d *Decision, now time.Time, chosen []string) *Explain {
	reasonOrder := map[string]int{ReasonChosen: 0, ReasonLostRace: 1, ReasonEligible: 2, ReasonAlreadyTried: 3}
	e := &Explain{TaskID: t.ID, ServiceID: svc.ID, Attempt: t.Attempts, At: now, Strategy: svc.Strategy(),
		Required: slices.Clone(d.Required), Considered: len(d.Entries), Chosen: chosen, Counts: map[string]int{}}
	agents := slices.Clone(d.Entries)
	for _, a := range agents {
		e.Counts[a.Reason]++
		if a.Reason == ReasonChosen || a.Reason == ReasonEligible || a.Reason == ReasonLostRace {
			e.Eligible++
		}
	}
	slices.SortStableFunc(agents, func(x, y Entry) int {
		ox, okx := reasonOrder[x.Reason]
		oy, oky := reasonOrder[y.Reason]
		if !okx {
			ox = 9
		}
		if !oky {
			oy = 9
		}
		return ox - oy
	})
	if len(agents) > MaxExplainAgents {
		e.Truncated = len(agents) - MaxExplainAgents
		agents = agents[:MaxExplainAgents]
	}
	e.Agents = agents
	switch {
	case svc.PendingDeletion:
		e.Note = "the service is pending deletion: nothing is routed"
	case svc.Type == None:
		e.Note = "a service of type None has no agents"
	case len(chosen) == 0 && e.Considered == 0:
		e.Note = "the service has no agents"
	case len(chosen) == 0:
		e.Note = "no eligible agent: the task waits for the next kick"
	}
	return e
}

// TestExplainKeepsTheOldRecordAndNoneOfTheDecidersMemory: the explanation equals the
// one built by clone-and-sort (with chosen and lost races marked as the engine does,
// fewer and more than MaxExplainAgents), and it does not change when the Decider
// decides the next task.
func TestExplainKeepsTheOldRecordAndNoneOfTheDecidersMemory(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	var dr Decider
	for iter := range 500 {
		n := []int{0, 4, 60, 99, 100, 101, 250}[r.IntN(7)]
		in, _ := randomInput(r, n)
		d := dr.Decide(in)
		var chosen []string
		for k := 0; k < 1+r.IntN(4); k++ {
			idx := d.Ranked(k)
			if idx < 0 {
				break
			}
			e := &d.Entries[d.EntryOf[idx]]
			if r.IntN(3) == 0 {
				e.Reason = ReasonLostRace
				continue
			}
			e.Reason = ReasonChosen
			chosen = append(chosen, e.AgentID)
		}
		got := explain(&in.Task, &in.Service, d, t0, chosen)
		want := referenceExplain(&in.Task, &in.Service, d, t0, chosen)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%d: explanation\n got %+v\nwant %+v", iter, got, want)
		}
		kept := got.Clone()
		next, _ := randomInput(r, 120)
		dd := dr.Decide(next)
		for i := range dd.Entries {
			dd.Entries[i].Reason = ReasonChosen
		}
		if !reflect.DeepEqual(got, &kept) {
			t.Fatalf("%d: the explanation changed with the Decider's next decision", iter)
		}
	}
}

// benchMembers builds n members of service "s". With all false, half are skipped
// (RONA, ACW, a hold elsewhere, Busy); with all true every one is eligible.
func benchMembers(n int, all bool) []Member {
	agents := make([]AgentState, n)
	p := make(map[string]presence.Presence, n)
	for i := range agents {
		id := fmt.Sprintf("agent-%05d", i)
		a := AgentState{TenantID: "t", AgentID: id, Services: []string{"s"}, Duty: Duty{Services: []string{"s"}},
			Skills: map[string]int{"de": 2 + i%8, "fr": i % 7}, LastCallEnded: t0.Add(-time.Duration(i*37%1000) * time.Second),
			LastOffered: map[string]time.Time{"s": t0.Add(-time.Duration(i*53%1000) * time.Second)}}
		av := presence.Available
		if !all {
			a.Skills["de"] = i % 10
			switch i % 8 {
			case 1:
				a.RONAUntil = t0.Add(time.Minute)
			case 2:
				a.ACWUntil = t0.Add(time.Second)
			case 3:
				a.Hold = &Hold{ServiceID: "x", TaskID: "y", Phase: HoldConnected, Until: t0.Add(time.Hour)}
			case 4:
				av = presence.Busy
			}
		}
		agents[i] = a
		p[id] = presence.Presence{AgentID: id, Availability: av, Activity: string(av), Source: presence.SourceExtended}
	}
	return members(agents, p)
}

func benchService(st Strategy) Service {
	svc := Service{TenantID: "t", ID: "s", Type: TeamsBased, Distribution: Distribution{Strategy: st}}
	if st == BestSkill {
		svc.Type = SkillBased
		svc.Distribution.Skills = []SkillRequirement{{Skill: "de", MinLevel: 2}}
	}
	return svc
}

// TestDeciderDoesNotAllocateOnceWarm: in steady state (the same Decider, task after
// task of one kick) a decision and its first few ranks allocate nothing, including
// MissingSkill details, a long serial order and a long tried list.
func TestDeciderDoesNotAllocateOnceWarm(t *testing.T) {
	ms := benchMembers(300, false)
	var tried, serial []string
	for i := range 40 {
		tried = append(tried, ms[i*3].State.AgentID)
		serial = append(serial, ms[i*5].State.AgentID)
	}
	var dr Decider
	for _, st := range strategies {
		svc := benchService(st)
		svc.Distribution.SerialOrder = serial
		in := Input{Service: svc, Task: Task{ID: "task-1", Created: t0, Tried: tried}, Members: ms, Now: t0}
		allocs := testing.AllocsPerRun(20, func() {
			d := dr.Decide(in)
			for k := range 12 {
				d.Ranked(k)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per decision; want 0", st, allocs)
		}
	}
}

// BenchmarkDecide: one task among n members, per strategy, as the engine uses a
// decision: decide, then take the best (Broadcast: the best BroadcastN). mix=half has
// half the members skipped (presence, RONA, ACW, a hold, a missing skill); mix=all
// has every one eligible. path=Decide allocates its result; path=Decider reuses one
// Decider, as the engine deciding task after task in one kick.
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		for _, all := range []bool{false, true} {
			ms := benchMembers(n, all)
			mix := "half"
			if all {
				mix = "all"
			}
			for _, st := range strategies {
				svc := benchService(st)
				want := 1
				if st == Broadcast {
					want = svc.broadcastN()
				}
				in := Input{Service: svc, Task: Task{ID: "task-1", Created: t0}, Members: ms, Now: t0}
				take := func(d *Decision) {
					for k := range want {
						if d.Ranked(k) < 0 {
							b.Fatal("too few eligible")
						}
					}
				}
				b.Run(fmt.Sprintf("agents=%d/mix=%s/%s/path=Decide", n, mix, st), func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						d := Decide(in)
						take(&d)
					}
				})
				b.Run(fmt.Sprintf("agents=%d/mix=%s/%s/path=Decider", n, mix, st), func(b *testing.B) {
					b.ReportAllocs()
					var dr Decider
					take(dr.Decide(in)) // grow the buffers: the engine's steady state
					for b.Loop() {
						take(dr.Decide(in))
					}
				})
			}
		}
	}
}

// BenchmarkExplain: the record of a decision among n members, one chosen.
func BenchmarkExplain(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		in := Input{Service: benchService(LongestIdle), Task: Task{ID: "task-1", Created: t0}, Members: benchMembers(n, false), Now: t0}
		d := Decide(in)
		idx := d.Ranked(0)
		d.Entries[d.EntryOf[idx]].Reason = ReasonChosen
		chosen := []string{in.Members[idx].State.AgentID}
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				explain(&in.Task, &in.Service, &d, t0, chosen)
			}
		})
	}
}
