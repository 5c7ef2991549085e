package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// `bench --kafka-brokers … --server-pid N` measures a server it did not start by its process:
// the CPU it spends between two readings, and its peak RSS.
func TestExternalServerMeasuresItsProcess(t *testing.T) {
	s, err := newExternalServer(os.Getpid(), "")
	if err != nil {
		t.Fatal(err)
	}
	cpu0, _, ok := s.Usage()
	if !ok {
		t.Fatal("Usage of this process: not measurable")
	}
	// Spend CPU in this process, then read again.
	spin := time.Now().Add(300 * time.Millisecond)
	x := 0
	for time.Now().Before(spin) {
		x++
	}
	cpu1, peak, ok := s.Usage()
	if !ok || x == 0 {
		t.Fatal("second Usage: not measurable")
	}
	if spent := cpu1 - cpu0; spent < 100*time.Millisecond {
		t.Errorf("CPU between the readings = %v, want at least 100ms of the 300ms spent", spent)
	}
	if peak < 1<<20 {
		t.Errorf("peak RSS = %d bytes, want the process's (over 1 MiB)", peak)
	}

	// A process that is gone is refused when the flag is read, not reported as idle.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatalf("starting `true`: %v", err)
	}
	if _, err := newExternalServer(gone.Process.Pid, ""); err == nil || !strings.Contains(err.Error(), "--server-pid") {
		t.Errorf("a finished process: %v, want an error naming --server-pid", err)
	}
	// Without --server-pid there is nothing to measure.
	if _, _, ok := (&externalServer{}).Usage(); ok {
		t.Error("Usage without a pid reported a measurement")
	}
}

// `--server-metrics` reads the samples bench needs from that server's /metrics.
func TestExternalServerReadsMetrics(t *testing.T) {
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "# HELP urbanbrain_storage_rows_total Records written to the store, by sink.")
		fmt.Fprintln(w, `urbanbrain_storage_rows_total{sink="storage.events"} 1234`)
		fmt.Fprintln(w, `urbanbrain_storage_rows_total{sink="storage.incidents"} 56`)
	}))
	defer prom.Close()
	s, err := newExternalServer(0, prom.URL+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		labels string
		want   float64
		ok     bool
	}{{`sink="storage.events"`, 1234, true}, {`sink="storage.incidents"`, 56, true}, {`sink="storage.audit"`, 0, false}} {
		if v, ok := s.Metric("urbanbrain_storage_rows_total", c.labels); v != c.want || ok != c.ok {
			t.Errorf("Metric(%s) = %v, %v; want %v, %v", c.labels, v, ok, c.want, c.ok)
		}
	}
	if _, _, ok := s.Usage(); ok {
		t.Error("Usage without --server-pid reported a measurement")
	}
	if _, err := newExternalServer(0, "127.0.0.1:8080/metrics"); err == nil {
		t.Error("a --server-metrics without a scheme was taken")
	}
}

// The flags measure a server given with --kafka-brokers; without it bench starts its own and
// says so instead of ignoring them.
func TestBenchServerFlagsNeedKafkaBrokers(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"bench", "--server-pid", fmt.Sprint(os.Getpid()), "--duration", "1s"}, &stdout, &stderr); code == 0 ||
		!strings.Contains(stderr.String(), "--kafka-brokers") {
		t.Errorf("exit %d, stderr %q; want a failure naming --kafka-brokers", code, stderr.String())
	}
}
