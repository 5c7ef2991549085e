package incidents

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// WorkingHours is when non-emergency SLA clocks run, in Asia/Shanghai time: Days (mon..sun,
// weekdays, weekends, daily; default weekdays) from Start to End ("HH:MM"), except Holidays
// ("2006-01-02"). An empty Start makes every clock run around the clock.
type WorkingHours struct {
	Days     []string `yaml:"days"`
	Start    string   `yaml:"start"`
	End      string   `yaml:"end"`
	Holidays []string `yaml:"holidays"`
}

// shanghai is Asia/Shanghai without tzdata: no daylight saving since 1991.
var shanghai = time.FixedZone("CST", 8*3600)

// calendar is WorkingHours compiled. The zero value runs around the clock.
type calendar struct {
	on         bool
	start, end int // minutes after midnight
	days       [7]bool
	holidays   map[string]bool
}

var dayNames = map[string][]time.Weekday{
	"sun": {time.Sunday}, "mon": {time.Monday}, "tue": {time.Tuesday}, "wed": {time.Wednesday},
	"thu": {time.Thursday}, "fri": {time.Friday}, "sat": {time.Saturday},
	"weekdays": {time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday},
	"weekends": {time.Saturday, time.Sunday},
	"daily":    {time.Sunday, time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday},
}

func (w WorkingHours) validate() error {
	_, err := w.compile()
	return err
}

func (w WorkingHours) compile() (calendar, error) {
	var c calendar
	if w.Start == "" && w.End == "" {
		return c, nil
	}
	var errs []error
	var err error
	if c.start, err = clockMinutes(w.Start); err != nil {
		errs = append(errs, fmt.Errorf("sla.working_hours.start: %w", err))
	}
	if c.end, err = clockMinutes(w.End); err != nil {
		errs = append(errs, fmt.Errorf("sla.working_hours.end: %w", err))
	}
	if err == nil && c.end <= c.start {
		errs = append(errs, fmt.Errorf("sla.working_hours: end %s must be after start %s", w.End, w.Start))
	}
	days := w.Days
	if len(days) == 0 {
		days = []string{"weekdays"}
	}
	for _, d := range days {
		ws, ok := dayNames[strings.ToLower(strings.TrimSpace(d))]
		if !ok {
			errs = append(errs, fmt.Errorf("sla.working_hours.days: %q: want mon..sun, weekdays, weekends or daily", d))
		}
		for _, wd := range ws {
			c.days[wd] = true
		}
	}
	c.holidays = make(map[string]bool, len(w.Holidays))
	for _, h := range w.Holidays {
		if _, err := time.Parse(time.DateOnly, h); err != nil {
			errs = append(errs, fmt.Errorf("sla.working_hours.holidays: %q: want YYYY-MM-DD", h))
		}
		c.holidays[h] = true
	}
	c.on = true
	return c, errors.Join(errs...)
}

func clockMinutes(s string) (int, error) {
	hh, mm, ok := strings.Cut(s, ":")
	h, err1 := strconv.Atoi(hh)
	m, err2 := strconv.Atoi(mm)
	if !ok || len(hh) != 2 || len(mm) != 2 || err1 != nil || err2 != nil || h < 0 || h > 24 || m < 0 || m > 59 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("%q: want HH:MM", s)
	}
	return h*60 + m, nil
}

// window is the working period of the local day starting at midnight, if it is a working day.
func (c calendar) window(midnight time.Time) (time.Time, time.Time, bool) {
	if !c.days[midnight.Weekday()] || c.holidays[midnight.Format(time.DateOnly)] {
		return time.Time{}, time.Time{}, false
	}
	return midnight.Add(time.Duration(c.start) * time.Minute), midnight.Add(time.Duration(c.end) * time.Minute), true
}

func localMidnight(t time.Time) time.Time {
	l := t.In(shanghai)
	return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, shanghai)
}

// maxCalendarDays bounds the walks below: a calendar with no working day at all (every day a
// holiday) must not loop forever.
const maxCalendarDays = 3 * 366

// add is the instant d of working time after t.
func (c calendar) add(t time.Time, d time.Duration) time.Time {
	if !c.on {
		return t.Add(d)
	}
	day := localMidnight(t)
	for range maxCalendarDays {
		if from, to, ok := c.window(day); ok {
			if t.Before(from) {
				t = from
			}
			if t.Before(to) {
				if avail := to.Sub(t); d <= avail {
					return t.Add(d).UTC()
				} else {
					d -= avail
				}
			}
		}
		day = day.AddDate(0, 0, 1)
		t = day
	}
	return t.Add(d).UTC()
}

// between is the working time from a to b (0 if b is not after a).
func (c calendar) between(a, b time.Time) time.Duration {
	if !b.After(a) {
		return 0
	}
	if !c.on {
		return b.Sub(a)
	}
	var sum time.Duration
	day := localMidnight(a)
	for range maxCalendarDays {
		if !day.Before(b) {
			break
		}
		if from, to, ok := c.window(day); ok {
			lo, hi := later(from, a), earlier(to, b)
			if hi.After(lo) {
				sum += hi.Sub(lo)
			}
		}
		day = day.AddDate(0, 0, 1)
	}
	return sum
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
