package cockpit

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
)

// TestMeasureBroadFiltersMemory measures what 1,000 distinct broad subscriptions cost once
// their histories are full, without a history budget ("before") and with the default one (the figures of
// docs/security.md). It takes a minute and gigabytes without the budget, so it runs only
// with URBANBRAIN_MEASURE=1.
func TestMeasureBroadFiltersMemory(t *testing.T) {
	if os.Getenv("URBANBRAIN_MEASURE") != "1" {
		t.Skip("measurement: set URBANBRAIN_MEASURE=1 to run")
	}
	for _, tc := range []struct {
		name   string
		budget int
	}{{"before", 1 << 40}, {"budget", 0}} {
		// Run one case per process (-run .../before) for a clean RSS.
		t.Run(tc.name, func(t *testing.T) {
			heap, rss := measureBroadFilters(t, tc.budget, 1000, 1100)
			t.Logf("%s: 1,000 broad subscriptions, history full: heap in use %d MiB, RSS %d MiB", tc.name, heap>>20, rss>>20)
		})
	}
}

func measureBroadFilters(t *testing.T, budget, subs, ticks int) (heap, rss uint64) {
	now := time.Unix(1_750_000_000, 0)
	h, err := New(Config{HistoryBudget: budget, MaxSubscriptions: 2 * subs, Now: func() time.Time { return now }},
		nopVerifier{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	c := auth.Claims{Subject: "attacker", Role: auth.RoleAdmin}
	h.mu.Lock()
	for i := range subs {
		// Broad: every severity matches; distinct: each lists a district of its own besides.
		r := Request{Filter: Filter{District: []string{"D1", fmt.Sprintf("X%04d", i)}}}
		if err := r.normalize(); err != nil {
			t.Fatal(err)
		}
		key, kpiKey := subKey(feedCockpit, c, r)
		s := newSubscription(key, kpiKey, feedCockpit, c, r, "e", h.cfg)
		s.idleSince = now
		h.addSubLocked(s)
	}
	h.mu.Unlock()
	title := strings.Repeat("道路积水", 20)
	for tick := range ticks {
		for i := range 4 { // a few changes a tick: small deltas, so the 1,024-frame cap is what fills
			inc := event.Incident{ID: fmt.Sprintf("INC-D1001-%04d", i), Version: int64(tick + 1), Status: event.StatusNew,
				Category: "0202", Severity: event.SeverityYellow, Title: title, Area: event.Area{District: "D1", Street: "D1001"}}
			h.applyLocked(event.IncidentChange{Incident: inc})
		}
		h.flush()
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap = ms.HeapInuse
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				var kb uint64
				fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
				rss = kb << 10
			}
		}
	}
	t.Logf("history bytes %d MiB in %d subscriptions", h.Stats().HistoryBytes>>20, h.Stats().Subscriptions)
	runtime.KeepAlive(h)
	return heap, rss
}
