package engine_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/engine"
	"github.com/urbanbrain/urbanbrain/rules/lang"
	"github.com/urbanbrain/urbanbrain/rules/rulestest"
)

// demoRules loads the demo city's rules from the source tree, as city.DemoFS embeds them.
func demoRules(t testing.TB) []lang.Rule {
	t.Helper()
	rs, err := lang.Load(os.DirFS("../../city/demo/rules"))
	if err != nil {
		t.Fatalf("demo rules: %v", err)
	}
	return rs
}

func TestDemoRulesCompile(t *testing.T) {
	rs := demoRules(t)
	if len(rs) < 12 {
		t.Fatalf("demo has %d rules, want at least 12", len(rs))
	}
	types := map[string]int{}
	for _, r := range rs {
		if !r.Enabled {
			t.Errorf("demo rule %s is disabled", r.ID)
		}
		if r.Version < 1 {
			t.Errorf("demo rule %s has version %d", r.ID, r.Version)
		}
		if r.Origin.File == "" || r.Origin.Line == 0 {
			t.Errorf("demo rule %s has no origin: %+v", r.ID, r.Origin)
		}
		for _, typ := range r.Types {
			types[typ]++
		}
	}
	for _, typ := range lang.EventTypes {
		if types[typ] == 0 {
			t.Errorf("no demo rule listens to %s", typ)
		}
	}
}

func at(hour, minute int) time.Time {
	return time.Date(2025, 7, 16, hour, minute, 0, 0, lang.Beijing).UTC()
}

func withTime(ev event.Event, t time.Time) event.Event {
	ev.Time = t
	return ev
}

func withStatus(ev event.Event, status string) event.Event {
	ev.Sensor.Status = status
	return ev
}

func withGrid(ev event.Event, grid string) event.Event {
	ev.Area.Grid = grid
	return ev
}

// want is one expected signal; the signal id, rule version, time and event are checked for
// every signal separately.
type want struct {
	rule, category, severity, title, key, agency string
}

// statelessDemoRules are the demo rules that judge one event at a time;
// TestDemoStatefulRules covers the others.
func statelessDemoRules(t *testing.T) []lang.Rule {
	var out []lang.Rule
	for _, r := range demoRules(t) {
		if r.Kind() == "" {
			out = append(out, r)
		}
	}
	return out
}

// TestDemoRules is the demo city's rules, event by event: which rules fire and what they raise.
func TestDemoRules(t *testing.T) {
	rs := statelessDemoRules(t)
	const street = "临溪街道"
	S, H, V := rulestest.Sensor, rulestest.Hotline, rulestest.Video
	tests := []struct {
		name string
		ev   event.Event
		want []want
	}{
		// 0104 water level
		{"water level above 80 is orange", S("e1", "WL-001", "water_level", map[string]float64{"level_cm": 85.5}),
			[]want{{"water-level-high", "0104", "orange", street + " 水位 85.5cm 超警戒", "water:WL-001", "water"}}},
		{"water level above 150 is red", S("e1", "WL-001", "water_level", map[string]float64{"level_cm": 180}),
			[]want{{"water-level-high", "0104", "red", street + " 水位 180cm 超警戒", "water:WL-001", "water"}}},
		{"water level at 80 is normal", S("e1", "WL-001", "water_level", map[string]float64{"level_cm": 80}), nil},
		{"level_cm on another kind is ignored", S("e1", "X-1", "noise", map[string]float64{"level_cm": 300}), nil},

		// 0103 gas
		{"gas above 50 ppm is orange", S("e2", "GAS-7", "gas", map[string]float64{"ppm": 60}),
			[]want{{"gas-leak", "0103", "orange", street + " 燃气浓度 60ppm 超标", "gas:GAS-7", "gas"}}},
		{"gas above 200 ppm is red", S("e2", "GAS-7", "gas", map[string]float64{"ppm": 200.5}),
			[]want{{"gas-leak", "0103", "red", street + " 燃气浓度 200.5ppm 超标", "gas:GAS-7", "gas"}}},
		{"gas at 50 ppm is normal", S("e2", "GAS-7", "gas", map[string]float64{"ppm": 50}), nil},

		// 0101 manhole
		{"open manhole is orange", S("e3", "MH-3", "manhole", map[string]float64{"open": 1, "tilt_deg": 2}),
			[]want{{"manhole-cover", "0101", "orange", street + " 井盖开启（倾角 2°）", "manhole:MH-3", "urban"}}},
		{"tilted manhole is yellow", S("e3", "MH-3", "manhole", map[string]float64{"open": 0, "tilt_deg": 15}),
			[]want{{"manhole-cover", "0101", "yellow", street + " 井盖倾斜（倾角 15°）", "manhole:MH-3", "urban"}}},
		{"closed level manhole is normal", S("e3", "MH-3", "manhole", map[string]float64{"open": 0, "tilt_deg": 3}), nil},

		// 0102 street lamp
		{"dark lamp at night", withTime(S("e4", "SL-9", "street_lamp", map[string]float64{"current_a": 0}), at(23, 0)),
			[]want{{"street-lamp-fault", "0102", "blue", street + " 路灯 SL-9 故障（电流 0A）", "lamp:SL-9", "urban"}}},
		{"dark lamp at 05:59", withTime(S("e4", "SL-9", "street_lamp", map[string]float64{"current_a": 0.02}), at(5, 59)),
			[]want{{"street-lamp-fault", "0102", "blue", street + " 路灯 SL-9 故障（电流 0.02A）", "lamp:SL-9", "urban"}}},
		{"dark lamp by day is normal", withTime(S("e4", "SL-9", "street_lamp", map[string]float64{"current_a": 0}), at(14, 0)), nil},
		{"lit lamp at night is normal", withTime(S("e4", "SL-9", "street_lamp", map[string]float64{"current_a": 1.1}), at(21, 0)), nil},
		{"lamp without current reading at night is normal", withTime(S("e4", "SL-9", "street_lamp", map[string]float64{}), at(21, 0)), nil},
		{"overcurrent lamp by day", withTime(S("e4", "SL-9", "street_lamp", map[string]float64{"current_a": 4.2}), at(12, 0)),
			[]want{{"street-lamp-fault", "0102", "blue", street + " 路灯 SL-9 故障（电流 4.2A）", "lamp:SL-9", "urban"}}},
		{"lamp reporting fault", withStatus(S("e4", "SL-9", "street_lamp", map[string]float64{"current_a": 0}), "fault"),
			[]want{{"street-lamp-fault", "0102", "blue", street + " 路灯 SL-9 故障（电流 0A）", "lamp:SL-9", "urban"}}},

		// 0203 bridge
		{"bridge strain above 500 is orange", S("e5", "BR-1", "bridge", map[string]float64{"strain": 620}),
			[]want{{"bridge-strain", "0203", "orange", street + " 桥梁应变 620με 超限", "bridge:BR-1", "urban"}}},
		{"bridge strain above 800 is red", S("e5", "BR-1", "bridge", map[string]float64{"strain": 850}),
			[]want{{"bridge-strain", "0203", "red", street + " 桥梁应变 850με 超限", "bridge:BR-1", "urban"}}},
		{"bridge strain in normal band", S("e5", "BR-1", "bridge", map[string]float64{"strain": 300}), nil},

		// 0401 noise
		{"loud night", withTime(S("e6", "NZ-2", "noise", map[string]float64{"db": 78}), at(23, 30)),
			[]want{{"noise-night", "0401", "yellow", street + " 夜间噪声 78dB", "noise:NZ-2", "env"}}},
		{"loud early morning", withTime(S("e6", "NZ-2", "noise", map[string]float64{"db": 71}), at(2, 0)),
			[]want{{"noise-night", "0401", "yellow", street + " 夜间噪声 71dB", "noise:NZ-2", "env"}}},
		{"loud day is not a night noise", withTime(S("e6", "NZ-2", "noise", map[string]float64{"db": 90}), at(15, 0)), nil},
		{"quiet night", withTime(S("e6", "NZ-2", "noise", map[string]float64{"db": 45}), at(23, 0)), nil},

		// 0402 air
		{"pm2.5 above 150 is yellow", S("e7", "AQ-4", "air", map[string]float64{"pm25": 160}),
			[]want{{"air-pm25", "0402", "yellow", street + " PM2.5 160μg/m³ 超标", "air:AQ-4", "env"}}},
		{"pm2.5 above 250 is orange", S("e7", "AQ-4", "air", map[string]float64{"pm25": 300}),
			[]want{{"air-pm25", "0402", "orange", street + " PM2.5 300μg/m³ 超标", "air:AQ-4", "env"}}},
		{"pm2.5 normal", S("e7", "AQ-4", "air", map[string]float64{"pm25": 75}), nil},

		// 12345
		{"complaint with a known category", H("h1", "投诉", "0401", "normal", "楼下工地半夜施工"),
			[]want{{"hotline-ticket", "0401", "blue", street + "第三网格 12345 投诉工单 Th1", "hotline:0401:990102001001-03", ""}}},
		{"urgent report", H("h2", "举报", "0302", "urgent", "小区门口有人占道摆摊"),
			[]want{{"hotline-ticket", "0302", "orange", street + "第三网格 12345 举报工单 Th2", "hotline:0302:990102001001-03", ""}}},
		{"help without category is 0601 yellow", H("h3", "求助", "", "normal", "老人走失"),
			[]want{{"hotline-ticket", "0601", "yellow", street + "第三网格 12345 求助工单 Th3", "hotline:求助:990102001001-03", ""}}},
		{"emergency complaint with unknown category is 0602 red", H("h4", "投诉", "9999", "emergency", "电梯困人"),
			[]want{{"hotline-ticket", "0602", "red", street + "第三网格 12345 投诉工单 Th4", "hotline:9999:990102001001-03", ""}}},
		{"consultation is not an incident", H("h5", "咨询", "0601", "normal", "办事指南"), nil},
		{"suggestion is not an incident", H("h6", "建议", "0402", "normal", "多种树"), nil},
		{"gas smell on a complaint fires both, with one key (files load in name order)", H("h7", "投诉", "0103", "normal", "楼道里有很浓的煤气味"),
			[]want{
				{"hotline-gas-smell", "0103", "red", street + "第三网格 市民反映燃气异味（12345 Th7）", "hotline:0103:990102001001-03", "gas"},
				{"hotline-ticket", "0103", "blue", street + "第三网格 12345 投诉工单 Th7", "hotline:0103:990102001001-03", ""},
			}},
		{"gas leak on a consultation still fires", H("h8", "咨询", "", "normal", "好像天然气泄漏了怎么办"),
			[]want{{"hotline-gas-smell", "0103", "red", street + "第三网格 市民反映燃气异味（12345 Th8）", "hotline:0103:990102001001-03", "gas"}}},
		{"an unplaced gas smell is an incident of its own ticket, with one key", withGrid(H("h11", "投诉", "0103", "normal", "楼道里有很浓的煤气味"), ""),
			[]want{
				{"hotline-gas-smell", "0103", "red", street + "第三网格 市民反映燃气异味（12345 Th11）", "hotline:0103:ticket-Th11", "gas"},
				{"hotline-ticket", "0103", "blue", street + "第三网格 12345 投诉工单 Th11", "hotline:0103:ticket-Th11", ""},
			}},
		{"gas bill question is not a leak", H("h9", "咨询", "", "normal", "燃气费怎么缴纳"), nil},
		{"smell without gas is not a leak", H("h10", "咨询", "", "normal", "垃圾站有异味"), nil},

		// video
		{"garbage overflow", V("v1", "CAM-11", "garbage_overflow", 0.87, 3),
			[]want{{"video-garbage-overflow", "0301", "yellow", street + " 摄像头 CAM-11 识别到垃圾满溢（置信度 87%）", "video:CAM-11:garbage_overflow", "urban"}}},
		{"garbage overflow, low confidence", V("v1", "CAM-11", "garbage_overflow", 0.79, 3), nil},
		{"smoke and fire", V("v2", "CAM-12", "smoke_fire", 0.7, 1),
			[]want{{"video-smoke-fire", "0501", "red", street + " 摄像头 CAM-12 发现烟雾火情（置信度 70%）", "video:CAM-12:smoke_fire", "fire"}}},
		{"smoke, low confidence", V("v2", "CAM-12", "smoke_fire", 0.69, 1), nil},
		{"illegal parking", V("v3", "CAM-13", "illegal_parking", 0.9, 1),
			[]want{{"video-illegal-parking", "0201", "blue", street + " 摄像头 CAM-13 识别到违章停车", "video:CAM-13:illegal_parking", "traffic"}}},
		{"illegal parking, low confidence", V("v3", "CAM-13", "illegal_parking", 0.84, 1), nil},
		{"crowding of 60 is orange", V("v4", "CAM-14", "crowding", 0.95, 60),
			[]want{{"video-crowding", "0502", "orange", street + " 摄像头 CAM-14 人群聚集约 60 人", "video:CAM-14:crowding", "traffic"}}},
		{"crowding of 200 is red", V("v4", "CAM-14", "crowding", 0.95, 200),
			[]want{{"video-crowding", "0502", "red", street + " 摄像头 CAM-14 人群聚集约 200 人", "video:CAM-14:crowding", "traffic"}}},
		{"49 people is no crowd", V("v4", "CAM-14", "crowding", 0.95, 49), nil},
		{"waterlogging", V("v5", "CAM-15", "waterlogging", 0.8, 0),
			[]want{{"video-waterlogging", "0202", "orange", street + " 摄像头 CAM-15 识别到道路积水", "video:CAM-15:waterlogging", "water"}}},
		{"waterlogging, low confidence", V("v5", "CAM-15", "waterlogging", 0.5, 0), nil},
		{"street vending", V("v6", "CAM-16", "street_vending", 0.81, 2),
			[]want{{"video-street-vending", "0302", "blue", street + " 摄像头 CAM-16 识别到占道经营", "video:CAM-16:street_vending", "urban"}}},
		{"unknown algorithm", V("v7", "CAM-17", "face_recognition", 0.99, 1), nil},
	}
	rec := &rulestest.Recorder{}
	eng, err := engine.New(engine.Config{}, rs, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	versions := map[string]int{}
	for _, r := range rs {
		versions[r.ID] = r.Version
	}
	fired := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sigs, errs := eng.Evaluate(tt.ev)
			if len(errs) > 0 {
				t.Fatalf("evaluation errors: %v", errs)
			}
			var got []want
			for _, s := range sigs {
				got = append(got, want{s.RuleID, s.Category, s.Severity, s.Title, s.CorrelationKey, s.Agency})
				if s.ID != s.RuleID+":"+tt.ev.ID {
					t.Errorf("signal id %q, want %q", s.ID, s.RuleID+":"+tt.ev.ID)
				}
				if s.RuleVersion != versions[s.RuleID] || s.RuleVersion == 0 {
					t.Errorf("signal rule version %d, want %d", s.RuleVersion, versions[s.RuleID])
				}
				if !s.At.Equal(tt.ev.Time) || s.Event.ID != tt.ev.ID {
					t.Errorf("signal at %v for event %s, want %v and %s", s.At, s.Event.ID, tt.ev.Time, tt.ev.ID)
				}
				fired[s.RuleID] = true
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("signals\n got %q\nwant %q", got, tt.want)
			}
		})
	}
	for _, r := range rs {
		if !fired[r.ID] {
			t.Errorf("no case makes demo rule %s fire", r.ID)
		}
	}

	// The same cases through HandleEvent come out as signal outputs, keyed by street.
	for _, tt := range tests {
		if err := rec.Keep(eng.HandleEvent(context.Background(), tt.ev)); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, tt := range tests {
		n += len(tt.want)
	}
	outs := rec.Outputs()
	if len(outs) != n {
		t.Fatalf("returned %d outputs, want %d", len(outs), n)
	}
	for _, o := range outs {
		if _, ok := o.Data.(event.Signal); !ok || o.Key != rulestest.Area.Street {
			t.Errorf("output %T keyed %s, want a signal keyed %s", o.Data, o.Key, rulestest.Area.Street)
		}
	}
	rec.Signals(t) // keys, ids and times agree with the signals
}

// TestDemoHotlineMergesByGrid: repeat calls about one problem in one grid share a correlation
// key; the same category in another grid does not.
func TestDemoHotlineMergesByGrid(t *testing.T) {
	eng, err := engine.New(engine.Config{}, demoRules(t), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	key := func(ev event.Event) string {
		t.Helper()
		sigs, errs := eng.Evaluate(ev)
		if len(errs) > 0 || len(sigs) != 1 {
			t.Fatalf("event %s: signals %v errors %v, want one signal", ev.ID, sigs, errs)
		}
		return sigs[0].CorrelationKey
	}
	a := key(rulestest.Hotline("c1", "投诉", "0301", "normal", "垃圾桶满了"))
	b := key(rulestest.Hotline("c2", "举报", "0301", "urgent", "垃圾没人清"))
	c := key(withGrid(rulestest.Hotline("c3", "投诉", "0301", "normal", "垃圾桶满了"), "990102001001-04"))
	if a != b {
		t.Errorf("same category, same grid: keys %q and %q differ", a, b)
	}
	if a == c {
		t.Errorf("same category, other grid: both keys %q", a)
	}
}

// Regression: 12345 tickets that ingest could not place in a grid (address or district code
// only) all had the key "hotline:<category>:" and merged across the whole city. Each must
// stand alone until an operator triages it.
func TestDemoHotlineWithoutGridDoesNotMerge(t *testing.T) {
	eng, err := engine.New(engine.Config{}, demoRules(t), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	key := func(ev event.Event) string {
		t.Helper()
		ev.Area = event.Area{District: ev.Area.District}
		sigs, errs := eng.Evaluate(ev)
		if len(errs) > 0 || len(sigs) != 1 {
			t.Fatalf("event %s: signals %v errors %v, want one signal", ev.ID, sigs, errs)
		}
		return sigs[0].CorrelationKey
	}
	a := key(rulestest.Hotline("u1", "投诉", "0201", "normal", "车辆乱停"))
	b := key(rulestest.Hotline("u2", "投诉", "0201", "normal", "车辆乱停"))
	if a == b {
		t.Errorf("two ungridded tickets share the key %q; want one incident each", a)
	}
	if !strings.Contains(a, "Tu1") {
		t.Errorf("key %q; want it to name the ticket", a)
	}
}

// TestDemoStatefulRules: the demo's duration, window and absence rules on a scripted clock.
func TestDemoStatefulRules(t *testing.T) {
	kinds := map[string]string{}
	for _, r := range demoRules(t) {
		kinds[r.ID] = r.Kind()
	}
	for id, kind := range map[string]string{"water-level-held": lang.KindFor, "hotline-noise-cluster": lang.KindWindow,
		"device-silent": lang.KindAbsent, "noise-hourly": lang.KindWindow} {
		if kinds[id] != kind {
			t.Errorf("demo rule %s is %q, want %q", id, kinds[id], kind)
		}
	}
	rec := &rulestest.Recorder{}
	eng, err := engine.New(engine.Config{AllowedLateness: time.Minute}, demoRules(t), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	at := func(min float64) time.Time { return rulestest.At.Add(time.Duration(min * float64(time.Minute))) }
	send := func(ev event.Event, min float64) {
		t.Helper()
		ev.Time = at(min)
		if err := rec.Keep(eng.HandleEvent(ctx, ev)); err != nil {
			t.Fatal(err)
		}
	}
	// The engine's clock ticks from its start, as the app's does.
	if err := rec.Keep(eng.Tick(ctx, at(0))); err != nil {
		t.Fatal(err)
	}
	// Water above 100 cm from +0 to +4m, every 30 s; below at +4m30s.
	for i := 0; i <= 8; i++ {
		send(rulestest.Sensor(fmt.Sprintf("w%d", i), "WL-9", "water_level", map[string]float64{"level_cm": 120}), float64(i)/2)
	}
	send(rulestest.Sensor("w9", "WL-9", "water_level", map[string]float64{"level_cm": 60}), 4.5)
	// Three noise complaints about one community within the hour.
	for i, min := range []float64{5, 20, 50} {
		send(rulestest.Hotline(fmt.Sprintf("n%d", i), "投诉", "0401", "normal", "楼下夜宵摊太吵"), min)
	}
	// WL-9 is silent from +4m30s: noticed once the street's clock is past +15m30s (the
	// complaint at +20m moves it), stamped +14m30s. The wall clock then ticks at +90m, running
	// the street's clock on from its newest event (+50m) to +90m: the complaint of +5m left
	// the hour at +65m, which is when the cluster cleared.
	if err := rec.Keep(eng.Tick(ctx, at(90))); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range rec.Signals(t) {
		if s.RuleID == "water-level-high" || s.RuleID == "hotline-ticket" {
			continue // the stateless rules these events also trip
		}
		kind := "fire"
		if s.Clear {
			kind = "clear"
		}
		got = append(got, fmt.Sprintf("%s %s %s +%v %s", kind, s.RuleID, s.Severity, s.At.Sub(rulestest.At), s.CorrelationKey))
	}
	want := []string{
		"fire water-level-held red +3m0s water:WL-9",
		"clear water-level-held red +4m30s water:WL-9",
		"fire device-silent blue +14m30s offline:WL-9",
		"fire hotline-noise-cluster orange +50m0s noise-cluster:990102001001",
		"clear hotline-noise-cluster orange +1h5m0s noise-cluster:990102001001",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("signals\n got %s\nwant %s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
