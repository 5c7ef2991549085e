package open311

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
)

// City is what the mapping reads of the city: its categories and who handles each.
// *city.Map is one.
type City interface {
	Categories() []city.Category
	Category(code string) (city.Category, bool)
	AgencyFor(category string) (city.Agency, bool)
}

// Channel is the 12345 ticket channel of requests that came through Open311.
const Channel = "open311"

// Services are the city's categories as Open311 services: the code, the Chinese name, the
// major class as group, realtime (a request gets its id at once, or a token within seconds),
// no metadata (no attributes to fill in), and the words ingest classifies tickets by as
// keywords.
func Services(c City) []Service {
	cats := c.Categories()
	out := make([]Service, 0, len(cats))
	for _, cat := range cats {
		desc := cat.MajorName + " / " + cat.Name
		if a, ok := c.AgencyFor(cat.Code); ok {
			desc += "（" + a.Name + "）"
		}
		out = append(out, Service{
			ServiceCode: cat.Code, ServiceName: cat.Name, Description: desc,
			Metadata: false, Type: "realtime", Keywords: strings.Join(cat.Keywords, ","), Group: cat.MajorName,
		})
	}
	return out
}

// Request is a POST requests form as clients send it (application/x-www-form-urlencoded or
// multipart/form-data). The api_key is the API's business, not the request's.
type Request struct {
	ServiceCode   string
	Lat, Long     *float64 // WGS-84 unless CoordSys says otherwise
	CoordSys      string   // an extension: gcj02 or bd09 for Chinese base maps; ingest converts
	AddressString string
	Description   string
	FirstName     string
	LastName      string
	Phone         string
	Email         string
	MediaURL      string
}

// ErrBadRequest wraps what is wrong with a form before it becomes a ticket: what GeoReport v2
// itself requires (service_code) and what a form field cannot be (a lat that is no number).
// Everything else — ranges, the location, sizes, text — is ingest's to judge.
var ErrBadRequest = errors.New("open311: bad request")

// ParseRequest reads a POST requests form.
func ParseRequest(form url.Values) (Request, error) {
	get := func(k string) string { return strings.TrimSpace(form.Get(k)) }
	r := Request{
		ServiceCode: get("service_code"), CoordSys: get("coordsys"), AddressString: get("address_string"),
		Description: get("description"), FirstName: get("first_name"), LastName: get("last_name"),
		Phone: get("phone"), Email: get("email"), MediaURL: get("media_url"),
	}
	var errs []error
	if r.ServiceCode == "" {
		errs = append(errs, fmt.Errorf("%w: service_code is required", ErrBadRequest))
	}
	for _, f := range []struct {
		name string
		dst  **float64
	}{{"lat", &r.Lat}, {"long", &r.Long}} {
		s := get(f.name)
		if s == "" {
			continue
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s %q is not a number", ErrBadRequest, f.name, clip(s)))
			continue
		}
		*f.dst = &v
	}
	return r, errors.Join(errs...)
}

// RequestType is the 12345 request type of an Open311 request: a citizen asking the city to
// fix something is a 求助 (the hotline-ticket rule then raises an incident of the service's
// category).
const RequestType = event.RequestHelp

// CloudEvent is the request as the structured CloudEvent of a 12345 hotline ticket, the
// payload POST /api/v1/events accepts (docs/events.md): ticket ticketID on channel open311
// from source, the service code as category_code, the description as content (the service's
// name when there is none: a ticket needs text), lat/long or the address, and the caller
// fields that masking covers — the name (family name first when it is Chinese) and the
// phone. The e-mail and the media URL are not kept: the ticket has no field for them, and
// personal data the city does not need is not collected.
func (r Request) CloudEvent(ticketID, source string, svc city.Category, now time.Time) ([]byte, error) {
	content := r.Description
	if content == "" {
		content = svc.Name
	}
	t := event.HotlineTicket{
		TicketID: ticketID, Channel: Channel, RequestType: RequestType, CategoryCode: r.ServiceCode,
		CallerName: callerName(r.FirstName, r.LastName), CallerPhone: r.Phone,
		Content: content, Address: r.AddressString, Lat: r.Lat, Lon: r.Long, CoordSys: r.CoordSys,
		ReceivedAt: now.UTC(),
	}
	return json.Marshal(struct {
		SpecVersion     string              `json:"specversion"`
		ID              string              `json:"id"`
		Source          string              `json:"source"`
		Type            string              `json:"type"`
		Time            string              `json:"time"`
		DataContentType string              `json:"datacontenttype"`
		Data            event.HotlineTicket `json:"data"`
	}{"1.0", ticketID, source, event.TypeHotlineTicket, now.UTC().Format(time.RFC3339), "application/json", t})
}

// callerName joins a name as people write it: 王 + 小明 → 王小明, Jane + Doe → Jane Doe.
func callerName(first, last string) string {
	switch {
	case first == "" || last == "":
		return first + last
	case isASCII(first) && isASCII(last):
		return first + " " + last
	}
	return last + first
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return s
}
