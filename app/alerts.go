package app

import (
	"context"
	"fmt"

	"github.com/urbanbrain/urbanbrain/alerts"
	"github.com/urbanbrain/urbanbrain/event"
)

// CAP alerts pushed to subscribers (--cap-subscribers): every message an incident change
// publishes (an Alert, an Update, a Cancel: incidents/alerts.go) goes to each subscriber
// through the agencies' webhook path — signed with the subscriber's secret, SSRF-guarded,
// retried, audited — as its CAP document. The delivery id "<incident>/alert/<n>" is the same on
// every attempt and every redelivery, so a subscriber keeps each message once.

// capTarget is a CAP subscriber's name among the notifier's targets.
func capTarget(name string) string { return "cap:" + name }

// pushAlerts is the alerts.push route's handler on the city.incidents changelog.
func (a *App) pushAlerts(ctx context.Context, ch event.IncidentChange) error {
	inc := ch.Incident
	var docs []alerts.Alert
	for i, m := range inc.Alerts {
		if m.Version != inc.Version {
			continue // sent by an earlier change
		}
		if docs == nil {
			var err error
			if docs, err = alerts.Messages(inc, a.city, alerts.Options{Sender: a.cfg.CAPSender, SenderName: a.cfg.CAPSenderName, Contact: "12345"}); err != nil {
				return fmt.Errorf("alerts of %s: %w", inc.ID, err)
			}
		}
		body, err := docs[i].Encode()
		if err != nil {
			return fmt.Errorf("alert %d of %s: %w", i+1, inc.ID, err)
		}
		for name := range a.cfg.CAPSubscribers {
			if err := a.webhook.Push(ctx, capTarget(name), fmt.Sprintf("%s/alert/%d", inc.ID, i+1), inc.ID, body, alerts.ContentType); err != nil {
				return err
			}
		}
	}
	return nil
}
