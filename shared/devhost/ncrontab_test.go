package devhost

import (
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseScheduleNextOccurrence(t *testing.T) {
	tests := []struct {
		name, expr, after, want string
	}{
		{"every 15 s within a minute", "*/15 * * * * *", "2026-01-01T12:00:14Z", "2026-01-01T12:00:15Z"},
		{"strictly after a matching instant", "*/15 * * * * *", "2026-01-01T12:00:15Z", "2026-01-01T12:00:30Z"},
		{"fractional seconds round up", "*/15 * * * * *", "2026-01-01T12:00:14.5Z", "2026-01-01T12:00:15Z"},
		{"across a minute boundary", "*/15 * * * * *", "2026-01-01T12:00:45Z", "2026-01-01T12:01:00Z"},
		{"every 5 min across an hour boundary", "0 */5 * * * *", "2026-01-01T12:57:30Z", "2026-01-01T13:00:00Z"},
		{"daily across a day and month boundary", "0 0 0 * * *", "2026-01-31T23:59:59Z", "2026-02-01T00:00:00Z"},
		{"across a year boundary", "0 0 0 1 1 *", "2026-06-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"weekday names skip the weekend", "0 30 9 * * MON-FRI", "2026-01-02T10:00:00Z", "2026-01-05T09:30:00Z"},
		{"day of week number 0 is Sunday", "0 0 8 * * 0", "2026-01-01T00:00:00Z", "2026-01-04T08:00:00Z"},
		{"month names in a list", "0 0 12 1 jan,JUL *", "2026-02-01T00:00:00Z", "2026-07-01T12:00:00Z"},
		{"range with a step", "10-20/5 * * * * *", "2026-01-01T12:00:15Z", "2026-01-01T12:00:20Z"},
		{"range with a step wraps to the next minute", "10-20/5 * * * * *", "2026-01-01T12:00:20Z", "2026-01-01T12:01:10Z"},
		{"value with a step runs to the maximum", "5/20 * * * * *", "2026-01-01T12:00:45Z", "2026-01-01T12:01:05Z"},
		{"list of hours", "0 0 6,18 * * *", "2026-01-01T07:00:00Z", "2026-01-01T18:00:00Z"},
		{"leap day", "0 0 0 29 2 *", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z"},
		{"day of month and day of week must both match", "0 0 0 13 * FRI", "2026-01-01T00:00:00Z", "2026-02-13T00:00:00Z"},
		{"five fields: every 5 min at second 0", "*/5 * * * *", "2026-01-01T12:03:10Z", "2026-01-01T12:05:00Z"},
		{"five fields: daily at 02:30", "30 2 * * *", "2026-01-01T02:30:00Z", "2026-01-02T02:30:00Z"},
		{"non-UTC input is evaluated in UTC", "0 0 * * * *", "2026-01-01T12:30:00+02:00", "2026-01-01T11:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSchedule(tt.expr)
			if err != nil {
				t.Fatalf("ParseSchedule(%q): %v", tt.expr, err)
			}
			got := s.Next(at(tt.after))
			if !got.Equal(at(tt.want)) || got.Location() != time.UTC {
				t.Errorf("Next(%s) = %s, want %s", tt.after, got, tt.want)
			}
		})
	}
}

func TestParseScheduleRejectsInvalidExpressions(t *testing.T) {
	for _, expr := range []string{
		"",
		"* * * *",
		"* * * * * * *",
		"60 * * * * *",
		"* 60 * * * *",
		"* * 24 * * *",
		"* * * 0 * *",
		"* * * 32 * *",
		"* * * * 13 *",
		"* * * * * 7",
		"*/0 * * * * *",
		"5-1 * * * * *",
		"a * * * * *",
		"* * * * foo *",
		"1,,2 * * * * *",
		"-1 * * * * *",
		"00:05:00",
		"0 0 0 31 2 *", // never fires
	} {
		if _, err := ParseSchedule(expr); err == nil {
			t.Errorf("ParseSchedule(%q) succeeded, want an error", expr)
		}
	}
}

func TestScheduleKnowsWhenItFiresMoreThanOnceAMinute(t *testing.T) {
	for expr, want := range map[string]bool{
		"*/15 * * * * *": true,
		"0,30 * * * * *": true,
		"0 * * * * *":    false,
		"0 */5 * * * *":  false,
		"*/5 * * * *":    false,
	} {
		s, err := ParseSchedule(expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.subMinute(); got != want {
			t.Errorf("%q: subMinute = %v, want %v", expr, got, want)
		}
	}
}
