package tenant

import "time"

// Retention is how long the tenant's finished work is kept before the provisioning
// run deletes it, in days. A zero field (never set: tenants stored before retention
// existed, or a tenant that kept the defaults) means the default of its kind; the
// admin API shows the effective values (Effective). The ranges are RetentionRanges.
type Retention struct {
	// FinishedTasksDays: routing tasks that are done, counted from their end.
	FinishedTasksDays int `json:"finishedTasksDays,omitempty"`
	// EndedCallsDays: calls that ended (their timelines), counted from the end.
	EndedCallsDays int `json:"endedCallsDays,omitempty"`
	// ClosedSessionsDays: Interact sessions the customer closed, counted from the
	// close. A session left open is taken as abandoned once it is older than
	// AbandonedSessionDays (or this, when longer).
	ClosedSessionsDays int `json:"closedSessionsDays,omitempty"`
	// UserStatesDays: user-state records (the tenant's privacy choice), counted from
	// the record's end; an open record is never deleted.
	UserStatesDays int `json:"userStatesDays,omitempty"`
}

// Default retention, in days.
const (
	DefaultFinishedTasksDays  = 30
	DefaultEndedCallsDays     = 30
	DefaultClosedSessionsDays = 7
	DefaultUserStatesDays     = 90
	// AbandonedSessionDays: an Interact session still open after this long is taken
	// as abandoned (the customer left without closing it) and deleted; recovering it
	// afterwards starts a new session.
	AbandonedSessionDays = 30
)

// RetentionRange is the allowed range of one retention setting, in days.
type RetentionRange struct{ Min, Max, Default int }

// RetentionRanges are the ranges of the retention settings by their JSON path.
var RetentionRanges = map[string]RetentionRange{
	"retention.finishedTasksDays":  {1, 3650, DefaultFinishedTasksDays},
	"retention.endedCallsDays":     {1, 3650, DefaultEndedCallsDays},
	"retention.closedSessionsDays": {1, 365, DefaultClosedSessionsDays},
	"retention.userStatesDays":     {1, 3650, DefaultUserStatesDays},
}

// Effective returns r with every unset (zero) field at its default.
func (r Retention) Effective() Retention {
	pick := func(v, def int) int {
		if v <= 0 {
			return def
		}
		return v
	}
	return Retention{
		FinishedTasksDays:  pick(r.FinishedTasksDays, DefaultFinishedTasksDays),
		EndedCallsDays:     pick(r.EndedCallsDays, DefaultEndedCallsDays),
		ClosedSessionsDays: pick(r.ClosedSessionsDays, DefaultClosedSessionsDays),
		UserStatesDays:     pick(r.UserStatesDays, DefaultUserStatesDays),
	}
}

// Days is n days as a duration.
func Days(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }
