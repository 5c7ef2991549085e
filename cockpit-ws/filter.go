package cockpit

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/urbanbrain/urbanbrain/event"
)

// Filter narrows a subscription. Each field lists alternatives (any may match); the fields
// combine with AND; an empty field matches everything. A filter only ever narrows the
// caller's scope (a district operator asking for another district gets nothing).
type Filter struct {
	District []string `json:"district,omitempty"`
	Street   []string `json:"street,omitempty"`
	Category []string `json:"category,omitempty"`
	Severity []string `json:"severity,omitempty"`
}

// Request is what a client subscribes to, in the handshake's query or a subscribe message.
type Request struct {
	Filter Filter `json:"filter"`
	// CoordSys is the coordinate system of positions and of the map layer: wgs84 (default),
	// gcj02 (AMap, Tencent) or bd09 (Baidu).
	CoordSys string `json:"coordsys,omitempty"`
	// Map asks for the grid layer (a map frame) after the snapshot.
	Map bool `json:"map,omitempty"`
	// KPI asks for KPI frames, one every KPI interval.
	KPI bool `json:"kpi,omitempty"`
	// Resume continues a stream after a reconnect instead of taking a new snapshot.
	Resume *Resume `json:"resume,omitempty"`
}

// Resume names the last frame a client applied: the epoch of its snapshot and the seq of
// the last frame.
type Resume struct {
	Epoch string `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

// Limits on what a client may ask for, so a subscription stays cheap to match and to key.
const (
	maxFilterValues = 64
	maxCodeLen      = 64
)

var severities = []string{event.SeverityRed, event.SeverityOrange, event.SeverityYellow, event.SeverityBlue}

// normalize validates r and puts it in canonical form (sorted, deduplicated values, the
// default coordinate system), so equal subscriptions have equal keys.
func (r *Request) normalize() error {
	var errs []error
	clean := func(field string, vals []string, valid func(string) bool) []string {
		if len(vals) > maxFilterValues {
			errs = append(errs, fmt.Errorf("filter %s: at most %d values", field, maxFilterValues))
			return nil
		}
		out := make([]string, 0, len(vals))
		for _, v := range vals {
			v = strings.TrimSpace(v)
			if !valid(v) {
				errs = append(errs, fmt.Errorf("filter %s: invalid value %q", field, v))
				continue
			}
			out = append(out, v)
		}
		slices.Sort(out)
		out = slices.Compact(out)
		if len(out) == 0 {
			return nil
		}
		return out
	}
	r.Filter.District = clean("district", r.Filter.District, isCode)
	r.Filter.Street = clean("street", r.Filter.Street, isCode)
	r.Filter.Category = clean("category", r.Filter.Category, isCode)
	r.Filter.Severity = clean("severity", r.Filter.Severity, func(s string) bool { return slices.Contains(severities, s) })
	switch r.CoordSys {
	case "":
		r.CoordSys = event.CoordWGS84
	case event.CoordWGS84, event.CoordGCJ02, event.CoordBD09:
	default:
		errs = append(errs, fmt.Errorf("coordsys %q: want wgs84, gcj02 or bd09", r.CoordSys))
	}
	if r.Resume != nil && (r.Resume.Epoch == "" || len(r.Resume.Epoch) > maxCodeLen) {
		errs = append(errs, errors.New("resume: epoch is required"))
	}
	return errors.Join(errs...)
}

// isCode accepts the area and category codes of the city (digits, letters, '-', '_').
func isCode(s string) bool {
	if s == "" || len(s) > maxCodeLen {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// requestFromQuery reads a subscription from the handshake's query:
// district, street, category, severity (comma-separated), coordsys, map=1, kpi=1, and
// epoch+seq to resume.
func requestFromQuery(q url.Values) (Request, error) {
	list := func(name string) []string {
		var out []string
		for _, v := range q[name] {
			for part := range strings.SplitSeq(v, ",") {
				if part = strings.TrimSpace(part); part != "" {
					out = append(out, part)
				}
			}
		}
		return out
	}
	flag := func(name string) (bool, error) {
		switch v := q.Get(name); v {
		case "":
			return false, nil
		default:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return false, fmt.Errorf("%s=%q: want 1 or 0", name, v)
			}
			return b, nil
		}
	}
	r := Request{
		Filter:   Filter{District: list("district"), Street: list("street"), Category: list("category"), Severity: list("severity")},
		CoordSys: q.Get("coordsys"),
	}
	var errs []error
	var err error
	if r.Map, err = flag("map"); err != nil {
		errs = append(errs, err)
	}
	if r.KPI, err = flag("kpi"); err != nil {
		errs = append(errs, err)
	}
	epoch, seq := q.Get("epoch"), q.Get("seq")
	switch {
	case epoch == "" && seq == "":
	case epoch == "" || seq == "":
		errs = append(errs, errors.New("resume needs both epoch and seq"))
	default:
		n, err := strconv.ParseUint(seq, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("seq=%q: want a number", seq))
		}
		r.Resume = &Resume{Epoch: epoch, Seq: n}
	}
	if err := errors.Join(errs...); err != nil {
		return Request{}, err
	}
	return r, r.normalize()
}

// match reports whether inc passes f.
func (f Filter) match(inc *event.Incident) bool {
	return in(f.District, inc.Area.District) && in(f.Street, inc.Area.Street) &&
		in(f.Category, inc.Category) && in(f.Severity, inc.Severity)
}

// matchArea is match for things that have a place but no category or severity (events,
// sensors): those two fields do not apply to them.
func (f Filter) matchArea(a event.Area) bool {
	return in(f.District, a.District) && in(f.Street, a.Street)
}

func in(set []string, v string) bool { return len(set) == 0 || slices.Contains(set, v) }

// key is the canonical text of a normalized filter.
func (f Filter) key() string {
	return "d=" + strings.Join(f.District, ",") + "|s=" + strings.Join(f.Street, ",") +
		"|c=" + strings.Join(f.Category, ",") + "|v=" + strings.Join(f.Severity, ",")
}
