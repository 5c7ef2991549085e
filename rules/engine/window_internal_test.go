package engine

import (
	"math/rand/v2"
	"testing"
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
