package storagetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
)

func testSearchIncidentText(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	a := area("d1", "s1", "c1", "g1")
	specs := []struct {
		id, title string
		summaries []string
	}{
		{"INC-s1-t1", "Waterlogging at Wensan Road", []string{"举报 隧道里积水没过车轮", "water_level alarm level_cm=42"}},
		{"INC-s1-t2", "垃圾满溢", []string{"投诉 小区门口垃圾桶满了三天"}},
		{"INC-s1-t3", "Ärger mit Lärm", []string{"noise 75dB at night"}},
		{"INC-s1-t4", "50% off: a_b", nil},
	}
	for i, sp := range specs {
		inc := event.Incident{ID: sp.id, Version: 1, Status: event.StatusNew, Category: "c", Severity: event.SeverityBlue,
			Title: sp.title, Area: a, CreatedAt: at(time.Duration(i) * time.Minute), UpdatedAt: at(time.Duration(i) * time.Minute)}
		for j, sum := range sp.summaries {
			inc.Reports = append(inc.Reports, event.Report{EventID: fmt.Sprintf("%s/e%d", sp.id, j), EventType: event.TypeHotlineTicket, Summary: sum})
		}
		inc.ReportCount = len(inc.Reports)
		must(t, s.HandleIncidentChange(ctx, event.IncidentChange{Incident: inc, Change: event.Change{Action: "open", To: event.StatusNew, At: inc.CreatedAt}}))
	}
	// A later version whose title no longer says "vanished": the search sees the latest.
	stale := event.Incident{ID: "INC-s1-t5", Version: 1, Status: event.StatusNew, Title: "vanished words", Area: a,
		CreatedAt: at(time.Hour), UpdatedAt: at(time.Hour)}
	fresh := stale
	fresh.Version, fresh.Title, fresh.UpdatedAt = 2, "renamed", at(2*time.Hour)
	must(t, s.HandleIncidentChanges(ctx, []event.IncidentChange{{Incident: fresh}, {Incident: stale}}))

	tests := []struct {
		text string
		want []string
	}{
		{"积水", []string{"INC-s1-t1"}},
		{"wensan road", []string{"INC-s1-t1"}}, // ASCII case is ignored
		{"LEVEL_CM=42", []string{"INC-s1-t1"}},
		{"垃圾", []string{"INC-s1-t2"}},
		{"三天", []string{"INC-s1-t2"}},
		{"Ärger", []string{"INC-s1-t3"}},
		{"ärger", []string{}}, // non-ASCII case is not folded, the same on every backend
		{"75db", []string{"INC-s1-t3"}},
		{"%", []string{"INC-s1-t4"}}, // no wildcard meaning
		{"a_b", []string{"INC-s1-t4"}},
		{"_", []string{"INC-s1-t4", "INC-s1-t1"}}, // level_cm in a summary of t1
		{"vanished", []string{}},
		{"renamed", []string{"INC-s1-t5"}},
		{"nowhere", []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.text, func(t *testing.T) {
			got, err := s.ListIncidents(ctx, storage.IncidentFilter{Text: tc.text})
			must(t, err)
			mustEqual(t, "incidents matching "+tc.text, incidentIDs(got), tc.want)
			n, err := s.CountIncidents(ctx, storage.IncidentFilter{Text: tc.text})
			must(t, err)
			if n != len(tc.want) {
				t.Errorf("CountIncidents(%q) = %d, want %d", tc.text, n, len(tc.want))
			}
		})
	}
	// "at" is in t1's title (updated at 0) and t3's summary (at 2m); the range keeps t3.
	got, err := s.ListIncidents(ctx, storage.IncidentFilter{Text: "AT", Since: at(time.Minute), Until: at(4 * time.Minute)})
	must(t, err)
	mustEqual(t, "text and time range", incidentIDs(got), []string{"INC-s1-t3"})
}

func testSearchIncidentGrids(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	for i, g := range []string{"g1", "g2", "g3"} {
		spec := incidentSpec{id: "INC-s1-" + g, category: "garbage", severity: event.SeverityBlue,
			area: area("d1", "s1", "c1", g), created: at(time.Duration(i) * time.Minute), steps: 1}
		must(t, s.HandleIncidentChanges(ctx, spec.changelog()))
	}
	tests := []struct {
		name string
		f    storage.IncidentFilter
		want []string
	}{
		{"nil grids do not filter", storage.IncidentFilter{}, []string{"INC-s1-g3", "INC-s1-g2", "INC-s1-g1"}},
		{"two grids", storage.IncidentFilter{Grids: []string{"g1", "g3"}}, []string{"INC-s1-g3", "INC-s1-g1"}},
		{"no grids at all matches nothing", storage.IncidentFilter{Grids: []string{}}, []string{}},
		{"grids and grid", storage.IncidentFilter{Grids: []string{"g1", "g3"}, Grid: "g3"}, []string{"INC-s1-g3"}},
		{"unknown grid", storage.IncidentFilter{Grids: []string{"g9"}}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListIncidents(ctx, tc.f)
			must(t, err)
			mustEqual(t, "incident ids", incidentIDs(got), tc.want)
		})
	}
	if _, err := s.ListIncidents(ctx, storage.IncidentFilter{Grids: []string{"g1", ""}}); !errors.Is(err, storage.ErrInvalidFilter) {
		t.Errorf("empty grid value: error %v, want ErrInvalidFilter", err)
	}
}

func testEventHistory(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	a1 := area("d1", "s1", "c1", "g1")
	a2 := area("d1", "s1", "c1", "g2")
	centre := event.Point{Lon: 120.1551, Lat: 30.2741}
	// Points about 100 m, 400 m and 2 km east of the centre, and one 300 m north.
	east := func(m float64) *event.Point {
		kx, _ := storage.Circle{Lon: centre.Lon, Lat: centre.Lat}.Scales()
		return &event.Point{Lon: centre.Lon + m/kx, Lat: centre.Lat}
	}
	e1 := sensorEvent("h1", a1, "dev-1", at(0))
	e1.Location = east(100)
	e2 := sensorEvent("h2", a1, "dev-2", at(time.Minute))
	e2.Location = east(400)
	e3 := videoEvent("h3", a2, "cam-1", at(2*time.Minute))
	e3.Location = east(2000)
	e4 := hotlineEvent("h4", a2, at(3*time.Minute)) // no location
	e5 := videoEvent("h5", a1, "cam-1", at(4*time.Minute))
	e5.Location = &event.Point{Lon: centre.Lon, Lat: centre.Lat + 300.0/111_195.08}
	e6 := hotlineEvent("h6", a1, at(5*time.Minute))
	e6.Hotline.Content = "Street LAMP broken 路灯不亮"
	e6.Hotline.Address = "学院路 12 号"
	must(t, s.HandleEvents(ctx, []event.Event{e1, e2, e3, e4, e5, e6}))

	near := func(r float64) *storage.Circle {
		return &storage.Circle{Lon: centre.Lon, Lat: centre.Lat, RadiusM: r}
	}
	tests := []struct {
		name string
		f    storage.EventFilter
		want []string
	}{
		{"device history", storage.EventFilter{DeviceID: "dev-1"}, []string{"h1"}},
		{"camera history", storage.EventFilter{DeviceID: "cam-1"}, []string{"h5", "h3"}},
		{"within 50 m", storage.EventFilter{Near: near(50)}, []string{}},
		{"within 150 m", storage.EventFilter{Near: near(150)}, []string{"h1"}},
		{"within 350 m", storage.EventFilter{Near: near(350)}, []string{"h5", "h1"}},
		{"within 1 km", storage.EventFilter{Near: near(1000)}, []string{"h5", "h2", "h1"}},
		{"within 5 km, never events without a location", storage.EventFilter{Near: near(5000)}, []string{"h5", "h3", "h2", "h1"}},
		{"radius and camera", storage.EventFilter{Near: near(5000), DeviceID: "cam-1"}, []string{"h5", "h3"}},
		{"radius and time", storage.EventFilter{Near: near(5000), Since: at(time.Minute), Until: at(4 * time.Minute)}, []string{"h3", "h2"}},
		{"text in content, any ASCII case", storage.EventFilter{Text: "lamp"}, []string{"h6"}},
		{"text in Chinese", storage.EventFilter{Text: "路灯"}, []string{"h6"}},
		{"text in address", storage.EventFilter{Text: "学院路 12"}, []string{"h6"}},
		{"text in every ticket", storage.EventFilter{Text: "积水"}, []string{"h4"}},
		{"grids", storage.EventFilter{Grids: []string{"g2"}}, []string{"h4", "h3"}},
		{"no grids", storage.EventFilter{Grids: []string{}}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListEvents(ctx, tc.f)
			must(t, err)
			mustEqual(t, "event ids", eventIDs(got), tc.want)
			if tc.f.Near != nil {
				for _, e := range got {
					if !tc.f.Near.Contains(*e.Location) {
						t.Errorf("%s is outside the circle by storage.Circle.Contains", e.ID)
					}
				}
			}
		})
	}
	for _, c := range []storage.Circle{{Lon: 200, Lat: 30, RadiusM: 10}, {Lon: 120, Lat: 95, RadiusM: 10},
		{Lon: 120, Lat: 30, RadiusM: 0}, {Lon: 120, Lat: 30, RadiusM: storage.MaxRadiusM + 1}} {
		if _, err := s.ListEvents(ctx, storage.EventFilter{Near: &c}); !errors.Is(err, storage.ErrInvalidFilter) {
			t.Errorf("ListEvents(near %+v) error = %v, want ErrInvalidFilter", c, err)
		}
	}
}

func testEachEvent(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	a := area("d1", "s1", "c1", "g1")
	var evs []event.Event
	for i := range 1500 {
		evs = append(evs, sensorEvent(fmt.Sprintf("each-%04d", i), a, "dev-1", at(time.Duration(1499-i)*time.Second)))
	}
	must(t, s.HandleEvents(ctx, evs))
	must(t, s.HandleEvents(ctx, evs[:10]))

	var got []string
	must(t, s.EachEvent(ctx, storage.EventFilter{Since: at(time.Second), Limit: 3}, func(e event.Event) error {
		got = append(got, e.ID)
		return nil
	}))
	if len(got) != 1499 || got[0] != "each-1498" || got[len(got)-1] != "each-0000" {
		t.Fatalf("replayed %d events from %v to %v, want 1499 oldest first, limit ignored", len(got), got[0], got[len(got)-1])
	}
	stop := errors.New("enough")
	n := 0
	err := s.EachEvent(ctx, storage.EventFilter{}, func(event.Event) error {
		n++
		if n == 5 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 5 {
		t.Fatalf("EachEvent returned %v after %d calls, want the callback's error after 5", err, n)
	}
}

// testSearchMaskedText: issue 11 item 5. Three-digit searches rebuilt a masked phone
// ("145****0500" → 14590630500) in 40 queries. A masked search (TextMasked) must not match
// inside personal data, in any field and any format, while an unmasked one does; text outside
// personal data is found either way. storage.MatchMaskedText is the definition every backend
// must agree with.
func testSearchMaskedText(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	a := area("d1", "s1", "c1", "g1")
	titles := map[string]string{
		"INC-s1-m1": "井盖丢失 1号楼",
		"INC-s1-m2": "来电 145.9063.0500",
		"INC-s1-m3": "噪音",
	}
	summaries := map[string]string{
		"INC-s1-m1": "投诉 电话14590630500 请回电",
		"INC-s1-m2": "身份证 11010119900307123X",
		"INC-s1-m3": "投诉 晚上十点还在放音乐，回电１４５９０６３０５…",
	}
	for i, id := range []string{"INC-s1-m1", "INC-s1-m2", "INC-s1-m3"} {
		inc := event.Incident{ID: id, Version: 1, Status: event.StatusNew, Category: "c", Severity: event.SeverityBlue,
			Title: titles[id], Area: a, CreatedAt: at(time.Duration(i) * time.Minute), UpdatedAt: at(time.Duration(i) * time.Minute),
			Reports: []event.Report{{EventID: id + "/e", EventType: event.TypeHotlineTicket, Summary: summaries[id]}}, ReportCount: 1}
		must(t, s.HandleIncidentChange(ctx, event.IncidentChange{Incident: inc, Change: event.Change{Action: "open", To: event.StatusNew, At: inc.CreatedAt}}))
	}
	e := hotlineEvent("hm1", a, at(0))
	e.Hotline.Content = "路灯不亮，电话 145 9063 0500"
	e.Hotline.Address = "文三路 138 号 2 单元，身份证 110101199003071234"
	must(t, s.HandleEvents(ctx, []event.Event{e}))

	tests := []struct {
		text           string
		masked, openly []string // incidents found by a masked and an unmasked search
		eventMasked    bool     // whether a masked event search finds hm1
	}{
		{"906", []string{}, []string{"INC-s1-m2", "INC-s1-m1"}, false},
		{"063", []string{}, []string{"INC-s1-m2", "INC-s1-m1"}, false},
		{"145", []string{}, []string{"INC-s1-m2", "INC-s1-m1"}, false},
		{"050", []string{}, []string{"INC-s1-m2", "INC-s1-m1"}, false},
		{"１４５", []string{}, []string{"INC-s1-m3"}, false},  // full-width, cut by "…"
		{"123x", []string{}, []string{"INC-s1-m2"}, false}, // the ID number's check character
		{"1号楼", []string{"INC-s1-m1"}, []string{"INC-s1-m1"}, false},
		{"138 号", []string{}, []string{}, true}, // a house number is no personal data
		{"请回电", []string{"INC-s1-m1"}, []string{"INC-s1-m1"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.text, func(t *testing.T) {
			got, err := s.ListIncidents(ctx, storage.IncidentFilter{Text: tc.text, TextMasked: true})
			must(t, err)
			mustEqual(t, "masked search "+tc.text, incidentIDs(got), tc.masked)
			n, err := s.CountIncidents(ctx, storage.IncidentFilter{Text: tc.text, TextMasked: true})
			must(t, err)
			if n != len(tc.masked) {
				t.Errorf("masked CountIncidents(%q) = %d, want %d", tc.text, n, len(tc.masked))
			}
			got, err = s.ListIncidents(ctx, storage.IncidentFilter{Text: tc.text})
			must(t, err)
			mustEqual(t, "search "+tc.text, incidentIDs(got), tc.openly)
			// The definition agrees with the backend.
			for id, title := range titles {
				want := storage.MatchMaskedText(title, tc.text) || storage.MatchMaskedText(summaries[id], tc.text)
				if want != containsID(tc.masked, id) {
					t.Errorf("MatchMaskedText says %v for %s and %q; the case says otherwise", want, id, tc.text)
				}
			}
			evs, err := s.ListEvents(ctx, storage.EventFilter{Text: tc.text, TextMasked: true})
			must(t, err)
			if (len(evs) == 1) != tc.eventMasked {
				t.Errorf("masked event search %q found %d events, want hm1: %v", tc.text, len(evs), tc.eventMasked)
			}
		})
	}
	// Unmasked, the event's phone and ID number are found.
	for _, text := range []string{"9063", "19900307"} {
		evs, err := s.ListEvents(ctx, storage.EventFilter{Text: text})
		must(t, err)
		if len(evs) != 1 {
			t.Errorf("event search %q found %d, want 1", text, len(evs))
		}
	}
}

func containsID(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
