package storage

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
)

// The times a store can keep: ClickHouse's DateTime range, which the event table is
// partitioned by. Every backend refuses an event outside it the same way (RejectedError), so a
// record is either stored everywhere or dead-lettered everywhere.
var (
	MinTime = time.Unix(0, 0).UTC()
	MaxTime = time.Date(2105, 12, 31, 23, 59, 59, 999_000_000, time.UTC)
)

// Rejected is one record of a batch that the backend refused, and why. Index is its position
// in the batch handed to the write call.
type Rejected struct {
	Index  int
	Reason string
}

// RejectedError is what a batch write returns when the backend refused some records and
// stored all the others. Refusal is final: writing the record again fails again, so the caller
// dead-letters it with the reason instead of retrying. Any other error from a write is
// transient and means "retry the whole batch", which idempotent writes make safe.
type RejectedError struct {
	Rows []Rejected
}

func (e *RejectedError) Error() string {
	if len(e.Rows) == 1 {
		return fmt.Sprintf("storage: record %d rejected: %s", e.Rows[0].Index, e.Rows[0].Reason)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "storage: %d records rejected", len(e.Rows))
	for i, r := range e.Rows {
		if i == 3 {
			b.WriteString(", …")
			break
		}
		fmt.Fprintf(&b, "; %d: %s", r.Index, r.Reason)
	}
	return b.String()
}

// Rejections returns the refused records if err is (or wraps) a RejectedError.
func Rejections(err error) ([]Rejected, bool) {
	var re *RejectedError
	if errors.As(err, &re) {
		return re.Rows, true
	}
	return nil, false
}

// Rejects turns a list of refused records into the error a batch write returns: nil for none.
func Rejects(rows []Rejected) error {
	if len(rows) == 0 {
		return nil
	}
	return &RejectedError{Rows: rows}
}

// CheckEventTime is the row rule of the event table: the event's time must be within
// [MinTime, MaxTime]. The SQLite backend applies it in Go; the ClickHouse schema enforces the
// same bound in the server, which is where a real deployment's refusals come from.
func CheckEventTime(e event.Event) error {
	if e.Time.IsZero() {
		return nil // stored as 0: "unknown"
	}
	if e.Time.Before(MinTime) || e.Time.After(MaxTime) {
		return fmt.Errorf("event time %s outside the storable range %s..%s",
			e.Time.UTC().Format(time.RFC3339), MinTime.Format("2006-01-02"), MaxTime.Format("2006-01-02"))
	}
	return nil
}
