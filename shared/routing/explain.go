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

// sameOutcome reports whether two explanations say the same (ignoring when): the
// engine writes a waiting task's explanation only when it changed.
func (e *Explain) sameOutcome(f *Explain) bool {
	if e == nil || f == nil {
		return false
	}
	return e.Attempt == f.Attempt && maps.Equal(e.Counts, f.Counts) && slices.Equal(e.Chosen, f.Chosen) &&
		slices.Equal(e.Agents, f.Agents)
}

var reasonOrder = map[string]int{ReasonChosen: 0, ReasonLostRace: 1, ReasonEligible: 2, ReasonAlreadyTried: 3}

// explain turns a decision into the record kept on the task.
func explain(t *Task, svc *Service, d *Decision, now time.Time, chosen []string) *Explain {
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
