package open311

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"strings"
)

// The two formats of GeoReport v2: a resource is asked for as "services.json" or
// "services.xml". XML is the one the specification requires; JSON is what most clients use.
const (
	FormatJSON = "json"
	FormatXML  = "xml"
)

// Formats are the formats served, JSON first.
var Formats = []string{FormatJSON, FormatXML}

// ContentType is the media type of an answer in format.
func ContentType(format string) string {
	if format == FormatXML {
		return "text/xml; charset=utf-8"
	}
	return "application/json; charset=utf-8"
}

// SplitFormat splits the last path segment of a resource ("INC-1.json", "0101.xml") into its
// name and format. ok is false when the extension is not a served format or the name is empty.
func SplitFormat(file string) (name, format string, ok bool) {
	i := strings.LastIndexByte(file, '.')
	if i <= 0 {
		return "", "", false
	}
	name, format = file[:i], file[i+1:]
	return name, format, format == FormatJSON || format == FormatXML
}

// Service is one service type a citizen may ask for (GET services): a category of the city's
// list (GB/T 30428 style).
type Service struct {
	ServiceCode string `json:"service_code" xml:"service_code"`
	ServiceName string `json:"service_name" xml:"service_name"`
	Description string `json:"description" xml:"description"`
	// Metadata says whether the service has a definition with attributes to fill in; the
	// city's services have none.
	Metadata bool   `json:"metadata" xml:"metadata"`
	Type     string `json:"type" xml:"type"` // realtime, batch or blackbox
	Keywords string `json:"keywords" xml:"keywords"`
	Group    string `json:"group" xml:"group"`
}

// ServiceRequest is one request as GET requests and GET requests/{id} answer it. It has no
// field for who asked: the caller's name, phone and e-mail never leave through Open311.
type ServiceRequest struct {
	ServiceRequestID  string   `json:"service_request_id" xml:"service_request_id"`
	Status            string   `json:"status" xml:"status"` // open or closed
	StatusNotes       string   `json:"status_notes" xml:"status_notes"`
	ServiceName       string   `json:"service_name" xml:"service_name"`
	ServiceCode       string   `json:"service_code" xml:"service_code"`
	Description       string   `json:"description" xml:"description"`
	AgencyResponsible string   `json:"agency_responsible" xml:"agency_responsible"`
	ServiceNotice     string   `json:"service_notice" xml:"service_notice"`
	RequestedDatetime string   `json:"requested_datetime" xml:"requested_datetime"`
	UpdatedDatetime   string   `json:"updated_datetime" xml:"updated_datetime"`
	ExpectedDatetime  string   `json:"expected_datetime" xml:"expected_datetime"`
	Address           string   `json:"address" xml:"address"`
	AddressID         string   `json:"address_id" xml:"address_id"`
	Zipcode           string   `json:"zipcode" xml:"zipcode"`
	Lat               *float64 `json:"lat" xml:"lat,omitempty"`
	Long              *float64 `json:"long" xml:"long,omitempty"`
	MediaURL          string   `json:"media_url" xml:"media_url"`
}

// Receipt is the answer to POST requests: the request's id, or a token when the id is not
// known yet (GET tokens/{token} gives it later), with what the city will do about it.
type Receipt struct {
	ServiceRequestID string  `json:"service_request_id,omitempty" xml:"service_request_id,omitempty"`
	Token            string  `json:"token,omitempty" xml:"token,omitempty"`
	ServiceNotice    string  `json:"service_notice,omitempty" xml:"service_notice,omitempty"`
	AccountID        *string `json:"account_id" xml:"account_id,omitempty"`
}

// TokenStatus is the answer to GET tokens/{token}: the request's id once there is one.
type TokenStatus struct {
	ServiceRequestID string `json:"service_request_id" xml:"service_request_id"`
	Token            string `json:"token" xml:"token"`
}

// Error is one error of an answer; Code is the HTTP status.
type Error struct {
	Code        int    `json:"code" xml:"code"`
	Description string `json:"description" xml:"description"`
}

// EncodeServices is the answer to GET services: root services, one service each.
func EncodeServices(format string, ss []Service) ([]byte, error) {
	return encode(format, "services", "service", ss)
}

// EncodeRequests is the answer to GET requests and GET requests/{id}: root service_requests,
// one request each.
func EncodeRequests(format string, rs []ServiceRequest) ([]byte, error) {
	return encode(format, "service_requests", "request", rs)
}

// EncodeReceipts is the answer to POST requests, shaped as a list of requests.
func EncodeReceipts(format string, rs []Receipt) ([]byte, error) {
	return encode(format, "service_requests", "request", rs)
}

// EncodeTokens is the answer to GET tokens/{token}.
func EncodeTokens(format string, ts []TokenStatus) ([]byte, error) {
	return encode(format, "service_requests", "request", ts)
}

// EncodeErrors is an error answer: root errors, one error each.
func EncodeErrors(format string, es []Error) ([]byte, error) {
	return encode(format, "errors", "error", es)
}

// encode writes items as a JSON array, or as an XML document with the declaration, the root
// element and one item element each.
func encode[T any](format, root, item string, items []T) ([]byte, error) {
	if items == nil {
		items = []T{} // "[]", never "null"
	}
	switch format {
	case FormatJSON:
		return json.Marshal(items)
	case FormatXML:
		var b bytes.Buffer
		b.WriteString(xml.Header)
		enc := xml.NewEncoder(&b)
		start := xml.StartElement{Name: xml.Name{Local: root}}
		if err := enc.EncodeToken(start); err != nil {
			return nil, err
		}
		for _, it := range items {
			if err := enc.EncodeElement(it, xml.StartElement{Name: xml.Name{Local: item}}); err != nil {
				return nil, fmt.Errorf("open311: encode %s: %w", item, err)
			}
		}
		if err := enc.EncodeToken(start.End()); err != nil {
			return nil, err
		}
		if err := enc.Flush(); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	return nil, fmt.Errorf("open311: unknown format %q", format)
}
