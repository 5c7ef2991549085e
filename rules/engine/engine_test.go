package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/engine"
	"github.com/urbanbrain/urbanbrain/rules/lang"
	"github.com/urbanbrain/urbanbrain/rules/rulestest"
)

const failingAndFine = `
- id: broken
  name: 坏规则
  types: [city.sensor.reading]
  when: int(sensor.status) > 0          # "ok" is not a number: fails at run time
  raise: {category: "0104", severity: red}
- id: bad-severity
  name: 坏级别
  types: [city.sensor.reading]
  when: "true"
  raise: {category: "0104", severity: "=sensor.status"}
- id: fine
  name: 好规则
  types: [city.sensor.reading]
  when: sensor.metrics["level_cm"] > 80
  raise: {category: "0104", severity: orange, correlation_key: "water:{{sensor.device_id}}"}
`

// TestRuntimeErrorDoesNotStopOtherRules: two rules fail on every event; the third still
// fires, HandleEvent returns nil, and the failures are counted and logged sparingly.
func TestRuntimeErrorDoesNotStopOtherRules(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	rec := &rulestest.Recorder{}
	eng := newEngine(t, rulestest.Parse(t, failingAndFine), zap.New(core))

	ev := rulestest.Sensor("e1", "WL-1", "water_level", map[string]float64{"level_cm": 90})
	sigs, errs := eng.Evaluate(ev)
	if len(sigs) != 1 || sigs[0].RuleID != "fine" {
		t.Fatalf("signals %+v, want one from rule fine", sigs)
	}
	var failed []string
	for _, err := range errs {
		var ee *lang.EvalError
		if !errors.As(err, &ee) || ee.EventID != "e1" || ee.RuleVersion != 1 {
			t.Fatalf("error %v is not an EvalError for e1", err)
		}
		failed = append(failed, ee.RuleID+"/"+ee.Field)
	}
	if got := strings.Join(failed, " "); got != "broken/when bad-severity/raise.severity" {
		t.Errorf("failed rules %q", got)
	}

	for i := range 5 {
		ev.ID = "e" + string(rune('1'+i))
		if err := rec.Keep(eng.HandleEvent(context.Background(), ev)); err != nil {
			t.Fatalf("HandleEvent: %v", err)
		}
	}
	if n := len(rec.Outputs()); n != 5 {
		t.Errorf("returned %d signals, want 5", n)
	}
	stats := map[string]engine.RuleStats{}
	for _, s := range eng.Stats() {
		stats[s.RuleID] = s
	}
	if s := stats["broken"]; s.Failed != 5 || s.Matched != 0 {
		t.Errorf("broken: %+v, want 5 failures", s)
	}
	if s := stats["fine"]; s.Failed != 0 || s.Matched != 5 {
		t.Errorf("fine: %+v, want 5 matches", s)
	}
	// Failures 1, 2 and 4 of each failing rule are logged, not 3 and 5.
	if n := logs.FilterField(zap.String("rule_id", "broken")).Len(); n != 3 {
		t.Errorf("logged %d failures of broken, want 3", n)
	}
	if n := logs.FilterField(zap.String("rule_id", "bad-severity")).Len(); n != 3 {
		t.Errorf("logged %d failures of bad-severity, want 3", n)
	}
}

// TestReplayGivesSameSignals: a redelivered event gives identical outputs, so the incident
// service sees the same signal ids.
func TestReplayGivesSameSignals(t *testing.T) {
	rec := &rulestest.Recorder{}
	eng := newEngine(t, demoRules(t), zaptest.NewLogger(t))
	evs := []event.Event{
		rulestest.Sensor("r1", "GAS-1", "gas", map[string]float64{"ppm": 300}),
		rulestest.Hotline("r2", "投诉", "0103", "urgent", "闻到煤气味"),
		rulestest.Video("r3", "CAM-1", "smoke_fire", 0.9, 1),
	}
	for range 2 {
		for _, ev := range evs {
			if err := rec.Keep(eng.HandleEvent(context.Background(), ev)); err != nil {
				t.Fatal(err)
			}
		}
	}
	outs := rec.Outputs()
	if len(outs) != 8 {
		t.Fatalf("returned %d outputs, want 2 × 4", len(outs))
	}
	sigs := rec.Signals(t)
	for i := range 4 {
		if !reflect.DeepEqual(outs[i], outs[i+4]) {
			t.Errorf("replay of output %d differs:\n%+v\n%+v", i, outs[i], outs[i+4])
		}
		if sigs[i].ID != sigs[i].RuleID+":"+sigs[i].Event.ID {
			t.Errorf("signal id %q is not rule:event", sigs[i].ID)
		}
	}
	// The signal carries the whole event, caller included: masking is downstream.
	if sigs[1].Event.Hotline == nil || sigs[1].Event.Hotline.TicketID != "Tr2" {
		t.Errorf("signal lost its event: %+v", sigs[1].Event)
	}
}

func TestHandleEventSkipsBadData(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	rec := &rulestest.Recorder{}
	eng := newEngine(t, demoRules(t), zap.New(core))

	noPayload := rulestest.Sensor("b1", "GAS-1", "gas", nil)
	noPayload.Sensor = nil
	// +Inf matches the rule but cannot be written as JSON.
	inf := rulestest.Sensor("b2", "GAS-1", "gas", map[string]float64{"ppm": math.Inf(1)})
	unknownType := rulestest.Sensor("b3", "GAS-1", "gas", map[string]float64{"ppm": 300})
	unknownType.Type = "city.weather.report"
	noStreet := rulestest.Sensor("b4", "GAS-1", "gas", map[string]float64{"ppm": 300})
	noStreet.Area = event.Area{}

	for _, ev := range []event.Event{noPayload, inf, unknownType, noStreet} {
		if err := rec.Keep(eng.HandleEvent(context.Background(), ev)); err != nil {
			t.Errorf("event %s: %v", ev.ID, err)
		}
	}
	if _, errs := eng.Evaluate(noPayload); len(errs) != 1 || !errors.Is(errs[0], lang.ErrNoPayload) {
		t.Errorf("no payload: errors %v", errs)
	}
	outs := rec.Outputs()
	if len(outs) != 1 || outs[0].Key != event.UnknownStreet {
		t.Fatalf("outputs %+v, want one keyed %q", outs, event.UnknownStreet)
	}
	if logs.FilterMessage("event not evaluated").Len() != 1 || logs.FilterField(zap.String("field", "signal")).Len() != 1 {
		t.Errorf("logs: %v", logs.All())
	}
}

func TestRaiseDefaultsDisabledAndShadow(t *testing.T) {
	rs := rulestest.Parse(t, `
- id: quiet
  name: 停用
  enabled: false
  types: [city.video.detection]
  when: "true"
  raise: {category: "0301", severity: blue}
- id: shadowed
  name: 影子规则 {{ not a template }}
  types: [city.video.detection]
  when: "true"
  raise: {category: "0301", severity: blue, shadow: true, alert: true, agency: '=video.algorithm == "x" ? "urban" : ""'}
`)
	eng := newEngine(t, rs, zaptest.NewLogger(t))
	if got := len(eng.Rules()); got != 2 {
		t.Errorf("Rules() has %d, want both, enabled or not", got)
	}
	sigs, errs := eng.Evaluate(rulestest.Video("d1", "CAM-1", "x", 0.5, 0))
	if len(errs) > 0 || len(sigs) != 1 {
		t.Fatalf("signals %+v errors %v, want only the enabled rule", sigs, errs)
	}
	s := sigs[0]
	if s.RuleID != "shadowed" || !s.Shadow || !s.Alert || s.Title != "影子规则 {{ not a template }}" ||
		s.CorrelationKey != "shadowed:d1" || s.Agency != "urban" {
		t.Errorf("signal %+v: want shadow, alert, the name as title, rule:event key, agency urban", s)
	}
}

func TestNewRejects(t *testing.T) {
	rs := rulestest.Parse(t, "id: a\nname: n\ntypes: [city.video.detection]\nwhen: 'true'\nraise: {category: '0301', severity: blue}\n")
	tests := []struct {
		name  string
		rules []lang.Rule
		cfg   engine.Config
		msg   string
	}{
		{"negative lateness", rs, engine.Config{AllowedLateness: -1}, "AllowedLateness must not be negative"},
		{"rule not compiled", []lang.Rule{{ID: "raw", Types: []string{event.TypeVideoDetection}}}, engine.Config{}, `"raw" was not compiled`},
		{"duplicate id", append(rs, rs...), engine.Config{}, `duplicate rule id "a"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := engine.New(tt.cfg, tt.rules, nil)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("New = %v, want an error containing %q", err, tt.msg)
			}
		})
	}
}

// TestFunctions checks the allow-listed functions through real rules.
func TestFunctions(t *testing.T) {
	ev := rulestest.Sensor("f1", "D-1", "noise", map[string]float64{"db": 80}) // 14:30 Beijing, Wednesday
	tests := []struct {
		when string
		want bool
	}{
		{`hour(time) == 14`, true},
		{`weekday(time) == 3`, true},
		{`hour(time - duration("15h")) == 23 && weekday(time - duration("15h")) == 2`, true},
		{`contains_any("楼道里有煤气味", "燃气", "煤气")`, true},
		{`contains_any("楼道里有异味", "燃气", "煤气")`, false},
		{`contains_any("楼道里有异味", "")`, false},
		{`contains_any("楼道里有异味")`, false},
		{`abs(distance_m(location.lat, location.lon, 30.245, 120.173) - 961.7) < 1`, true}, // haversine on orb.EarthRadius
		{`distance_m(30, 120, 30, 120) == 0`, true},
		{`location.known && area.grid_name == "第三网格"`, true},
		{`len(split("a,b,c", ",")) == 3 && upper("x") == "X"`, true},
		{`in_area(area, "望江区") && in_area(area, "990102001") && in_area(area, "第三网格")`, true},
		{`in_area(area, "990101") || in_area(area, "")`, false},
		// rulestest puts events at 120.163, 30.245.
		{`in_polygon(location.lat, location.lon, [[120.16, 30.24], [120.17, 30.24], [120.17, 30.25], [120.16, 30.25]])`, true},
		{`in_polygon(location.lat, location.lon, [[120.17, 30.24], [120.18, 30.24], [120.18, 30.25]])`, false},
	}
	for _, tt := range tests {
		t.Run(tt.when, func(t *testing.T) {
			src := "id: f\nname: f\ntypes: [city.sensor.reading]\nwhen: '" + tt.when + "'\nraise: {category: '0401', severity: blue}\n"
			eng := newEngine(t, rulestest.Parse(t, src), nil)
			sigs, errs := eng.Evaluate(ev)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			if got := len(sigs) == 1; got != tt.want {
				t.Errorf("= %v, want %v", got, tt.want)
			}
		})
	}
	// Builtins left out of the allow-list do not compile.
	for _, when := range []string{`now() > time`, `len(repeat("x", 1000000000)) > 0`, `date("2025-01-01") < time`, `fromJSON("{}") != nil`} {
		src := "id: f\nname: f\ntypes: [city.sensor.reading]\nwhen: '" + when + "'\nraise: {category: '0401', severity: blue}\n"
		var ce *lang.CompileError
		if _, err := lang.Parse("f.yaml", []byte(src)); !errors.As(err, &ce) || !strings.Contains(ce.Msg, "unknown name") {
			t.Errorf("%s: want unknown name, got %v", when, err)
		}
	}
}

func TestMaxNodes(t *testing.T) {
	when := strings.Repeat("1 + ", lang.MaxNodes) + "1 > 0"
	src := "id: big\nname: big\ntypes: [city.sensor.reading]\nwhen: '" + when + "'\nraise: {category: '0401', severity: blue}\n"
	var ce *lang.CompileError
	if _, err := lang.Parse("big.yaml", []byte(src)); !errors.As(err, &ce) {
		t.Fatalf("a %d-node expression compiled: %v", 2*lang.MaxNodes, err)
	}
}

// TestConcurrentHandleEvent runs partitions in parallel over one engine (meaningful with -race).
func TestConcurrentHandleEvent(t *testing.T) {
	rec := &rulestest.Recorder{}
	eng := newEngine(t, demoRules(t), zaptest.NewLogger(t))
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Go(func() {
			for i := range 50 {
				id := string(rune('a'+p)) + string(rune('0'+i%10)) + string(rune('0'+i/10))
				ev := rulestest.Video(id, "CAM-1", "smoke_fire", 0.9, 1)
				if err := rec.Keep(eng.HandleEvent(context.Background(), ev)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := len(rec.Signals(t)); n != 200 {
		t.Errorf("returned %d, want 200", n)
	}
}

// Issue 12: a signal says why its rule matched — each comparison with the value its sides
// had — so the incident can explain itself; a rule that does not match costs no explanation.
func TestExplainSignal(t *testing.T) {
	t.Parallel()
	rs, err := lang.Parse("x.yaml", []byte(`
id: level
name: level
version: 3
types: [city.sensor.reading]
when: sensor.kind == "water_level" && (sensor.metrics["level_cm"] > 80 || sensor.status == "alarm")
raise: {category: "0104", severity: orange, title: t, correlation_key: k}
`))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{}, rs, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev := event.Event{ID: "e1", Type: event.TypeSensorReading, Time: time.Unix(1e9, 0).UTC(), Area: event.Area{Street: "s"},
		Sensor: &event.SensorReading{DeviceID: "d", Kind: "water_level", Metrics: map[string]float64{"level_cm": 112}, Status: "ok"}}
	outs, _ := eng.HandleEvent(t.Context(), ev)
	if len(outs) != 1 {
		t.Fatalf("%d signals, want 1", len(outs))
	}
	sig := outs[0].Data.(event.Signal)
	x := sig.Explanation
	if x == nil || sig.RuleVersion != 3 || x.Condition != rs[0].When || len(x.Terms) != 3 {
		t.Fatalf("signal v%d explained %+v, want 3 terms of the condition", sig.RuleVersion, x)
	}
	want := []event.Term{
		{Expr: `sensor.kind == "water_level"`, Text: `sensor.kind "water_level" == "water_level"`, Holds: true,
			Left: event.Operand{Expr: "sensor.kind", Value: `"water_level"`}, Right: event.Operand{Expr: `"water_level"`, Value: `"water_level"`}},
		{Expr: "sensor.metrics.level_cm > 80", Text: "sensor.metrics.level_cm 112 > 80", Holds: true,
			Left: event.Operand{Expr: "sensor.metrics.level_cm", Value: "112"}, Right: event.Operand{Expr: "80", Value: "80"}},
		{Expr: `sensor.status == "alarm"`, Text: `sensor.status "ok" == "alarm"`,
			Left: event.Operand{Expr: "sensor.status", Value: `"ok"`}, Right: event.Operand{Expr: `"alarm"`, Value: `"alarm"`}},
	}
	if !reflect.DeepEqual(x.Terms, want) {
		t.Errorf("terms\n got %+v\nwant %+v", x.Terms, want)
	}
	if sigs, _ := eng.Evaluate(ev); len(sigs) != 1 || sigs[0].Explanation == nil {
		t.Errorf("Evaluate gave %+v, want the signal explained", sigs)
	}
}

// TestNoExplanations: an engine told not to explain (rules replay, which only counts) raises
// the same signals, stateless and stateful, without their explanations.
func TestNoExplanations(t *testing.T) {
	t.Parallel()
	rs, err := lang.Parse("x.yaml", []byte(`
id: level
name: level
version: 1
types: [city.sensor.reading]
when: sensor.metrics["level_cm"] > 80
raise: {category: "0104", severity: orange, title: t, correlation_key: k}
---
id: held
name: held
version: 1
types: [city.sensor.reading]
when: sensor.metrics["level_cm"] > 80
for: 1m
group_by: sensor.device_id
raise: {category: "0104", severity: orange, title: t, correlation_key: k}
`))
	if err != nil {
		t.Fatal(err)
	}
	run := func(cfg engine.Config) []event.Signal {
		eng, err := engine.New(cfg, rs, nil)
		if err != nil {
			t.Fatal(err)
		}
		var sigs []event.Signal
		for i := range 3 {
			ev := event.Event{ID: fmt.Sprintf("e%d", i), Type: event.TypeSensorReading, Time: time.Unix(1e9+int64(i)*60, 0).UTC(),
				Area: event.Area{Street: "s"}, Sensor: &event.SensorReading{DeviceID: "d", Kind: "water_level", Metrics: map[string]float64{"level_cm": 112}}}
			outs, err := eng.HandleEvent(t.Context(), ev)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range outs {
				sigs = append(sigs, o.Data.(event.Signal))
			}
		}
		return sigs
	}
	explained, bare := run(engine.Config{}), run(engine.Config{NoExplanations: true})
	if len(explained) < 4 || len(bare) != len(explained) {
		t.Fatalf("%d signals without explanations, %d with; want the same, and both rules firing (≥ 4)", len(bare), len(explained))
	}
	for i := range explained {
		if explained[i].Explanation == nil || bare[i].Explanation != nil {
			t.Fatalf("signal %d (%s): explained %v, unexplained %v", i, explained[i].ID, explained[i].Explanation, bare[i].Explanation)
		}
		explained[i].Explanation = nil
		if !reflect.DeepEqual(explained[i], bare[i]) {
			t.Errorf("signal %d differs beyond its explanation:\n%+v\n%+v", i, explained[i], bare[i])
		}
	}
}

func newEngine(t testing.TB, rs []lang.Rule, log *zap.Logger) *engine.Engine {
	t.Helper()
	eng, err := engine.New(engine.Config{}, rs, log)
	if err != nil {
		t.Fatal(err)
	}
	return eng
}
