package routing

import (
	"fmt"
	"math/rand/v2"
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
	d := Decide(Input{Service: svc, Task: Task{ID: "task", Created: now}, Agents: agents, Presence: p, Now: now})
	want := map[string]string{
		"ok": ReasonEligible, "inactive": ReasonInactive, "ringing-elsewhere": ReasonRinging, "connected-elsewhere": ReasonConnected,
		"lapsed-reservation": ReasonEligible, "rona": ReasonRONA + ResultNoAnswer, "rona-over": ReasonEligible, "acw": ReasonACW,
		"in-call": ReasonInACall, "no-presence": ReasonNoPresence,
	}
	got := reasons(d)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("reasons:\n got %v\nwant %v", got, want)
	}
	if len(d.Order) != 3 {
		t.Errorf("order %v; want the 3 eligible", d.Order)
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
	d = Decide(Input{Service: sk, Task: Task{ID: "t", Created: now}, Agents: agents, Presence: p, Now: now})
	want = map[string]string{"expert": ReasonEligible, "novice": ReasonMissingSkill + "de ≥ 5", "off-duty": ReasonOffDuty,
		"not-on-duty": ReasonNotOnDuty, "skill-off-duty": ReasonMissingSkill + "de ≥ 5"}
	if got := reasons(d); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("skill-based:\n got %v\nwant %v", got, want)
	}
	d = Decide(Input{Service: sk, Task: Task{ID: "t", Created: now.Add(-61 * time.Second)}, Agents: agents, Presence: p, Now: now})
	if got := reasons(d); got["novice"] != ReasonEligible || len(d.Order) != 2 {
		t.Errorf("after 61 s the requirement relaxes to de ≥ 2: %v", got)
	}

	// A pending-deletion service routes nothing.
	svc.PendingDeletion = true
	if d := Decide(Input{Service: svc, Agents: []AgentState{agent("ok", "sales")}, Presence: available("ok"), Now: now}); len(d.Order) != 0 {
		t.Errorf("pending deletion routed %v", d.Order)
	}
}

func ids(in Input, d Decision) []string {
	var out []string
	for _, i := range d.Order {
		out = append(out, in.Agents[i].AgentID)
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
		in := Input{Service: Service{ID: "s", Type: TeamsBased, Distribution: tc.d}, Task: Task{ID: "t", Created: now}, Agents: agents, Presence: p, Now: now}
		if got := fmt.Sprint(ids(in, Decide(in))); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.d.Strategy, got, tc.want)
		}
	}
	// Weighted random follows the weights: b (weight 8) first about 8 times in 10.
	in := Input{Service: Service{ID: "s", Type: TeamsBased, Distribution: Distribution{Strategy: WeightedRandom, Weights: map[string]int{"a": 1, "b": 8, "c": 1}}},
		Task: Task{ID: "t", Created: now}, Agents: agents, Presence: p, Now: now, Rand: rand.New(rand.NewPCG(1, 2))}
	first := map[string]int{}
	for range 2000 {
		first[ids(in, Decide(in))[0]]++
	}
	if first["b"] < 1450 || first["b"] > 1750 || first["a"] < 100 || first["c"] < 100 {
		t.Errorf("weighted draw off: %v", first)
	}
	// Agents who already let the task go come last, only when nobody else is eligible.
	in = Input{Service: Service{ID: "s", Type: TeamsBased}, Task: Task{ID: "t", Created: now, Tried: []string{"b"}}, Agents: agents, Presence: p, Now: now}
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

// BenchmarkDecide: one task among n agents, per strategy. Half the agents are
// eligible; the rest are skipped for presence, RONA, ACW or a hold.
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		agents := make([]AgentState, n)
		p := make(map[string]presence.Presence, n)
		for i := range agents {
			id := fmt.Sprintf("agent-%05d", i)
			a := AgentState{TenantID: "t", AgentID: id, Services: []string{"s"}, Duty: Duty{Services: []string{"s"}},
				Skills: map[string]int{"de": i % 10, "fr": i % 7}, LastCallEnded: t0.Add(-time.Duration(i*37%1000) * time.Second),
				LastOffered: map[string]time.Time{"s": t0.Add(-time.Duration(i*53%1000) * time.Second)}}
			switch i % 8 {
			case 1:
				a.RONAUntil = t0.Add(time.Minute)
			case 2:
				a.ACWUntil = t0.Add(time.Second)
			case 3:
				a.Hold = &Hold{ServiceID: "x", TaskID: "y", Phase: HoldConnected, Until: t0.Add(time.Hour)}
			}
			agents[i] = a
			av := presence.Available
			if i%8 == 4 {
				av = presence.Busy
			}
			p[id] = presence.Presence{AgentID: id, Availability: av, Activity: string(av), Source: presence.SourceExtended}
		}
		for _, st := range strategies {
			svc := Service{TenantID: "t", ID: "s", Type: TeamsBased, Distribution: Distribution{Strategy: st}}
			if st == BestSkill {
				svc.Type = SkillBased
				svc.Distribution.Skills = []SkillRequirement{{Skill: "de", MinLevel: 2}}
			}
			in := Input{Service: svc, Task: Task{ID: "task-1", Created: t0}, Agents: agents, Presence: p, Now: t0}
			b.Run(fmt.Sprintf("agents=%d/%s", n, st), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					d := Decide(in)
					if len(d.Order) == 0 {
						b.Fatal("nobody eligible")
					}
				}
			})
		}
	}
}
