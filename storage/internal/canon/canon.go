// Package canon puts records into the form every storage backend returns them in: times in
// UTC, truncated to the millisecond. Backends apply it before writing so that what a document
// column holds agrees with the millisecond columns next to it, and the conformance suite
// applies it to what it wrote before comparing. It never changes anything but times, and it
// never mutates its argument: slices and pointers that hold times are copied.
package canon

import (
	"time"

	"github.com/urbanbrain/urbanbrain/event"
)

// Time is t in UTC truncated to the millisecond; the zero time stays zero.
func Time(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Millisecond)
}

// Millis is the column value of t: Unix milliseconds, 0 for the zero time.
func Millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// FromMillis is the inverse of Millis.
func FromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// Event returns e with canonical times.
func Event(e event.Event) event.Event {
	e.Time = Time(e.Time)
	e.Received = Time(e.Received)
	if e.Hotline != nil {
		h := *e.Hotline
		h.ReceivedAt = Time(h.ReceivedAt)
		e.Hotline = &h
	}
	return e
}

// Incident returns inc with canonical times.
func Incident(inc event.Incident) event.Incident {
	inc.CreatedAt = Time(inc.CreatedAt)
	inc.UpdatedAt = Time(inc.UpdatedAt)
	if inc.Reports != nil {
		reports := make([]event.Report, len(inc.Reports))
		for i, r := range inc.Reports {
			r.At, r.LastAt = Time(r.At), Time(r.LastAt)
			if r.Rules != nil {
				rules := make([]event.RuleMatch, len(r.Rules))
				for j, m := range r.Rules {
					m.At = Time(m.At)
					rules[j] = m
				}
				r.Rules = rules
			}
			reports[i] = r
		}
		inc.Reports = reports
	}
	return inc
}

// Change returns c with canonical times.
func Change(c event.Change) event.Change {
	c.At = Time(c.At)
	return c
}

// Dispatch returns d with canonical times.
func Dispatch(d event.Dispatch) event.Dispatch {
	d.At = Time(d.At)
	return d
}
