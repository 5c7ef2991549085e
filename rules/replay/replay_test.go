package replay_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/city/citytest"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/lang"
	"github.com/urbanbrain/urbanbrain/rules/replay"
)

func demo(t testing.TB) *city.Map { return citytest.Demo(t) }

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

func parse(t testing.TB, src string) []lang.Rule {
	t.Helper()
	rs, err := lang.Parse("test.yaml", []byte(src))
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

var (
	replayN    = flag.Int("replay.n", 200_000, "readings in the generated file of BenchmarkReplay")
	replayHot  = flag.Float64("replay.hot", 0.5, "share of the readings of BenchmarkReplay that match the rule")
	replayForm = flag.String("replay.form", "", "only this form in BenchmarkReplay: bare or cloudevents (default both)")
)

// BenchmarkReplay measures `rules replay` (ingest's decoder, validation, location and the
// engine) over a generated file of sensor readings with the rule temperature > 50 — half of
// them above it unless -replay.hot says otherwise — against the ceiling: a bare loop of
// encoding/json decoding plus expr.Run of the same condition over the same lines. Each
// iteration runs both, one after the other, in the same process; they report records per
// CPU-second and their ratio, the figure that matters.
//
//	go test -run '^$' -bench Replay -benchtime 1x ./rules/replay/ -args -replay.n=1000000 -replay.form=bare
func BenchmarkReplay(b *testing.B) {
	m := demo(b)
	rs := parse(b, hotRule)
	for _, bare := range []bool{false, true} {
		cfg, form := replay.Config{Rules: rs, Areas: m}, "cloudevents"
		if bare {
			cfg.Type, form = event.TypeSensorReading, "bare"
		}
		if *replayForm != "" && *replayForm != form {
			continue
		}
		var buf bytes.Buffer
		gen, err := replay.Generate(&buf, replay.Readings{N: *replayN, Points: centroids(m), Start: time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC),
			Seed: 3, Bare: bare, HotShare: *replayHot})
		if err != nil {
			b.Fatal(err)
		}
		data := buf.Bytes()
		b.Run(form+"/replay-vs-json+expr.Run", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			var lines int
			var replayCPU, replayWall, bareCPU, bareWall time.Duration
			for b.Loop() {
				runtime.GC()
				rep, err := replay.Run(context.Background(), cfg, bytes.NewReader(data), nil)
				if err != nil {
					b.Fatal(err)
				}
				if rep.Rules[0].Matched != uint64(gen.Hot) {
					b.Fatalf("matched %d, want %d", rep.Rules[0].Matched, gen.Hot)
				}
				replayCPU += rep.CPU
				replayWall += rep.Elapsed
				lines += rep.Lines
				runtime.GC()
				cpu, wall := bareLoop(b, data, bare, gen.Hot)
				bareCPU += cpu
				bareWall += wall
			}
			perCPU := func(d time.Duration) float64 { return float64(lines) / d.Seconds() }
			b.ReportMetric(perCPU(replayCPU), "replay-records/cpu-s")
			b.ReportMetric(perCPU(bareCPU), "bare-records/cpu-s")
			b.ReportMetric(perCPU(replayCPU)/perCPU(bareCPU), "ratio")
			b.ReportMetric(perCPU(replayWall), "replay-records/s")
			b.ReportMetric(perCPU(bareWall), "bare-records/s")
		})
	}
}

// bareLoop is the ceiling: decode each line with encoding/json into just what the condition
// reads, and run the condition with expr.Run. It returns the CPU and wall time it took.
func bareLoop(b *testing.B, data []byte, bare bool, wantHot int) (cpu, wall time.Duration) {
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
	start, startCPU := time.Now(), replay.CPUNow()
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	hot := 0
	for sc.Scan() {
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
	return replay.CPUNow() - startCPU, time.Since(start)
}
