package open311_test

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/city/citytest"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/open311"
)

// The spec's shapes, as a client decodes them: GeoReport v2's element and field names.
type specService struct {
	ServiceCode string `xml:"service_code"`
	ServiceName string `xml:"service_name"`
	Description string `xml:"description"`
	Metadata    bool   `xml:"metadata"`
	Type        string `xml:"type"`
	Keywords    string `xml:"keywords"`
	Group       string `xml:"group"`
}

type specServices struct {
	XMLName  xml.Name      `xml:"services"`
	Services []specService `xml:"service"`
}

type specRequest struct {
	ServiceRequestID  string  `xml:"service_request_id"`
	Status            string  `xml:"status"`
	StatusNotes       string  `xml:"status_notes"`
	ServiceName       string  `xml:"service_name"`
	ServiceCode       string  `xml:"service_code"`
	Description       string  `xml:"description"`
	AgencyResponsible string  `xml:"agency_responsible"`
	ServiceNotice     string  `xml:"service_notice"`
	RequestedDatetime string  `xml:"requested_datetime"`
	UpdatedDatetime   string  `xml:"updated_datetime"`
	ExpectedDatetime  string  `xml:"expected_datetime"`
	Address           string  `xml:"address"`
	AddressID         string  `xml:"address_id"`
	Zipcode           string  `xml:"zipcode"`
	Lat               float64 `xml:"lat"`
	Long              float64 `xml:"long"`
	MediaURL          string  `xml:"media_url"`
	Token             string  `xml:"token"`
}

type specRequests struct {
	XMLName  xml.Name      `xml:"service_requests"`
	Requests []specRequest `xml:"request"`
}

type specErrors struct {
	XMLName xml.Name `xml:"errors"`
	Errors  []struct {
		Code        int    `xml:"code"`
		Description string `xml:"description"`
	} `xml:"error"`
}

func TestServicesAreTheCitysCategories(t *testing.T) {
	t.Parallel()
	m := citytest.Demo(t)
	svcs := open311.Services(m)
	if len(svcs) != len(m.Categories()) || len(svcs) == 0 {
		t.Fatalf("%d services for %d categories", len(svcs), len(m.Categories()))
	}
	cat := m.Categories()[0]
	s := svcs[0]
	if s.ServiceCode != cat.Code || s.ServiceName != cat.Name || s.Group != cat.MajorName || s.Type != "realtime" || s.Metadata {
		t.Errorf("service %+v from category %+v", s, cat)
	}
	if len(cat.Keywords) > 0 && s.Keywords != strings.Join(cat.Keywords, ",") {
		t.Errorf("keywords %q, want %q", s.Keywords, cat.Keywords)
	}

	// JSON: an array of objects with exactly the spec's field names.
	b, err := open311.EncodeServices(open311.FormatJSON, svcs)
	if err != nil {
		t.Fatal(err)
	}
	var objs []map[string]any
	if err := json.Unmarshal(b, &objs); err != nil {
		t.Fatal(err)
	}
	want := []string{"description", "group", "keywords", "metadata", "service_code", "service_name", "type"}
	if got := keys(objs[0]); !slices.Equal(got, want) {
		t.Errorf("JSON fields %v, want %v", got, want)
	}
	if objs[0]["metadata"] != false {
		t.Errorf("metadata %v, want the boolean false", objs[0]["metadata"])
	}

	// XML: <services><service>…</service></services> after the declaration.
	b, err = open311.EncodeServices(open311.FormatXML, svcs)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), `<?xml version="1.0" encoding="UTF-8"?>`) {
		t.Errorf("no XML declaration: %.60s", b)
	}
	var doc specServices
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Services) != len(svcs) || doc.Services[0] != (specService(s)) {
		t.Errorf("XML services %+v, want %+v first", doc.Services[:1], s)
	}
}

func TestEmptyListsAndErrors(t *testing.T) {
	t.Parallel()
	if b, _ := open311.EncodeRequests(open311.FormatJSON, nil); string(b) != "[]" {
		t.Errorf("no requests in JSON: %s, want []", b)
	}
	b, err := open311.EncodeRequests(open311.FormatXML, nil)
	if err != nil || !strings.Contains(string(b), "<service_requests></service_requests>") {
		t.Errorf("no requests in XML: %s %v", b, err)
	}
	es := []open311.Error{{Code: 403, Description: "api_key refused: <script>"}}
	b, _ = open311.EncodeErrors(open311.FormatJSON, es)
	if string(b) != `[{"code":403,"description":"api_key refused: \u003cscript\u003e"}]` {
		t.Errorf("JSON error %s", b)
	}
	b, _ = open311.EncodeErrors(open311.FormatXML, es)
	var doc specErrors
	if err := xml.Unmarshal(b, &doc); err != nil || len(doc.Errors) != 1 || doc.Errors[0].Code != 403 || doc.Errors[0].Description != es[0].Description {
		t.Errorf("XML error %s → %+v %v", b, doc, err)
	}
	if strings.Contains(string(b), "<script>") {
		t.Errorf("XML error not escaped: %s", b)
	}
	if _, err := open311.EncodeErrors("csv", es); err == nil {
		t.Error("csv encoded")
	}
}

func TestSplitFormat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, name, format string
		ok               bool
	}{
		{"INC-990101001-AB.json", "INC-990101001-AB", "json", true},
		{"0101.xml", "0101", "xml", true},
		{"a.b.xml", "a.b", "xml", true},
		{"0101.csv", "0101", "csv", false},
		{".json", "", "", false},
		{"0101", "", "", false},
	} {
		name, format, ok := open311.SplitFormat(tc.in)
		if ok != tc.ok || (ok && (name != tc.name || format != tc.format)) {
			t.Errorf("SplitFormat(%q) = %q %q %v, want %q %q %v", tc.in, name, format, ok, tc.name, tc.format, tc.ok)
		}
	}
}

func TestRequestBecomesAHotlineTicket(t *testing.T) {
	t.Parallel()
	m := citytest.Demo(t)
	form := url.Values{"api_key": {"k"}, "service_code": {"0102"}, "lat": {"30.2741"}, "long": {"120.1551"},
		"address_string": {"解放路 1 号"}, "description": {"路灯不亮，电话13812345678"}, "first_name": {"小明"},
		"last_name": {"王"}, "phone": {"13812345678"}, "email": {"wang@example.com"}, "media_url": {"https://img.example/1.jpg"}}
	req, err := open311.ParseRequest(form)
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := m.Category("0102")
	now := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	b, err := req.CloudEvent("O311-1", "open311/app-1", svc, now)
	if err != nil {
		t.Fatal(err)
	}
	var ce struct {
		SpecVersion, ID, Source, Type, Time string
		Data                                map[string]any
	}
	if err := json.Unmarshal(b, &ce); err != nil {
		t.Fatal(err)
	}
	if ce.SpecVersion != "1.0" || ce.ID != "O311-1" || ce.Source != "open311/app-1" || ce.Type != event.TypeHotlineTicket || ce.Time != "2026-03-01T08:00:00Z" {
		t.Errorf("envelope %+v", ce)
	}
	d := ce.Data
	for k, want := range map[string]any{"ticket_id": "O311-1", "channel": "open311", "request_type": event.RequestHelp,
		"category_code": "0102", "content": "路灯不亮，电话13812345678", "address": "解放路 1 号", "lat": 30.2741, "lon": 120.1551,
		"caller_name": "王小明", "caller_phone": "13812345678"} {
		if d[k] != want {
			t.Errorf("data.%s = %v, want %v", k, d[k], want)
		}
	}
	if s := string(b); strings.Contains(s, "wang@example.com") || strings.Contains(s, "img.example") {
		t.Errorf("the e-mail or media URL was kept: %s", s)
	}

	// No description: the service's name is the text; an ASCII name reads first last.
	req, _ = open311.ParseRequest(url.Values{"service_code": {"0102"}, "address_string": {"x"}, "first_name": {"Jane"}, "last_name": {"Doe"}})
	b, _ = req.CloudEvent("O311-2", "s", svc, now)
	if !strings.Contains(string(b), `"content":"`+svc.Name+`"`) || !strings.Contains(string(b), `"caller_name":"Jane Doe"`) {
		t.Errorf("ticket %s", b)
	}
}

func TestParseRequestRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"lat": {"30"}, "long": {"120"}}, "service_code is required"},
		{url.Values{"service_code": {"0101"}, "lat": {"north"}, "long": {"120"}}, `lat "north" is not a number`},
	} {
		_, err := open311.ParseRequest(tc.form)
		if !errors.Is(err, open311.ErrBadRequest) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRequest(%v): %v, want %q", tc.form, err, tc.want)
		}
	}
	// Range and location are ingest's to judge, not the form's.
	if _, err := open311.ParseRequest(url.Values{"service_code": {"0101"}, "lat": {"91"}, "long": {"500"}}); err != nil {
		t.Errorf("out-of-range coordinates refused by the form: %v", err)
	}
}

func TestIncidentBecomesAServiceRequest(t *testing.T) {
	t.Parallel()
	m := citytest.Demo(t)
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	photo := strings.Repeat("ab", 32) + ".jpg"
	inc := event.Incident{
		ID: "INC-990101001-X1", Status: event.StatusInProgress, Category: "0102", Title: "路灯 12345 求助工单 O311-1",
		Area:     event.Area{District: "990101", DistrictName: "甲区", Street: "990101001", StreetName: "乙街道", CommunityName: "丙社区", Grid: "990101001001-01"},
		Location: &event.Point{Lat: 30.27, Lon: 120.15},
		Reports: []event.Report{{EventID: "O311-1", EventType: event.TypeHotlineTicket, Summary: "路灯不亮，电话138****5678",
			Caller: &event.Caller{Name: "王小明", Phone: "13812345678"}}},
		Assignment: event.Assignment{AgencyName: "市城管局"},
		CreatedAt:  at, UpdatedAt: at.Add(time.Hour),
		Clock:    &event.Clock{Stage: event.StageHandle, DueAt: at.Add(24 * time.Hour)},
		Evidence: &event.Evidence{Note: "已修复", Photos: []string{"not-a-url", photo}},
	}
	latest := &event.Change{Action: event.ActionStart, Note: "已到场"}
	sr := open311.FromIncident(inc, m, latest, func(id, name string) string { return "http://h/api/v1/incidents/" + id + "/photos/" + name })
	want := open311.ServiceRequest{
		ServiceRequestID: inc.ID, Status: "open", StatusNotes: "处置中：已到场", ServiceName: "路灯故障", ServiceCode: "0102",
		Description: "路灯不亮，电话138****5678", AgencyResponsible: "市城管局", ServiceNotice: "处置时限 2026-03-02T00:00:00Z",
		RequestedDatetime: "2026-03-01T00:00:00Z", UpdatedDatetime: "2026-03-01T01:00:00Z", ExpectedDatetime: "2026-03-02T00:00:00Z",
		Address: "甲区乙街道丙社区", AddressID: "990101001001-01", MediaURL: "http://h/api/v1/incidents/" + inc.ID + "/photos/" + photo,
	}
	got := sr
	got.Lat, got.Long = nil, nil
	if got != want {
		t.Errorf("request\n%+v\nwant\n%+v", got, want)
	}
	if sr.Lat == nil || *sr.Lat != 30.27 || sr.Long == nil || *sr.Long != 120.15 {
		t.Errorf("lat/long %v %v", sr.Lat, sr.Long)
	}

	// JSON: exactly the spec's names, lat/long numbers, and no caller anywhere.
	b, err := open311.EncodeRequests(open311.FormatJSON, []open311.ServiceRequest{sr})
	if err != nil {
		t.Fatal(err)
	}
	var objs []map[string]any
	if err := json.Unmarshal(b, &objs); err != nil {
		t.Fatal(err)
	}
	wantKeys := []string{"address", "address_id", "agency_responsible", "description", "expected_datetime", "lat", "long",
		"media_url", "requested_datetime", "service_code", "service_name", "service_notice", "service_request_id",
		"status", "status_notes", "updated_datetime", "zipcode"}
	if k := keys(objs[0]); !slices.Equal(k, wantKeys) {
		t.Errorf("JSON fields %v, want %v", k, wantKeys)
	}
	if _, ok := objs[0]["lat"].(float64); !ok {
		t.Errorf("lat %v is not a number", objs[0]["lat"])
	}
	for _, secret := range []string{"王小明", "13812345678"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("the caller's %s left: %s", secret, b)
		}
	}

	// XML: <service_requests><request>…</request></service_requests>.
	b, err = open311.EncodeRequests(open311.FormatXML, []open311.ServiceRequest{sr})
	if err != nil {
		t.Fatal(err)
	}
	var doc specRequests
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Requests) != 1 || doc.Requests[0].ServiceRequestID != inc.ID || doc.Requests[0].Status != "open" ||
		doc.Requests[0].Lat != 30.27 || doc.Requests[0].Long != 120.15 || doc.Requests[0].Address != want.Address {
		t.Errorf("XML %s → %+v", b, doc)
	}
}

func TestStatusFollowsTheLoop(t *testing.T) {
	t.Parallel()
	m := citytest.Demo(t)
	for s, want := range map[event.Status]string{
		event.StatusNew: "open", event.StatusDispatched: "open", event.StatusAccepted: "open", event.StatusInProgress: "open",
		event.StatusResolved: "open", event.StatusVerified: "open", event.StatusReturned: "open",
		event.StatusClosed: "closed", event.StatusCancelled: "closed", event.StatusMerged: "closed",
	} {
		inc := event.Incident{ID: "INC-1", Status: s, Category: "0102", Clock: &event.Clock{Stage: event.StageVerify, DueAt: time.Now()}}
		sr := open311.FromIncident(inc, m, nil, nil)
		if sr.Status != want || sr.StatusNotes == "" {
			t.Errorf("%s → %q (%q), want %s", s, sr.Status, sr.StatusNotes, want)
		}
		if (sr.ExpectedDatetime != "") != (want == "open") {
			t.Errorf("%s: expected_datetime %q", s, sr.ExpectedDatetime)
		}
	}
	merged := open311.FromIncident(event.Incident{ID: "INC-2", Status: event.StatusMerged, MergedInto: "INC-1"}, m,
		&event.Change{Action: event.ActionMerge, Reason: "同一处"}, nil)
	if merged.StatusNotes != "已并单，并入 INC-1：同一处" {
		t.Errorf("merged notes %q", merged.StatusNotes)
	}
	// A paused clock (an extension request pending) promises no time.
	paused := open311.FromIncident(event.Incident{ID: "INC-3", Status: event.StatusInProgress,
		Clock: &event.Clock{Stage: event.StageHandle, DueAt: time.Now(), PausedAt: time.Now()}}, m, nil, nil)
	if paused.ExpectedDatetime != "" || paused.ServiceNotice != "" {
		t.Errorf("paused clock: %+v", paused)
	}
}

func TestReceiptsAndTokens(t *testing.T) {
	t.Parallel()
	b, _ := open311.EncodeReceipts(open311.FormatJSON, []open311.Receipt{{ServiceRequestID: "INC-1", ServiceNotice: "已受理"}})
	if string(b) != `[{"service_request_id":"INC-1","service_notice":"已受理","account_id":null}]` {
		t.Errorf("receipt %s", b)
	}
	b, _ = open311.EncodeReceipts(open311.FormatJSON, []open311.Receipt{{Token: "O311-1"}})
	if string(b) != `[{"token":"O311-1","account_id":null}]` {
		t.Errorf("token receipt %s", b)
	}
	b, _ = open311.EncodeTokens(open311.FormatXML, []open311.TokenStatus{{ServiceRequestID: "INC-1", Token: "O311-1"}})
	var doc specRequests
	if err := xml.Unmarshal(b, &doc); err != nil || len(doc.Requests) != 1 || doc.Requests[0].Token != "O311-1" || doc.Requests[0].ServiceRequestID != "INC-1" {
		t.Errorf("token XML %s → %+v %v", b, doc, err)
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
