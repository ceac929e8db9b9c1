package userstate

import (
	"time"

	"github.com/teamscc/teamscc/shared/routing"
)

// valuesAt is each kind's value (and detail) for what was seen, at t.
func valuesAt(s *Seen, services []routing.Service, t time.Time) [len(Kinds)]Slot {
	var v [len(Kinds)]Slot
	v[0] = Slot{Value: Unknown}
	if s.HasPresence {
		v[0] = Slot{Value: string(s.Presence.Availability), Detail: s.Presence.Activity}
	}
	v[1] = Slot{Value: OnDuty}
	if s.Agent.Duty.OffDuty {
		v[1].Value = OffDuty
	}
	var offlineAt time.Time
	if s.HasPresence {
		offlineAt = s.Presence.OfflineAt
	}
	v[2] = Slot{Value: string(s.Agent.PhaseAt(t, offlineAt))}
	v[3] = Slot{Value: NotSelectable}
	if routing.Selectable(services, &s.Agent, s.Presence, s.HasPresence, t) {
		v[3].Value = Selectable
	}
	return v
}

// Precision of the instants records carry: storage keeps 100 ns at best, and a
// record's key must read back as it was written.
const Precision = time.Microsecond

// nextMidnight is the first UTC midnight after t.
func nextMidnight(t time.Time) time.Time { return DayStart(t).AddDate(0, 0, 1) }

// timeline accumulates the records of one advance, the last write of a key winning.
type timeline struct {
	c    *Cursor
	recs []Record
	at   map[string]int
}

func (tl *timeline) put(r Record) {
	k := string(r.Kind) + "|" + r.Start.UTC().Format(keyTime)
	if i, ok := tl.at[k]; ok {
		tl.recs[i] = r
		return
	}
	tl.at[k] = len(tl.recs)
	tl.recs = append(tl.recs, r)
}

func (tl *timeline) record(i int, s Slot, end time.Time) Record {
	return Record{TenantID: tl.c.TenantID, AgentID: tl.c.AgentID, Kind: Kinds[i], Value: s.Value, Detail: s.Detail, Start: s.Start, End: end}
}

// step moves every kind to its value at t: a kind whose value differs, or every kind
// when roll (t is a UTC midnight), closes its open record at t and opens one at t. A
// record that would last no time is replaced instead of closed.
func (tl *timeline) step(v [len(Kinds)]Slot, t time.Time, roll bool) {
	t = t.Truncate(Precision)
	for i := range Kinds {
		o := tl.c.Open[i]
		if o.Value == v[i].Value && o.Detail == v[i].Detail && !roll {
			continue
		}
		if o.Value != "" && o.Start.Before(t) {
			tl.put(tl.record(i, o, t))
		}
		n := Slot{Value: v[i].Value, Detail: v[i].Detail, Start: t}
		tl.c.Open[i] = n
		tl.put(tl.record(i, n, time.Time{}))
	}
}

// catchUp plays what the cursor last saw forward to just before now: the instants its
// routing state carried (a hold, RONA or ACW ending by itself) and the UTC midnights.
func (tl *timeline) catchUp(services []routing.Service, now time.Time) {
	t := tl.c.At
	for {
		mid := nextMidnight(t)
		next := tl.c.Seen.Agent.NextChange(t)
		if next.IsZero() || mid.Before(next) {
			next = mid
		}
		if !next.Before(now) {
			return
		}
		tl.step(valuesAt(&tl.c.Seen, services, next), next, next.Equal(mid))
		t = next
	}
}

// Advance moves c to now, where the agent is as seen: it returns the cursor to write
// and the records to upsert (closed ones with their End, newly opened ones without).
// A zero c (no AgentID) starts tracking the agent at now. now before c.At is taken as
// c.At: observers on other machines may have clocks a little behind.
func Advance(c Cursor, seen Seen, services []routing.Service, now time.Time) (Cursor, []Record) {
	seen = seen.trim()
	now = now.UTC()
	fresh := c.AgentID == ""
	if fresh {
		c = Cursor{TenantID: seen.Agent.TenantID, AgentID: seen.Agent.AgentID}
	} else if now.Before(c.At) {
		now = c.At
	}
	tl := timeline{c: &c, at: map[string]int{}}
	if !fresh {
		tl.catchUp(services, now)
	}
	tl.step(valuesAt(&seen, services, now), now, !fresh && now.Equal(DayStart(now)) && now.After(c.At))
	c.At, c.Seen = now, seen
	return c, tl.recs
}

// Close ends tracking of the agent at now: what the cursor last saw is played forward
// to now and every open record is closed there. The cursor is to be deleted.
func Close(c Cursor, services []routing.Service, now time.Time) []Record {
	now = now.UTC()
	if now.Before(c.At) {
		now = c.At
	}
	tl := timeline{c: &c, at: map[string]int{}}
	tl.catchUp(services, now)
	now = now.Truncate(Precision)
	for i := range Kinds {
		o := c.Open[i]
		r := tl.record(i, o, now)
		if !o.Start.Before(now) {
			r.End = o.Start // opened at this very instant: nothing to keep open
		}
		tl.put(r)
	}
	return tl.recs
}
