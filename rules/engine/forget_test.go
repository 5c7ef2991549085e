package engine_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/engine"
	"github.com/urbanbrain/urbanbrain/rules/rulestest"
)

// in returns ev moved to street.
func in(street string, ev event.Event) event.Event {
	ev.Area.Street = street
	return ev
}

func streetIs(key string) func(string) bool { return func(s string) bool { return s == key } }

// After a failover the streets of a revoked partition belong to another instance: this one's
// clock must never again raise a silence alarm for their devices, while devices of the streets
// it keeps are watched as before.
func TestForgetStopsAbsenceOfRevokedStreet(t *testing.T) {
	s := newScenario(t, manholeAbsent, engine.Config{AllowedLateness: time.Minute})
	manhole := func(device string) event.Event {
		s.seq++
		return rulestest.Sensor(fmt.Sprintf("m%d", s.seq), device, "manhole", map[string]float64{"tilt_deg": 1})
	}
	s.at(0).send(in("A", manhole("MH-A"))).send(in("B", manhole("MH-B")))
	s.at(10 * time.Minute).tick()
	s.expect()
	if n := s.eng.Forget(streetIs("A")); n != 1 {
		t.Fatalf("Forget dropped %d streets, want 1", n)
	}
	if st := s.eng.EngineStats(); st.Streets != 1 {
		t.Errorf("streets with state %d, want 1 (B)", st.Streets)
	}
	if st := s.eng.StatsOf("manhole-silent"); st.Keys != 1 {
		t.Errorf("keys %d, want 1 (MH-B)", st.Keys)
	}
	s.at(31 * time.Minute).tick()
	s.expect("fire manhole-silent:m2@+30m0s")
	s.at(2 * time.Hour).tick()
	s.expect()
	if n := s.eng.Forget(streetIs("A")); n != 0 {
		t.Errorf("Forget of a street already forgotten dropped %d, want 0", n)
	}
}

// Window and for state of a forgotten street starts afresh with its next event (it is rebuilt
// by the new owner, not carried here); the state of the other street carries on.
func TestForgetDropsWindowAndForStateOfStreetOnly(t *testing.T) {
	t.Run("window", func(t *testing.T) {
		s := newScenario(t, rulestest.NoiseWindow, engine.Config{})
		// Community X in both streets: one group key, two streets.
		c := func(street string) event.Event { return in(street, s.complaint("X", "0401")) }
		s.at(0).send(c("A")).send(c("B"))
		s.at(10 * time.Minute).send(c("A")).send(c("B"))
		s.expect()
		if n := s.eng.Forget(streetIs("A")); n != 1 {
			t.Fatalf("Forget dropped %d streets, want 1", n)
		}
		s.at(20 * time.Minute).send(c("A"))
		s.expect() // 1 in A's hour, not 3
		s.send(c("B"))
		s.expect("fire noise-complaints:h6@+20m0s") // B's third
		s.at(30 * time.Minute).send(c("A"))
		s.expect()
		s.at(40 * time.Minute).send(c("A"))
		s.expect("fire noise-complaints:h8@+40m0s") // A's third since Forget
	})
	t.Run("for", func(t *testing.T) {
		s := newScenario(t, waterFor, engine.Config{})
		s.at(0).send(in("A", s.level("WL-A", 90))).send(in("B", s.level("WL-B", 90)))
		s.at(4 * time.Minute).send(in("A", s.level("WL-A", 90))).send(in("B", s.level("WL-B", 90)))
		s.expect()
		if n := s.eng.Forget(streetIs("A")); n != 1 {
			t.Fatalf("Forget dropped %d streets, want 1", n)
		}
		s.at(5 * time.Minute).send(in("A", s.level("WL-A", 90))).send(in("B", s.level("WL-B", 90)))
		s.expect("fire water-held:e6@+5m0s") // B held 5 minutes; A only since +5m
		s.at(9 * time.Minute).send(in("A", s.level("WL-A", 90)))
		s.expect()
		s.at(10 * time.Minute).send(in("A", s.level("WL-A", 90)))
		s.expect("fire water-held:e8@+10m0s")
	})
}

// Forgetting streets the engine does not hold drops nothing and changes nothing: the silence
// of the street it does hold is still noticed.
func TestForgetOfStreetNotHeldChangesNothing(t *testing.T) {
	s := newScenario(t, manholeAbsent+"---\n"+rulestest.NoiseWindow, engine.Config{AllowedLateness: time.Minute})
	s.seq++
	s.at(0).send(in("A", rulestest.Sensor("m1", "MH-A", "manhole", map[string]float64{"tilt_deg": 1})))
	s.send(in("A", s.complaint("X", "0401"))).send(in("A", s.complaint("X", "0401")))
	before, beforeEng := s.eng.Stats(), s.eng.EngineStats()
	for _, gone := range []func(string) bool{streetIs("Z"), streetIs(""), func(string) bool { return false }} {
		if n := s.eng.Forget(gone); n != 0 {
			t.Errorf("Forget dropped %d streets, want 0", n)
		}
	}
	if after := s.eng.Stats(); !slices.EqualFunc(after, before, func(a, b engine.RuleStats) bool { return a.RuleID == b.RuleID && a.Keys == b.Keys }) {
		t.Errorf("stats changed: %+v → %+v", before, after)
	}
	if got := s.eng.EngineStats(); got != beforeEng {
		t.Errorf("engine stats changed: %+v → %+v", beforeEng, got)
	}
	s.at(10 * time.Minute).send(in("A", s.complaint("X", "0401")))
	s.expect("fire noise-complaints:h4@+10m0s")
	s.at(31 * time.Minute).tick()
	s.expect("fire manhole-silent:m1@+30m0s")
}

// Forget while events are handled and the clock ticks: meaningful with -race. Streets never
// forgotten keep every complaint counted.
func TestForgetConcurrency(t *testing.T) {
	rs := rulestest.Parse(t, rulestest.NoiseWindow+"---\n"+manholeAbsent)
	rec := &rulestest.Recorder{}
	eng := newEngine(t, rs, nil)
	var wg sync.WaitGroup
	complainInFourStreets(t, eng, rec, &wg)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 50 {
			eng.Forget(func(s string) bool { return s == "S0" || s == "S1" })
		}
	}()
	wg.Wait()
	fires := map[string]int{}
	for _, s := range rec.Signals(t) {
		if !s.Clear {
			fires[s.Event.Area.Street]++
		}
	}
	if fires["S2"] != 3 || fires["S3"] != 3 {
		t.Errorf("fires by street %v; want 3 each in S2 and S3", fires)
	}
	eng.Forget(func(s string) bool { return s == "S0" || s == "S1" })
	if st := eng.StatsOf("noise-complaints"); st.Keys != 6 {
		t.Errorf("keys %d, want 6 (S2 and S3)", st.Keys)
	}
}
