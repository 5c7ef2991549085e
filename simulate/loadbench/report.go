package loadbench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"syscall"
	"time"
)

// processCPU is this process's user and system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Print writes the report for a person.
func (r *Report) Print(w io.Writer) {
	target := "flat out"
	if r.Target > 0 {
		target = fmt.Sprintf("%.0f events/s", r.Target)
	}
	fmt.Fprintf(w, "\nurbanbrain bench: %s for %.0fs, %d cockpit clients\n\n", target, r.Duration, r.Clients)
	fmt.Fprintf(w, "  sent (acknowledged)      %d (%.0f/s)%s\n", r.Sent, r.SentRate, failed(r.SendFailed))
	fmt.Fprintf(w, "  sustained, every stage   %.0f events/s (least of the city.events groups by the end of the load)\n", r.Sustained)
	for _, g := range slices.Sorted(maps.Keys(r.Completed)) {
		fmt.Fprintf(w, "      %-40s %d\n", g, r.Completed[g])
	}
	if r.ServerCPU >= 0 {
		fmt.Fprintf(w, "  server CPU               %.2f cores (%.0f %% of one core)\n", r.ServerCPU, 100*r.ServerCPU)
		fmt.Fprintf(w, "  server peak RSS          %.0f MiB\n", float64(r.ServerPeakRSS)/(1<<20))
	}
	fmt.Fprintf(w, "  bench's own CPU          %.2f cores (generator, topic observers, websocket clients)\n", r.BenchCPU)
	fmt.Fprintf(w, "  event → incident change  p50 %.0f ms  p99 %.0f ms  max %.0f ms  (%d samples)\n",
		r.ToIncident.P50, r.ToIncident.P99, r.ToIncident.Max, r.ToIncident.Samples)
	fmt.Fprintf(w, "  event → cockpit frame    p50 %.0f ms  p99 %.0f ms  max %.0f ms  (%d samples, %d frames, %d clients dropped)\n",
		r.ToCockpit.P50, r.ToCockpit.P99, r.ToCockpit.Max, r.ToCockpit.Samples, r.Frames, r.Dropped)
	drained := "drained"
	if !r.Drained {
		drained = "NOT drained"
	}
	fmt.Fprintf(w, "  drain after the load     %.1fs (%s)\n", r.DrainS, drained)
	fmt.Fprintf(w, "  consumer lag             at end of load → after drain\n")
	for _, l := range r.Lag {
		fmt.Fprintf(w, "      %-40s %d → %d\n", l.Group, l.AtEnd, l.Final)
	}
	verdict := "nothing lost"
	switch {
	case !r.Drained:
		verdict = "not comparable: the backlog was not drained"
	case r.Lost:
		verdict = "MISMATCH"
	}
	rows := ""
	if r.StoredRows >= 0 {
		rows = fmt.Sprintf(", store rows metric %d", r.StoredRows)
	}
	fmt.Fprintf(w, "  counts                   accepted %d = stored %d%s: %s; dead-lettered %d\n", r.Accepted, r.Stored, rows, verdict, r.DeadLettered)
	fmt.Fprintf(w, "                           raising signals %d = opened %d + linked %d + %d already reported (shadow signals %d, other changes %d)\n",
		r.Signals, r.Opened, r.Linked, r.Unlinked, r.ShadowSignals, r.OtherChanges)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

func failed(n int64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d FAILED", n)
}
