package engine_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/rulestest"
)

// Rules of the backlog test: a for, a sliding window and an absence, at the default allowed
// lateness (2m).
const backlogRules = `
id: water-held-3m
name: 水位持续 3 分钟超 1 米
types: [city.sensor.reading]
when: sensor.kind == "water_level" && sensor.metrics.level_cm > 100
for: 3m
raise: {category: "0104", severity: red, correlation_key: "water:{{sensor.device_id}}"}
---
id: noise-10m
name: 10 分钟内三起噪声投诉
types: [city.hotline.ticket]
when: hotline.category_code == "0401" && area.community != ""
group_by: area.community
window: {size: 10m, having: count >= 3}
raise: {category: "0401", severity: orange, correlation_key: "noise:{{area.community}}"}
---
id: manhole-silent-5m
name: 井盖 5 分钟无数据
types: [city.sensor.reading]
when: sensor.kind == "manhole"
absent: 5m
raise: {category: "0101", severity: blue, correlation_key: "offline:{{sensor.device_id}}"}
`

// backlog is 20 minutes of two streets' readings and tickets from rulestest.At, in time order.
func backlog() []event.Event {
	var evs []event.Event
	at := func(ev event.Event, street string, d time.Duration) {
		ev.Area.Street = street
		ev.Time = rulestest.At.Add(d)
		evs = append(evs, ev)
	}
	level := func(d time.Duration, cm float64) {
		at(rulestest.Sensor(fmt.Sprintf("wl1-%v", d), "WL-1", "water_level", map[string]float64{"level_cm": cm}), "S1", d)
	}
	// WL-1 (S1), every 30 s to +9m: above 100 cm from +2m to +8m (for fires on the reading
	// at +5m), below at +8m30s (clear). Above again at +10m and then silent until +16m: the
	// for completes at +13m without a reading, then +16m30s is below.
	for d := time.Duration(0); d <= 9*time.Minute; d += 30 * time.Second {
		cm := 60.0
		if d >= 2*time.Minute && d <= 8*time.Minute {
			cm = 120
		}
		level(d, cm)
	}
	level(10*time.Minute, 130)
	level(16*time.Minute, 125)
	level(16*time.Minute+30*time.Second, 50)
	manhole := func(dev, street string, d time.Duration) {
		at(rulestest.Sensor(fmt.Sprintf("%s-%v", strings.ToLower(dev), d), dev, "manhole", map[string]float64{"tilt_deg": 1}), street, d)
	}
	// MH-1 (S1) reports every minute to +5m, then is silent until +18m; MH-2 (S1) reports
	// every minute to the end; MH-3 (S2) reports once, at +0.
	for d := time.Duration(0); d <= 20*time.Minute; d += time.Minute {
		if d <= 5*time.Minute || d == 18*time.Minute {
			manhole("MH-1", "S1", d)
		}
		manhole("MH-2", "S1", d)
	}
	manhole("MH-3", "S2", 0)
	// Noise complaints (S2): community A at +1m, +3m, +6m (fires), the first leaves the
	// 10 minutes at +11m (clears), then +14m, +15m (fires again), +16m; B twice, never three.
	ticket := func(community string, d time.Duration) {
		ev := rulestest.Hotline(fmt.Sprintf("t-%s-%v", community, d), "投诉", "0401", "normal", "噪音扰民")
		ev.Area.Community = community
		at(ev, "S2", d)
	}
	for _, m := range []int{1, 3, 6, 14, 15, 16} {
		ticket("A", time.Duration(m)*time.Minute)
	}
	ticket("B", 2*time.Minute)
	ticket("B", 19*time.Minute)
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time.Before(evs[j].Time) })
	return evs
}

// signalLines describes signals by id, rule, event, time and kind, sorted.
func signalLines(sigs []event.Signal, base time.Time) []string {
	var out []string
	for _, s := range sigs {
		kind := "fire"
		if s.Clear {
			kind = "clear"
		}
		out = append(out, fmt.Sprintf("%s %s rule=%s event=%s at=+%v", kind, s.ID, s.RuleID, s.Event.ID, s.At.Sub(base)))
	}
	sort.Strings(out)
	return out
}

// A 20-minute backlog handed to a fresh engine at once, 25 minutes after it began (the wall
// clock far past every event), raises exactly the signals the same events raise when they
// arrive live, one by one, with the clock following them and ticking every 10 seconds: the
// same ids, rules, events and times — for a held condition (by an event and by the clock), a
// sliding window firing, clearing and firing again, and absence noticed by the clock and by
// a later event of the street.
func TestBacklogRaisesTheSignalsOfTheLiveRun(t *testing.T) {
	evs := backlog()
	ctx := context.Background()
	const after = 15 * time.Minute // how long both runs go on after the last event
	end := rulestest.At.Add(20 * time.Minute)

	// Live: a fake clock follows the events; the engine ticks every 10 s.
	live := &rulestest.Recorder{}
	eng := newEngine(t, rulestest.Parse(t, backlogRules), nil)
	clock := clockwork.NewFakeClockAt(rulestest.At)
	next := 0
	for now := rulestest.At; !now.After(end.Add(after)); now = now.Add(10 * time.Second) {
		clock.Advance(now.Sub(clock.Now()))
		for next < len(evs) && !evs[next].Time.After(clock.Now()) {
			if err := live.Keep(eng.HandleEvent(ctx, evs[next])); err != nil {
				t.Fatal(err)
			}
			next++
		}
		if err := live.Keep(eng.Tick(ctx, clock.Now())); err != nil {
			t.Fatal(err)
		}
	}
	if late := eng.EngineStats().Late; late != 0 {
		t.Fatalf("live run: %d late events", late)
	}

	// Backlog: the gateway was down; everything arrives at once at wall = +45m, on a fresh
	// engine whose clock has been ticking (and ticks during the backlog), then ticks on for
	// as long as the live run did.
	wall := clockwork.NewFakeClockAt(rulestest.At.Add(45 * time.Minute))
	replay := &rulestest.Recorder{}
	eng2 := newEngine(t, rulestest.Parse(t, backlogRules), nil)
	if err := replay.Keep(eng2.Tick(ctx, wall.Now())); err != nil {
		t.Fatal(err)
	}
	for i, ev := range evs {
		if i == len(evs)/2 {
			wall.Advance(time.Second) // the wall clock ticks while the backlog is handled
			if err := replay.Keep(eng2.Tick(ctx, wall.Now())); err != nil {
				t.Fatal(err)
			}
		}
		if err := replay.Keep(eng2.HandleEvent(ctx, ev)); err != nil {
			t.Fatal(err)
		}
	}
	start := wall.Now()
	for d := time.Duration(0); d <= after; d += 10 * time.Second {
		wall.Advance(start.Add(d).Sub(wall.Now()))
		if err := replay.Keep(eng2.Tick(ctx, wall.Now())); err != nil {
			t.Fatal(err)
		}
	}
	if late := eng2.EngineStats().Late; late != 0 {
		t.Errorf("backlog: %d late events, want none: old by the wall clock is not late", late)
	}

	got := signalLines(stateful(replay.Signals(t)), rulestest.At)
	want := signalLines(stateful(live.Signals(t)), rulestest.At)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("backlog signals\n%s\nlive signals\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// And the live run raised what the scenario means it to (so the comparison is not empty).
	for _, w := range []string{
		"fire water-held-3m:wl1-5m0s rule=water-held-3m event=wl1-5m0s at=+5m0s",
		"clear water-held-3m:wl1-8m30s:clear rule=water-held-3m event=wl1-8m30s at=+8m30s",
		"fire water-held-3m:wl1-10m0s rule=water-held-3m event=wl1-10m0s at=+13m0s",
		"clear water-held-3m:wl1-16m30s:clear rule=water-held-3m event=wl1-16m30s at=+16m30s",
		"fire noise-10m:t-A-6m0s rule=noise-10m event=t-A-6m0s at=+6m0s",
		"clear noise-10m:t-A-6m0s:clear rule=noise-10m event=t-A-6m0s at=+11m0s",
		"fire noise-10m:t-A-15m0s rule=noise-10m event=t-A-15m0s at=+15m0s",
		"fire manhole-silent-5m:mh-3-0s rule=manhole-silent-5m event=mh-3-0s at=+5m0s",
		"fire manhole-silent-5m:mh-1-5m0s rule=manhole-silent-5m event=mh-1-5m0s at=+10m0s",
		"clear manhole-silent-5m:mh-1-18m0s:clear rule=manhole-silent-5m event=mh-1-18m0s at=+18m0s",
		"fire manhole-silent-5m:mh-2-20m0s rule=manhole-silent-5m event=mh-2-20m0s at=+25m0s",
	} {
		if !slices.Contains(want, w) {
			t.Errorf("live run lacks %q; it raised\n%s", w, strings.Join(want, "\n"))
		}
	}
}

// stateful keeps the signals of the backlog rules (all of them are stateful).
func stateful(sigs []event.Signal) []event.Signal {
	var out []event.Signal
	for _, s := range sigs {
		switch s.RuleID {
		case "water-held-3m", "noise-10m", "manhole-silent-5m":
			out = append(out, s)
		}
	}
	return out
}

const waterFor3m = `
id: water-3m
name: 水位持续 3 分钟超 1 米
types: [city.sensor.reading]
when: sensor.kind == "water_level" && sensor.metrics.level_cm > 100
for: 3m
raise: {category: "0104", severity: red, correlation_key: "water:{{sensor.device_id}}"}
`

// A for: 3m condition that has held 2 minutes of event time fires at 3 minutes of event time,
// once — whether a reading at 3 minutes completes it or, the device silent, the clock does —
// with the events an hour old by the wall clock.
func TestForFiresAtThreeMinutesOfEventTimeOnce(t *testing.T) {
	ctx := context.Background()
	wall := rulestest.At.Add(time.Hour)
	reading := func(d time.Duration) event.Event {
		ev := rulestest.Sensor(fmt.Sprintf("w%v", d), "WL-1", "water_level", map[string]float64{"level_cm": 120})
		ev.Time = rulestest.At.Add(d)
		return ev
	}
	t.Run("by a reading", func(t *testing.T) {
		rec := &rulestest.Recorder{}
		eng := newEngine(t, rulestest.Parse(t, waterFor3m), nil)
		must(t, rec.Keep(eng.Tick(ctx, wall)))
		for d := time.Duration(0); d <= 2*time.Minute+30*time.Second; d += 30 * time.Second {
			must(t, rec.Keep(eng.HandleEvent(ctx, reading(d))))
		}
		must(t, rec.Keep(eng.Tick(ctx, wall.Add(time.Second))))
		if sigs := rec.Signals(t); len(sigs) != 0 {
			t.Fatalf("fired before 3 minutes: %+v", sigs)
		}
		must(t, rec.Keep(eng.HandleEvent(ctx, reading(3*time.Minute))))
		for d := 3*time.Minute + 30*time.Second; d <= 6*time.Minute; d += 30 * time.Second {
			must(t, rec.Keep(eng.HandleEvent(ctx, reading(d))))
		}
		must(t, rec.Keep(eng.Tick(ctx, wall.Add(time.Hour))))
		got := signalLines(rec.Signals(t), rulestest.At)
		if want := "fire water-3m:w3m0s rule=water-3m event=w3m0s at=+3m0s"; len(got) != 1 || got[0] != want {
			t.Fatalf("signals %q, want once %q", got, want)
		}
		if late := eng.EngineStats().Late; late != 0 {
			t.Errorf("late %d, want 0", late)
		}
	})
	t.Run("by the clock", func(t *testing.T) {
		rec := &rulestest.Recorder{}
		eng := newEngine(t, rulestest.Parse(t, waterFor3m), nil)
		must(t, rec.Keep(eng.Tick(ctx, wall)))
		for d := time.Duration(0); d <= 2*time.Minute; d += 30 * time.Second {
			must(t, rec.Keep(eng.HandleEvent(ctx, reading(d))))
		}
		// The street's clock is at +2m of event time; the wall clock runs it on. The for is
		// complete at +3m and acted on once the watermark (clock − 2m) passes it: +5m, 3
		// minutes of wall clock after the backlog.
		must(t, rec.Keep(eng.Tick(ctx, wall.Add(3*time.Minute-time.Second))))
		if sigs := rec.Signals(t); len(sigs) != 0 {
			t.Fatalf("fired before the watermark passed +3m: %+v", sigs)
		}
		for _, d := range []time.Duration{3 * time.Minute, 10 * time.Minute, time.Hour} {
			must(t, rec.Keep(eng.Tick(ctx, wall.Add(d))))
		}
		got := signalLines(rec.Signals(t), rulestest.At)
		if want := "fire water-3m:w2m0s rule=water-3m event=w2m0s at=+3m0s"; len(got) != 1 || got[0] != want {
			t.Fatalf("signals %q, want once %q", got, want)
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// An idle street — one reading and then nothing — still fires absence on Tick, by the wall
// clock: its clock runs on from its newest event at the pace of the wall clock, so the
// absence is noticed AllowedLateness after its horizon and stamped at the horizon; an old
// reading (a device whose clock is an hour behind) is silent the same 5 minutes later.
func TestIdleStreetFiresAbsenceOnTick(t *testing.T) {
	ctx := context.Background()
	for name, age := range map[string]time.Duration{"reading on time": 0, "reading an hour old": time.Hour} {
		t.Run(name, func(t *testing.T) {
			clock := clockwork.NewFakeClockAt(rulestest.At)
			rec := &rulestest.Recorder{}
			eng := newEngine(t, rulestest.Parse(t, backlogRules), nil)
			must(t, rec.Keep(eng.Tick(ctx, clock.Now())))
			ev := rulestest.Sensor("m1", "MH-1", "manhole", map[string]float64{"tilt_deg": 1})
			ev.Time = clock.Now().Add(-age)
			must(t, rec.Keep(eng.HandleEvent(ctx, ev)))
			for clock.Now().Before(rulestest.At.Add(7*time.Minute - time.Second)) {
				clock.Advance(time.Second)
				must(t, rec.Keep(eng.Tick(ctx, clock.Now())))
			}
			if sigs := rec.Signals(t); len(sigs) != 0 {
				t.Fatalf("fired before 5m + 2m of lateness: %+v", sigs)
			}
			clock.Advance(time.Second)
			must(t, rec.Keep(eng.Tick(ctx, clock.Now())))
			clock.Advance(time.Hour)
			must(t, rec.Keep(eng.Tick(ctx, clock.Now())))
			got := signalLines(rec.Signals(t), ev.Time)
			if want := "fire manhole-silent-5m:m1 rule=manhole-silent-5m event=m1 at=+5m0s"; len(got) != 1 || got[0] != want {
				t.Fatalf("signals %q, want once %q", got, want)
			}
		})
	}
}

// Late means behind the street's watermark (its newest event time minus the allowed
// lateness), not behind the wall clock: with the wall clock three hours past them, a
// complaint 3 minutes behind its street's newest is dropped and counted, one 1 minute behind
// counts, and so do the others.
func TestLateIsRelativeToTheWatermark(t *testing.T) {
	ctx := context.Background()
	mk := func(id, community string, d time.Duration) event.Event {
		ev := rulestest.Hotline(id, "投诉", "0401", "normal", "噪音")
		ev.Area.Community = community
		ev.Time = rulestest.At.Add(d)
		return ev
	}
	rec := &rulestest.Recorder{}
	eng := newEngine(t, rulestest.Parse(t, rulestest.NoiseWindow), nil) // 1h, count >= 3, default lateness 2m
	must(t, rec.Keep(eng.Tick(ctx, rulestest.At.Add(3*time.Hour))))
	for _, ev := range []event.Event{
		mk("a0", "A", 0), mk("a10", "A", 10*time.Minute), mk("b20", "B", 20*time.Minute),
		mk("a17", "A", 17*time.Minute), // 3m behind the street's +20m: late
		mk("a19", "A", 19*time.Minute), // 1m behind: counts, the third
	} {
		must(t, rec.Keep(eng.HandleEvent(ctx, ev)))
	}
	got := signalLines(rec.Signals(t), rulestest.At)
	if want := "fire noise-complaints:a19 rule=noise-complaints event=a19 at=+19m0s"; len(got) != 1 || got[0] != want {
		t.Fatalf("signals %q, want %q", got, want)
	}
	if late := eng.EngineStats().Late; late != 1 {
		t.Errorf("late %d, want 1 (a17)", late)
	}
	if st := eng.StatsOf("noise-complaints"); st.Evaluated != 4 {
		t.Errorf("evaluated %d, want 4: the late complaint is not evaluated by the window", st.Evaluated)
	}
}
