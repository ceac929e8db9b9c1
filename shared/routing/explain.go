package routing

import (
	"maps"
	"slices"
	"time"
)

// MaxExplainAgents is how many agents an explanation keeps by name; the rest are only
// counted by reason (a stored task must stay far below Table storage's 64 KiB string).
const MaxExplainAgents = 100

// Explain is the record of a task's last routing attempt: who was considered and why
// each was chosen, passed over or skipped.
type Explain struct {
	TaskID     string             `json:"taskId"`
	ServiceID  string             `json:"serviceId"`
	Attempt    int                `json:"attempt"` // the task's offer count when decided
	At         time.Time          `json:"at"`
	Strategy   Strategy           `json:"strategy"`
	Required   []SkillRequirement `json:"requiredSkills,omitempty"`
	Considered int                `json:"considered"`
	Eligible   int                `json:"eligible"`
	Chosen     []string           `json:"chosen,omitempty"`
	Counts     map[string]int     `json:"counts"` // reason → agents
	Agents     []Entry            `json:"agents"` // chosen first, then lost races, eligible, skipped
	Truncated  int                `json:"truncated,omitempty"`
	Note       string             `json:"note,omitempty"`
}

// Clone returns a deep copy.
func (e Explain) Clone() Explain {
	e.Required = slices.Clone(e.Required)
	e.Chosen = slices.Clone(e.Chosen)
	e.Counts = maps.Clone(e.Counts)
	e.Agents = slices.Clone(e.Agents)
	return e
}

// sameOutcome reports whether a waiting task's explanation f still says what e says:
// the same attempt, nobody chosen, the same note, and agents skipped for the same
// reasons (how many for each may differ: the engine does not rewrite every waiting
// task each time one agent moves from ringing to after-call work; the explanation
// keeps when it was taken). The engine writes a waiting task's explanation only when
// its outcome changed.
func (e *Explain) sameOutcome(f *Explain) bool {
	if e == nil || f == nil || e.Attempt != f.Attempt || len(e.Chosen)+len(f.Chosen) > 0 || e.Note != f.Note || len(e.Counts) != len(f.Counts) {
		return false
	}
	for r := range e.Counts {
		if _, ok := f.Counts[r]; !ok {
			return false
		}
	}
	return true
}

// explainClass is where an entry goes in an explanation's list of agents: the chosen
// first, then lost races, the eligible, those who already tried, and the skipped.
func explainClass(reason string) int {
	switch reason {
	case ReasonChosen:
		return 0
	case ReasonLostRace:
		return 1
	case ReasonEligible:
		return 2
	case ReasonAlreadyTried:
		return 3
	default:
		return 4
	}
}

type reasonCount struct {
	reason string
	n      int
}

// explain turns a decision into the record kept on the task. The record shares no
// memory with d (a Decider reuses d's buffers for its next decision): the kept entries
// are copied, in class order (explainClass) and Members order within a class, as a
// stable sort would put them, but without sorting those that are cut off.
func explain(t *Task, svc *Service, d *Decision, now time.Time, chosen []string) *Explain {
	e := &Explain{TaskID: t.ID, ServiceID: svc.ID, Attempt: t.Attempts, At: now, Strategy: svc.Strategy(),
		Required: slices.Clone(d.Required), Considered: len(d.Entries), Chosen: chosen}
	// A handful of distinct reasons, mostly in runs: count them in a small list rather
	// than with a map update per agent.
	var buf [32]reasonCount
	counts := buf[:0]
	var size [5]int
	last := -1
	for i := range d.Entries {
		r := d.Entries[i].Reason
		size[explainClass(r)]++
		if last < 0 || counts[last].reason != r {
			last = -1
			for j := range counts {
				if counts[j].reason == r {
					last = j
					break
				}
			}
			if last < 0 {
				counts = append(counts, reasonCount{reason: r})
				last = len(counts) - 1
			}
		}
		counts[last].n++
	}
	e.Counts = make(map[string]int, len(counts))
	for _, c := range counts {
		e.Counts[c.reason] = c.n
	}
	e.Eligible = size[0] + size[1] + size[2]
	keep := min(len(d.Entries), MaxExplainAgents)
	e.Truncated = len(d.Entries) - keep
	// Each class gets the slots after the classes before it, as many as still fit;
	// one pass in Members order fills them and stops when all are filled.
	var next, end [len(size)]int
	at := 0
	for c, n := range size {
		next[c] = at
		at += min(n, keep-at)
		end[c] = at
	}
	agents := make([]Entry, keep)
	for i, placed := 0, 0; placed < keep; i++ {
		if c := explainClass(d.Entries[i].Reason); next[c] < end[c] {
			agents[next[c]] = d.Entries[i]
			next[c]++
			placed++
		}
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
