package lang_test

import (
	"context"
	"os"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/engine"
	"github.com/urbanbrain/urbanbrain/rules/lang"
	"github.com/urbanbrain/urbanbrain/rules/rulestest"
)

var sampleEvents = map[string]event.Event{
	event.TypeSensorReading:  rulestest.Sensor("s1", "WL-1", "water_level", map[string]float64{"level_cm": 85.5, "open": 1}),
	event.TypeHotlineTicket:  rulestest.Hotline("h1", "投诉", "0103", "urgent", "楼道里有煤气味"),
	event.TypeVideoDetection: rulestest.Video("v1", "CAM-1", "crowding", 0.9, 60),
}

// FuzzCompile: no expression or template text may panic the compiler, and whatever compiles
// must run — stateless or as any kind of stateful rule, through HandleEvent and Tick — without
// panicking and without the sandbox letting it run away.
func FuzzCompile(f *testing.F) {
	seeds := []struct {
		when, title, having string
	}{
		{`sensor.kind == "water_level" && sensor.metrics["level_cm"] > 80`, `{{area.street_name}} 水位 {{sensor.metrics.level_cm}}cm`, `count >= 3`},
		{`hotline.request_type in ["求助", "投诉"]`, `={{`, `sum > 1 || avg < 0`},
		{`contains_any(hotline.content, "燃气", "煤气")`, `{{ "}}" }}{{'}}'}}`, `max - min > 10`},
		{`video.object_count >= 50 && hour(time) < 6`, `{{ 1..1000000 }}`, `all(1..count, {# > 0})`},
		{`distance_m(location.lat, location.lon, 30, 120) < 500`, `{{`, `count % 0 == 1`},
		{`int(sensor.status) > 0`, `}}{{}}`, `count > 1 ? true : false`},
		{`let x = 1; x > 0`, "{{\n sensor.\n}}", `window.count > 1`},
		{`(((((((((1)))))))))) > 0`, "{{ `}}` }}", `count`},
		{`sensor.battery < 20`, `{{sensor.battery}} {{window.count}}`, `min(count, 3) > 2`},
		{`map(1..100000, # * #) | len() > 0`, `{{ string(time) }}`, `len(map(1..100000000, #)) > 0`},
		{`any(1..5000, {any(1..5000, {# < 0})})`, `{{ sensor.kind + sensor.kind }}`, `count >= 1`},
	}
	for i, s := range seeds {
		f.Add(uint8(i), s.when, s.title, s.having)
	}
	f.Fuzz(func(t *testing.T, kind uint8, when, title, having string) {
		if len(when)+len(title)+len(having) > lang.MaxRuleBytes || !utf8.ValidString(when) || !utf8.ValidString(title) || !utf8.ValidString(having) {
			return // lang.Parse refuses these before compiling (YAML requires UTF-8)
		}
		// The watchdog: an input that takes seconds to compile and run is a stall of the
		// partition it would run on, and of the fuzzer (which otherwise sits at 0 execs/s
		// and still reports PASS). Fail with the input instead.
		done := make(chan struct{})
		go func() {
			defer close(done)
			fuzzCompileOne(t, kind, when, title, having)
		}()
		select {
		case <-done:
		case <-time.After(fuzzWatchdog):
			t.Fatalf("compile and evaluate took more than %v: kind %d, when %q, title %q, having %q",
				fuzzWatchdog, kind, when, title, having)
		}
	})
}

// fuzzWatchdog is how long one FuzzCompile input may take to compile and evaluate. A rule
// within the sandbox's limits takes milliseconds; the margin is for a loaded CI machine.
const fuzzWatchdog = 2 * time.Second

func fuzzCompileOne(t *testing.T, kind uint8, when, title, having string) {
	typ := lang.EventTypes[int(kind)%len(lang.EventTypes)]
	r := lang.Rule{ID: "fuzz", Name: "fuzz", Version: 1, Enabled: true, Types: []string{typ}, When: when,
		Raise: lang.Raise{Category: "0101", Severity: "red", Title: title, CorrelationKey: title}}
	switch (kind / 3) % 5 {
	case 1:
		r.For = lang.Duration(time.Minute)
	case 2:
		r.Window = &lang.Window{Kind: lang.Sliding, Size: lang.Duration(time.Hour), Of: "1.5", Having: having}
	case 3:
		r.Window = &lang.Window{Kind: lang.Tumbling, Size: lang.Duration(time.Hour), Having: having}
	case 4:
		r.Absent = lang.Duration(time.Minute)
	}
	if r.Kind() != "" {
		r.GroupBy = "area.grid"
	}
	c, errs := lang.CompileRule(&r)
	for _, err := range errs {
		if ce, ok := err.(*lang.CompileError); ok && ce.Line > 0 && ce.Column < 1 {
			t.Errorf("position %d:%d for %q", ce.Line, ce.Column, when)
			return
		}
	}
	if c == nil {
		return
	}
	lang.SetCompiled(&r, c)
	eng, err := engine.New(engine.Config{}, []lang.Rule{r}, nil)
	if err != nil {
		t.Error(err)
		return
	}
	ev := sampleEvents[typ]
	eng.Evaluate(ev)
	ctx := context.Background()
	for i := range 3 {
		ev.ID = "fz" + string(rune('0'+i))
		ev.Time = ev.Time.Add(30 * time.Second)
		_, _ = eng.HandleEvent(ctx, ev)
	}
	_, _ = eng.Tick(ctx, ev.Time.Add(3*time.Hour))
}

// BenchmarkEvaluate compares one rule run through the engine (environment built from the
// event, condition, severity, title and correlation key rendered, signal assembled) with bare
// expr.Run of the same compiled programs on a prebuilt environment. The ratio is the engine's
// overhead per matching rule.
func BenchmarkEvaluate(b *testing.B) {
	src, err := os.ReadFile("../../city/demo/rules/water-level-high.yaml")
	if err != nil {
		b.Fatal(err)
	}
	rs, err := lang.Parse("water-level-high.yaml", src)
	if err != nil {
		b.Fatal(err)
	}
	eng, err := engine.New(engine.Config{}, rs, nil)
	if err != nil {
		b.Fatal(err)
	}
	ev := sampleEvents[event.TypeSensorReading]
	p := rs[0].Compiled().ByType[event.TypeSensorReading]
	env, err := lang.EnvOf(ev)
	if err != nil {
		b.Fatal(err)
	}
	programs := lang.ProgramsOf(p)

	b.Run("engine", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sigs, errs := eng.Evaluate(ev)
			if len(sigs) != 1 || len(errs) != 0 {
				b.Fatal(sigs, errs)
			}
		}
	})
	// Most events match no rule: then the engine's cost is the environment and the condition.
	quiet := rulestest.Sensor("s2", "WL-1", "water_level", map[string]float64{"level_cm": 40})
	quietEnv, _ := lang.EnvOf(quiet)
	b.Run("engine-no-match", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if sigs, errs := eng.Evaluate(quiet); len(sigs) != 0 || len(errs) != 0 {
				b.Fatal(sigs, errs)
			}
		}
	})
	b.Run("expr.Run-when-no-match", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if out, err := expr.Run(p.When, quietEnv); err != nil || out != false {
				b.Fatal(out, err)
			}
		}
	})
	b.Run("expr.Run-when", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if out, err := expr.Run(p.When, env); err != nil || out != true {
				b.Fatal(out, err)
			}
		}
	})
	b.Run("expr.Run-all-programs", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, prog := range programs {
				if _, err := expr.Run(prog, env); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
