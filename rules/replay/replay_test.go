package replay_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/expr-lang/expr"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules"
	"github.com/urbanbrain/urbanbrain/rules/replay"
)

var (
	demoOnce sync.Once
	demoMap  *city.Map
	demoErr  error
)

func demo(t testing.TB) *city.Map {
	t.Helper()
	demoOnce.Do(func() { demoMap, demoErr = city.LoadDemo() })
	if demoErr != nil {
		t.Fatal(demoErr)
	}
	return demoMap
}

func centroids(m *city.Map) []event.Point {
	var ps []event.Point
	for _, g := range m.Grids() {
		ps = append(ps, g.Centroid)
	}
	return ps
}

const hotRule = `
id: temperature-high
name: 温度超过 50 °C
types: [city.sensor.reading]
when: sensor.metrics.temperature > 50
raise: {category: "0402", severity: orange, correlation_key: "hot:{{sensor.device_id}}"}
`

func parse(t testing.TB, src string) []rules.Rule {
	t.Helper()
	rs, err := rules.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// A generated file with a known number of hot readings and of bad lines: the replay reports
// the right match count, every rejection by reason with its line, and a throughput.
func TestReplayCountsMatchesAndRejections(t *testing.T) {
	m := demo(t)
	for _, bare := range []bool{false, true} {
		name := "cloudevents"
		if bare {
			name = "bare"
		}
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			gen, err := replay.Generate(&buf, replay.Readings{N: 20_000, Points: centroids(m), Start: time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC),
				Seed: 7, Bare: bare, BadEvery: 5000})
			if err != nil {
				t.Fatal(err)
			}
			buf.WriteString("\n   \n") // blank lines are skipped, not rejected
			cfg := replay.Config{Rules: parse(t, hotRule), Areas: m}
			if bare {
				cfg.Type = event.TypeSensorReading
			}
			rep, err := replay.Run(context.Background(), cfg, &buf, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Lines != gen.Lines || rep.Rules[0].Matched != uint64(gen.Hot) || rep.Signals != gen.Hot {
				t.Errorf("lines %d matched %d signals %d; want %d lines, %d hot", rep.Lines, rep.Rules[0].Matched, rep.Signals, gen.Lines, gen.Hot)
			}
			if rep.Rejected != gen.Malformed+gen.BadLat || rep.Accepted != gen.Lines-rep.Rejected || rep.Duplicates != 0 {
				t.Errorf("accepted %d rejected %d duplicates %d; want %d rejected", rep.Accepted, rep.Rejected, rep.Duplicates, gen.Malformed+gen.BadLat)
			}
			if len(rep.RejectedBy) != 2 || len(rep.Samples) != rep.Rejected {
				t.Errorf("rejected by %v, samples %+v", rep.RejectedBy, rep.Samples)
			}
			if s := rep.Samples[0]; s.Line != 5000 || !strings.Contains(s.Reason, "JSON") {
				t.Errorf("first rejection %+v; want line 5000, malformed JSON", s)
			}
			if s := rep.Samples[1]; s.Line != 5001 || !strings.Contains(s.Reason, "91") {
				t.Errorf("second rejection %+v; want line 5001, latitude 91", s)
			}
			if rep.RecordsPerSecond <= 0 {
				t.Errorf("records per second %v", rep.RecordsPerSecond)
			}
		})
	}
}

// Stateful rules run on the file's own time: a device above 50 °C for 5 minutes of readings.
func TestReplayRunsStatefulRulesOnEventTime(t *testing.T) {
	m := demo(t)
	var buf bytes.Buffer
	// Ten devices, one reading each every 10 s: each device reads every 100 s.
	if _, err := replay.Generate(&buf, replay.Readings{N: 5000, Points: centroids(m), Devices: 10, Step: 10 * time.Second,
		Start: time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC), Seed: 1}); err != nil {
		t.Fatal(err)
	}
	rs := parse(t, `
id: warm-held
name: 持续高温
types: [city.sensor.reading]
when: sensor.metrics.temperature > 5
for: 5m
raise: {category: "0402", severity: blue}
`)
	rep, err := replay.Run(context.Background(), replay.Config{Rules: rs, Areas: m}, &buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Readings are uniform in [0, 60): a device stays above 5 °C for long runs, and dips
	// below now and then, so the rule fires and clears, many times over the file.
	if st := rep.Rules[0]; st.Matched < 10 || st.Cleared < 10 || st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
}

var replayN = flag.Int("replay.n", 200_000, "readings in the generated file of BenchmarkReplay")

// BenchmarkReplay measures `rules replay` (ingest's decoder, validation, location and the
// engine) over a generated file of sensor readings with the rule temperature > 50, against
// the ceiling: a bare loop of encoding/json decoding plus expr.Run of the same condition over
// the same file. Both report records per CPU-second; their ratio is the figure that matters.
//
//	go test -run '^$' -bench Replay -benchtime 1x ./rules/replay/ -args -replay.n=1000000
func BenchmarkReplay(b *testing.B) {
	m := demo(b)
	rs := parse(b, hotRule)
	for _, bare := range []bool{false, true} {
		var buf bytes.Buffer
		gen, err := replay.Generate(&buf, replay.Readings{N: *replayN, Points: centroids(m), Start: time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC), Seed: 3, Bare: bare})
		if err != nil {
			b.Fatal(err)
		}
		data := buf.Bytes()
		cfg, form := replay.Config{Rules: rs, Areas: m}, "cloudevents"
		if bare {
			cfg.Type, form = event.TypeSensorReading, "bare"
		}
		b.Run(form+"/replay", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				rep, err := replay.Run(context.Background(), cfg, bytes.NewReader(data), nil)
				if err != nil {
					b.Fatal(err)
				}
				if rep.Rules[0].Matched != uint64(gen.Hot) {
					b.Fatalf("matched %d, want %d", rep.Rules[0].Matched, gen.Hot)
				}
				b.ReportMetric(rep.RecordsPerCPUSecond, "records/cpu-s")
				b.ReportMetric(rep.RecordsPerSecond, "records/s")
			}
		})
		b.Run(form+"/json+expr.Run", func(b *testing.B) {
			bareLoop(b, data, bare, gen.Hot)
		})
	}
}

// bareLoop is the ceiling: decode each line with encoding/json into just what the condition
// reads, and run the condition with expr.Run.
func bareLoop(b *testing.B, data []byte, bare bool, wantHot int) {
	type metrics struct {
		Metrics map[string]float64 `expr:"metrics" json:"metrics"`
	}
	type envelope struct {
		Sensor metrics `expr:"sensor" json:"data"`
	}
	prog, err := expr.Compile(`sensor.metrics.temperature > 50`, expr.Env(envelope{}), expr.AsBool())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		start, startCPU := time.Now(), replay.CPUNow()
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		hot, n := 0, 0
		for sc.Scan() {
			n++
			var e envelope
			var err error
			if bare {
				err = json.Unmarshal(sc.Bytes(), &e.Sensor)
			} else {
				err = json.Unmarshal(sc.Bytes(), &e)
			}
			if err != nil {
				continue
			}
			out, err := expr.Run(prog, &e)
			if err != nil {
				b.Fatal(err)
			}
			if out.(bool) {
				hot++
			}
		}
		if hot != wantHot {
			b.Fatalf("bare loop found %d, want %d", hot, wantHot)
		}
		b.ReportMetric(float64(n)/(replay.CPUNow()-startCPU).Seconds(), "records/cpu-s")
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "records/s")
	}
}
