package api

import (
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
)

// The read audit (issue 11 item 6, PIPL and 等保 2.0 level 3): every answer that shows a
// supervisor or an admin personal data unmasked is first recorded on city.audit — who, through
// which route, which incident or event, which fields, when — one record per object, as kind
// "read". It goes through emit like every other audit record, so every store that projects
// city.audit keeps it in the same append-only log, which retention never removes. The answer
// is given only once the broker has the record: a read that cannot be audited is refused
// (503), never answered unrecorded. Masked answers hold no personal data and are not
// recorded.

// seesPersonalData reports whether c's answers hold personal data unmasked.
func seesPersonalData(c auth.Claims) bool { return auth.Can(c.Role, auth.PermSeePersonalData) }

// personalRead is one object an answer showed unmasked, and the personal-data fields it held.
type personalRead struct {
	incident string // the incident read, if any
	eventID  string // the event read, for the event history
	key      string // partition key of the record: the street
	fields   []string
}

// auditReads records the reads of personal data r's answer makes for the holder of c (none
// for a role that sees personal data masked). It reports whether the answer may be given,
// having answered 503 itself when not.
func (s *Server) auditReads(w http.ResponseWriter, r *http.Request, c auth.Claims, reads []personalRead) bool {
	if !seesPersonalData(c) {
		return true
	}
	at := time.Now().UTC()
	var outs event.Outputs
	for _, rd := range reads {
		if len(rd.fields) == 0 {
			continue
		}
		rec := event.AuditRecord{
			ID: "read:" + uuid.NewString(), Kind: event.AuditRead, IncidentID: rd.incident, Action: r.Pattern,
			Actor: event.Actor{Subject: c.Subject, Role: c.Role, District: c.District, Grids: c.Grids},
			OK:    true, Target: rd.eventID, Fields: rd.fields, Reason: r.URL.RawQuery, At: at,
		}
		key := rd.key
		if key == "" {
			key = event.UnknownStreet
		}
		outs = append(outs, event.Output{Key: key, ID: rec.ID, Time: at, Data: rec})
	}
	if len(outs) == 0 {
		return true
	}
	if err := s.emit(r.Context(), outs); err != nil {
		s.log.Error("read audit not written; answer refused", zap.String("route", r.Pattern), zap.String("actor", c.Subject),
			zap.Int("objects", len(outs)), zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "the read could not be audited; try again")
		return false
	}
	return true
}

// incidentReads are the reads a list of incidents makes.
func incidentReads(incs []event.Incident) []personalRead {
	out := make([]personalRead, 0, len(incs))
	for _, inc := range incs {
		out = append(out, personalRead{incident: inc.ID, key: inc.Area.Key(), fields: auth.PersonalFields(inc)})
	}
	return out
}

// detailRead is the read an incident's detail makes: the incident, its timeline, its linked
// events and its dispatches, as one record of every field shown.
func detailRead(d storage.IncidentDetail) personalRead {
	return personalRead{incident: d.Incident.ID, key: d.Incident.Area.Key(), fields: DetailFields(d)}
}

// DetailFields are the personal-data fields an incident's detail holds: the incident's, and
// those of its events, timeline and dispatches under their prefix, as the read audit records
// them.
func DetailFields(d storage.IncidentDetail) []string {
	fields := auth.PersonalFields(d.Incident)
	add := func(prefix string, fs []string) {
		for _, f := range fs {
			if f = prefix + f; !slices.Contains(fields, f) {
				fields = append(fields, f)
			}
		}
	}
	for _, e := range d.Events {
		add("events.", auth.PersonalEventFields(e))
	}
	for _, e := range d.Timeline {
		add("timeline.", changeFields(e.Change))
	}
	for _, x := range d.Dispatches {
		if auth.MaskDispatch(x, auth.Claims{}).Reason != x.Reason {
			add("dispatches.", []string{"reason"})
		}
	}
	return fields
}

// changeFields are the personal-data fields of a timeline change.
func changeFields(ch event.Change) []string {
	var fs []string
	m := auth.MaskChange(ch, auth.Claims{})
	if m.Reason != ch.Reason {
		fs = append(fs, "reason")
	}
	if m.Note != ch.Note {
		fs = append(fs, "note")
	}
	return fs
}
