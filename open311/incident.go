package open311

import (
	"strings"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
)

// The two statuses of GeoReport v2.
const (
	StatusOpen   = "open"
	StatusClosed = "closed"
)

// StatusOf maps the work-order loop to Open311's two statuses: closed (结案), cancelled (误报)
// and merged (并单) are closed; every other state still needs work and is open.
func StatusOf(s event.Status) string {
	if s.Open() {
		return StatusOpen
	}
	return StatusClosed
}

// statusText says where an incident stands in the loop, in the words the citizen's app shows.
var statusText = map[event.Status]string{
	event.StatusNew:        "已受理，待派遣",
	event.StatusDispatched: "已派遣，待签收",
	event.StatusAccepted:   "已签收，待处置",
	event.StatusInProgress: "处置中",
	event.StatusResolved:   "已处置，待核查",
	event.StatusVerified:   "已核查，待结案",
	event.StatusClosed:     "已结案",
	event.StatusReturned:   "已退单，待重新派遣",
	event.StatusCancelled:  "已撤销（误报）",
	event.StatusMerged:     "已并单",
}

// stageText names the SLA clock's stages (event.Stage…).
var stageText = map[string]string{
	event.StageSignFor: "签收",
	event.StageHandle:  "处置",
	event.StageVerify:  "核查",
}

// Datetime is a time as GeoReport v2 writes it (W3C, with the zone: UTC); "" for none.
func Datetime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// FromIncident is an incident as a service request, its id the incident's id (one request per
// real-world problem, however many citizens reported it). inc must already be masked for whoever
// reads it (auth.MaskIncident), and latest, the incident's latest change when it is at hand
// (nil otherwise), too (auth.MaskChange): this mapping only picks fields, and it picks no
// caller. photoURL makes an uploaded photo's name a URL.
//
//   - status: open or closed (StatusOf); status_notes where the loop stands, and the reason or
//     note of the latest change (a return's reason, the resolver's note);
//   - service_code and service_name: the incident's category; agency_responsible: the agency it
//     is assigned to, else the category's;
//   - service_notice and expected_datetime: the SLA clock of the current stage, while open and
//     not paused by an extension request;
//   - description: the first 12345 report's summary (the ticket's text, cut at 140 characters),
//     else the title;
//   - address: the district, street and community names; address_id: the grid's code;
//   - media_url: the resolver's first photo.
func FromIncident(inc event.Incident, c City, latest *event.Change, photoURL func(incident, name string) string) ServiceRequest {
	r := ServiceRequest{
		ServiceRequestID: inc.ID, Status: StatusOf(inc.Status), StatusNotes: statusNotes(inc, latest),
		ServiceCode: inc.Category, Description: inc.Title,
		RequestedDatetime: Datetime(inc.CreatedAt), UpdatedDatetime: Datetime(inc.UpdatedAt),
		Address:   inc.Area.DistrictName + inc.Area.StreetName + inc.Area.CommunityName,
		AddressID: inc.Area.Grid,
	}
	if cat, ok := c.Category(inc.Category); ok {
		r.ServiceName = cat.Name
	}
	r.AgencyResponsible = inc.Assignment.AgencyName
	if a, ok := c.AgencyFor(inc.Category); ok && r.AgencyResponsible == "" {
		r.AgencyResponsible = a.Name
	}
	for _, rep := range inc.Reports {
		if rep.EventType == event.TypeHotlineTicket && rep.Summary != "" {
			r.Description = rep.Summary
			break
		}
	}
	if inc.Location != nil {
		lat, lon := inc.Location.Lat, inc.Location.Lon
		r.Lat, r.Long = &lat, &lon
	}
	if k := inc.Clock; k != nil && inc.Status.Open() && k.PausedAt.IsZero() && !k.DueAt.IsZero() {
		r.ExpectedDatetime = Datetime(k.DueAt)
		if st, ok := stageText[k.Stage]; ok {
			r.ServiceNotice = st + "时限 " + r.ExpectedDatetime
		}
	}
	if inc.Evidence != nil {
		for _, p := range inc.Evidence.Photos {
			switch {
			case event.IsPhotoName(p) && photoURL != nil:
				r.MediaURL = photoURL(inc.ID, p)
			case strings.HasPrefix(p, "https://") || strings.HasPrefix(p, "http://"):
				r.MediaURL = p
			default:
				continue
			}
			break
		}
	}
	return r
}

// statusNotes is where the incident stands, and why when its latest change says so.
func statusNotes(inc event.Incident, latest *event.Change) string {
	s := statusText[inc.Status]
	if inc.Status == event.StatusMerged && inc.MergedInto != "" {
		s += "，并入 " + inc.MergedInto
	}
	if latest == nil {
		return s
	}
	why := latest.Reason
	if why == "" {
		why = latest.Note
	}
	if why != "" {
		s += "：" + why
	}
	return s
}
