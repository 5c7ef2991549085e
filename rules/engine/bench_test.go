package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/rules/lang"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/rulestest"
)

// The benchmarks below compare two things in one run, alternating batches of each so that a
// noisy machine slows both alike, and report each side's ns/op and their ratio. See
// docs/performance.md (## Rules).

// alternate runs a and base in alternating batches until b.N of each have run, and reports
// their ns/op and the ratio a/base. On a shared machine other processes steal time from
// whole batches, so besides the means it reports the ratio of the fastest batch of each
// (ratio-min), which interference can only make worse, never better.
func alternate(b *testing.B, nameA, nameB string, a, base func(i int)) {
	const batch = 256
	var ta, tb time.Duration
	minA, minB := time.Duration(1<<62), time.Duration(1<<62)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += batch {
		n := min(batch, b.N-done)
		t0 := time.Now()
		for i := range n {
			a(done + i)
		}
		t1 := time.Now()
		for i := range n {
			base(done + i)
		}
		t2 := time.Now()
		ta += t1.Sub(t0)
		tb += t2.Sub(t1)
		if n == batch {
			minA, minB = min(minA, t1.Sub(t0)), min(minB, t2.Sub(t1))
		}
	}
	b.StopTimer()
	na, nb := float64(ta.Nanoseconds())/float64(b.N), float64(tb.Nanoseconds())/float64(b.N)
	b.ReportMetric(na, nameA+"-ns/op")
	b.ReportMetric(nb, nameB+"-ns/op")
	b.ReportMetric(na/nb, "ratio")
	if minB < 1<<62 {
		b.ReportMetric(float64(minA)/float64(minB), "ratio-min")
	}
	b.ReportMetric(0, "ns/op") // the pair's total is meaningless; the metrics above are the result
}

func temperatureEvents(n int, seed uint64) []event.Event {
	rng := rand.New(rand.NewPCG(seed, 1))
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = rulestest.Sensor(fmt.Sprintf("t%d", i), fmt.Sprintf("TH-%d", i%1000), "air",
			map[string]float64{"temperature": float64(rng.IntN(600)) / 10, "humidity": 50})
	}
	return evs
}

// BenchmarkEngineVsExprRun: one rule through the engine (HandleEvent: index, environment
// built from the event, condition, and for a match the signal rendered and returned as an
// output) against expr.Run of the same compiled condition on a prebuilt environment — the
// cost of evaluating the rule and nothing else.
//
// The rule is `sensor.metrics.temperature > 50`, which the index files by its bound, so an
// event below 50 is offered no rule at all; the "unindexed" cases run
// `sensor.metrics.temperature > sensor.metrics.humidity`, which the index cannot read, so
// every event is evaluated: that is the engine's own overhead per event.
func BenchmarkEngineVsExprRun(b *testing.B) {
	ctx := context.Background()
	load := func(src string) (*Engine, []*vm.Program) {
		rs, err := lang.Parse("bench.yaml", []byte(src))
		if err != nil {
			b.Fatal(err)
		}
		eng, err := New(Config{}, rs, nil)
		if err != nil {
			b.Fatal(err)
		}
		var progs []*vm.Program
		for _, r := range rs {
			progs = append(progs, r.Compiled().ByType[event.TypeSensorReading].When)
		}
		return eng, progs
	}
	rule := func(id, when string) string {
		return fmt.Sprintf("- {id: %s, name: 温度超过 50 °C, types: [city.sensor.reading], when: '%s', raise: {category: \"0402\", severity: orange}}\n", id, when)
	}
	// Ten such rules: the environment is built once per event, so the engine's cost per rule
	// is what is left after that.
	var ten, tenUnindexed strings.Builder
	for i := range 10 {
		ten.WriteString(rule(fmt.Sprintf("t%d", i), fmt.Sprintf("sensor.metrics.temperature > %d", 50+i)))
		tenUnindexed.WriteString(rule(fmt.Sprintf("t%d", i), fmt.Sprintf("sensor.metrics.temperature > sensor.metrics.humidity + %d", i)))
	}
	for _, set := range []struct {
		name string
		src  string
	}{
		{"", rule("temperature-high", "sensor.metrics.temperature > 50")},
		{"unindexed/", rule("temperature-high", "sensor.metrics.temperature > sensor.metrics.humidity")},
		{"10-rules/", ten.String()},
		{"10-rules-unindexed/", tenUnindexed.String()},
	} {
		eng, progs := load(set.src)
		for _, tc := range []struct {
			name string
			temp float64
		}{{"no-match", 20}, {"match", 55}} {
			if strings.HasPrefix(set.name, "10-rules") && tc.name == "match" {
				continue
			}
			evs := temperatureEvents(1024, 1)
			envs := make([]any, len(evs))
			for i := range evs {
				evs[i].Sensor.Metrics["temperature"] = tc.temp
				envs[i], _ = lang.EnvOf(evs[i])
			}
			bare := func(i int) {
				env := envs[i%len(envs)]
				for _, p := range progs {
					if _, err := expr.Run(p, env); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.Run(set.name+tc.name+"/engine-vs-expr.Run", func(b *testing.B) {
				alternate(b, "engine", "expr.Run", func(i int) {
					if _, err := eng.HandleEvent(ctx, evs[i%len(evs)]); err != nil {
						b.Fatal(err)
					}
				}, bare)
			})
			if set.name == "" || set.name == "unindexed/" {
				b.Run(set.name+tc.name+"/evaluate-vs-expr.Run", func(b *testing.B) {
					alternate(b, "evaluate", "expr.Run", func(i int) {
						eng.Evaluate(evs[i%len(evs)])
					}, bare)
				})
			}
		}
	}
}

// manyRules returns n rules spread over kinds kinds of sensor, each `sensor.kind == K &&`
// a threshold on its metric v (90 to 99). The shape says how they differ besides:
//
//   - "by-kind": nothing else;
//   - "by-kind-and-device": each also names one device, as per-device thresholds do;
//   - "by-kind-list": each names three kinds (`sensor.kind in [...]`) instead of one;
//   - "no-index": the kind test and the threshold are written so that the index can read
//     neither (`(sensor.kind == K) == true && sensor.metrics.v * 1 > N`).
func manyRules(b *testing.B, n, kinds int, shape string) []lang.Rule {
	var src strings.Builder
	for i := range n {
		kind := fmt.Sprintf("kind%02d", i%kinds)
		cond := fmt.Sprintf(`sensor.kind == "%s" && sensor.metrics.v > %d`, kind, 90+i%10)
		switch shape {
		case "by-kind-and-device":
			cond += fmt.Sprintf(` && sensor.device_id == "D-%d"`, i)
		case "by-kind-list":
			cond = fmt.Sprintf(`sensor.kind in ["%s", "kind%02d", "kind%02d"] && sensor.metrics.v > %d`, kind, (i+1)%kinds, (i+7)%kinds, 90+i%10)
		case "no-index":
			cond = fmt.Sprintf(`(sensor.kind == "%s") == true && sensor.metrics.v * 1 > %d`, kind, 90+i%10)
		}
		fmt.Fprintf(&src, "- id: r%04d\n  name: 规则 %d\n  types: [city.sensor.reading]\n  when: '%s'\n  raise: {category: \"0104\", severity: blue}\n",
			i, i, cond)
	}
	rs, err := lang.Parse("many.yaml", []byte(src.String()))
	if err != nil {
		b.Fatal(err)
	}
	return rs
}

// BenchmarkManyRules: the per-event cost of 1,000 rules over 30 kinds of sensor against 30
// rules (one per kind), for events of random kinds that match nothing (v = 10, below every
// threshold). The index offers an event of one kind only its kind's rules (33 of the 1,000)
// and of those only the ones whose threshold its v passes, found by binary search: none.
// With no-index, every rule is evaluated on every event.
func BenchmarkManyRules(b *testing.B) {
	const kinds = 30
	rng := rand.New(rand.NewPCG(2, 2))
	evs := make([]event.Event, 4096)
	for i := range evs {
		k := rng.IntN(kinds)
		evs[i] = rulestest.Sensor(fmt.Sprintf("m%d", i), fmt.Sprintf("D-%d", rng.IntN(1000)), fmt.Sprintf("kind%02d", k),
			map[string]float64{"v": 10})
	}
	ctx := context.Background()
	engine := func(rs []lang.Rule) *Engine {
		eng, err := New(Config{}, rs, nil)
		if err != nil {
			b.Fatal(err)
		}
		return eng
	}
	base := engine(manyRules(b, kinds, kinds, "by-kind"))
	for _, shape := range []string{"by-kind", "by-kind-and-device", "by-kind-list", "no-index"} {
		eng := engine(manyRules(b, 1000, kinds, shape))
		b.Run("1000-"+shape+"-vs-30", func(b *testing.B) {
			alternate(b, "1000", "30", func(i int) {
				if _, err := eng.HandleEvent(ctx, evs[i%len(evs)]); err != nil {
					b.Fatal(err)
				}
			}, func(i int) {
				if _, err := base.HandleEvent(ctx, evs[i%len(evs)]); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkMemoryPerRule: the heap held by one loaded rule — parsed, compiled for its event
// type, its source kept, in an engine — measured over 1,000 rules of the demo's shape (a
// condition, a severity expression, title and key templates).
func BenchmarkMemoryPerRule(b *testing.B) {
	const n = 1000
	var src strings.Builder
	for i := range n {
		fmt.Fprintf(&src, `- id: water-%04d
  name: 水位超警戒 %d
  description: 积水点水位超过警戒
  types: [city.sensor.reading]
  when: sensor.kind == "water_level" && sensor.metrics["level_cm"] > %d
  raise:
    category: "0104"
    severity: '=sensor.metrics["level_cm"] > 150 ? "red" : "orange"'
    title: "{{area.street_name}} 水位 {{sensor.metrics.level_cm}}cm 超警戒"
    correlation_key: "water:{{sensor.device_id}}"
    agency: water
`, i, i, 80+i%50)
	}
	text := []byte(src.String())
	var perRule float64
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		rs, err := lang.Parse("mem.yaml", text)
		if err != nil {
			b.Fatal(err)
		}
		eng, err := New(Config{}, rs, nil)
		if err != nil {
			b.Fatal(err)
		}
		rs = nil
		runtime.GC()
		runtime.ReadMemStats(&after)
		perRule = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(eng)
	}
	b.ReportMetric(perRule, "B/rule")
}

// BenchmarkWindowAggregate: events per second through a sliding-window rule — count and
// average of a metric per device over 10 minutes, firing at 20 readings above 80 — for 1,000
// devices reporting once a second between them, on one goroutine.
func BenchmarkWindowAggregate(b *testing.B) {
	for _, kind := range []string{lang.Sliding, lang.Tumbling} {
		b.Run(kind, func(b *testing.B) {
			rs, err := lang.Parse("w.yaml", []byte(fmt.Sprintf(`
id: hot-streak
name: 持续高温
types: [city.sensor.reading]
when: sensor.kind == "air"
window: {kind: %s, size: 10m, of: sensor.metrics.temperature, having: count >= 20 && avg > 80}
raise: {category: "0402", severity: blue, title: "{{window.count}} 次 平均 {{window.avg}}"}
`, kind)))
			if err != nil {
				b.Fatal(err)
			}
			eng, err := New(Config{}, rs, nil)
			if err != nil {
				b.Fatal(err)
			}
			evs := temperatureEvents(1000, 3)
			ids := make([]string, 1<<16) // distinct ids, made before the clock starts
			for j := range ids {
				ids[j] = fmt.Sprintf("w%d", j)
			}
			ctx := context.Background()
			t0 := rulestest.At
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ev := evs[i%len(evs)]
				ev.ID = ids[i%len(ids)]
				ev.Time = t0.Add(time.Duration(i) * time.Millisecond) // 1,000 readings a second
				if _, err := eng.HandleEvent(ctx, ev); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
