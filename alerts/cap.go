// Package alerts turns incidents into public warnings (预警信息) in the OASIS Common Alerting
// Protocol 1.2 (CAP), the format emergency-alert systems, broadcasters and warning apps take,
// following the Chinese national profile GB/T 35965.1 (应急信息交互协议 第1部分：预警信息) where
// this package could establish what it says (see FromIncident). It builds the documents —
// an alert for an incident, updates and a cancellation that reference it, and an Atom feed of
// alerts — and nothing else: it publishes nothing, serves nothing and chooses no topic. Its
// callers (an operator's action, a rule, the webhook notifier, a feed route) decide when an
// alert goes out and where.
//
// It must never put an incident's personal data (a 12345 caller's name or phone) into an
// alert: alerts are public (scope Public) and leave the system, so every incident goes
// through the project's masking policy (package auth) before any of its text is used.
package alerts

import (
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Namespace is the XML namespace of CAP 1.2 documents.
const Namespace = "urn:oasis:names:tc:emergency:cap:1.2"

// ContentType is the media type of a CAP document.
const ContentType = "application/cap+xml"

// Message types (msgType).
const (
	MsgAlert  = "Alert"
	MsgUpdate = "Update"
	MsgCancel = "Cancel"
)

// Alert is a CAP 1.2 <alert>. Field order is the schema's sequence, which encoding/xml keeps.
type Alert struct {
	XMLName    xml.Name   `xml:"urn:oasis:names:tc:emergency:cap:1.2 alert"`
	Identifier string     `xml:"identifier"`
	Sender     string     `xml:"sender"`
	Sent       Time       `xml:"sent"`
	Status     string     `xml:"status"`  // Actual, Exercise, System, Test, Draft
	MsgType    string     `xml:"msgType"` // Alert, Update, Cancel
	Source     string     `xml:"source,omitempty"`
	Scope      string     `xml:"scope"` // Public
	Note       string     `xml:"note,omitempty"`
	References References `xml:"references,omitempty"`
	// Incidents names the incidents the alert is about (the urbanbrain incident id), so every
	// message of one incident can be grouped whatever its references.
	Incidents string `xml:"incidents,omitempty"`
	Info      []Info `xml:"info,omitempty"`
}

// Info is a CAP <info> block: the event, how bad and how near, the text and the area.
type Info struct {
	Language     string       `xml:"language,omitempty"`
	Category     []string     `xml:"category"`
	Event        string       `xml:"event"`
	ResponseType []string     `xml:"responseType,omitempty"`
	Urgency      string       `xml:"urgency"`
	Severity     string       `xml:"severity"`
	Certainty    string       `xml:"certainty"`
	EventCode    []NamedValue `xml:"eventCode,omitempty"`
	Effective    *Time        `xml:"effective,omitempty"`
	Onset        *Time        `xml:"onset,omitempty"`
	Expires      *Time        `xml:"expires,omitempty"`
	SenderName   string       `xml:"senderName,omitempty"`
	Headline     string       `xml:"headline,omitempty"`
	Description  string       `xml:"description,omitempty"`
	Instruction  string       `xml:"instruction,omitempty"`
	Web          string       `xml:"web,omitempty"`
	Contact      string       `xml:"contact,omitempty"`
	Parameter    []NamedValue `xml:"parameter,omitempty"`
	Area         []Area       `xml:"area,omitempty"`
}

// Area is a CAP <area>. Polygons and circles are in WGS-84 and in CAP's order, latitude
// first: "lat,lon lat,lon …" (a closed ring) and "lat,lon radius_km" — the reverse of
// GeoJSON's lon,lat.
type Area struct {
	AreaDesc string       `xml:"areaDesc"`
	Polygon  []string     `xml:"polygon,omitempty"`
	Circle   []string     `xml:"circle,omitempty"`
	Geocode  []NamedValue `xml:"geocode,omitempty"`
}

// NamedValue is a CAP valueName/value pair (eventCode, parameter, geocode).
type NamedValue struct {
	ValueName string `xml:"valueName"`
	Value     string `xml:"value"`
}

// Value returns the value of the first pair named name, or "".
func Value(pairs []NamedValue, name string) string {
	for _, p := range pairs {
		if p.ValueName == name {
			return p.Value
		}
	}
	return ""
}

// TimeLayout is CAP's date and time: RFC 3339 with the offset always written as ±hh:mm
// (CAP forbids "Z") and no fractional seconds.
const TimeLayout = "2006-01-02T15:04:05-07:00"

// Time is a CAP date and time. It marshals in TimeLayout, in the time's own zone.
type Time struct{ time.Time }

// MarshalText writes t in TimeLayout, dropping any fraction of a second.
func (t Time) MarshalText() ([]byte, error) {
	return []byte(t.Truncate(time.Second).Format(TimeLayout)), nil
}

// UnmarshalText reads a CAP time; it refuses "Z" and fractional seconds, as CAP does.
func (t *Time) UnmarshalText(b []byte) error {
	v, err := time.Parse(TimeLayout, string(b))
	if err != nil {
		return fmt.Errorf("CAP time %q: %w", b, err)
	}
	t.Time = v
	return nil
}

// Reference names an earlier message: its sender, identifier and sent time.
type Reference struct {
	Sender     string
	Identifier string
	Sent       Time
}

// String is the reference in CAP's form, "sender,identifier,sent".
func (r Reference) String() string {
	sent, _ := r.Sent.MarshalText()
	return r.Sender + "," + r.Identifier + "," + string(sent)
}

// Ref is the reference to a, as a message that follows it names it.
func (a Alert) Ref() Reference {
	return Reference{Sender: a.Sender, Identifier: a.Identifier, Sent: a.Sent}
}

// References are the earlier messages an Update or Cancel refers to, oldest first; in XML a
// space-separated list of "sender,identifier,sent".
type References []Reference

// MarshalText writes the references space-separated.
func (rs References) MarshalText() ([]byte, error) {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return []byte(strings.Join(parts, " ")), nil
}

// UnmarshalText reads a space-separated list of "sender,identifier,sent".
func (rs *References) UnmarshalText(b []byte) error {
	var out References
	for _, f := range strings.Fields(string(b)) {
		p := strings.Split(f, ",")
		if len(p) != 3 {
			return fmt.Errorf("CAP reference %q: want sender,identifier,sent", f)
		}
		var sent Time
		if err := sent.UnmarshalText([]byte(p[2])); err != nil {
			return fmt.Errorf("CAP reference %q: %w", f, err)
		}
		out = append(out, Reference{Sender: p[0], Identifier: p[1], Sent: sent})
	}
	*rs = out
	return nil
}

// Encode returns the alert as a standalone XML document (UTF-8, with the XML declaration).
func (a Alert) Encode() ([]byte, error) {
	body, err := xml.MarshalIndent(a, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode CAP alert %s: %w", a.Identifier, err)
	}
	return append([]byte(xml.Header), append(body, '\n')...), nil
}

// Decode reads a CAP 1.2 document.
func Decode(b []byte) (Alert, error) {
	var a Alert
	if err := xml.Unmarshal(b, &a); err != nil {
		return Alert{}, fmt.Errorf("decode CAP alert: %w", err)
	}
	if a.XMLName.Space != Namespace {
		return Alert{}, fmt.Errorf("decode CAP alert: namespace %q, want %q", a.XMLName.Space, Namespace)
	}
	return a, nil
}

// validToken reports whether s may be a CAP sender or identifier: CAP 1.2 (3.2.1) forbids
// spaces, commas and the restricted characters < and &, because references join them with
// commas and spaces.
func validToken(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if i := strings.IndexFunc(s, func(r rune) bool {
		return r == ',' || r == '<' || r == '&' || r <= ' ' || r == 0x7f || r == 0xa0 || r == 0x3000
	}); i >= 0 {
		return fmt.Errorf("%q has a space, comma, < or & (or a control character) at byte %d", s, i)
	}
	return nil
}
