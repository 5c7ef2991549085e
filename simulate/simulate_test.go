package simulate_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/city/citytest"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/simulate"
	"github.com/urbanbrain/urbanbrain/simulate/simulatetest"
)

func demo(t testing.TB) *city.Map { return citytest.Demo(t) }

// decoded is one record read back the way ingest would read it.
type decoded struct {
	topic, source, id string
	at                time.Time
	sensor            *event.SensorReading
	ticket            *event.HotlineTicket
	video             *event.VideoDetection
}

func decodeAll(t *testing.T, recs []simulatetest.Record) []decoded {
	t.Helper()
	var out []decoded
	for _, r := range recs {
		d := decoded{topic: r.Topic}
		var err error
		switch r.Topic {
		case event.TopicIngestSensor:
			d.sensor = &event.SensorReading{}
			_, err = event.Decode(r.Value, event.TypeSensorReading, d.sensor)
		case event.TopicIngestHotline:
			d.ticket = &event.HotlineTicket{}
			_, err = event.Decode(r.Value, event.TypeHotlineTicket, d.ticket)
		case event.TopicIngestVideo:
			d.video = &event.VideoDetection{}
			_, err = event.Decode(r.Value, event.TypeVideoDetection, d.video)
		default:
			t.Fatalf("record on unexpected topic %q", r.Topic)
		}
		if err != nil {
			t.Fatalf("record on %s does not decode: %v\n%s", r.Topic, err, r.Value)
		}
		// The envelope's attributes, read as a consumer would (independent of what
		// event.Decode returns besides the data).
		var env struct {
			ID     string    `json:"id"`
			Source string    `json:"source"`
			Time   time.Time `json:"time"`
		}
		if err := json.Unmarshal(r.Value, &env); err != nil {
			t.Fatalf("record on %s: envelope: %v", r.Topic, err)
		}
		d.id, d.source, d.at = env.ID, env.Source, env.Time
		out = append(out, d)
	}
	return out
}

func run(t *testing.T, cfg simulate.Config) ([]decoded, simulate.Stats) {
	t.Helper()
	rec := &simulatetest.Recorder{}
	sim, err := simulate.New(cfg, demo(t), rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Run(t.Context()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return decodeAll(t, rec.Records()), sim.Stats()
}

func TestProducesDecodableMixedTraffic(t *testing.T) {
	t.Parallel()
	// A high rate and a Limit: the count is exact and the test takes a fraction of a second.
	const n = 3000
	evs, st := run(t, simulate.Config{Rate: 50000, Limit: n, Seed: 1})
	if len(evs) != n {
		t.Fatalf("%d events, want %d", len(evs), n)
	}
	if st.Sensor+st.Hotline+st.Video != n || st.Errors != 0 {
		t.Errorf("stats %+v", st)
	}
	m := demo(t)
	ids := map[string]bool{}
	byTopic := map[string]int{}
	kinds := map[string]int{}
	reqTypes := map[string]int{}
	coordsys := map[string]int{}
	algos := map[string]int{}
	alarms, located, resolved := 0, 0, 0
	for _, d := range evs {
		if ids[d.id] {
			t.Fatalf("duplicate id %s", d.id)
		}
		ids[d.id] = true
		byTopic[d.topic]++
		if d.at.IsZero() {
			t.Errorf("%s has no time", d.id)
		}
		switch {
		case d.sensor != nil:
			s := d.sensor
			if d.source != simulate.SourceSensor || s.DeviceID == "" || len(s.Metrics) == 0 || s.Lat == nil {
				t.Fatalf("bad sensor reading %+v from %s", s, d.source)
			}
			if _, ok := m.Resolve(event.Point{Lon: *s.Lon, Lat: *s.Lat}); !ok {
				t.Errorf("sensor %s at %v,%v is outside the city", s.DeviceID, *s.Lon, *s.Lat)
			}
			kinds[s.Kind]++
			if s.Status == "alarm" || s.Status == "fault" {
				alarms++
			}
		case d.ticket != nil:
			tk := d.ticket
			if d.source != simulate.SourceHotline || tk.TicketID == "" || tk.Content == "" || tk.Address == "" ||
				tk.CallerName == "" || len(tk.CallerPhone) != 11 || tk.DistrictCode == "" || tk.ReceivedAt.IsZero() {
				t.Fatalf("bad ticket %+v", tk)
			}
			if _, ok := m.Category(tk.CategoryCode); !ok {
				t.Errorf("ticket %s has unknown category %q", tk.TicketID, tk.CategoryCode)
			}
			if !utf8.ValidString(tk.Content) || !strings.ContainsFunc(tk.Content, func(r rune) bool { return r >= 0x4e00 && r <= 0x9fff }) {
				t.Errorf("ticket content %q is not Chinese text", tk.Content)
			}
			if strings.Contains(tk.Content, "{") {
				t.Errorf("unfilled placeholder in %q", tk.Content)
			}
			reqTypes[tk.RequestType]++
			coordsys[tk.CoordSys]++
			if tk.Lat != nil {
				p, err := city.ToWGS84(tk.CoordSys, event.Point{Lon: *tk.Lon, Lat: *tk.Lat})
				if err != nil {
					t.Fatal(err)
				}
				located++
				// Follow-up calls sit within 60 m of a problem, which may be just outside the city.
				if _, ok := m.Resolve(p); ok {
					resolved++
				}
			}
		case d.video != nil:
			v := d.video
			if d.source != simulate.SourceVideo || v.CameraID == "" || v.Confidence < 0.5 || v.Confidence > 0.99 ||
				len(v.BBox) != 4 || v.SnapshotURL == "" || v.ObjectCount < 1 || v.Lat == nil {
				t.Fatalf("bad detection %+v", v)
			}
			algos[v.Algorithm]++
		}
	}
	for _, topic := range []string{event.TopicIngestSensor, event.TopicIngestHotline, event.TopicIngestVideo} {
		if byTopic[topic] == 0 {
			t.Errorf("no records on %s", topic)
		}
	}
	// Default mix 75/10/15.
	if f := float64(byTopic[event.TopicIngestSensor]) / n; f < 0.70 || f > 0.80 {
		t.Errorf("sensor share %.2f, want about 0.75", f)
	}
	for _, k := range []string{"water_level", "gas", "manhole", "street_lamp", "noise", "air", "bridge"} {
		if kinds[k] == 0 {
			t.Errorf("no %s readings", k)
		}
	}
	for _, a := range []string{"illegal_parking", "garbage_overflow", "crowding", "smoke_fire", "waterlogging", "street_vending"} {
		if algos[a] == 0 {
			t.Errorf("no %s detections", a)
		}
	}
	for _, r := range []string{event.RequestConsult, event.RequestComplaint, event.RequestHelp, event.RequestReport, event.RequestSuggest} {
		if reqTypes[r] == 0 {
			t.Errorf("no %s tickets", r)
		}
	}
	if located == 0 || float64(resolved) < 0.95*float64(located) {
		t.Errorf("%d of %d located tickets resolve to a grid", resolved, located)
	}
	if coordsys[event.CoordGCJ02] == 0 || coordsys[""] == 0 {
		t.Errorf("ticket positions by coordsys %v: want some GCJ-02 and some address-only", coordsys)
	}
	if alarms == 0 || alarms > byTopic[event.TopicIngestSensor]/4 {
		t.Errorf("%d alarm readings of %d: want occasional excursions", alarms, byTopic[event.TopicIngestSensor])
	}
}

func TestRequestTypeDistribution(t *testing.T) {
	t.Parallel()
	// Fresh tickets only (RepeatChance near 0), so the weights show through.
	evs, _ := run(t, simulate.Config{Rate: 50000, Limit: 3000, Seed: 2, RepeatChance: 1e-9,
		Mix: simulate.Mix{Hotline: 1}})
	got := map[string]float64{}
	for _, d := range evs {
		got[d.ticket.RequestType]++
	}
	want := map[string]float64{event.RequestConsult: 0.30, event.RequestComplaint: 0.30,
		event.RequestHelp: 0.15, event.RequestReport: 0.15, event.RequestSuggest: 0.10}
	for k, w := range want {
		if f := got[k] / float64(len(evs)); f < w-0.03 || f > w+0.03 {
			t.Errorf("%s: %.3f of tickets, want %.2f", k, f, w)
		}
	}
}

// TestRepeatsAreNearby checks 一事多报: some tickets and detections share a category with an
// earlier report of any source within 100 m.
func TestRepeatsAreNearby(t *testing.T) {
	t.Parallel()
	evs, _ := run(t, simulate.Config{Rate: 50000, Limit: 1500, Seed: 3, Mix: simulate.Mix{Hotline: 1, Video: 1}})
	type report struct {
		category string
		at       event.Point
	}
	var seen []report
	repeats := 0
	for _, d := range evs {
		var r report
		switch {
		case d.ticket != nil && d.ticket.Lat != nil:
			p, _ := city.ToWGS84(d.ticket.CoordSys, event.Point{Lon: *d.ticket.Lon, Lat: *d.ticket.Lat})
			r = report{d.ticket.CategoryCode, p}
		case d.video != nil:
			r = report{videoCategory[d.video.Algorithm], event.Point{Lon: *d.video.Lon, Lat: *d.video.Lat}}
		default:
			continue
		}
		for _, s := range seen {
			if s.category == r.category && metres(s.at, r.at) < 100 {
				repeats++
				break
			}
		}
		seen = append(seen, r)
	}
	if repeats < len(seen)/20 {
		t.Errorf("%d of %d located reports repeat an earlier one nearby; want at least 5%%", repeats, len(seen))
	}
}

var videoCategory = map[string]string{"illegal_parking": "0201", "garbage_overflow": "0301", "street_vending": "0302",
	"crowding": "0502", "waterlogging": "0202", "smoke_fire": "0501"}

// metres is the distance between nearby points in the demo city (about 30°N).
func metres(a, b event.Point) float64 {
	return math.Hypot((a.Lon-b.Lon)*96400, (a.Lat-b.Lat)*111320)
}

func TestSameSeedSameContentFreshIDs(t *testing.T) {
	t.Parallel()
	clock := func() time.Time { return time.Date(2025, 6, 2, 21, 0, 0, 0, time.UTC) }
	a, _ := run(t, simulate.Config{Rate: 50000, Limit: 300, Seed: 9, Now: clock})
	b, _ := run(t, simulate.Config{Rate: 50000, Limit: 300, Seed: 9, Now: clock})
	for i := range a {
		if a[i].id == b[i].id {
			t.Fatalf("event %d has the same id in both runs", i)
		}
		if a[i].ticket != nil {
			if a[i].ticket.TicketID == b[i].ticket.TicketID {
				t.Fatalf("ticket number %s issued by both runs", a[i].ticket.TicketID)
			}
			a[i].ticket.TicketID, b[i].ticket.TicketID = "", ""
		}
		ja, _ := json.Marshal([]any{a[i].sensor, a[i].ticket, a[i].video})
		jb, _ := json.Marshal([]any{b[i].sensor, b[i].ticket, b[i].video})
		if string(ja) != string(jb) {
			t.Fatalf("event %d differs between runs with the same seed:\n%s\n%s", i, ja, jb)
		}
	}
}

func TestRateOverDuration(t *testing.T) {
	t.Parallel()
	// 400/s for 0.5 s: the token bucket allows 200 plus one burst (8). The run is in a
	// synctest bubble, on its fake clock: the 0.5 s pass at once, and a busy machine cannot
	// make it produce fewer, so the count is exact up to that one burst.
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		evs, _ := run(t, simulate.Config{Rate: 400, Duration: 500 * time.Millisecond, Seed: 4})
		if len(evs) > 200+8 {
			t.Errorf("%d events in 0.5 s at 400/s: more than the rate allows", len(evs))
		}
		if len(evs) < 200 {
			t.Errorf("%d events in 0.5 s at 400/s: below the rate", len(evs))
		}
		if d := time.Since(start); d != 500*time.Millisecond {
			t.Errorf("Run took %v of the bubble's clock, want its Duration, 500ms", d)
		}
	})
}

func TestEventTimeCarriesShanghaiOffset(t *testing.T) {
	t.Parallel()
	rec := &simulatetest.Recorder{}
	sim, err := simulate.New(simulate.Config{Rate: 1000, Limit: 5, Now: func() time.Time {
		return time.Date(2025, 6, 2, 1, 30, 0, 0, time.UTC)
	}}, demo(t), rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, r := range rec.Records() {
		var env struct {
			Time string `json:"time"`
		}
		if err := json.Unmarshal(r.Value, &env); err != nil {
			t.Fatal(err)
		}
		if env.Time != "2025-06-02T09:30:00.000+08:00" {
			t.Errorf("time %q, want local time with +08:00", env.Time)
		}
	}
}

func TestInvalidRecordsAreInvalid(t *testing.T) {
	t.Parallel()
	rec := &simulatetest.Recorder{}
	sim, err := simulate.New(simulate.Config{Rate: 50000, Limit: 200, Seed: 5, Invalid: 1}, demo(t), rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := sim.Stats(); st.Invalid != 200 || st.Sensor+st.Hotline+st.Video != 0 {
		t.Errorf("stats %+v", st)
	}
	m := demo(t)
	for _, r := range rec.Records() {
		if validRecord(m, r) {
			t.Errorf("record meant to be invalid looks fine: %s", r.Value)
		}
	}
}

// validRecord is a small stand-in for ingest's validation.
func validRecord(m *city.Map, r simulatetest.Record) bool {
	if !utf8.Valid(r.Value) {
		return false
	}
	switch r.Topic {
	case event.TopicIngestSensor:
		var s event.SensorReading
		if _, err := event.Decode(r.Value, event.TypeSensorReading, &s); err != nil || s.DeviceID == "" || s.Lat == nil {
			return false
		}
		_, ok := m.Resolve(event.Point{Lon: *s.Lon, Lat: *s.Lat})
		return ok && city.InChina(event.Point{Lon: *s.Lon, Lat: *s.Lat})
	case event.TopicIngestHotline:
		var tk event.HotlineTicket
		_, err := event.Decode(r.Value, event.TypeHotlineTicket, &tk)
		return err == nil
	}
	return true
}

func TestSinkFailures(t *testing.T) {
	t.Parallel()
	rec := &simulatetest.Recorder{Err: errors.New("broker down")}
	sim, err := simulate.New(simulate.Config{Rate: 50000, Seed: 6, MaxConsecutiveErrors: 5}, demo(t), rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = sim.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "broker down") {
		t.Fatalf("Run = %v, want it to give up with the sink's error", err)
	}
	if st := sim.Stats(); st.Errors != 5 {
		t.Errorf("errors %d, want 5", st.Errors)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	rec := &simulatetest.Recorder{}
	sim, err := simulate.New(simulate.Config{Rate: 100, Seed: 7}, demo(t), rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sim.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
}

func TestConcurrentUseOfTheMap(t *testing.T) {
	t.Parallel()
	// Two simulators share one map, as several components of one process do.
	var wg sync.WaitGroup
	for seed := range int64(2) {
		wg.Go(func() {
			rec := &simulatetest.Recorder{}
			sim, err := simulate.New(simulate.Config{Rate: 50000, Limit: 300, Seed: seed}, demo(t), rec, nil)
			if err != nil {
				t.Error(err)
				return
			}
			if err := sim.Run(t.Context()); err != nil || rec.Count("") != 300 {
				t.Errorf("Run = %v with %d records", err, rec.Count(""))
			}
		})
	}
	wg.Wait()
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  simulate.Config
		want string
	}{
		{"zero rate", simulate.Config{}, "rate"},
		{"negative duration", simulate.Config{Rate: 1, Duration: -time.Second}, "duration"},
		{"negative mix", simulate.Config{Rate: 1, Mix: simulate.Mix{Sensor: -1, Video: 1}}, "mix"},
		{"probability above one", simulate.Config{Rate: 1, Invalid: 2}, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := simulate.New(tt.cfg, demo(t), &simulatetest.Recorder{}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want an error about %s", err, tt.want)
			}
		})
	}
	if _, err := simulate.New(simulate.Config{Rate: 1}, nil, &simulatetest.Recorder{}, nil); err == nil {
		t.Error("New without a map succeeded")
	}
}

func TestHTTPSink(t *testing.T) {
	t.Parallel()
	var (
		mu      sync.Mutex
		batches []int
		events  int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v1/events" {
			http.Error(w, "wrong endpoint "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		if r.Header.Get("Content-Type") != simulate.ContentTypeBatch || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "bad headers", http.StatusBadRequest)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var batch []json.RawMessage
		if err := json.Unmarshal(body, &batch); err != nil {
			http.Error(w, "not a batch: "+err.Error(), http.StatusBadRequest)
			return
		}
		for _, raw := range batch {
			var env struct{ Type string }
			_ = json.Unmarshal(raw, &env)
			var out any
			if _, err := event.Decode(raw, env.Type, &out); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		mu.Lock()
		batches = append(batches, len(batch))
		events += len(batch)
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()

	sink := &simulate.HTTPSink{URL: srv.URL + "/", Token: "tok", Client: srv.Client(), MaxBatch: 50}
	sim, err := simulate.New(simulate.Config{Rate: 50000, Limit: 1234, Seed: 8}, demo(t), sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if events != 1234 {
		t.Errorf("server received %d events, want 1234", events)
	}
	for _, n := range batches {
		if n < 1 || n > 50 {
			t.Errorf("batch of %d events, want 1..50", n)
		}
	}
	if st := sim.Stats(); st.Errors != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestHTTPSinkReportsRejection(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"code":"unauthenticated"}`, http.StatusUnauthorized)
	}))
	defer srv.Close()
	sink := &simulate.HTTPSink{URL: srv.URL, Client: srv.Client()}
	if err := sink.Send(t.Context(), event.TopicIngestSensor, "k", []byte(`{}`)); err != nil {
		t.Fatalf("Send buffers and should not post yet: %v", err)
	}
	err := sink.Flush(t.Context())
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "unauthenticated") {
		t.Fatalf("Flush = %v, want the 401 and the server's message", err)
	}
	if err := sink.Flush(t.Context()); err != nil {
		t.Errorf("the failed batch was kept: %v", err)
	}
}

type discard struct{}

func (discard) Send(context.Context, string, string, []byte) error { return nil }

// BenchmarkGenerate measures how fast the simulator can produce encoded events when the rate
// does not hold it back: the ceiling of a single simulator process.
func BenchmarkGenerate(b *testing.B) {
	sim, err := simulate.New(simulate.Config{Rate: 1e9, Limit: b.N, Seed: 1}, demo(b), discard{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if err := sim.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// TestLevelsSeparateNormalFromAlarm checks the bands documented for rule authors: a normal
// reading never crosses the demo rules' thresholds and an excursion reading always does.
func TestLevelsSeparateNormalFromAlarm(t *testing.T) {
	t.Parallel()
	evs, _ := run(t, simulate.Config{Rate: 50000, Limit: 3000, Seed: 10, AlarmChance: 0.05,
		Mix: simulate.Mix{Sensor: 1}})
	thresholds := map[string]struct {
		metric string
		limit  float64
	}{
		"water_level": {"level_cm", 80}, "gas": {"ppm", 50}, "manhole": {"tilt_deg", 10},
		"noise": {"db", 70}, "air": {"pm25", 150}, "bridge": {"strain", 500},
	}
	seen := map[string][2]int{}
	for _, d := range evs {
		s := d.sensor
		th, ok := thresholds[s.Kind]
		if !ok {
			continue
		}
		v := s.Metrics[th.metric]
		alarm := s.Status == "alarm"
		if alarm != (v > th.limit) {
			t.Errorf("%s %s=%v with status %q: threshold %v", s.DeviceID, th.metric, v, s.Status, th.limit)
		}
		c := seen[s.Kind]
		if alarm {
			c[1]++
		} else {
			c[0]++
		}
		seen[s.Kind] = c
	}
	for kind, c := range seen {
		if c[0] == 0 || c[1] == 0 {
			t.Errorf("%s: %d normal and %d alarm readings; want both", kind, c[0], c[1])
		}
	}
}
