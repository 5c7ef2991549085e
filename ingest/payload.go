package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	segjson "github.com/segmentio/encoding/json"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
)

// Closed vocabularies of the payloads, as the event contract documents them. Kinds of
// sensor, camera algorithms and category codes are open lists (a city adds its own), so they
// are only required, not checked against a list.
var (
	sensorStatuses = []string{"ok", "alarm", "fault", "offline"}
	requestTypes   = []string{event.RequestConsult, event.RequestHelp, event.RequestComplaint, event.RequestReport, event.RequestSuggest}
	channels       = []string{"phone", "app", "web", "wechat", "open311"}
	urgencies      = []string{"normal", "urgent", "emergency"}
)

// position points at a payload's coordinates, so that the converted WGS-84 values can be
// written back into it.
type position struct {
	lat, lon **float64
	coordSys *string
}

// decodeData unmarshals an event's data into its payload type. scanned says that scanObject
// has read the data as part of its record (structured and bare events; not binary mode or
// data_base64, whose bytes only checkText saw).
func decodeData(data []byte, scanned bool, out any) *RejectError {
	if c := firstByte(data); c != '{' {
		return reject(ClassPayload, "data must be a JSON object, got %s", jsonKindOf(c))
	}
	if scanned && !foldsToASCIIIn(data) {
		// segmentio's decoder is three to four times faster than encoding/json's and, unlike
		// it, does not check the whole input before decoding: the scan did that (syntax, UTF-8,
		// depth). Whatever it refuses is decoded again by encoding/json, into a zero value, so
		// that the reason is encoding/json's and so is the verdict;
		// FuzzDecodeDataMatchesEncodingJSON holds the two to the same values and errors.
		if segjson.Unmarshal(data, out) == nil {
			return nil
		}
		reflect.ValueOf(out).Elem().SetZero()
	}
	err := json.Unmarshal(data, out)
	if err == nil {
		return nil
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tp *time.ParseError
	switch {
	case errors.As(err, &syn):
		return reject(ClassMalformed, "malformed JSON in data at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "data"
		}
		if n, ok := strings.CutPrefix(typ.Value, "number "); ok && goKind(typ.Type) == "a number" {
			// 1e400 for a float64, 1.5 or 3e9 for an int32: a number, but not one the field holds.
			return reject(ClassPayload, "%s: invalid number %s: not representable as %s", clip(field), clip(n), typ.Type)
		}
		return reject(ClassPayload, "%s: want %s, got %s", clip(field), goKind(typ.Type), clip(typ.Value))
	case errors.As(err, &tp):
		return reject(ClassPayload, "received_at %q is not RFC 3339", clip(tp.Value))
	default:
		return reject(ClassPayload, "invalid data: %s", clip(err.Error()))
	}
}

func checkSensor(r *event.SensorReading) *RejectError {
	var p problems
	requireText(&p, "device_id", r.DeviceID)
	requireText(&p, "kind", r.Kind)
	if len(r.Metrics) == 0 {
		p.addf("metrics empty: want at least one name → number")
	}
	if !metricsFine(r.Metrics) {
		// The problems in the order of the names, the same reason for the same reading.
		names := make([]string, 0, len(r.Metrics))
		for name := range r.Metrics {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			if strings.TrimSpace(name) == "" {
				p.addf("metrics: empty metric name")
			}
			if !finite(r.Metrics[name]) {
				p.addf("metrics.%s: not a finite number", clip(name))
			}
		}
	}
	if r.Battery != nil && !(finite(*r.Battery) && *r.Battery >= 0 && *r.Battery <= 100) {
		p.addf("battery %v out of range 0..100", *r.Battery)
	}
	checkEnum(&p, "status", r.Status, sensorStatuses)
	if r.Lat == nil || r.Lon == nil {
		p.addf("missing lat/lon")
	}
	return p.reject(ClassPayload)
}

// foldRunes are the runes outside ASCII that case-fold to an ASCII letter: ſ to s and the
// Kelvin sign K to k (TestFoldRunesAreAllThatFoldToASCII checks the list against the Unicode
// tables). encoding/json matches a member named "ſtatus" to the field status; segmentio's
// decoder silently does not, so data that may hold one is decoded by encoding/json.
var foldRunes = []rune{'\u017f', '\u212a'}

// foldUTF8 are foldRunes in UTF-8.
var foldUTF8 = func() (f [][]byte) {
	for _, r := range foldRunes {
		f = append(f, utf8.AppendRune(nil, r))
	}
	return f
}()

// foldsToASCIIIn reports whether data may hold a rune of foldRunes, raw or escaped; a false
// alarm only costs the slower decoder.
func foldsToASCIIIn(data []byte) bool {
	for _, f := range foldUTF8 {
		if bytes.Contains(data, f) {
			return true
		}
	}
	return event.MayEscape(data, foldRunes...)
}

// metricsFine reports whether every metric has a name and a finite value: the usual reading,
// which then needs no sorted pass for its problems.
func metricsFine(m map[string]float64) bool {
	for name, v := range m {
		if !finite(v) || strings.TrimSpace(name) == "" {
			return false
		}
	}
	return true
}

func checkHotline(r *event.HotlineTicket) *RejectError {
	var p problems
	requireText(&p, "ticket_id", r.TicketID)
	if len(r.TicketID) > maxIDBytes {
		p.addf("ticket_id is %d bytes, limit %d", len(r.TicketID), maxIDBytes)
	}
	if r.RequestType == "" {
		p.addf("missing request_type (want one of %s)", strings.Join(requestTypes, "/"))
	} else {
		checkEnum(&p, "request_type", r.RequestType, requestTypes)
	}
	requireText(&p, "content", r.Content)
	checkEnum(&p, "channel", r.Channel, channels)
	checkEnum(&p, "urgency", r.Urgency, urgencies)
	switch {
	case (r.Lat == nil) != (r.Lon == nil):
		p.addf("lat and lon must be given together")
	case r.Lat == nil && strings.TrimSpace(r.DistrictCode) == "" && strings.TrimSpace(r.Address) == "":
		p.addf("no location: want lat/lon, or district_code or address")
	}
	return p.reject(ClassPayload)
}

func checkVideo(r *event.VideoDetection) *RejectError {
	var p problems
	requireText(&p, "camera_id", r.CameraID)
	requireText(&p, "algorithm", r.Algorithm)
	if !(finite(r.Confidence) && r.Confidence >= 0 && r.Confidence <= 1) {
		p.addf("confidence %v out of range 0..1", r.Confidence)
	}
	if len(r.BBox) != 0 {
		if len(r.BBox) != 4 {
			p.addf("bbox has %d numbers, want 4 (x, y, width, height)", len(r.BBox))
		} else if slices.ContainsFunc(r.BBox, func(v float64) bool { return !finite(v) || v < 0 }) {
			p.addf("bbox: want finite, non-negative pixels")
		}
	}
	if r.ObjectCount < 0 {
		p.addf("object_count %d is negative", r.ObjectCount)
	}
	if r.SnapshotURL != "" {
		// The cockpit renders it as a link or an image: only plain web URLs, never
		// javascript: or data: ones.
		u, err := url.Parse(r.SnapshotURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.addf("snapshot_url %q: want an absolute http(s) URL", clip(r.SnapshotURL))
		}
	}
	if r.Lat == nil || r.Lon == nil {
		p.addf("missing lat/lon")
	}
	return p.reject(ClassPayload)
}

// locate checks a position and converts it to WGS-84.
func locate(lat, lon float64, coordSys string) (event.Point, *RejectError) {
	var p problems
	if !finite(lat) || lat < -90 || lat > 90 {
		p.addf("lat %v out of range -90..90", lat)
	}
	if !finite(lon) || lon < -180 || lon > 180 {
		p.addf("lon %v out of range -180..180", lon)
	}
	if rej := p.reject(ClassLocation); rej != nil {
		return event.Point{}, rej
	}
	w, err := city.ToWGS84(coordSys, event.Point{Lon: lon, Lat: lat})
	if err != nil {
		return event.Point{}, reject(ClassLocation, "unknown coordsys %q (want wgs84, gcj02 or bd09)", clip(coordSys))
	}
	if !finite(w.Lat) || !finite(w.Lon) || !city.InChina(w) {
		return event.Point{}, reject(ClassLocation, "location lat %v, lon %v is outside China", lat, lon)
	}
	return w, nil
}

// problems collects everything wrong with one payload, so a producer fixes it in one go.
type problems []string

func (p *problems) addf(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func (p problems) reject(c Class) *RejectError {
	if len(p) == 0 {
		return nil
	}
	return &RejectError{Class: c, Reason: strings.Join(p, "; ")}
}

func requireText(p *problems, field, v string) {
	if strings.TrimSpace(v) == "" {
		p.addf("missing %s", field)
	}
}

func checkEnum(p *problems, field, v string, allowed []string) {
	if v != "" && !slices.Contains(allowed, v) {
		p.addf("unknown %s %q (want one of %s)", field, clip(v), strings.Join(allowed, ", "))
	}
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// clip shortens a producer's string quoted in a reason: a reason names the problem, the dead
// letter keeps the bytes.
func clip(s string) string { return clipTo(s, 64) }

func clipTo(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func jsonKindOf(c byte) string {
	switch {
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 'n':
		return "null"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == '-' || (c >= '0' && c <= '9'):
		return "a number"
	case c == 0:
		return "nothing"
	default:
		return "something else"
	}
}

func goKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.Float32, reflect.Float64, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		if t == reflect.TypeFor[time.Time]() {
			return "an RFC 3339 time string"
		}
		return "an object"
	case reflect.Bool:
		return "a boolean"
	default:
		return t.String()
	}
}
