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
	"github.com/urbanbrain/urbanbrain/rules/engine"
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

// timeline is a test's events in the making.
type timeline []event.Event

// at adds ev in street at rulestest.At plus d.
func (tl *timeline) at(ev event.Event, street string, d time.Duration) {
	ev.Area.Street = street
	ev.Time = rulestest.At.Add(d)
	*tl = append(*tl, ev)
}

// sorted returns the events in time order.
func (tl timeline) sorted() []event.Event {
	sort.SliceStable(tl, func(i, j int) bool { return tl[i].Time.Before(tl[j].Time) })
	return tl
}

// backlog is 20 minutes of two streets' readings and tickets from rulestest.At, in time order.
func backlog() []event.Event {
	var evs timeline
	at := evs.at
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
	return evs.sorted()
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
	runLive(t, eng, live, evs, rulestest.At, end.Add(after))
	if late := eng.EngineStats().Late; late != 0 {
		t.Fatalf("live run: %d late events", late)
	}

	// Backlog: the gateway was down; everything arrives at once at wall = +45m, on a fresh
	// engine whose clock has been ticking (and ticks during the backlog), then ticks on for
	// as long as the live run did.
	wall := rulestest.At.Add(45 * time.Minute)
	replay := &rulestest.Recorder{}
	eng2 := newEngine(t, rulestest.Parse(t, backlogRules), nil)
	must(t, replay.Keep(eng2.Tick(ctx, wall)))
	handOver(t, eng2, replay, evs, wall, after)
	if late := eng2.EngineStats().Late; late != 0 {
		t.Errorf("backlog: %d late events, want none: old by the wall clock is not late", late)
	}

	want := signalLines(stateful(live.Signals(t)), rulestest.At)
	sameLines(t, "backlog signals", signalLines(stateful(replay.Signals(t)), rulestest.At), "live signals", want)
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

// runLive hands evs (in time order) to eng as they happen, with the wall clock following
// them from start to end and the engine ticking every 10 s.
func runLive(t *testing.T, eng *engine.Engine, rec *rulestest.Recorder, evs []event.Event, start, end time.Time) {
	t.Helper()
	ctx := context.Background()
	next := 0
	for now := start; !now.After(end); now = now.Add(10 * time.Second) {
		for next < len(evs) && !evs[next].Time.After(now) {
			must(t, rec.Keep(eng.HandleEvent(ctx, evs[next])))
			next++
		}
		must(t, rec.Keep(eng.Tick(ctx, now)))
	}
}

// handOver hands evs to eng at once at the wall clock wall, ticking once half way through,
// and then ticks every 10 s for after.
func handOver(t *testing.T, eng *engine.Engine, rec *rulestest.Recorder, evs []event.Event, wall time.Time, after time.Duration) {
	t.Helper()
	ctx := context.Background()
	for i, ev := range evs {
		if i == len(evs)/2 {
			wall = wall.Add(time.Second) // the wall clock ticks while the backlog is handled
			must(t, rec.Keep(eng.Tick(ctx, wall)))
		}
		must(t, rec.Keep(eng.HandleEvent(ctx, ev)))
	}
	for d := time.Duration(0); d <= after; d += 10 * time.Second {
		must(t, rec.Keep(eng.Tick(ctx, wall.Add(d))))
	}
}

// sameLines fails the test unless got and want are the same lines.
func sameLines(t *testing.T, gotName string, got []string, wantName string, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s\n%s\n%s\n%s", gotName, strings.Join(got, "\n"), wantName, strings.Join(want, "\n"))
	}
}

// beforeOutage is ten minutes of the backlog's streets before it, arriving live: WL-1 at
// 60 cm every 30 s, MH-1 and MH-2 every minute (S1), and a noise complaint in community A
// two minutes before the outage (S2).
func beforeOutage() []event.Event {
	var evs timeline
	at := evs.at
	for d := -10 * time.Minute; d < 0; d += 30 * time.Second {
		at(rulestest.Sensor(fmt.Sprintf("wl1-%v", d), "WL-1", "water_level", map[string]float64{"level_cm": 60}), "S1", d)
		if d%time.Minute == 0 {
			for _, dev := range []string{"MH-1", "MH-2"} {
				at(rulestest.Sensor(fmt.Sprintf("%s-%v", strings.ToLower(dev), d), dev, "manhole", map[string]float64{"tilt_deg": 1}), "S1", d)
			}
		}
	}
	ticket := rulestest.Hotline("t-A--2m0s", "投诉", "0401", "normal", "噪音扰民")
	ticket.Area.Community = "A"
	at(ticket, "S2", -2*time.Minute)
	return evs.sorted()
}

// Both streets report live; then their gateway is down for 45 minutes of wall clock while the
// engine runs on, and the 20 minutes of events it held arrive at once. The streets' clocks ran
// on during the quiet (so silence was noticed), but the backlog takes them back: none of it
// is late, and it raises every signal the same events raise live — same ids, rules, events and
// times: a held condition, a sliding window counting a complaint from before the outage with
// the backlog's own, firing, clearing and firing again, silence. Besides them, only what the
// clock decided during the quiet: MH-1 and MH-2 reported silent (their last readings were
// before the outage) and cleared by their first readings in the backlog.
func TestBacklogAfterTheClockRanOnRaisesTheLiveSignals(t *testing.T) {
	before, evs := beforeOutage(), backlog()
	all := append(slices.Clone(before), evs...)
	const after = 15 * time.Minute
	end := rulestest.At.Add(20*time.Minute + after)

	live := &rulestest.Recorder{}
	eng := newEngine(t, rulestest.Parse(t, backlogRules), nil)
	runLive(t, eng, live, all, rulestest.At.Add(-10*time.Minute), end)

	out := &rulestest.Recorder{}
	eng2 := newEngine(t, rulestest.Parse(t, backlogRules), nil)
	// Live until the outage, then 45 minutes of ticks and nothing else.
	runLive(t, eng2, out, before, rulestest.At.Add(-10*time.Minute), rulestest.At.Add(45*time.Minute))
	quiet := signalLines(stateful(out.Signals(t)), rulestest.At)
	handOver(t, eng2, out, evs, rulestest.At.Add(45*time.Minute), after)

	if late := eng2.EngineStats().Late; late != 0 {
		t.Errorf("backlog: %d late events, want none", late)
	}
	if n := eng2.EngineStats().Rewinds; n != 2 {
		t.Errorf("rewinds %d, want 2: the first event of each street's backlog takes its clock back", n)
	}
	wantQuiet := []string{
		"fire manhole-silent-5m:mh-1--1m0s rule=manhole-silent-5m event=mh-1--1m0s at=+4m0s",
		"fire manhole-silent-5m:mh-2--1m0s rule=manhole-silent-5m event=mh-2--1m0s at=+4m0s",
	}
	sameLines(t, "during the quiet", quiet, "want", wantQuiet)
	want := signalLines(stateful(live.Signals(t)), rulestest.At)
	want = append(want, wantQuiet...)
	want = append(want,
		"clear manhole-silent-5m:mh-1-0s:clear rule=manhole-silent-5m event=mh-1-0s at=+0s",
		"clear manhole-silent-5m:mh-2-0s:clear rule=manhole-silent-5m event=mh-2-0s at=+0s")
	sort.Strings(want)
	sameLines(t, "after the outage", signalLines(stateful(out.Signals(t)), rulestest.At), "want (live, and the quiet's)", want)
	// The live run counted the complaint from before the outage (the window fires at +3m,
	// not +6m), so the backlog's matching it is not empty agreement.
	for _, w := range []string{
		"fire noise-10m:t-A-3m0s rule=noise-10m event=t-A-3m0s at=+3m0s",
		"fire water-held-3m:wl1-5m0s rule=water-held-3m event=wl1-5m0s at=+5m0s",
		"fire manhole-silent-5m:mh-1-5m0s rule=manhole-silent-5m event=mh-1-5m0s at=+10m0s",
	} {
		if !slices.Contains(want, w) {
			t.Errorf("live run lacks %q", w)
		}
	}
	// And nothing is kept for a rewind that can no longer come.
	for _, id := range []string{"water-held-3m", "noise-10m", "manhole-silent-5m"} {
		if a, b := eng.StatsOf(id).Keys, eng2.StatsOf(id).Keys; a != b {
			t.Errorf("%s holds %d keys after the outage, %d live", id, b, a)
		}
	}
}

// A tumbling period the clock closed during the quiet stays closed: its events in the backlog
// are late for that rule (counted), while a period still open — its end plus the allowed
// lateness not yet reached when the clock ran on (+1m + 39m of quiet) — counts them in full.
func TestBacklogDoesNotReopenAClosedPeriod(t *testing.T) {
	ctx := context.Background()
	const rule = `
id: readings-15m
name: 15 分钟读数
types: [city.sensor.reading]
when: sensor.kind == "manhole"
window: {kind: tumbling, size: 15m, having: count >= 1}
raise: {category: "0101", severity: blue, correlation_key: "readings"}
`
	reading := func(d time.Duration) event.Event {
		ev := rulestest.Sensor(fmt.Sprintf("r%v", d), "MH-1", "manhole", map[string]float64{"tilt_deg": 1})
		ev.Time = rulestest.At.Add(d)
		return ev
	}
	rec := &rulestest.Recorder{}
	eng := newEngine(t, rulestest.Parse(t, rule), nil)
	runLive(t, eng, rec, []event.Event{reading(time.Minute)}, rulestest.At, rulestest.At.Add(40*time.Minute))
	for _, d := range []time.Duration{2 * time.Minute, 3 * time.Minute, 31 * time.Minute, 32 * time.Minute} {
		must(t, rec.Keep(eng.HandleEvent(ctx, reading(d))))
	}
	for d := 40 * time.Minute; d <= 80*time.Minute; d += 10 * time.Second {
		must(t, rec.Keep(eng.Tick(ctx, rulestest.At.Add(d))))
	}
	var got []string
	for _, s := range rec.Signals(t) {
		got = append(got, fmt.Sprintf("%s count=%d", s.ID, s.Explanation.Window.Count))
	}
	want := []string{"readings-15m:r1m0s count=1", "readings-15m:r32m0s count=2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("signals %q, want %q", got, want)
	}
	if st := eng.EngineStats(); st.Late != 2 || st.Rewinds != 1 {
		t.Errorf("late %d, rewinds %d; want 2 (r2m, r3m: their period closed) and 1", st.Late, st.Rewinds)
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

// Rules and events of the rewind edge cases below: a 10-minute window of complaints in
// community A of street S2 (count >= n), and silence of a manhole sensor in S1.
func noiseWindow(version, atLeast int) string {
	return fmt.Sprintf(`
id: noise-a
name: 噪声投诉
version: %d
types: [city.hotline.ticket]
when: hotline.category_code == "0401" && area.community != ""
group_by: area.community
window: {size: 10m, having: count >= %d}
raise: {category: "0401", severity: orange, correlation_key: "noise:{{area.community}}"}
`, version, atLeast)
}

func complaintAt(id string, d time.Duration) event.Event {
	var tl timeline
	ev := rulestest.Hotline(id, "投诉", "0401", "normal", "噪音")
	ev.Area.Community = "A"
	tl.at(ev, "S2", d)
	return tl[0]
}

func questionAt(id string, d time.Duration) event.Event {
	var tl timeline
	tl.at(rulestest.Hotline(id, "咨询", "0999", "normal", "咨询"), "S2", d)
	return tl[0]
}

// ticks ticks eng every 10 s of wall clock from rulestest.At+from to rulestest.At+to.
func ticks(t *testing.T, eng *engine.Engine, rec *rulestest.Recorder, from, to time.Duration) {
	t.Helper()
	for d := from; d <= to; d += 10 * time.Second {
		must(t, rec.Keep(eng.Tick(context.Background(), rulestest.At.Add(d))))
	}
}

// uniqueIDs fails the test if a signal id was raised twice.
func uniqueIDs(t *testing.T, rec *rulestest.Recorder) {
	t.Helper()
	seen := map[string]bool{}
	for _, s := range rec.Signals(t) {
		if seen[s.ID] {
			t.Errorf("signal %s raised twice; signals %q", s.ID, signalLines(rec.Signals(t), rulestest.At))
		}
		seen[s.ID] = true
	}
}

// A complaint that left the window at the very start of the quiet (9 minutes before the
// street's newest event) still counts with the backlog's first complaint, as it does live.
func TestRewindCountsWhatLeftTheWindowAsTheQuietBegan(t *testing.T) {
	rules := rulestest.Parse(t, noiseWindow(1, 2))
	evs := []event.Event{complaintAt("x", -9*time.Minute), questionAt("z", 0), complaintAt("y", 30*time.Second)}
	live := &rulestest.Recorder{}
	eng := newEngine(t, rules, nil)
	runLive(t, eng, live, evs, rulestest.At.Add(-10*time.Minute), rulestest.At.Add(20*time.Minute))
	out := &rulestest.Recorder{}
	eng2 := newEngine(t, rules, nil)
	runLive(t, eng2, out, evs[:2], rulestest.At.Add(-10*time.Minute), rulestest.At.Add(45*time.Minute))
	handOver(t, eng2, out, evs[2:], rulestest.At.Add(45*time.Minute), 15*time.Minute)
	want := signalLines(live.Signals(t), rulestest.At)
	if !slices.Contains(want, "fire noise-a:y rule=noise-a event=y at=+30s") {
		t.Fatalf("live run: %q", want)
	}
	sameLines(t, "after the outage", signalLines(out.Signals(t), rulestest.At), "live", want)
}

// A straggler in a street whose clock ran on less than the allowed lateness past its newest
// event is late, as it always was: only a quiet longer than the lateness can be an outage.
func TestRewindNeedsAQuietLongerThanTheLateness(t *testing.T) {
	ctx := context.Background()
	eng := newEngine(t, rulestest.Parse(t, noiseWindow(1, 2)), nil)
	rec := &rulestest.Recorder{}
	must(t, rec.Keep(eng.Tick(ctx, rulestest.At)))
	must(t, rec.Keep(eng.HandleEvent(ctx, questionAt("z", 0))))
	must(t, rec.Keep(eng.Tick(ctx, rulestest.At.Add(time.Minute))))
	must(t, rec.Keep(eng.HandleEvent(ctx, complaintAt("s", -90*time.Second))))
	if st := eng.EngineStats(); st.Rewinds != 0 || st.Late != 1 {
		t.Errorf("rewinds %d, late %d; want 0 and 1 (ran on 1m, less than the 2m lateness)", st.Rewinds, st.Late)
	}
}

// A reading older than the one a silence is counted from, let in by a rewind, neither clears
// the silence nor makes it fire again.
func TestOlderReadingDoesNotClearASilence(t *testing.T) {
	ctx := context.Background()
	reading := func(id string, d time.Duration) event.Event {
		var tl timeline
		tl.at(rulestest.Sensor(id, "MH-1", "manhole", map[string]float64{"tilt_deg": 1}), "S1", d)
		return tl[0]
	}
	rec := &rulestest.Recorder{}
	eng := newEngine(t, rulestest.Parse(t, backlogRules), nil)
	must(t, rec.Keep(eng.Tick(ctx, rulestest.At)))
	must(t, rec.Keep(eng.HandleEvent(ctx, reading("r0", 0))))
	ticks(t, eng, rec, 0, 45*time.Minute)
	must(t, rec.Keep(eng.HandleEvent(ctx, reading("r-30s", -30*time.Second))))
	ticks(t, eng, rec, 45*time.Minute, 90*time.Minute)
	got := signalLines(stateful(rec.Signals(t)), rulestest.At)
	if want := "fire manhole-silent-5m:r0 rule=manhole-silent-5m event=r0 at=+5m0s"; len(got) != 1 || got[0] != want {
		t.Errorf("signals %q, want once %q", got, want)
	}
	if n := eng.EngineStats().Rewinds; n != 1 {
		t.Errorf("rewinds %d, want 1", n)
	}
}

// What a window keeps for a rewind goes when the street's events move past it, or after a
// day of quiet: no key is held for ever.
func TestKeptWindowEntriesGo(t *testing.T) {
	ctx := context.Background()
	t.Run("the street reports again", func(t *testing.T) {
		eng := newEngine(t, rulestest.Parse(t, noiseWindow(1, 2)), nil)
		rec := &rulestest.Recorder{}
		runLive(t, eng, rec, []event.Event{complaintAt("x", 0)}, rulestest.At, rulestest.At.Add(45*time.Minute))
		if k := eng.StatsOf("noise-a").Keys; k != 1 {
			t.Fatalf("keys %d during the quiet, want 1 (kept for a rewind)", k)
		}
		must(t, rec.Keep(eng.HandleEvent(ctx, questionAt("z", 45*time.Minute))))
		if k := eng.StatsOf("noise-a").Keys; k != 0 {
			t.Errorf("keys %d once the street reports again, want 0", k)
		}
	})
	t.Run("a day of quiet", func(t *testing.T) {
		eng := newEngine(t, rulestest.Parse(t, noiseWindow(1, 2)), nil)
		rec := &rulestest.Recorder{}
		runLive(t, eng, rec, []event.Event{complaintAt("x", 0)}, rulestest.At, rulestest.At.Add(time.Hour))
		must(t, rec.Keep(eng.Tick(ctx, rulestest.At.Add(24*time.Hour))))
		must(t, rec.Keep(eng.Tick(ctx, rulestest.At.Add(24*time.Hour+11*time.Minute))))
		if k := eng.StatsOf("noise-a").Keys; k != 0 {
			t.Errorf("keys %d after a day of quiet, want 0", k)
		}
	})
}

// A new version of the rule after a rewind does not bring back, and fire again, a window the
// clock emptied during the quiet.
func TestReloadAfterARewindDoesNotFireAgain(t *testing.T) {
	ctx := context.Background()
	eng := newEngine(t, rulestest.Parse(t, noiseWindow(1, 1)), nil)
	rec := &rulestest.Recorder{}
	runLive(t, eng, rec, []event.Event{complaintAt("x", 0)}, rulestest.At, rulestest.At.Add(45*time.Minute))
	must(t, rec.Keep(eng.HandleEvent(ctx, questionAt("o", time.Minute))))
	if err := eng.SetRules(rulestest.Parse(t, noiseWindow(2, 1))); err != nil {
		t.Fatal(err)
	}
	ticks(t, eng, rec, 45*time.Minute, 70*time.Minute)
	uniqueIDs(t, rec)
	got := signalLines(rec.Signals(t), rulestest.At)
	want := []string{"clear noise-a:x:clear rule=noise-a event=x at=+10m0s", "fire noise-a:x rule=noise-a event=x at=+0s"}
	sameLines(t, "signals", got, "want", want)
}

// A new owner that rebuilds a street's state with Rebuild from the first half of the backlog
// raises, from the second half on, exactly what an engine that handled the whole of it live
// raises; Rebuild itself returns nothing and runs no stateless rule.
func TestRebuildMovesStateLikeHandleEvent(t *testing.T) {
	ctx := context.Background()
	rules := rulestest.Parse(t, backlogRules+`---
id: any-noise
name: 噪声投诉
types: [city.hotline.ticket]
when: hotline.category_code == "0401"
raise: {category: "0401", severity: blue}
`)
	evs := backlog()
	half := len(evs) / 2
	wall := rulestest.At.Add(45 * time.Minute)

	whole := &rulestest.Recorder{}
	eng := newEngine(t, rules, nil)
	must(t, whole.Keep(eng.Tick(ctx, wall)))
	for _, ev := range evs[:half] {
		must(t, whole.Keep(eng.HandleEvent(ctx, ev)))
	}
	before := len(whole.Signals(t))
	handOver(t, eng, whole, evs[half:], wall, 15*time.Minute)

	moved := &rulestest.Recorder{}
	eng2 := newEngine(t, rules, nil)
	must(t, moved.Keep(eng2.Tick(ctx, wall)))
	for _, ev := range evs[:half] {
		eng2.Rebuild(ctx, ev)
	}
	if n := eng2.StatsOf("any-noise").Evaluated; n != 0 {
		t.Errorf("Rebuild evaluated the stateless rule %d times", n)
	}
	handOver(t, eng2, moved, evs[half:], wall, 15*time.Minute)

	want := signalLines(whole.Signals(t)[before:], rulestest.At)
	sort.Strings(want)
	if len(want) < 5 {
		t.Fatalf("the second half raised only %q", want)
	}
	sameLines(t, "after a rebuild", signalLines(moved.Signals(t), rulestest.At), "handled throughout", want)
}

// Each fire of a sliding window has one clear, under its own id, even when a complaint older
// than the window's newest fills it again after the clock emptied it — after a rewind, or as
// a straggler within the lateness.
func TestEachFireHasOneClear(t *testing.T) {
	ctx := context.Background()
	t.Run("after a rewind", func(t *testing.T) {
		eng := newEngine(t, rulestest.Parse(t, noiseWindow(1, 2)), nil)
		rec := &rulestest.Recorder{}
		runLive(t, eng, rec, []event.Event{complaintAt("x", -time.Minute), complaintAt("y", 0)},
			rulestest.At.Add(-2*time.Minute), rulestest.At.Add(45*time.Minute))
		must(t, rec.Keep(eng.HandleEvent(ctx, complaintAt("b", -30*time.Second))))
		ticks(t, eng, rec, 45*time.Minute, 70*time.Minute)
		if n := eng.EngineStats().Rewinds; n != 1 {
			t.Fatalf("rewinds %d, want 1", n)
		}
		uniqueIDs(t, rec)
		sameLines(t, "signals", signalLines(rec.Signals(t), rulestest.At), "want", []string{
			"clear noise-a:b:clear rule=noise-a event=y at=+9m30s",
			"clear noise-a:y:clear rule=noise-a event=y at=+9m0s",
			"fire noise-a:b rule=noise-a event=b at=+-30s",
			"fire noise-a:y rule=noise-a event=y at=+0s",
		})
	})
	t.Run("a straggler", func(t *testing.T) {
		eng := newEngine(t, rulestest.Parse(t, noiseWindow(1, 2)), nil)
		rec := &rulestest.Recorder{}
		runLive(t, eng, rec, []event.Event{complaintAt("x", 0), complaintAt("y", 9*time.Minute)},
			rulestest.At, rulestest.At.Add(10*time.Minute+20*time.Second))
		must(t, rec.Keep(eng.HandleEvent(ctx, complaintAt("b", 8*time.Minute+30*time.Second))))
		ticks(t, eng, rec, 10*time.Minute+30*time.Second, 30*time.Minute)
		uniqueIDs(t, rec)
	})
}

// A silence whose signal cannot be built (the rule's correlation key, from the reading's
// status, is longer than a key may be) is counted as the rule's failure once; the clock goes
// on (Tick returns) and the device's next reading arms it again.
func TestFailingSilenceDoesNotStallTheClock(t *testing.T) {
	ctx := context.Background()
	eng := newEngine(t, rulestest.Parse(t, `
id: silent
name: 离线
types: [city.sensor.reading]
when: sensor.kind == "manhole"
absent: 5m
raise: {category: "0101", severity: blue, correlation_key: "offline:{{sensor.status}}"}
`), nil)
	must(t, func() error { _, err := eng.Tick(ctx, rulestest.At); return err }())
	ev := rulestest.Sensor("r1", "MH-1", "manhole", map[string]float64{"tilt_deg": 1})
	ev.Sensor.Status = strings.Repeat("s", 600)
	must(t, func() error { _, err := eng.HandleEvent(ctx, ev); return err }())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for d := time.Minute; d <= 20*time.Minute; d += time.Minute {
			_, _ = eng.Tick(ctx, rulestest.At.Add(d))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Tick did not return: the silence's deadline came due again and again")
	}
	if st := eng.StatsOf("silent"); st.Failed != 1 || st.Matched != 0 {
		t.Errorf("failed %d, matched %d; want 1 and 0", st.Failed, st.Matched)
	}
}
