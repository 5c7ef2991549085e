package api

import (
	"net/http"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/alerts"
	"github.com/urbanbrain/urbanbrain/storage"
)

// CAP alerts (预警, docs/integration.md): what the command centre publishes about incidents —
// by an operator's alert action or a rule's raise.alert, then followed by Updates and a Cancel
// (incidents/alerts.go) — as CAP 1.2 documents (package alerts). Public, as warnings to the
// public are: the documents carry no one's personal data.

// alertFeedWindow is how far back the feed reaches (incidents updated since then).
const alertFeedWindow = 7 * 24 * time.Hour

// alertFeedSize is how many messages the feed holds, newest first.
const alertFeedSize = 200

func (s *Server) alertRoutes() []Route {
	return []Route{
		{"GET /api/v1/alerts", public(http.HandlerFunc(s.alertFeed))},
		{"GET /api/v1/incidents/{id}/alerts/{n}", public(http.HandlerFunc(s.alertDocument))},
	}
}

func (s *Server) alertOptions() alerts.Options {
	return alerts.Options{Sender: s.cfg.CAPSender, SenderName: s.cfg.CAPSenderName, Contact: "12345"}
}

// alertFeed answers GET /api/v1/alerts: an Atom feed of the alert messages of the last week,
// newest first, each entry carrying its CAP document.
func (s *Server) alertFeed(w http.ResponseWriter, r *http.Request) {
	list, err := s.store.ListIncidents(r.Context(), storage.IncidentFilter{Since: time.Now().Add(-alertFeedWindow), Limit: storage.MaxLimit})
	if err != nil {
		s.internalError(w, "list incidents for the alert feed", err)
		return
	}
	var msgs []alerts.Alert
	for _, inc := range list {
		if len(inc.Alerts) == 0 {
			continue
		}
		m, err := alerts.Messages(inc, s.city, s.alertOptions())
		if err != nil {
			s.log.Warn("an incident's alerts cannot be built", zap.String("incident", inc.ID), zap.Error(err))
			continue
		}
		msgs = append(msgs, m...)
	}
	slices.SortFunc(msgs, func(a, b alerts.Alert) int { return b.Sent.Compare(a.Sent.Time) })
	if len(msgs) > alertFeedSize {
		msgs = msgs[:alertFeedSize]
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	b, err := alerts.Feed("预警信息 · "+s.cfg.CAPSenderName, scheme+"://"+r.Host+"/api/v1/alerts", msgs)
	if err != nil {
		s.internalError(w, "encode the alert feed", err)
		return
	}
	w.Header().Set("Content-Type", alerts.AtomContentType)
	_, _ = w.Write(b)
}

// alertDocument answers GET /api/v1/incidents/{id}/alerts/{n}: the n-th (from 1) CAP message
// published about the incident. An incident without that message is not found, whether it
// exists or not: the route tells nothing about incidents nobody published.
func (s *Server) alertDocument(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	n, err := strconv.Atoi(r.PathValue("n"))
	notFound := func() { writeError(w, http.StatusNotFound, CodeNotFound, "no alert "+r.PathValue("n")+" of "+id) }
	if err != nil || n < 1 {
		notFound()
		return
	}
	d, err := s.store.GetIncident(r.Context(), id)
	if err != nil || n > len(d.Incident.Alerts) {
		notFound()
		return
	}
	msgs, err := alerts.Messages(d.Incident, s.city, s.alertOptions())
	if err != nil {
		s.internalError(w, "build alerts", err)
		return
	}
	b, err := msgs[n-1].Encode()
	if err != nil {
		s.internalError(w, "encode an alert", err)
		return
	}
	w.Header().Set("Content-Type", alerts.ContentType)
	_, _ = w.Write(b)
}
