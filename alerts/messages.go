package alerts

import (
	"fmt"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
)

// Messages builds the CAP documents of every message published about inc (inc.Alerts, which
// the incident service appends: an Alert, Updates, a Cancel, maybe a new Alert after a Cancel),
// oldest first. Each is built as it was sent — at its own time, from the incident's state then
// (severity, status, reports, agency, version: the message's snapshot) — so a message's
// document is the same whenever it is served or pushed; each Update or Cancel references the
// messages before it since the last Alert.
// opts' Sender and SenderName (and Web, Contact …) apply to all; Sent is each message's own.
func Messages(inc event.Incident, m *city.Map, opts Options) ([]Alert, error) {
	out := make([]Alert, 0, len(inc.Alerts))
	var prev *Alert
	for i, msg := range inc.Alerts {
		o := opts
		o.Sent = msg.Sent
		then := inc // the incident as it was then: the document of a message never changes
		then.Version, then.Severity, then.Status, then.ReportCount = msg.Version, msg.Severity, msg.Status, msg.Reports
		then.Reports = inc.Reports[:min(len(inc.Reports), msg.Reports)]
		then.Assignment.AgencyName = msg.AgencyName
		var (
			a   Alert
			err error
		)
		switch {
		case msg.MsgType == event.AlertAlert || prev == nil:
			a, err = FromIncident(then, m, o)
		case msg.MsgType == event.AlertUpdate:
			a, err = Update(*prev, then, m, o)
		case msg.MsgType == event.AlertCancel:
			reason := msg.Note
			if reason == "" {
				reason = "预警解除"
			}
			a, err = Cancel(*prev, reason, o)
		default:
			err = fmt.Errorf("unknown message type %q", msg.MsgType)
		}
		if err != nil {
			return nil, fmt.Errorf("alert message %d of %s: %w", i+1, inc.ID, err)
		}
		out = append(out, a)
		prev = &out[len(out)-1]
		if msg.MsgType == event.AlertCancel {
			prev = nil // a later Alert starts a new chain
		}
	}
	return out, nil
}
