package lang

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a span of event time in a rule: 90s, 5m, 1h30m, 2d. A day is 24 hours.
type Duration time.Duration

// Limits of the stateful parts. The upper bound keeps state bounded: a key holds at most a
// week of window entries, and nothing waits on a clock for longer than that.
const (
	MinDuration = Duration(time.Second)
	MaxDuration = Duration(7 * 24 * time.Hour)
)

// ParseDuration reads a rule duration: Go's syntax (300ms is refused: rules work in seconds
// and up) plus a "d" suffix for days, alone or leading ("1d12h").
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	var days int64
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseInt(s[:i], 10, 32)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q is not a duration such as 90s, 5m, 1h30m or 2d", s)
		}
		days, s = n, s[i+1:]
	}
	var rest time.Duration
	if s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration such as 90s, 5m, 1h30m or 2d", s)
		}
		rest = d
	}
	d := Duration(time.Duration(days)*24*time.Hour + rest)
	if d%Duration(time.Second) != 0 {
		return 0, fmt.Errorf("%s: rules count time in whole seconds", d)
	}
	return d, nil
}

// String renders d the way an author writes it: 5m, 1h30m, 2d, 1d6h.
func (d Duration) String() string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	td := time.Duration(d)
	if days := td / (24 * time.Hour); days > 0 {
		b.WriteString(strconv.FormatInt(int64(days), 10))
		b.WriteByte('d')
		td -= days * 24 * time.Hour
	}
	if td > 0 {
		s := td.String()
		s = strings.TrimSuffix(s, "0s")
		s = strings.TrimSuffix(s, "0m")
		b.WriteString(s)
	}
	return b.String()
}

// MarshalJSON writes the duration as text ("5m").
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads "5m" (or a number of seconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var secs int64
		if err2 := json.Unmarshal(b, &secs); err2 != nil {
			return err
		}
		*d = Duration(time.Duration(secs) * time.Second)
		return nil
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}
