package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/rulestest"
)

// The sliding window's bookkeeping, under random inserts, slides (both ways), forward-only
// advances, prunes and the MaxWindowEvents cap: entries stay in time order, the window is
// entries[from:], everything in it is after the last cutoff a slide set, and sum is the
// window's sum.
func TestWindowBookkeeping(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		e := &Engine{cfg: Config{MaxWindowEvents: 1 + r.IntN(6)}}
		ks := &keyState{}
		cutoff := int64(-1 << 62)
		for range 60 {
			switch r.IntN(4) {
			case 0:
				cutoff = int64(r.IntN(50))
				e.addToWindow(nil, ks, float64(r.IntN(5)), int64(r.IntN(60)), cutoff)
			case 1:
				cutoff = int64(r.IntN(50))
				ks.slide(cutoff)
			case 2:
				if c := int64(r.IntN(50)); c > cutoff {
					cutoff = c
				}
				ks.advance(cutoff)
			case 3:
				ks.prune(int64(r.IntN(50)))
			}
			if ks.from < 0 || ks.from > len(ks.entries) {
				t.Fatalf("from %d of %d entries", ks.from, len(ks.entries))
			}
			var sum float64
			for i, en := range ks.entries {
				if i > 0 && ks.entries[i-1].t > en.t {
					t.Fatalf("entries out of order: %v", ks.entries)
				}
				if i >= ks.from {
					if en.t <= cutoff {
						t.Fatalf("entry at %d in the window, cutoff %d", en.t, cutoff)
					}
					sum += en.v
				}
			}
			if sum != ks.sum {
				t.Fatalf("sum %v, window's %v", ks.sum, sum)
			}
		}
	}
}

const keptNoise = `
id: noise-a
name: 噪声投诉
types: [city.hotline.ticket]
when: hotline.category_code == "0401" && area.community != ""
group_by: area.community
window: {size: 10m, having: count >= 2}
raise: {category: "0401", severity: orange, correlation_key: "noise:{{area.community}}"}
`

func keptComplaint(id string, at time.Time) event.Event {
	ev := rulestest.Hotline(id, "投诉", "0401", "normal", "噪音")
	ev.Area.Street, ev.Area.Community, ev.Time = "S2", "A", at
	return ev
}

// Live — a street never quiet longer than the lateness, a complaint every 11 minutes, so the
// window empties again and again — a key's rule holds no more than its live deadlines, and
// nothing stays listed as kept for a rewind.
func TestLiveWindowKeepsNothingForARewind(t *testing.T) {
	ctx := context.Background()
	e, err := New(Config{}, rulestest.Parse(t, keptNoise), nil)
	if err != nil {
		t.Fatal(err)
	}
	for now, i := rulestest.At, 0; now.Before(rulestest.At.Add(12 * time.Hour)); now, i = now.Add(10*time.Second), i+1 {
		if i%6 == 0 { // a question every minute keeps the street live
			q := rulestest.Hotline(fmt.Sprintf("q%d", i), "咨询", "0999", "normal", "咨询")
			q.Area.Street, q.Time = "S2", now
			if _, err := e.HandleEvent(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		if i%66 == 0 {
			if _, err := e.HandleEvent(ctx, keptComplaint(fmt.Sprintf("c%d", i), now)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.Tick(ctx, now); err != nil {
			t.Fatal(err)
		}
	}
	if st := e.EngineStats(); st.Rewinds != 0 || st.Late != 0 {
		t.Fatalf("not live: %+v", st)
	}
	st := e.streets.lookup("S2")
	if n := len(st.rules["noise-a"].due); n > 2 {
		t.Errorf("%d deadlines for one key after 12 h live, want at most 2", n)
	}
	if len(st.kept) > 1 {
		t.Errorf("%d keys listed as kept in a live street", len(st.kept))
	}
}

// After a day of quiet the street lists nothing kept for a rewind: the key is dropped and
// nothing refers to it.
func TestDayOfQuietReleasesKeptKeys(t *testing.T) {
	ctx := context.Background()
	e, err := New(Config{}, rulestest.Parse(t, keptNoise), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Tick(ctx, rulestest.At); err != nil {
		t.Fatal(err)
	}
	if _, err := e.HandleEvent(ctx, keptComplaint("x", rulestest.At)); err != nil {
		t.Fatal(err)
	}
	for d := time.Duration(0); d <= 25*time.Hour; d += time.Minute {
		if _, err := e.Tick(ctx, rulestest.At.Add(d)); err != nil {
			t.Fatal(err)
		}
	}
	st := e.streets.lookup("S2")
	if k := e.StatsOf("noise-a").Keys; k != 0 {
		t.Errorf("keys %d after a day of quiet, want 0", k)
	}
	if len(st.kept) != 0 || st.keptDue != 0 {
		t.Errorf("street.kept lists %d key(s) (keptDue %d) after a day of quiet", len(st.kept), st.keptDue)
	}
}
