// Package rulestest helps test code around the rules engine: a Recorder that keeps the
// outputs an engine returns, and builders for the three kinds of event with a plausible area.
package rulestest

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/lang"
)

// Recorder keeps the outputs an engine returns. It is safe for concurrent use.
type Recorder struct {
	mu   sync.Mutex
	outs event.Outputs
}

// Keep records outs and returns err, so that a call reads
//
//	if err := rec.Keep(eng.HandleEvent(ctx, ev)); err != nil {
func (r *Recorder) Keep(outs event.Outputs, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outs = append(r.outs, outs...)
	return err
}

// Outputs returns what has been kept so far.
func (r *Recorder) Outputs() event.Outputs {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append(event.Outputs(nil), r.outs...)
}

// Signals returns the Data of every output kept, failing t on anything but an event.Signal
// or on an output whose key, id or time disagree with its signal.
func (r *Recorder) Signals(t testing.TB) []event.Signal {
	t.Helper()
	var out []event.Signal
	for _, o := range r.Outputs() {
		sig, ok := o.Data.(event.Signal)
		if !ok {
			t.Fatalf("output %s holds %T, not an event.Signal", o.ID, o.Data)
		}
		if o.Key != sig.Event.Area.Key() || o.ID != sig.ID || !o.Time.Equal(sig.At) {
			t.Fatalf("output key %q id %q time %v; signal street %q id %q at %v", o.Key, o.ID, o.Time, sig.Event.Area.Key(), sig.ID, sig.At)
		}
		out = append(out, sig)
	}
	return out
}

// At is the time the builders give events unless told otherwise: 14:30 Beijing time on a
// Wednesday.
var At = time.Date(2025, 7, 16, 6, 30, 0, 0, time.UTC)

// Area is the area the builders give events.
var Area = event.Area{
	District: "990102", DistrictName: "望江区",
	Street: "990102001", StreetName: "临溪街道",
	Community: "990102001001", CommunityName: "柳岸社区",
	Grid: "990102001001-03", GridName: "第三网格",
}

func base(id, typ string) event.Event {
	return event.Event{
		ID: id, Type: typ, Source: "test", Time: At, Received: At.Add(time.Second),
		Location: &event.Point{Lon: 120.163, Lat: 30.245}, Area: Area,
	}
}

// Sensor returns a sensor reading event.
func Sensor(id, deviceID, kind string, metrics map[string]float64) event.Event {
	ev := base(id, event.TypeSensorReading)
	ev.Sensor = &event.SensorReading{DeviceID: deviceID, Kind: kind, Metrics: metrics, Status: "ok"}
	return ev
}

// Hotline returns a 12345 work order event, with a caller whose name and phone are personal
// data a rule must never see.
func Hotline(id, requestType, categoryCode, urgency, content string) event.Event {
	ev := base(id, event.TypeHotlineTicket)
	ev.Hotline = &event.HotlineTicket{
		TicketID: "T" + id, Channel: "phone", CallerName: "张三", CallerPhone: "13812345678",
		RequestType: requestType, CategoryCode: categoryCode, Content: content,
		Address: "柳岸路 12 号", DistrictCode: Area.District, Urgency: urgency, ReceivedAt: At,
	}
	return ev
}

// Video returns an AI camera detection event.
func Video(id, cameraID, algorithm string, confidence float64, objects int) event.Event {
	ev := base(id, event.TypeVideoDetection)
	ev.Video = &event.VideoDetection{
		CameraID: cameraID, Algorithm: algorithm, Confidence: confidence, ObjectCount: objects,
		SnapshotURL: "https://cam.example/" + cameraID + ".jpg",
	}
	return ev
}

// Parse parses rules from YAML source, failing the test on an error.
func Parse(t testing.TB, src string) []lang.Rule {
	t.Helper()
	rs, err := lang.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return rs
}

// SensorRule is a red 0104 rule on sensor readings with the given condition.
func SensorRule(when string) string {
	return "id: hostile\nname: 恶意规则\ntypes: [city.sensor.reading]\nwhen: '" + strings.ReplaceAll(when, "'", "''") + "'" +
		"\nraise: {category: \"0104\", severity: red}\n"
}

// NoiseWindow is a sliding-window rule: three 0401 complaints about one community within an
// hour.
const NoiseWindow = `
id: noise-complaints
name: 同一社区一小时内三起噪声投诉
types: [city.hotline.ticket]
when: hotline.category_code == "0401"
group_by: area.community
window: {size: 1h, having: count >= 3}
raise:
  category: "0401"
  severity: yellow
  title: "{{area.community_name}} 1小时内 {{window.count}} 起噪声投诉"
  correlation_key: "noise:{{area.community}}"
`
