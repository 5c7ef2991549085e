package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/engine"
	"github.com/urbanbrain/urbanbrain/rules/lang"
	"github.com/urbanbrain/urbanbrain/rules/rulestest"
)

// Hostile rules are refused when they are saved or fail at run time as a reported error of
// that rule on that event: never a panic, never a stall, and the other rules go on.
func TestHostileRules(t *testing.T) {
	deep := strings.Repeat("(", 10_000) + `sensor.kind == "gas"` + strings.Repeat(")", 10_000)
	tests := []struct {
		name     string
		src      string
		refused  string // the load error contains this; empty: the rule loads
		runError string // when it loads: the run-time error contains this; empty: runs cleanly
	}{
		{"1 MB of rule text", rulestest.SensorRule(`"` + strings.Repeat("x", 1<<20) + `" != ""`), "more than the 65536 allowed", ""},
		{"10,000 nested parentheses", rulestest.SensorRule(deep), "", ""},
		{"map over a hundred million", rulestest.SensorRule(`len(map(1..100000000, #)) > 0`), "range 1..100000000 has 100000000 elements", ""},
		{"map over a computed hundred million", rulestest.SensorRule(`len(map(1..int(sensor.metrics.level_cm * 1000000), #)) > 0`), "", "memory budget exceeded"},
		{"nested loops", rulestest.SensorRule(`any(1..5000, {any(1..5000, {# < 0})})`), "", "loop steps"},
		{"string doubling", rulestest.SensorRule(`let a = sensor.kind + sensor.kind; let b = a+a; let c = b+b; let d = c+c; let e = d+d; let f = e+e; let g = f+f; let h = g+g; let i = h+h; let j = i+i; let k = j+j; let l = k+k; let m = l+l; let n = m+m; let o = n+n; len(o) > 0`), "", "longer than 65536"},
		{"integer division by zero", rulestest.SensorRule(`int(sensor.metrics.level_cm) % int(sensor.metrics.zero) == 0`), "", "integer division by zero"},
		{"constant division by zero", rulestest.SensorRule(`sensor.metrics.level_cm > 1 % 0`), "integer divide by zero", ""},
		{"float division by zero is +Inf", rulestest.SensorRule(`sensor.metrics.level_cm / sensor.metrics.zero > 1`), "", ""},
		{"unknown function", rulestest.SensorRule(`exec("rm -rf /") == ""`), "unknown name exec", ""},
		{"clock", rulestest.SensorRule(`now().Year() > 2000`), "unknown name now", ""},
		{"over MaxNodes", rulestest.SensorRule(strings.Repeat("1 + ", 6000) + "1 > 0"), "exceeds maximum allowed nodes", ""},
	}
	ev := rulestest.Sensor("e1", "WL-1", "water_level", map[string]float64{"level_cm": 90})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := lang.Parse("hostile.yaml", []byte(tt.src))
			if tt.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tt.refused) || len(rs) != 0 {
					t.Fatalf("want refused with %q, got %d rules, error %.300v", tt.refused, len(rs), err)
				}
				var ce *lang.CompileError
				var ve *lang.ValidationError
				if !errors.As(err, &ce) && !errors.As(err, &ve) {
					t.Errorf("error %T is neither a CompileError nor a ValidationError", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %.300v", err)
			}
			fine := rulestest.Parse(t, `
id: fine
name: 好规则
types: [city.sensor.reading]
when: sensor.metrics.level_cm > 80
raise: {category: "0104", severity: orange}
`)
			rec := &rulestest.Recorder{}
			eng := newEngine(t, append(rs, fine...), nil)
			if err := rec.Keep(eng.HandleEvent(context.Background(), ev)); err != nil {
				t.Fatalf("HandleEvent: %v", err)
			}
			st := eng.StatsOf
			if got := st("fine").Matched; got != 1 {
				t.Errorf("the other rule matched %d times, want 1", got)
			}
			h := st("hostile")
			if tt.runError == "" {
				if h.Failed != 0 {
					t.Errorf("hostile rule failed: %s", h.LastError)
				}
				return
			}
			if h.Failed != 1 || !strings.Contains(h.LastError, tt.runError) {
				t.Errorf("hostile rule: %d failures, last %q; want one containing %q", h.Failed, h.LastError, tt.runError)
			}
		})
	}
}

// A rule that fails on every event is disabled after DisableAfter failures in a row,
// reported in Stats and in the metrics; the engine and the other rules go on, and a new
// version of the rule runs again.
func TestFailingRuleIsQuarantined(t *testing.T) {
	src := `
- id: broken
  name: 坏规则
  types: [city.sensor.reading]
  when: int(sensor.status) > 0
  raise: {category: "0104", severity: red}
- id: fine
  name: 好规则
  types: [city.sensor.reading]
  when: sensor.metrics.level_cm > 80
  raise: {category: "0104", severity: orange}
`
	reg := prometheus.NewRegistry()
	rec := &rulestest.Recorder{}
	eng, err := engine.New(engine.Config{DisableAfter: 5, Registerer: reg}, rulestest.Parse(t, src), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		ev := rulestest.Sensor("q"+string(rune('a'+i)), "WL-1", "water_level", map[string]float64{"level_cm": 90})
		if err := rec.Keep(eng.HandleEvent(context.Background(), ev)); err != nil {
			t.Fatal(err)
		}
	}
	st := eng.StatsOf
	if b := st("broken"); !b.Quarantined || b.Failed != 5 || !strings.Contains(b.LastError, "when") {
		t.Errorf("broken: %+v; want quarantined after 5 failures", b)
	}
	if f := st("fine"); f.Matched != 8 || f.Quarantined {
		t.Errorf("fine: %+v; want 8 matches", f)
	}
	if got := testutil.ToFloat64(gauge(t, reg, "urbanbrain_rules_quarantined", "broken")); got != 1 {
		t.Errorf("urbanbrain_rules_quarantined{rule=broken} = %v", got)
	}
	if got := testutil.ToFloat64(gauge(t, reg, "urbanbrain_rules_failures_total", "broken")); got != 5 {
		t.Errorf("urbanbrain_rules_failures_total{rule=broken} = %v", got)
	}

	fixed := rulestest.Parse(t, strings.Replace(strings.Replace(src, "int(sensor.status) > 0", `sensor.status == "ok"`, 1), "- id: broken", "- version: 2\n  id: broken", 1))
	if err := eng.SetRules(fixed); err != nil {
		t.Fatal(err)
	}
	if err := rec.Keep(eng.HandleEvent(context.Background(), rulestest.Sensor("qz", "WL-1", "water_level", nil))); err != nil {
		t.Fatal(err)
	}
	if b := eng.StatsOf("broken"); b.Quarantined || b.Matched != 1 || b.Version != 2 {
		t.Errorf("broken v2: %+v; want running again", b)
	}
}

// gauge finds one labelled series of a metric in reg.
func gauge(t *testing.T, reg *prometheus.Registry, name, rule string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "rule" && lp.GetValue() == rule {
					g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
					switch {
					case m.Gauge != nil:
						g.Set(m.Gauge.GetValue())
					case m.Counter != nil:
						g.Set(m.Counter.GetValue())
					}
					return g
				}
			}
		}
	}
	t.Fatalf("no %s{rule=%q}", name, rule)
	return nil
}

// The index offers an event only to rules that could match it, and never changes an answer:
// the same events give the same signals with rules that have nothing to index.
func TestIndexNeverChangesAnswers(t *testing.T) {
	indexed := `
- id: gas
  name: 燃气
  types: [city.sensor.reading]
  when: sensor.kind == "gas" && sensor.metrics.ppm > 50
  raise: {category: "0103", severity: red}
- id: two-kinds
  name: 两类
  types: [city.sensor.reading]
  when: sensor.kind in ["noise", "air"] && sensor.metrics.db + sensor.metrics.pm25 > 70
  raise: {category: "0401", severity: blue}
- id: camera
  name: 摄像头
  types: [city.video.detection]
  when: '"smoke_fire" == video.algorithm'
  raise: {category: "0501", severity: red}
- id: any-sensor
  name: 任意
  types: [city.sensor.reading]
  when: sensor.status == "fault" || sensor.kind == "gas"
  raise: {category: "0102", severity: blue}
`
	// The same conditions, written so that no conjunct is a plain equality.
	plain := strings.NewReplacer(`sensor.kind == "gas" &&`, `(sensor.kind == "gas") == true &&`,
		`sensor.kind in ["noise", "air"] &&`, `(sensor.kind in ["noise", "air"]) == true &&`,
		`'"smoke_fire" == video.algorithm'`, `'("smoke_fire" == video.algorithm) == true'`).Replace(indexed)
	evs := []event.Event{
		rulestest.Sensor("1", "G-1", "gas", map[string]float64{"ppm": 60}),
		rulestest.Sensor("2", "G-1", "gas", map[string]float64{"ppm": 10}),
		rulestest.Sensor("3", "N-1", "noise", map[string]float64{"db": 80}),
		rulestest.Sensor("4", "A-1", "air", map[string]float64{"pm25": 90}),
		rulestest.Sensor("5", "W-1", "water_level", map[string]float64{"level_cm": 90}),
		rulestest.Video("6", "C-1", "smoke_fire", 0.9, 1),
		rulestest.Video("7", "C-1", "crowding", 0.9, 100),
	}
	evs[4].Sensor.Status = "fault"
	run := func(src string) []string {
		eng := newEngine(t, rulestest.Parse(t, src), nil)
		var out []string
		for _, ev := range evs {
			sigs, errs := eng.Evaluate(ev)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			for _, s := range sigs {
				out = append(out, s.ID)
			}
		}
		return out
	}
	got, want := strings.Join(run(indexed), " "), strings.Join(run(plain), " ")
	if got != want || got != "gas:1 any-sensor:1 any-sensor:2 two-kinds:3 two-kinds:4 any-sensor:5 camera:6" {
		t.Errorf("indexed %q\n  plain %q", got, want)
	}
}
