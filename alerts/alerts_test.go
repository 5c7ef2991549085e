package alerts_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/urbanbrain/urbanbrain/alerts"
	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/city/citytest"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/transport/transporttest"
)

const schema = "testdata/CAP-v1.2.xsd"

var t0 = time.Date(2026, 7, 14, 18, 30, 0, 0, alerts.Beijing)

func opts(at time.Time) alerts.Options {
	return alerts.Options{
		Sender:     "cmc.yunchuan.example.cn",
		SenderName: "云川市城市运行管理中心",
		Sent:       at,
		ValidFor:   6 * time.Hour,
		Web:        "https://cmc.yunchuan.example.cn/incidents/",
		Contact:    "12345",
	}
}

// demoIncidents are incidents in the demo city: on a grid (polygon) and off any grid
// (circle), of each colour.
func demoIncidents(t *testing.T, m *city.Map) []event.Incident {
	t.Helper()
	grids := m.Grids()
	if len(grids) < 2 {
		t.Fatalf("demo city has %d grids", len(grids))
	}
	g0, g1 := grids[0], grids[len(grids)-1]
	return []event.Incident{
		{
			ID: "INC-" + g0.Street + "-gas1", Version: 1, Status: event.StatusNew,
			Category: "0103", Severity: event.SeverityRed, Title: "小区燃气味很重",
			Area: g0.Area(), Location: &g0.Centroid, ReportCount: 1, CreatedAt: t0.Add(-5 * time.Minute),
			Reports: []event.Report{{
				EventID: "h-1", EventType: event.TypeHotlineTicket, TicketID: "T-1", At: t0.Add(-5 * time.Minute),
				Caller: &event.Caller{Name: "王小明", Phone: "13800138000"},
			}},
		},
		{
			ID: "INC-" + g1.Street + "-flood1", Version: 3, Status: event.StatusDispatched,
			Category: "0202", Severity: event.SeverityOrange, Title: "下穿隧道积水 35 cm",
			Area: g1.Area(), Location: &g1.Centroid, ReportCount: 1, CreatedAt: t0.Add(-20 * time.Minute),
			Assignment: event.Assignment{Agency: "water", AgencyName: "市水务局"},
			Reports:    []event.Report{{EventID: "s-1", EventType: event.TypeSensorReading, Device: "WL-7"}},
		},
		{
			ID: "INC-" + g0.Street + "-noise1", Version: 1, Status: event.StatusNew,
			Category: "0401", Severity: event.SeverityBlue, Title: "夜间施工噪声",
			Area:     event.Area{District: g0.District, DistrictName: g0.DistrictName, Street: g0.Street, StreetName: g0.StreetName},
			Location: &event.Point{Lon: g0.Centroid.Lon + 0.001, Lat: g0.Centroid.Lat + 0.001}, CreatedAt: t0,
		},
	}
}

// validate checks every document against the CAP 1.2 schema with xmllint (one run for all).
func validate(t *testing.T, docs map[string][]byte) {
	t.Helper()
	xmllint := transporttest.RequireTool(t, "xmllint")
	dir := t.TempDir()
	args := []string{"--noout", "--schema", schema}
	for name, doc := range docs {
		p := filepath.Join(dir, name+".xml")
		if err := os.WriteFile(p, doc, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	out, err := exec.Command(xmllint, args...).CombinedOutput()
	if err != nil {
		var dump strings.Builder
		for name, doc := range docs {
			fmt.Fprintf(&dump, "--- %s\n%s\n", name, doc)
		}
		t.Fatalf("xmllint --schema %s: %v\n%s\n%s", schema, err, out, dump.String())
	}
	if n := strings.Count(string(out), " validates"); n != len(docs) {
		t.Fatalf("xmllint validated %d of %d documents:\n%s", n, len(docs), out)
	}
}

func encode(t *testing.T, a alerts.Alert) []byte {
	t.Helper()
	b, err := a.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lifecycle builds an alert, two updates (worker on site, then resolved) and a cancellation.
func lifecycle(t *testing.T, m *city.Map, inc event.Incident) []alerts.Alert {
	t.Helper()
	a, err := alerts.FromIncident(inc, m, opts(t0))
	if err != nil {
		t.Fatalf("FromIncident(%s): %v", inc.ID, err)
	}
	inc.Version++
	inc.Status = event.StatusInProgress
	inc.ReportCount = 3
	u1, err := alerts.Update(a, inc, m, opts(t0.Add(10*time.Minute)))
	if err != nil {
		t.Fatalf("Update(%s): %v", a.Identifier, err)
	}
	inc.Version++
	inc.Status = event.StatusResolved
	u2, err := alerts.Update(u1, inc, m, opts(t0.Add(50*time.Minute)))
	if err != nil {
		t.Fatalf("Update(%s): %v", u1.Identifier, err)
	}
	c, err := alerts.Cancel(u2, "险情已排除", alerts.Options{Sent: t0.Add(time.Hour)})
	if err != nil {
		t.Fatalf("Cancel(%s): %v", u2.Identifier, err)
	}
	return []alerts.Alert{a, u1, u2, c}
}

func TestCreateUpdateCancelValidAgainstCAPSchema(t *testing.T) {
	t.Parallel()
	m := citytest.Demo(t)
	docs := map[string][]byte{}
	for _, inc := range demoIncidents(t, m) {
		for _, a := range lifecycle(t, m, inc) {
			docs[a.Identifier] = encode(t, a)
		}
	}
	validate(t, docs)
}

func TestReferencesChainToTheOriginalAndEveryUpdate(t *testing.T) {
	t.Parallel()
	m := citytest.Demo(t)
	inc := demoIncidents(t, m)[0]
	msgs := lifecycle(t, m, inc)
	wantTypes := []string{alerts.MsgAlert, alerts.MsgUpdate, alerts.MsgUpdate, alerts.MsgCancel}
	ids := map[string]bool{}
	for i, a := range msgs {
		if a.MsgType != wantTypes[i] {
			t.Errorf("message %d: msgType %s, want %s", i, a.MsgType, wantTypes[i])
		}
		if ids[a.Identifier] {
			t.Errorf("message %d: identifier %s repeats", i, a.Identifier)
		}
		ids[a.Identifier] = true
		if a.Incidents != inc.ID {
			t.Errorf("message %d: incidents %q, want %q", i, a.Incidents, inc.ID)
		}
		// Decode the document: the references are what a receiver reads.
		got, err := alerts.Decode(encode(t, a))
		if err != nil {
			t.Fatal(err)
		}
		if len(got.References) != i {
			t.Fatalf("message %d references %d messages, want %d: %v", i, len(got.References), i, got.References)
		}
		for j, r := range got.References {
			prev := msgs[j]
			if r.Sender != prev.Sender || r.Identifier != prev.Identifier || !r.Sent.Equal(prev.Sent.Time) {
				t.Errorf("message %d reference %d = %v, want message %d (%s,%s,%v)", i, j, r, j, prev.Sender, prev.Identifier, prev.Sent)
			}
		}
	}
	// The raw form: "sender,identifier,sent" triples, space-separated, oldest first.
	raw := encode(t, msgs[3])
	want := fmt.Sprintf("<references>%s,%s,2026-07-14T18:30:00+08:00 %s,%s,2026-07-14T18:40:00+08:00 %s,%s,2026-07-14T19:20:00+08:00</references>",
		msgs[0].Sender, msgs[0].Identifier, msgs[1].Sender, msgs[1].Identifier, msgs[2].Sender, msgs[2].Identifier)
	if !bytes.Contains(raw, []byte(want)) {
		t.Errorf("cancel document lacks %s:\n%s", want, raw)
	}
	if msgs[3].Note != "险情已排除" || msgs[3].Info[0].Urgency != "Past" || msgs[3].Info[0].ResponseType[0] != "AllClear" {
		t.Errorf("cancel: note %q, urgency %s, response %v; want the reason, Past, AllClear",
			msgs[3].Note, msgs[3].Info[0].Urgency, msgs[3].Info[0].ResponseType)
	}
	if u := msgs[1].Info[0]; u.Urgency != "Immediate" || u.Certainty != "Observed" {
		t.Errorf("update with a worker on site: urgency %s, certainty %s; want Immediate, Observed", u.Urgency, u.Certainty)
	}
	if u := msgs[2].Info[0]; u.Urgency != "Past" || u.ResponseType[0] != "AllClear" {
		t.Errorf("update once resolved: urgency %s, response %v; want Past, AllClear", u.Urgency, u.ResponseType)
	}
}

func TestFollowingRefused(t *testing.T) {
	t.Parallel()
	m := citytest.Demo(t)
	incs := demoIncidents(t, m)
	msgs := lifecycle(t, m, incs[0])
	a, c := msgs[0], msgs[3]
	for _, tc := range []struct {
		name string
		do   func() error
	}{
		{"update of a cancel", func() error { _, err := alerts.Update(c, incs[0], m, opts(t0.Add(2*time.Hour))); return err }},
		{"cancel of a cancel", func() error { _, err := alerts.Cancel(c, "again", opts(t0.Add(2*time.Hour))); return err }},
		{"update for another incident", func() error { _, err := alerts.Update(a, incs[1], m, opts(t0.Add(time.Hour))); return err }},
		{"update sent before the alert", func() error { _, err := alerts.Update(a, incs[0], m, opts(t0.Add(-time.Minute))); return err }},
	} {
		if err := tc.do(); !errors.Is(err, alerts.ErrFollow) {
			t.Errorf("%s: error %v, want ErrFollow", tc.name, err)
		}
	}
	if _, err := alerts.Cancel(a, " \t", opts(t0.Add(time.Hour))); err == nil {
		t.Error("cancel without a reason: no error")
	}
}

func TestPolygonIsLatLonClosedRingOfTheGrid(t *testing.T) {
	t.Parallel()
	m := citytest.Demo(t)
	inc := demoIncidents(t, m)[0]
	g, _ := m.Grid(inc.Area.Grid)
	a, err := alerts.FromIncident(inc, m, opts(t0))
	if err != nil {
		t.Fatal(err)
	}
	area := a.Info[0].Area[0]
	if len(area.Polygon) != 1 || len(area.Circle) != 0 {
		t.Fatalf("gridded incident: polygons %d circles %d, want one polygon", len(area.Polygon), len(area.Circle))
	}
	pairs := strings.Split(area.Polygon[0], " ")
	if len(pairs) < 4 {
		t.Fatalf("polygon has %d points, CAP needs at least 4: %s", len(pairs), area.Polygon[0])
	}
	if pairs[0] != pairs[len(pairs)-1] {
		t.Errorf("ring not closed: first %s, last %s", pairs[0], pairs[len(pairs)-1])
	}
	ring := g.Polygon[0]
	for i, pair := range pairs[:len(ring)] {
		lat, lon := latLon(t, pair)
		if lat != ring[i][1] || lon != ring[i][0] {
			t.Errorf("point %d is %s, want lat,lon %v,%v (GeoJSON %v)", i, pair, ring[i][1], ring[i][0], ring[i])
		}
	}
	if got := alerts.Value(area.Geocode, alerts.GeocodeGrid); got != g.Code {
		t.Errorf("grid geocode %q, want %q", got, g.Code)
	}
	if got := alerts.Value(area.Geocode, alerts.GeocodeDistrict); got != g.District {
		t.Errorf("district geocode %q, want %q", got, g.District)
	}
	if !strings.Contains(area.AreaDesc, g.Name) {
		t.Errorf("areaDesc %q lacks the grid's name %q", area.AreaDesc, g.Name)
	}
}

func latLon(t *testing.T, pair string) (float64, float64) {
	t.Helper()
	la, lo, ok := strings.Cut(pair, ",")
	if !ok {
		t.Fatalf("point %q is not lat,lon", pair)
	}
	lat, err1 := strconv.ParseFloat(la, 64)
	lon, err2 := strconv.ParseFloat(lo, 64)
	if err1 != nil || err2 != nil || lat < -90 || lat > 90 {
		t.Fatalf("point %q is not lat,lon", pair)
	}
	return lat, lon
}

func TestCircleAroundAnUngriddedIncident(t *testing.T) {
	t.Parallel()
	m := citytest.Demo(t)
	inc := demoIncidents(t, m)[2]
	a, err := alerts.FromIncident(inc, m, opts(t0))
	if err != nil {
		t.Fatal(err)
	}
	area := a.Info[0].Area[0]
	if len(area.Circle) != 1 || len(area.Polygon) != 0 {
		t.Fatalf("ungridded incident: polygons %v circles %v, want one circle", area.Polygon, area.Circle)
	}
	center, radius, _ := strings.Cut(area.Circle[0], " ")
	lat, lon := latLon(t, center)
	if math.Abs(lat-inc.Location.Lat) > 1e-6 || math.Abs(lon-inc.Location.Lon) > 1e-6 || radius != "0.5" {
		t.Errorf("circle %q, want %v,%v 0.5", area.Circle[0], inc.Location.Lat, inc.Location.Lon)
	}
	inc.Location = nil
	if _, err := alerts.FromIncident(inc, m, opts(t0)); !errors.Is(err, alerts.ErrNoArea) {
		t.Errorf("no grid, no location: error %v, want ErrNoArea", err)
	}
}

func TestSeverityMapsToCAPAndColour(t *testing.T) {
	t.Parallel()
	m := citytest.Demo(t)
	base := demoIncidents(t, m)[0]
	for _, tc := range []struct{ severity, cap, colour, grade string }{
		{event.SeverityRed, "Extreme", "红色", "Ⅰ级"},
		{event.SeverityOrange, "Severe", "橙色", "Ⅱ级"},
		{event.SeverityYellow, "Moderate", "黄色", "Ⅲ级"},
		{event.SeverityBlue, "Minor", "蓝色", "Ⅳ级"},
	} {
		inc := base
		inc.Severity = tc.severity
		a, err := alerts.FromIncident(inc, m, opts(t0))
		if err != nil {
			t.Fatal(err)
		}
		in := a.Info[0]
		if in.Severity != tc.cap || alerts.Value(in.Parameter, alerts.ParamColour) != tc.colour ||
			alerts.Value(in.Parameter, alerts.ParamGrade) != tc.grade || !strings.Contains(in.Headline, tc.colour+"预警") {
			t.Errorf("%s: severity %s, parameters %v, headline %q; want %s, %s, %s", tc.severity,
				in.Severity, in.Parameter, in.Headline, tc.cap, tc.colour, tc.grade)
		}
	}
	base.Severity = "purple"
	if _, err := alerts.FromIncident(base, m, opts(t0)); !errors.Is(err, alerts.ErrSeverity) {
		t.Errorf("unknown severity: error %v, want ErrSeverity", err)
	}
}

func TestChineseTextAndNoPersonalData(t *testing.T) {
	t.Parallel()
	m := citytest.Demo(t)
	inc := demoIncidents(t, m)[0]
	a, err := alerts.FromIncident(inc, m, opts(t0))
	if err != nil {
		t.Fatal(err)
	}
	in := a.Info[0]
	cat, _ := m.Category(inc.Category)
	// A title that quotes the caller (a careless rule template) is masked as the API masks it.
	quoting := inc
	quoting.Title = "王小明（13800138000）反映燃气味"
	q, err := alerts.FromIncident(quoting, m, opts(t0))
	if err != nil {
		t.Fatal(err)
	}
	if doc := encode(t, q); bytes.Contains(doc, []byte("王小明")) || bytes.Contains(doc, []byte("13800138000")) {
		t.Errorf("alert carries the caller's name or phone:\n%s", doc)
	}
	// A cancel's reason is the operator's text; numbers in it are masked all the same.
	c, err := alerts.Cancel(q, "来电 13800138000 称已无异味", opts(t0.Add(time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	if doc := encode(t, c); bytes.Contains(doc, []byte("13800138000")) || !bytes.Contains(doc, []byte("138****8000")) {
		t.Errorf("cancel reason's phone number not masked:\n%s", doc)
	}
	if in.Language != "zh-CN" || in.Event != cat.Name {
		t.Errorf("language %q event %q, want zh-CN and %q", in.Language, in.Event, cat.Name)
	}
	for name, text := range map[string]string{"headline": in.Headline, "description": in.Description, "instruction": in.Instruction, "areaDesc": in.Area[0].AreaDesc} {
		if !strings.ContainsFunc(text, func(r rune) bool { return unicode.Is(unicode.Han, r) }) {
			t.Errorf("%s %q has no Chinese text", name, text)
		}
	}
	for _, want := range []string{inc.Area.DistrictName, inc.Area.StreetName, cat.Name, inc.Title} {
		if !strings.Contains(in.Headline+in.Description, want) {
			t.Errorf("headline %q and description %q lack %q", in.Headline, in.Description, want)
		}
	}
	if n := strings.Count(in.Description, inc.Area.CommunityName); n != 1 {
		t.Errorf("description %q names the community %d times, want once", in.Description, n)
	}
	if !strings.Contains(in.Instruction, "明火") {
		t.Errorf("gas leak instruction %q lacks the gas advice", in.Instruction)
	}
	if alerts.Value(in.EventCode, alerts.EventCodeCategory) != inc.Category {
		t.Errorf("eventCode %v lacks the category %s", in.EventCode, inc.Category)
	}
	if in.Web != "https://cmc.yunchuan.example.cn/incidents/"+inc.ID {
		t.Errorf("web %q", in.Web)
	}
	doc := encode(t, a)
	for _, secret := range []string{"王小明", "13800138000"} {
		if bytes.Contains(doc, []byte(secret)) {
			t.Errorf("alert carries the caller's %q", secret)
		}
	}
}

func TestSentHasOffsetAndNoFractionalSeconds(t *testing.T) {
	t.Parallel()
	m := citytest.Demo(t)
	inc := demoIncidents(t, m)[1]
	at := time.Date(2026, 7, 14, 10, 30, 5, 987654321, time.UTC) // 18:30:05 in Beijing
	a, err := alerts.FromIncident(inc, m, opts(at))
	if err != nil {
		t.Fatal(err)
	}
	doc := encode(t, a)
	if !bytes.Contains(doc, []byte("<sent>2026-07-14T18:30:05+08:00</sent>")) {
		t.Errorf("sent not written as 2026-07-14T18:30:05+08:00:\n%s", doc)
	}
	capTime := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$`)
	for _, m := range regexp.MustCompile(`<(sent|effective|onset|expires)>([^<]*)<`).FindAllSubmatch(doc, -1) {
		if !capTime.Match(m[2]) {
			t.Errorf("<%s>%s is not a CAP time (offset, no fraction)", m[1], m[2])
		}
	}
	utc := opts(at)
	utc.Zone = time.UTC
	a, err = alerts.FromIncident(inc, m, utc)
	if err != nil {
		t.Fatal(err)
	}
	if doc := encode(t, a); !bytes.Contains(doc, []byte("<sent>2026-07-14T10:30:05+00:00</sent>")) {
		t.Errorf("UTC sent not written with +00:00 (CAP forbids Z):\n%s", doc)
	}
}

func TestHostileIncidentTextYieldsValidEscapedDocument(t *testing.T) {
	t.Parallel()
	m := citytest.Demo(t)
	inc := demoIncidents(t, m)[0]
	inc.Title = "<script>alert('x')</script> ]]> <![CDATA[ & &amp; \x00\x01\x1b[31m\x7f\u202e反转\ufffe\xff 水淹"
	inc.Assignment.AgencyName = "</description><injected/>"
	a, err := alerts.FromIncident(inc, m, opts(t0))
	if err != nil {
		t.Fatal(err)
	}
	c, err := alerts.Cancel(a, "误报 <b>]]>\x07", opts(t0.Add(time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string][]byte{"alert": encode(t, a), "cancel": encode(t, c)}
	validate(t, docs)
	for name, doc := range docs {
		for _, raw := range []string{"<script>", "]]>", "<![CDATA[", "<injected/>", "<b>", "\x00", "\x1b", "\x07", "\u202e"} {
			if bytes.Contains(doc, []byte(raw)) {
				t.Errorf("%s document contains %q unescaped", name, raw)
			}
		}
		got, err := alerts.Decode(doc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		text := got.Note + got.Info[0].Description
		if name == "alert" && !strings.Contains(text, "<script>alert('x')</script> ]]> <![CDATA[ & &amp;") {
			t.Errorf("alert description lost the title's text: %q", text)
		}
		if strings.ContainsFunc(text, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) {
			t.Errorf("%s text keeps control characters: %q", name, text)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	bad := alerts.Options{Sender: "cmc, yunchuan", Status: "Real", ValidFor: -time.Hour, RadiusKm: -1, Web: "javascript:alert(1)"}
	err := bad.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"sender", "status", "valid for", "radius", "web"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	m := citytest.Demo(t)
	if _, err := alerts.FromIncident(demoIncidents(t, m)[0], m, alerts.Options{}); err == nil {
		t.Error("FromIncident without a sender: no error")
	}
}

func TestFeedIsWellFormedAndCarriesEveryAlert(t *testing.T) {
	t.Parallel()
	m := citytest.Demo(t)
	var all []alerts.Alert
	for _, inc := range demoIncidents(t, m) {
		all = append(all, lifecycle(t, m, inc)...)
	}
	feed, err := alerts.Feed("云川市突发事件预警 <CAP>", "https://cmc.yunchuan.example.cn/alerts.atom", all)
	if err != nil {
		t.Fatal(err)
	}
	xmllint := transporttest.RequireTool(t, "xmllint")
	p := filepath.Join(t.TempDir(), "feed.atom")
	if err := os.WriteFile(p, feed, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(xmllint, "--noout", p).CombinedOutput(); err != nil {
		t.Fatalf("feed is not well-formed: %v\n%s\n%s", err, out, feed)
	}

	var parsed struct {
		XMLName xml.Name `xml:"http://www.w3.org/2005/Atom feed"`
		ID      string   `xml:"id"`
		Updated string   `xml:"updated"`
		Links   []struct {
			Rel  string `xml:"rel,attr"`
			Href string `xml:"href,attr"`
		} `xml:"link"`
		Entries []struct {
			ID      string `xml:"id"`
			Title   string `xml:"title"`
			Content struct {
				Type  string `xml:"type,attr"`
				Inner []byte `xml:",innerxml"`
			} `xml:"content"`
		} `xml:"entry"`
	}
	if err := xml.Unmarshal(feed, &parsed); err != nil {
		t.Fatal(err)
	}
	if parsed.ID != "https://cmc.yunchuan.example.cn/alerts.atom" || len(parsed.Links) != 1 || parsed.Links[0].Rel != "self" {
		t.Errorf("feed id %q links %v, want the self URL", parsed.ID, parsed.Links)
	}
	if parsed.Updated != "2026-07-14T19:30:00+08:00" {
		t.Errorf("feed updated %q, want the latest alert's sent time", parsed.Updated)
	}
	if len(parsed.Entries) != len(all) {
		t.Fatalf("feed has %d entries, want %d", len(parsed.Entries), len(all))
	}
	docs := map[string][]byte{}
	seen := map[string]bool{}
	for i, e := range parsed.Entries {
		if e.Content.Type != alerts.ContentType {
			t.Errorf("entry %d content type %q", i, e.Content.Type)
		}
		if !strings.HasPrefix(e.ID, "urn:uuid:") || seen[e.ID] {
			t.Errorf("entry %d id %q: not a fresh urn:uuid", i, e.ID)
		}
		seen[e.ID] = true
		doc := append([]byte(xml.Header), bytes.TrimSpace(e.Content.Inner)...)
		got, err := alerts.Decode(doc)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if got.Identifier != all[i].Identifier || got.MsgType != all[i].MsgType || len(got.References) != len(all[i].References) {
			t.Errorf("entry %d carries %s %s, want %s %s", i, got.MsgType, got.Identifier, all[i].MsgType, all[i].Identifier)
		}
		if e.Title != all[i].Info[0].Headline {
			t.Errorf("entry %d title %q, want the headline %q", i, e.Title, all[i].Info[0].Headline)
		}
		docs[fmt.Sprintf("entry%02d", i)] = doc
	}
	validate(t, docs) // each embedded alert is itself a valid CAP document

	again, err := alerts.Feed("云川市突发事件预警 <CAP>", "https://cmc.yunchuan.example.cn/alerts.atom", all)
	if err != nil || !bytes.Equal(again, feed) {
		t.Errorf("rebuilding the feed from the same alerts changed it (err %v)", err)
	}
	if _, err := alerts.Feed("x", "/relative", all); err == nil {
		t.Error("relative self URL: no error")
	}
	empty, err := alerts.Feed("空", "https://cmc.yunchuan.example.cn/alerts.atom", nil)
	if err != nil || !bytes.Contains(empty, []byte("<author>")) {
		t.Errorf("empty feed: err %v, want a feed-level author:\n%s", err, empty)
	}
}

// TestSchemaRejectsWhatCAPForbids keeps the shipped schema honest: documents that break CAP
// 1.2 must fail it, or validating against it proves nothing.
func TestSchemaRejectsWhatCAPForbids(t *testing.T) {
	t.Parallel()
	xmllint := transporttest.RequireTool(t, "xmllint")
	m := citytest.Demo(t)
	good := encode(t, lifecycle(t, m, demoIncidents(t, m)[1])[1])
	for _, tc := range []struct{ name, old, new string }{
		{"Z time", "+08:00</sent>", "Z</sent>"},
		{"fractional seconds", ":00+08:00</sent>", ":00.5+08:00</sent>"},
		{"unknown msgType", "<msgType>Update</msgType>", "<msgType>Amend</msgType>"},
		{"unknown severity", "<severity>Severe</severity>", "<severity>Orange</severity>"},
		{"no scope", "<scope>Public</scope>", ""},
		{"elements out of order", "<status>Actual</status>\n  <msgType>Update</msgType>", "<msgType>Update</msgType>\n  <status>Actual</status>"},
		{"wrong namespace", alerts.Namespace, "urn:oasis:names:tc:emergency:cap:1.1"},
	} {
		bad := strings.Replace(string(good), tc.old, tc.new, 1)
		if bad == string(good) {
			t.Fatalf("%s: %q not in the document", tc.name, tc.old)
		}
		p := filepath.Join(t.TempDir(), "bad.xml")
		if err := os.WriteFile(p, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(xmllint, "--noout", "--schema", schema, p).CombinedOutput(); err == nil {
			t.Errorf("%s: the schema accepted it:\n%s", tc.name, out)
		}
	}
}

// FuzzIncidentText: whatever an incident's free text holds, the alert is a well-formed
// document that reads back, with no control characters in its text.
func FuzzIncidentText(f *testing.F) {
	for _, s := range []string{"水淹了", "<script>]]>", "\x00\x1b[0m", "\xff\xfe", "&amp;&#0;", "\u202e\u200b"} {
		f.Add(s, s)
	}
	m := citytest.Demo(f)
	f.Fuzz(func(t *testing.T, title, reason string) {
		inc := demoIncidents(t, m)[0]
		inc.Title = title
		a, err := alerts.FromIncident(inc, m, opts(t0))
		if err != nil {
			t.Fatal(err)
		}
		docs := [][]byte{encode(t, a)}
		if c, err := alerts.Cancel(a, reason, opts(t0)); err == nil {
			docs = append(docs, encode(t, c))
		} else if strings.TrimSpace(reason) != "" && strings.ContainsFunc(reason, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
			t.Fatalf("cancel with reason %q: %v", reason, err)
		}
		for _, doc := range docs {
			got, err := alerts.Decode(doc)
			if err != nil {
				t.Fatalf("%v\n%s", err, doc)
			}
			text := got.Note + got.Info[0].Description + got.Info[0].Headline
			if strings.ContainsFunc(text, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) {
				t.Fatalf("control characters in %q", text)
			}
		}
	})
}

// The messages an incident records (an Alert, an Update when it turned red, a Cancel, then a
// new Alert after it was reopened) become valid CAP documents, each at its own time and
// severity, each Update and Cancel referencing its chain, the new Alert starting a new one.
func TestMessagesOfAnIncident(t *testing.T) {
	m := citytest.Demo(t)
	inc := demoIncidents(t, m)[1]
	inc.Alerts = []event.AlertMessage{
		{MsgType: event.AlertAlert, Severity: event.SeverityOrange, Sent: t0, By: "op-1", Note: "请绕行"},
		{MsgType: event.AlertUpdate, Severity: event.SeverityRed, Sent: t0.Add(10 * time.Minute), By: "system"},
		{MsgType: event.AlertCancel, Severity: event.SeverityRed, Sent: t0.Add(40 * time.Minute), By: "system", Note: "事件已结案"},
		{MsgType: event.AlertAlert, Severity: event.SeverityYellow, Sent: t0.Add(90 * time.Minute), By: "op-2"},
	}
	msgs, err := alerts.Messages(inc, m, opts(time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 4 {
		t.Fatalf("%d messages, want 4", len(msgs))
	}
	docs := map[string][]byte{}
	for i, a := range msgs {
		docs[fmt.Sprint("m", i)] = encode(t, a)
	}
	validate(t, docs)
	want := []struct {
		msgType string
		refs    int
		sev     string
	}{{"Alert", 0, "Severe"}, {"Update", 1, "Extreme"}, {"Cancel", 2, ""}, {"Alert", 0, "Moderate"}}
	for i, w := range want {
		a := msgs[i]
		if a.MsgType != w.msgType || len(a.References) != w.refs || !a.Sent.Equal(inc.Alerts[i].Sent) {
			t.Errorf("message %d: %s with %d references at %v, want %s with %d at %v", i, a.MsgType, len(a.References), a.Sent, w.msgType, w.refs, inc.Alerts[i].Sent)
		}
		if w.sev != "" && (len(a.Info) == 0 || a.Info[0].Severity != w.sev) {
			t.Errorf("message %d: severity %+v, want %s", i, a.Info, w.sev)
		}
	}
	if msgs[2].References[0] != msgs[0].Ref() || msgs[2].References[1] != msgs[1].Ref() {
		t.Errorf("the Cancel references %v, want the Alert and the Update", msgs[2].References)
	}
}
