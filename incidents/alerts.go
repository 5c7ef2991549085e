package incidents

import (
	"fmt"
	"slices"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
)

// An incident's CAP alert (预警, package alerts builds the documents): published once, by an
// operator's alert command or by a rule whose raise says alert, it then follows the incident —
// an Update whenever the severity changes, a Cancel when the incident ends (closed, cancelled,
// merged) — so subscribers never keep a warning the command centre has dropped. A new alert may
// be published after a Cancel (a reopened incident).

// alertLive says whether the incident has a published alert not yet cancelled.
func alertLive(inc *event.Incident) bool {
	return len(inc.Alerts) > 0 && inc.Alerts[len(inc.Alerts)-1].MsgType != event.AlertCancel
}

// publishAlert starts the incident's alert at its current severity.
func publishAlert(inc *event.Incident, by, note string, at time.Time) {
	inc.Alerts = append(slices.Clip(inc.Alerts), snapshot(inc, event.AlertMessage{MsgType: event.AlertAlert, Sent: at, By: by, Note: note}))
}

// snapshot completes m with the incident's state now, which its CAP document is built from.
func snapshot(inc *event.Incident, m event.AlertMessage) event.AlertMessage {
	m.Version, m.Severity, m.Status, m.Reports, m.AgencyName = inc.Version, inc.Severity, inc.Status, max(inc.ReportCount, len(inc.Reports)), inc.Assignment.AgencyName
	return m
}

// followAlert adds the Update or Cancel a change calls for to an incident with a live alert.
// change calls it on every changelog record, so no path that changes an incident can leave a
// subscriber's warning behind.
func followAlert(inc *event.Incident, at time.Time) {
	if !alertLive(inc) {
		return
	}
	last := inc.Alerts[len(inc.Alerts)-1]
	msg := snapshot(inc, event.AlertMessage{Sent: at, By: roleSystem})
	switch {
	case !inc.Status.Open():
		msg.MsgType, msg.Note = event.AlertCancel, fmt.Sprintf("事件已%s", statusWord[inc.Status])
	case inc.Severity != last.Severity:
		msg.MsgType = event.AlertUpdate
	default:
		return
	}
	if !msg.Sent.After(last.Sent) {
		msg.Sent = last.Sent.Add(time.Second) // CAP times are whole seconds; each message its own
	}
	inc.Alerts = append(slices.Clip(inc.Alerts), msg)
}

// needNoLiveAlert refuses a second alert while one is live: it follows the incident already.
func needNoLiveAlert(inc *event.Incident, _ event.Command) error {
	if alertLive(inc) {
		return fmt.Errorf("%w: an alert is already published; it follows the incident (updates and cancellation)", ErrInvalidCommand)
	}
	return nil
}

// statusWord names a final state in the Cancel's note.
var statusWord = map[event.Status]string{event.StatusClosed: "结案", event.StatusCancelled: "作误报撤销", event.StatusMerged: "并单"}
