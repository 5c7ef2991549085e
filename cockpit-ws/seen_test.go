package cockpit_test

import (
	"reflect"
	"testing"
	"time"

	cockpit "github.com/urbanbrain/urbanbrain/cockpit-ws"
	"github.com/urbanbrain/urbanbrain/event"
)

// seenSamples are one event of each source as city.events carries them, encoded.
func seenSamples(t testing.TB) map[string][]byte {
	t.Helper()
	at := time.Date(2026, 7, 1, 8, 30, 0, 0, time.UTC)
	area := event.Area{District: "330102", DistrictName: "上城区", Street: "330102001", StreetName: "清波街道",
		Community: "330102001001", CommunityName: "清波社区", Grid: "G-7"}
	lat, lon, battery := 30.24, 120.16, 87.5
	evs := map[string]event.Event{
		"sensor": {ID: "s-1", Type: event.TypeSensorReading, Source: "iot-gw-3", Time: at, Received: at.Add(time.Second), Area: area,
			Sensor: &event.SensorReading{DeviceID: "WL-0031", Kind: "water_level", Status: "alarm", Battery: &battery, Lat: &lat, Lon: &lon,
				Metrics: map[string]float64{"level_cm": 131.5, "rate_cm_min": 2.5, "temp_c": 24.1, "signal_dbm": -71}}},
		"hotline": {ID: "h-1", Type: event.TypeHotlineTicket, Source: "12345", Time: at, Received: at.Add(time.Second), Area: area,
			Hotline: &event.HotlineTicket{TicketID: "T-20260701-0042", Channel: "phone", CallerName: "张三", CallerPhone: "13800138000",
				RequestType: "投诉", CategoryCode: "0401", Category: "噪音扰民",
				Content: "市民来电反映清波街道某小区楼上住户每天晚上十一点以后仍在装修，电钻声音很大，影响休息，已多次沟通无果，请尽快处理。",
				Address: "清波街道河坊街 123 号 5 幢"}},
		"video": {ID: "v-1", Type: event.TypeVideoDetection, Source: "vca-1", Time: at, Received: at.Add(time.Second), Area: area,
			Video: &event.VideoDetection{CameraID: "CAM-0107", Algorithm: "garbage_overflow", Confidence: 0.93,
				BBox: []float64{412, 220, 180, 96}, SnapshotURL: "https://vca.example/snap/0107/20260701083000.jpg", ObjectCount: 3}},
	}
	out := map[string][]byte{}
	for name, ev := range evs {
		b, err := event.Encode(ev.Type, ev.ID, ev.Time, ev)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	return out
}

var eventTypes = []string{event.TypeSensorReading, event.TypeHotlineTicket, event.TypeVideoDetection}

// What the cockpit's route decodes of a record is what the KPIs read of the whole event.
func TestSeenDecodesWhatTheKPIsRead(t *testing.T) {
	for name, b := range seenSamples(t) {
		var ev event.Event
		if _, err := event.DecodeAny(b, eventTypes, &ev); err != nil {
			t.Fatal(err)
		}
		var seen cockpit.Seen
		if _, err := event.DecodeAny(b, eventTypes, &seen); err != nil {
			t.Fatal(err)
		}
		if want := cockpit.SeenOf(ev); !reflect.DeepEqual(seen, want) {
			t.Errorf("%s: decoded %+v, want %+v", name, seen, want)
		}
		if seen.Type == "" || seen.Time.IsZero() || seen.Received.IsZero() || seen.Area.Street == "" {
			t.Errorf("%s: decoded %+v: fields missing", name, seen)
		}
		if (ev.Sensor != nil) != (seen.Sensor != nil) || (seen.Sensor != nil && seen.Sensor.DeviceID != "WL-0031") {
			t.Errorf("%s: sensor %+v", name, seen.Sensor)
		}
	}
}

// BenchmarkDecodeSeen: decoding a record of city.events whole, and only what the KPIs read.
func BenchmarkDecodeSeen(b *testing.B) {
	for name, rec := range seenSamples(b) {
		b.Run(name+"/event", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var ev event.Event
				if _, err := event.DecodeAny(rec, eventTypes, &ev); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/seen", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var s cockpit.Seen
				if _, err := event.DecodeAny(rec, eventTypes, &s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
