package devhost

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Schedule is a parsed NCRONTAB expression, the format of a timerTrigger "schedule".
// It is evaluated in UTC (Flex Consumption has no WEBSITE_TIME_ZONE). The zero
// Schedule never fires.
type Schedule struct {
	expr                                  string
	second, minute, hour, day, month, dow uint64 // bit i set = value i allowed
}

type cronField struct {
	name     string
	min, max int
	names    map[string]int
}

var (
	monthNames = map[string]int{"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
		"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12}
	dayNames   = map[string]int{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
	cronFields = []cronField{
		{name: "second", min: 0, max: 59},
		{name: "minute", min: 0, max: 59},
		{name: "hour", min: 0, max: 23},
		{name: "day of month", min: 1, max: 31},
		{name: "month", min: 1, max: 12, names: monthNames},
		{name: "day of week", min: 0, max: 6, names: dayNames},
	}
)

// ParseSchedule parses an NCRONTAB expression: six fields "second minute hour day month
// day-of-week" (as Azure Functions uses, e.g. "*/15 * * * * *" or "0 */5 * * * *") or the
// five classic fields without seconds (seconds are then 0). Each field takes "*", values,
// ranges "a-b", lists "a,b", steps "*/n", "a-b/n" and "a/n" (a to the maximum), and for
// month and day of week the English three-letter names (case-insensitive). Day of week
// runs 0-6 from Sunday. Like NCrontab, day of month and day of week must both match.
// It fails on any other syntax, on values out of range, and on schedules that never fire.
func ParseSchedule(expr string) (Schedule, error) {
	parts := strings.Fields(expr)
	fields := cronFields
	switch len(parts) {
	case 6:
	case 5:
		fields = cronFields[1:]
	default:
		return Schedule{}, fmt.Errorf("schedule %q: want 6 fields (with seconds) or 5, got %d", expr, len(parts))
	}
	sets := make([]uint64, 0, 6)
	if len(parts) == 5 {
		sets = append(sets, 1) // second 0
	}
	for i, p := range parts {
		set, err := parseCronField(p, fields[i])
		if err != nil {
			return Schedule{}, fmt.Errorf("schedule %q: %w", expr, err)
		}
		sets = append(sets, set)
	}
	s := Schedule{expr: expr, second: sets[0], minute: sets[1], hour: sets[2], day: sets[3], month: sets[4], dow: sets[5]}
	if s.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return Schedule{}, fmt.Errorf("schedule %q never fires", expr)
	}
	return s, nil
}

func parseCronField(s string, f cronField) (uint64, error) {
	var set uint64
	for part := range strings.SplitSeq(s, ",") {
		rng, stepText, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n < 1 {
				return 0, fmt.Errorf("%s: bad step %q", f.name, stepText)
			}
			step = n
		}
		lo, hi := f.min, f.max
		if rng != "*" {
			a, b, isRange := strings.Cut(rng, "-")
			var err error
			if lo, err = cronValue(a, f); err != nil {
				return 0, err
			}
			switch {
			case isRange:
				if hi, err = cronValue(b, f); err != nil {
					return 0, err
				}
				if hi < lo {
					return 0, fmt.Errorf("%s: range %q runs backwards", f.name, rng)
				}
			case !hasStep:
				hi = lo
			}
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << v
		}
	}
	return set, nil
}

func cronValue(s string, f cronField) (int, error) {
	if v, ok := f.names[strings.ToLower(s)]; ok {
		return v, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < f.min || v > f.max {
		return 0, fmt.Errorf("%s: %q is not a value in %d-%d", f.name, s, f.min, f.max)
	}
	return v, nil
}

// String returns the expression the schedule was parsed from.
func (s Schedule) String() string { return s.expr }

// Next returns the first instant strictly after 'after' (whole seconds, UTC) that the
// schedule matches, or the zero time if there is none within 30 years.
func (s Schedule) Next(after time.Time) time.Time {
	t := after.UTC().Truncate(time.Second).Add(time.Second)
	limit := t.AddDate(30, 0, 0)
	for t.Before(limit) {
		y, m, d := t.Date()
		switch {
		case !has(s.month, int(m)):
			t = time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC)
		case !has(s.day, d) || !has(s.dow, int(t.Weekday())):
			t = time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
		case !has(s.hour, t.Hour()):
			t = t.Truncate(time.Hour).Add(time.Hour)
		case !has(s.minute, t.Minute()):
			t = t.Truncate(time.Minute).Add(time.Minute)
		case !has(s.second, t.Second()):
			t = t.Add(time.Second)
		default:
			return t
		}
	}
	return time.Time{}
}

// subMinute reports whether the schedule can fire more often than once a minute, in
// which case the host sends a null ScheduleStatus (it keeps no schedule monitor).
// That is exactly when more than one second of a minute matches.
func (s Schedule) subMinute() bool { return bits.OnesCount64(s.second) > 1 }

func has(set uint64, v int) bool { return set&(1<<v) != 0 }
