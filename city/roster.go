package city

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// shanghai is Asia/Shanghai without tzdata: China has had no daylight saving since 1991, so a
// fixed +08:00 zone is exact and the binary needs no zoneinfo.
var shanghai = time.FixedZone("CST", 8*3600)

// OnDuty reports whether the worker is on shift at t, evaluated in Asia/Shanghai.
func (w Worker) OnDuty(t time.Time) bool {
	for _, s := range w.Shifts {
		if s.covers(t) {
			return true
		}
	}
	return false
}

func (s Shift) covers(t time.Time) bool {
	start, err1 := parseClock(s.Start)
	end, err2 := parseClock(s.End)
	if err1 != nil || err2 != nil {
		return false // Load refuses such shifts; a hand-built one is simply never on duty
	}
	local := t.In(shanghai)
	now := local.Hour()*60 + local.Minute()
	day := local.Weekday()
	if start < end {
		return s.onDay(day) && now >= start && now < end
	}
	if start == end {
		return false
	}
	// Overnight: the evening part belongs to today, the morning part to yesterday's shift.
	if now >= start {
		return s.onDay(day)
	}
	if now < end {
		return s.onDay((day + 6) % 7)
	}
	return false
}

func (s Shift) onDay(d time.Weekday) bool {
	return len(s.Days) == 0 || slices.Contains(s.Days, d)
}

// parseClock reads "HH:MM" (00:00..24:00) as minutes after midnight.
func parseClock(s string) (int, error) {
	hh, mm, ok := strings.Cut(s, ":")
	if !ok || len(hh) != 2 || len(mm) != 2 {
		return 0, fmt.Errorf("time %q: want HH:MM", s)
	}
	h, err := strconv.Atoi(hh)
	if err != nil {
		return 0, fmt.Errorf("time %q: %w", s, err)
	}
	m, err := strconv.Atoi(mm)
	if err != nil {
		return 0, fmt.Errorf("time %q: %w", s, err)
	}
	if h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("time %q: out of range", s)
	}
	return h*60 + m, nil
}

// dayNames are the spellings roster files use for days.
var dayNames = map[string][]time.Weekday{
	"mon": {time.Monday}, "tue": {time.Tuesday}, "wed": {time.Wednesday}, "thu": {time.Thursday},
	"fri": {time.Friday}, "sat": {time.Saturday}, "sun": {time.Sunday},
	"daily":    {time.Sunday, time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday},
	"weekdays": {time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday},
	"weekends": {time.Saturday, time.Sunday},
}

// parseDays expands day names ("mon", "weekdays", "daily", ...) into sorted weekdays.
func parseDays(names []string) ([]time.Weekday, error) {
	if len(names) == 0 {
		return slices.Clone(dayNames["daily"]), nil
	}
	var out []time.Weekday
	for _, n := range names {
		ds, ok := dayNames[strings.ToLower(strings.TrimSpace(n))]
		if !ok {
			return nil, fmt.Errorf("day %q: want mon..sun, weekdays, weekends or daily", n)
		}
		out = append(out, ds...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
