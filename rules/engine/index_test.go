package engine

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/urbanbrain/urbanbrain/rules/lang"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/rulestest"
)

// TestIndexFiresWhatEvaluatingEveryRuleFires: over random rule sets — equalities, lists,
// bounds on metrics and confidence written every way round, thresholds equal to event
// values, conditions the index cannot read — and random events, including missing metrics,
// negative values and NaN, the engine fires exactly the signals, in the same order, that
// evaluating every rule's condition on every event gives.
func TestIndexFiresWhatEvaluatingEveryRuleFires(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	values := []float64{-1, 0, 0.5, 1, 2, 3.5, 5}
	num := func() string {
		v := values[rng.IntN(len(values))]
		if v == math.Trunc(v) && rng.IntN(2) == 0 {
			return fmt.Sprint(int(v))
		}
		return fmt.Sprintf("%.1f", v)
	}
	ops := []string{">", ">=", "<", "<=", "==", "!="}
	metric := func() string {
		m := []string{"a", "b", "c"}[rng.IntN(3)]
		if rng.IntN(2) == 0 {
			return `sensor.metrics["` + m + `"]`
		}
		return "sensor.metrics." + m
	}
	sensorConjunct := func() string {
		switch rng.IntN(12) {
		case 0, 1:
			return fmt.Sprintf(`sensor.kind == "k%d"`, rng.IntN(4))
		case 2:
			return fmt.Sprintf(`sensor.kind in ["k%d", "k%d"]`, rng.IntN(4), rng.IntN(4))
		case 3:
			return fmt.Sprintf(`sensor.device_id == "D%d"`, rng.IntN(3))
		case 4:
			return fmt.Sprintf(`%s %s %s`, num(), ops[rng.IntN(len(ops))], metric())
		case 5:
			return fmt.Sprintf(`%s + %s > %s`, metric(), metric(), num())
		case 6:
			return fmt.Sprintf(`(%s > %s || sensor.kind == "k1")`, metric(), num())
		case 7:
			return fmt.Sprintf(`!(%s >= %s)`, metric(), num())
		case 8:
			return fmt.Sprintf(`%s > -%s`, metric(), num())
		}
		return fmt.Sprintf(`%s %s %s`, metric(), ops[rng.IntN(len(ops))], num())
	}
	videoConjunct := func() string {
		switch rng.IntN(4) {
		case 0:
			return fmt.Sprintf(`video.algorithm == "a%d"`, rng.IntN(3))
		case 1:
			return fmt.Sprintf(`%s %s video.confidence`, num(), ops[rng.IntN(4)])
		}
		return fmt.Sprintf(`video.confidence %s %s`, ops[rng.IntN(4)], num())
	}
	for round := range 40 {
		var src strings.Builder
		nRules := 1 + rng.IntN(60)
		for i := range nRules {
			typ, conj := event.TypeSensorReading, sensorConjunct
			if rng.IntN(4) == 0 {
				typ, conj = event.TypeVideoDetection, videoConjunct
			}
			parts := make([]string, 1+rng.IntN(3))
			for j := range parts {
				parts[j] = conj()
			}
			fmt.Fprintf(&src, "- {id: r%03d, name: n, enabled: %v, types: [%s], when: '%s', raise: {category: \"0104\", severity: blue}}\n",
				i, rng.IntN(10) > 0, typ, strings.Join(parts, " && "))
		}
		rs, err := lang.Parse("random.yaml", []byte(src.String()))
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		eng, err := New(Config{}, rs, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 200 {
			ev := randomEvent(rng, values, fmt.Sprintf("e%d-%d", round, i))
			want := everyRule(t, rs, ev)
			sigs, errs := eng.Evaluate(ev)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			var got []string
			for _, sig := range sigs {
				got = append(got, sig.RuleID)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("round %d event %+v %+v %+v:\n got %v\nwant %v\nrules:\n%s", round, ev, ev.Sensor, ev.Video, got, want, src.String())
			}
			if !finite(&ev) {
				continue // no signal of it can be written: HandleEvent drops them
			}
			outs, err := eng.HandleEvent(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			got = got[:0]
			for _, o := range outs {
				got = append(got, o.Data.(event.Signal).RuleID)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("round %d event %s: HandleEvent fired %v, want %v", round, ev.ID, got, want)
			}
		}
	}
}

func randomEvent(rng *rand.Rand, values []float64, id string) event.Event {
	pick := func() float64 {
		switch rng.IntN(20) {
		case 0:
			return math.NaN()
		case 1:
			return math.Inf(1 - 2*rng.IntN(2))
		case 2:
			return values[rng.IntN(len(values))] + 0.25
		}
		return values[rng.IntN(len(values))]
	}
	if rng.IntN(4) == 0 {
		return rulestest.Video(id, "CAM-1", fmt.Sprintf("a%d", rng.IntN(3)), pick(), 1)
	}
	metrics := map[string]float64{}
	for _, m := range []string{"a", "b", "c"} {
		if rng.IntN(4) > 0 {
			metrics[m] = pick()
		}
	}
	if rng.IntN(10) == 0 {
		metrics = nil
	}
	return rulestest.Sensor(id, fmt.Sprintf("D%d", rng.IntN(3)), fmt.Sprintf("k%d", rng.IntN(4)), metrics)
}

// everyRule evaluates the condition of every enabled stateless rule listening to ev's type,
// in order, with no index: the ids of those that hold.
func everyRule(t *testing.T, rs []lang.Rule, ev event.Event) []string {
	t.Helper()
	env, err := lang.EnvOf(ev)
	if err != nil {
		t.Fatal(err)
	}
	m := lang.NewVM()
	var out []string
	for i := range rs {
		r := &rs[i]
		if !r.Enabled || r.Kind() != "" || !Listens(r, ev.Type) {
			continue
		}
		v, err := lang.Run(&m, r.Compiled().ByType[ev.Type].When, env)
		if err != nil {
			t.Fatalf("rule %s: %v", r.ID, err)
		}
		if v.(bool) {
			out = append(out, r.ID)
		}
	}
	return out
}

// TestRecentEventsForgetsTheOldest: a street remembers its latest Redelivery events, no more.
func TestRecentEventsForgetsTheOldest(t *testing.T) {
	var r recentEvents
	for i := range 5 {
		r.add(eventRef{"t", fmt.Sprint(i)}, event.Outputs{{ID: fmt.Sprint(i)}}, 3)
	}
	for i := range 5 {
		outs, ok := r.get(eventRef{"t", fmt.Sprint(i)})
		if ok != (i >= 2) || (ok && outs[0].ID != fmt.Sprint(i)) {
			t.Errorf("event %d: remembered %v, outputs %v", i, ok, outs)
		}
	}
}
