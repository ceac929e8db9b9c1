// Package userstate records every change of an agent's state — presence, duty, the
// routing phase (ringing, connected, ACW, RONA) and whether routing could select the
// agent at all — as records with a start, an end and a duration, for tenants that turn
// user-state tracking on (off by default: SPEC §1, privacy).
//
// The tracker keeps, per agent, a cursor: what it last saw of the agent and the record
// of each kind that is still open. An observation (an agent-state write, a presence
// change, the periodic sweep) advances the cursor to now: instants the last seen state
// carried (a ring, RONA or ACW that ended by itself) and UTC midnights in between
// close and open records at exactly those instants, so a record never spans two UTC
// days and lazily expiring states get their true end even when nobody wrote at that
// moment. The new records and the cursor are written in one conditional transaction
// (the cursor's ETag), so concurrent observers of one agent never lose or double a
// record. Turning tracking off closes every open record and removes the cursors.
//
// The package imports the standard library and other domain packages only.
package userstate

import (
	"context"
	"strings"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/routing"
)

// Kind is one dimension of an agent's state; each kind has one value at a time.
type Kind string

const (
	// KindPresence: Value is the availability, Detail the activity (extended presence).
	KindPresence Kind = "presence"
	// KindDuty: OnDuty or OffDuty.
	KindDuty Kind = "duty"
	// KindRouting: the routing phase — Idle, Ringing, Connected, ACW or RONA.
	KindRouting Kind = "routing"
	// KindSelectable: Selectable when at least one service would offer the agent a task
	// now (routing.Selectable), else NotSelectable.
	KindSelectable Kind = "selectable"
)

// Kinds in the order records of one instant are written.
var Kinds = [...]Kind{KindPresence, KindDuty, KindRouting, KindSelectable}

// Values of the duty and selectable kinds; presence and routing values are
// presence.Availability and routing.Phase strings.
const (
	OnDuty        = "OnDuty"
	OffDuty       = "OffDuty"
	Selectable    = "Selectable"
	NotSelectable = "NotSelectable"
	// Unknown is the presence of an agent whose presence was never read.
	Unknown = "Unknown"
)

// Record is one period in which an agent's state of one kind had one value. End is
// zero while the record is open (the state still holds).
type Record struct {
	TenantID string    `json:"tenantId"`
	AgentID  string    `json:"agentId"`
	Kind     Kind      `json:"kind"`
	Value    string    `json:"value"`
	Detail   string    `json:"detail,omitempty"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end,omitzero"`
}

// Open reports whether the record's state still holds.
func (r Record) Open() bool { return r.End.IsZero() }

// Duration is End-Start; for an open record, now-Start.
func (r Record) Duration(now time.Time) time.Duration {
	if r.Open() {
		return now.Sub(r.Start)
	}
	return r.End.Sub(r.Start)
}

// Seen is what an observation saw of an agent: the routing state (only what phase and
// selectability depend on) and the presence.
type Seen struct {
	Agent       routing.AgentState `json:"agent"`
	Presence    presence.Presence  `json:"presence,omitzero"`
	HasPresence bool               `json:"hasPresence,omitempty"`
}

// trim keeps what phase, duty and selectability read, so a cursor stays small and an
// unrelated change (a round-robin stamp) is no change.
func (s Seen) trim() Seen {
	a := s.Agent
	s.Agent = routing.AgentState{TenantID: a.TenantID, AgentID: a.AgentID, Services: a.Services, Inactive: a.Inactive,
		Duty: a.Duty, Hold: a.Hold, RONAUntil: a.RONAUntil.UTC(), ACWUntil: a.ACWUntil.UTC()}
	s.Agent = s.Agent.Clone()
	if h := s.Agent.Hold; h != nil {
		h.Since, h.Until = h.Since.UTC(), h.Until.UTC()
	}
	p := s.Presence
	s.Presence = presence.Presence{}
	if s.HasPresence {
		s.Presence = presence.Presence{AgentID: p.AgentID, Availability: p.Availability, Activity: p.Activity, Source: p.Source}
	}
	return s
}

// Slot is the open record of one kind.
type Slot struct {
	Value  string    `json:"value"`
	Detail string    `json:"detail,omitempty"`
	Start  time.Time `json:"start"`
}

// Cursor is the tracker's position for one agent.
type Cursor struct {
	TenantID string           `json:"tenantId"`
	AgentID  string           `json:"agentId"`
	At       time.Time        `json:"at"` // the last observation
	Seen     Seen             `json:"seen"`
	Open     [len(Kinds)]Slot `json:"open"` // by the index of Kinds
	ETag     string           `json:"-"`
}

// Query selects records: those overlapping [From, To), optionally of one agent, kind
// and value, in (Start, AgentID, Kind) order, at most Top, after the key After (a
// continuation returned with the previous page).
type Query struct {
	From, To time.Time
	AgentID  string
	Kind     Kind
	Value    string
	Top      int
	After    string
}

// MaxTop is the most records one page holds.
const MaxTop = 1000

// Store keeps cursors and records. Implementations are safe for concurrent use.
type Store interface {
	// GetUserStateCursor returns an agent's cursor; fault.ErrNotFound when none.
	GetUserStateCursor(ctx context.Context, tenantID, agentID string) (Cursor, error)
	// ListUserStateCursors returns every cursor of the tenant (one query).
	ListUserStateCursors(ctx context.Context, tenantID string) ([]Cursor, error)
	// CommitUserStates upserts the records (keyed by tenant, agent, kind and Start) and
	// writes the cursor conditionally: replaced If-Match c.ETag, inserted when c.ETag
	// is "" (fault.ErrConflict if one exists), deleted If-Match c.ETag when remove.
	// A lost condition is fault.ErrPrecondition (or ErrNotFound when the cursor is
	// gone) and writes nothing. All of it is one transaction while the records number
	// at most MaxCommit; beyond that the records that do not fit are written first
	// (upserts of the same keys a retry would write). Table storage's transactions do
	// not return ETags: a caller that writes again reads the cursor first.
	CommitUserStates(ctx context.Context, c Cursor, remove bool, records []Record) error
	// ListUserStates returns a page of the tenant's records matching q and the key to
	// pass as q.After for the next page ("" when this is the last).
	ListUserStates(ctx context.Context, tenantID string, q Query) ([]Record, string, error)
}

// MaxCommit is the most records CommitUserStates writes in one transaction with the
// cursor (Table storage allows 100 operations).
const MaxCommit = 99

// Key is a record's sort and continuation key: the start (fixed width, UTC), the agent
// and the kind. Records of a tenant listed in key order are in time order.
func Key(r Record) string {
	return r.Start.UTC().Format(keyTime) + "|" + r.AgentID + "|" + string(r.Kind)
}

// KeyFrom is the smallest key of a record starting at or after t.
func KeyFrom(t time.Time) string { return t.UTC().Format(keyTime) }

const keyTime = "2006-01-02T15:04:05.000000000Z"

// DayStart is the UTC midnight at or before t. Records never span a UTC midnight, so
// every record overlapping [from, …) starts at or after DayStart(from).
func DayStart(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Matches reports whether r belongs to q (ignoring Top and After).
func (q *Query) Matches(r *Record) bool {
	if !r.Start.Before(q.To) || (!r.Open() && !r.End.After(q.From)) {
		return false
	}
	return (q.AgentID == "" || r.AgentID == q.AgentID) && (q.Kind == "" || r.Kind == q.Kind) &&
		(q.Value == "" || r.Value == q.Value)
}

// ParseKind reads a kind (exact, lower case).
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if s == string(k) {
			return k, nil
		}
	}
	return "", fault.Invalid("kind", "must be one of presence, duty, routing, selectable")
}

// ParseFilter reads the OData $filter subset the report understands: comparisons
// "agentId eq '…'", "kind eq '…'" and "value eq '…'" joined by "and" (each property at
// most once; ” inside a literal is a quote). It fills q's AgentID, Kind and Value.
func ParseFilter(s string, q *Query) error {
	bad := func(rule string) error { return fault.Invalid("$filter", rule) }
	rest := strings.TrimSpace(s)
	seen := map[string]bool{}
	for rest != "" {
		prop, after, ok := strings.Cut(rest, " ")
		if !ok {
			return bad("expected: property eq 'value' [and …]")
		}
		after = strings.TrimLeft(after, " ")
		op, after, ok := strings.Cut(after, " ")
		if !ok || !strings.EqualFold(op, "eq") {
			return bad("only eq comparisons are supported")
		}
		after = strings.TrimLeft(after, " ")
		if !strings.HasPrefix(after, "'") {
			return bad("the value of " + prop + " must be a quoted string")
		}
		var lit strings.Builder
		i, closed := 1, false
		for i < len(after) {
			if after[i] == '\'' {
				if i+1 < len(after) && after[i+1] == '\'' {
					lit.WriteByte('\'')
					i += 2
					continue
				}
				closed = true
				i++
				break
			}
			lit.WriteByte(after[i])
			i++
		}
		if !closed {
			return bad("unterminated string")
		}
		if seen[prop] {
			return bad(prop + " is named twice")
		}
		seen[prop] = true
		switch prop {
		case "agentId":
			q.AgentID = lit.String()
		case "kind":
			k, err := ParseKind(lit.String())
			if err != nil {
				return bad("kind must be one of presence, duty, routing, selectable")
			}
			q.Kind = k
		case "value":
			q.Value = lit.String()
		default:
			return bad("unknown property " + prop + " (agentId, kind, value)")
		}
		rest = strings.TrimSpace(after[i:])
		if rest == "" {
			break
		}
		conj, tail, _ := strings.Cut(rest, " ")
		if !strings.EqualFold(conj, "and") {
			return bad("comparisons must be joined by and")
		}
		rest = strings.TrimSpace(tail)
		if rest == "" {
			return bad("nothing after and")
		}
	}
	return nil
}
