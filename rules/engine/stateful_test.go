package engine_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/engine"
	"github.com/urbanbrain/urbanbrain/rules/rulestest"
)

// scenario drives an engine on a fake clock: events carry the clock's time, ticks read it.
type scenario struct {
	t     *testing.T
	eng   *engine.Engine
	rec   *rulestest.Recorder
	clock *clockwork.FakeClock
	seen  int // signals already returned by take
	seq   int
}

func newScenario(t *testing.T, src string, cfg engine.Config) *scenario {
	t.Helper()
	rec := &rulestest.Recorder{}
	eng, err := engine.New(cfg, rulestest.Parse(t, src), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &scenario{t: t, eng: eng, rec: rec, clock: clockwork.NewFakeClockAt(rulestest.At)}
	// The app ticks the engine from its start: a street's clock runs on with the wall clock
	// from the arrival of its newest event, which the engine knows from the ticks around it.
	return s.tick()
}

// at moves the clock to start+d.
func (s *scenario) at(d time.Duration) *scenario {
	s.t.Helper()
	now := rulestest.At.Add(d)
	if now.Before(s.clock.Now()) {
		s.t.Fatalf("clock going back to +%v", d)
	}
	s.clock.Advance(now.Sub(s.clock.Now()))
	return s
}

// send handles ev stamped with the clock's time.
func (s *scenario) send(ev event.Event) *scenario {
	s.t.Helper()
	ev.Time = s.clock.Now()
	return s.sendAt(ev)
}

// sendAt handles ev with the time it carries (for late events).
func (s *scenario) sendAt(ev event.Event) *scenario {
	s.t.Helper()
	if err := s.rec.Keep(s.eng.HandleEvent(context.Background(), ev)); err != nil {
		s.t.Fatalf("HandleEvent %s: %v", ev.ID, err)
	}
	return s
}

func (s *scenario) tick() *scenario {
	s.t.Helper()
	if err := s.rec.Keep(s.eng.Tick(context.Background(), s.clock.Now())); err != nil {
		s.t.Fatalf("Tick: %v", err)
	}
	return s
}

// take returns the signals published since the last take, as "fire id@+offset" or
// "clear id@+offset".
func (s *scenario) take() []string {
	s.t.Helper()
	all := s.rec.Signals(s.t)
	var out []string
	for _, sig := range all[s.seen:] {
		kind := "fire"
		if sig.Clear {
			kind = "clear"
			if !sig.Shadow {
				s.t.Errorf("clear signal %s is not shadow", sig.ID)
			}
		}
		out = append(out, fmt.Sprintf("%s %s@+%v", kind, sig.ID, sig.At.Sub(rulestest.At)))
	}
	s.seen = len(all)
	return out
}

func (s *scenario) expect(want ...string) {
	s.t.Helper()
	got := s.take()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		s.t.Fatalf("at +%v signals\n got %q\nwant %q", s.clock.Now().Sub(rulestest.At), got, want)
	}
}

func (s *scenario) level(device string, cm float64) event.Event {
	s.seq++
	return rulestest.Sensor(fmt.Sprintf("e%d", s.seq), device, "water_level", map[string]float64{"level_cm": cm})
}

const waterFor = `
id: water-held
name: 水位持续超警戒
types: [city.sensor.reading]
when: sensor.kind == "water_level" && sensor.metrics.level_cm > 80
for: 5m
raise: {category: "0104", severity: orange, correlation_key: "water:{{sensor.device_id}}"}
`

// The condition must hold for exactly 5 minutes of event time: readings every 30 s above the
// level fire at the reading 5 minutes after the first, not before; the first reading below
// clears. Another device's readings do not interfere.
func TestForFiresAfterExactlyFiveMinutesAndClears(t *testing.T) {
	s := newScenario(t, waterFor, engine.Config{})
	for d := time.Duration(0); d < 5*time.Minute; d += 30 * time.Second {
		s.at(d).send(s.level("WL-1", 90)).send(s.level("WL-2", 40))
		s.expect()
	}
	s.at(5 * time.Minute).send(s.level("WL-1", 91))
	s.expect("fire water-held:e21@+5m0s")
	s.at(5*time.Minute + 30*time.Second).send(s.level("WL-1", 95))
	s.expect() // still the same episode
	s.at(6 * time.Minute).send(s.level("WL-1", 60))
	s.expect("clear water-held:e23:clear@+6m0s")

	sigs := s.rec.Signals(t)
	if sigs[0].CorrelationKey != "water:WL-1" || sigs[1].CorrelationKey != "water:WL-1" {
		t.Errorf("keys %q %q: fire and clear must share the incident's key", sigs[0].CorrelationKey, sigs[1].CorrelationKey)
	}
	// A dip resets the clock: the next episode needs 5 more minutes.
	s.at(7 * time.Minute).send(s.level("WL-1", 90))
	s.at(11 * time.Minute).send(s.level("WL-1", 90))
	s.expect()
	s.at(12 * time.Minute).send(s.level("WL-1", 90))
	s.expect("fire water-held:e26@+12m0s")
}

// A device that reports a high level once and then nothing: the tick fires once the 5
// minutes plus the allowed lateness have passed on the clock, stamped at the 5 minutes.
func TestForFiresOnTickWhenNoNewReading(t *testing.T) {
	s := newScenario(t, waterFor, engine.Config{AllowedLateness: time.Minute})
	s.at(0).send(s.level("WL-1", 90))
	s.at(5*time.Minute + 59*time.Second).tick()
	s.expect()
	s.at(6 * time.Minute).tick()
	s.expect("fire water-held:e1@+5m0s")
	s.at(10 * time.Minute).tick()
	s.expect()
}

func (s *scenario) complaint(community, category string) event.Event {
	s.seq++
	ev := rulestest.Hotline(fmt.Sprintf("h%d", s.seq), "投诉", category, "normal", "楼上装修噪音")
	ev.Area.Community = community
	ev.Area.CommunityName = community + "社区"
	return ev
}

// Three complaints about the same community within an hour fire; two about another
// community, or a complaint of another category, do not count; the signal clears when the
// first complaint ages out of the hour.
func TestWindowCountsPerKeyAndFiresAtThreshold(t *testing.T) {
	s := newScenario(t, rulestest.NoiseWindow, engine.Config{})
	s.at(0).send(s.complaint("A", "0401"))
	s.at(10 * time.Minute).send(s.complaint("B", "0401"))
	s.at(20 * time.Minute).send(s.complaint("A", "0401")).send(s.complaint("A", "0301"))
	s.at(30 * time.Minute).send(s.complaint("B", "0401"))
	s.expect()
	s.at(40 * time.Minute).send(s.complaint("A", "0401"))
	s.expect("fire noise-complaints:h6@+40m0s")
	if sig := s.rec.Signals(t)[0]; sig.Title != "A社区 1小时内 3 起噪声投诉" || sig.CorrelationKey != "noise:A" {
		t.Errorf("signal title %q key %q", sig.Title, sig.CorrelationKey)
	}
	s.at(50 * time.Minute).send(s.complaint("A", "0401"))
	s.expect() // 4 in the hour: same episode
	// At +60m the first complaint leaves the window (60m after it): 3 remain, still firing.
	s.at(60 * time.Minute).tick()
	s.expect()
	// At +80m the one of +20m leaves too: 2 remain — cleared.
	s.at(80 * time.Minute).tick()
	s.expect("clear noise-complaints:h6:clear@+1h20m0s") // the clear of the fire on h6
	if st := s.eng.StatsOf("noise-complaints"); st.Keys != 2 || st.Matched != 1 || st.Cleared != 1 {
		t.Errorf("stats %+v; want 2 keys (A, B), 1 fire, 1 clear", st)
	}
}

// A tumbling window is judged once per period, when the period has closed and the allowed
// lateness has passed: the hour's average noise above 65 dB fires once, at the hour's end.
func TestTumblingWindowClosesOnTime(t *testing.T) {
	s := newScenario(t, `
id: noise-hourly
name: 小时平均噪声超标
types: [city.sensor.reading]
when: sensor.kind == "noise"
window: {kind: tumbling, size: 1h, of: sensor.metrics.db, having: avg > 65 && count >= 2}
raise: {category: "0401", severity: blue, title: "平均 {{round(window.avg)}}dB 最高 {{window.max}}dB"}
`, engine.Config{AllowedLateness: time.Minute})
	noise := func(db float64) event.Event {
		s.seq++
		return rulestest.Sensor(fmt.Sprintf("n%d", s.seq), "NS-1", "noise", map[string]float64{"db": db})
	}
	// rulestest.At is 14:30 Beijing: the period is 14:00–15:00, closing at +30m.
	s.at(0).send(noise(60))
	s.at(10 * time.Minute).send(noise(80))
	s.at(30*time.Minute + 59*time.Second).tick()
	s.expect()
	s.at(31 * time.Minute).tick()
	s.expect("fire noise-hourly:n2@+30m0s")
	if sig := s.rec.Signals(t)[0]; sig.Title != "平均 70dB 最高 80dB" {
		t.Errorf("title %q", sig.Title)
	}
	// The next hour has one quiet reading: no signal when it closes.
	s.at(40 * time.Minute).send(noise(50))
	s.at(2 * time.Hour).tick()
	s.expect()
}

const manholeAbsent = `
id: manhole-silent
name: 井盖传感器离线
types: [city.sensor.reading]
when: sensor.kind == "manhole"
absent: 30m
raise: {category: "0101", severity: blue, title: "{{sensor.device_id}} 30 分钟无数据"}
`

// A device that goes silent fires once its absent duration (plus the allowed lateness) has
// passed on the clock; it clears when the device reports again. Devices that keep reporting
// never fire, and other kinds of sensor are not watched.
func TestAbsenceFiresWhenDeviceGoesSilent(t *testing.T) {
	s := newScenario(t, manholeAbsent, engine.Config{AllowedLateness: time.Minute})
	manhole := func(device string) event.Event {
		s.seq++
		return rulestest.Sensor(fmt.Sprintf("m%d", s.seq), device, "manhole", map[string]float64{"tilt_deg": 1})
	}
	s.at(0).send(manhole("MH-1")).send(manhole("MH-2")).send(s.level("WL-1", 10))
	for d := 5 * time.Minute; d <= 40*time.Minute; d += 5 * time.Minute {
		s.at(d).send(manhole("MH-2")).tick()
		if d < 31*time.Minute {
			s.expect()
		}
	}
	// MH-1 last reported at +0: silent at +30m, noticed once the clock is at +31m.
	if got := s.take(); len(got) != 1 || got[0] != "fire manhole-silent:m1@+30m0s" {
		t.Fatalf("got %q", got)
	}
	s.at(50 * time.Minute).tick()
	s.expect()
	s.at(55 * time.Minute).send(manhole("MH-1"))
	s.expect("clear manhole-silent:m12:clear@+55m0s")
	if sig := s.rec.Signals(t)[0]; sig.Title != "MH-1 30 分钟无数据" || sig.CorrelationKey != "manhole-silent:MH-1" {
		t.Errorf("signal %q key %q", sig.Title, sig.CorrelationKey)
	}
}

// Events later than the allowed lateness are ignored by stateful rules (and counted), those
// within it are counted in their place — and the outcome does not depend on the order in
// which the stragglers arrive: the same events in two orders give the same signals.
func TestLateEventsInsideAndOutsideAllowedLateness(t *testing.T) {
	mk := func(id, community string, stamp time.Duration) event.Event {
		ev := rulestest.Hotline(id, "投诉", "0401", "normal", "噪音")
		ev.Area.Community = community
		ev.Time = rulestest.At.Add(stamp)
		return ev
	}
	a0, a10, b20 := mk("a0", "A", 0), mk("a10", "A", 10*time.Minute), mk("b20", "B", 20*time.Minute)
	a19 := mk("a19", "A", 19*time.Minute) // 1m behind the street's clock (+20m): within 2m, counted
	a17 := mk("a17", "A", 17*time.Minute) // 3m behind: ignored
	for name, order := range map[string][]event.Event{
		"in-bound straggler first": {a0, a10, b20, a19, a17},
		"late straggler first":     {a0, a10, b20, a17, a19},
	} {
		t.Run(name, func(t *testing.T) {
			s := newScenario(t, rulestest.NoiseWindow, engine.Config{AllowedLateness: 2 * time.Minute})
			for _, ev := range order {
				s.sendAt(ev)
			}
			// A holds +0, +10m and +19m: three in the hour; +17m never counts.
			s.expect("fire noise-complaints:a19@+19m0s")
			if late := s.eng.EngineStats().Late; late != 1 {
				t.Errorf("late %d, want 1", late)
			}
		})
	}
}

// Events handled again — the runner resumed a partition from its last committed offset
// because some outputs were not acknowledged — give the outputs they gave the first time,
// under the same ids, and are not counted twice in the window.
func TestRedeliveryGivesSameOutputsAndCountsOnce(t *testing.T) {
	s := newScenario(t, rulestest.NoiseWindow, engine.Config{})
	var batch []event.Event
	for i := range 3 {
		ev := s.complaint("A", "0401")
		ev.Time = s.at(time.Duration(i) * time.Minute).clock.Now()
		batch = append(batch, ev)
	}
	var first, again []event.Outputs
	for _, ev := range batch {
		outs, err := s.eng.HandleEvent(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		first = append(first, outs)
	}
	for _, ev := range batch { // the whole batch again, from its first record
		outs, err := s.eng.HandleEvent(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		again = append(again, outs)
	}
	if !reflect.DeepEqual(first, again) {
		t.Fatalf("handled again: %+v\nthe first time: %+v", again, first)
	}
	if len(first[2]) != 1 || first[2][0].ID != "noise-complaints:h3" {
		t.Fatalf("outputs of the third complaint %+v, want the window firing", first[2])
	}
	if st := s.eng.Stats()[0]; st.Matched != 1 {
		t.Errorf("matched %d, want 1: a redelivered signal is not counted again", st.Matched)
	}
	// When the first complaint ages out, two remain and the signal clears; had the
	// redelivery counted twice, more would remain and it would not.
	s.at(60*time.Minute + 30*time.Second).tick()
	s.expect("clear noise-complaints:h3:clear@+1h0m0s")
}

// A new version of a rule keeps its window state when the grouping key is unchanged (here the
// threshold drops from 3 to 2: the two complaints already counted now fire), and starts
// afresh when the group key changes.
func TestStateSurvivesVersionChangeWithSameKey(t *testing.T) {
	s := newScenario(t, rulestest.NoiseWindow, engine.Config{})
	s.at(0).send(s.complaint("A", "0401"))
	s.at(10 * time.Minute).send(s.complaint("A", "0401"))
	s.expect()

	v2 := rulestest.Parse(t, strings.Replace(strings.Replace(rulestest.NoiseWindow, "count >= 3", "count >= 2", 1), "id: noise", "version: 2\nid: noise", 1))
	if err := s.eng.SetRules(v2); err != nil {
		t.Fatal(err)
	}
	s.at(11 * time.Minute).tick()
	s.expect("fire noise-complaints:h2@+11m0s")

	v3src := strings.Replace(strings.Replace(rulestest.NoiseWindow, "area.community", "area.grid", 1), "id: noise", "version: 3\nid: noise", 1)
	v3src = strings.Replace(v3src, "count >= 3", "count >= 2", 1)
	if err := s.eng.SetRules(rulestest.Parse(t, v3src)); err != nil {
		t.Fatal(err)
	}
	s.at(12 * time.Minute).send(s.complaint("A", "0401"))
	s.expect() // grouped by grid now: one complaint counted, not three
	if st := s.eng.StatsOf("noise-complaints"); st.Keys != 1 || st.Version != 3 {
		t.Errorf("stats %+v, want 1 key at version 3", st)
	}
}

// Events of many streets in parallel, the clock ticking and the rules swapped meanwhile:
// meaningful with -race, and every complaint is counted once.
func TestStatefulConcurrency(t *testing.T) {
	rs := rulestest.Parse(t, rulestest.NoiseWindow+"---\n"+manholeAbsent+"---\n"+waterFor)
	rec := &rulestest.Recorder{}
	eng := newEngine(t, rs, nil)
	var wg sync.WaitGroup
	complainInFourStreets(t, eng, rec, &wg)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			if err := eng.SetRules(rs); err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
	// 4 streets × 3 communities, each fires once (count reaches 3 within the hour).
	fires := 0
	for _, s := range rec.Signals(t) {
		if !s.Clear {
			fires++
		}
	}
	if st := eng.StatsOf("noise-complaints"); fires != 12 || st.Keys != 12 || st.Evaluated != 1200 {
		t.Errorf("fires %d, stats %+v; want 12 fires, 12 keys, 1200 evaluations", fires, st)
	}
}

// complainInFourStreets sends 300 noise complaints in each of four streets (S0 to S3, three
// communities each), one goroutine a street, and ticks the clock 50 times from another; all of
// them on wg.
func complainInFourStreets(t *testing.T, eng *engine.Engine, rec *rulestest.Recorder, wg *sync.WaitGroup) {
	ctx := context.Background()
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				ev := rulestest.Hotline(fmt.Sprintf("c%d-%d", p, i), "投诉", "0401", "normal", "吵")
				ev.Area.Street = fmt.Sprintf("S%d", p)
				ev.Area.Community = fmt.Sprintf("C%d-%d", p, i%3)
				ev.Time = rulestest.At.Add(time.Duration(i) * time.Second)
				if err := rec.Keep(eng.HandleEvent(ctx, ev)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 50 {
			_, _ = eng.Tick(ctx, rulestest.At.Add(time.Duration(i)*time.Second))
		}
	}()
}
