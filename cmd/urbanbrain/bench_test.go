//go:build linux

package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ownCPU is this process's CPU time as the kernel accounts it (getrusage), the reference the
// /proc reading is held to.
func ownCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// `bench --kafka-brokers … --server-pid N` measures a server it did not start by its process:
// the CPU it spends between two readings, and its peak RSS.
func TestExternalServerMeasuresItsProcess(t *testing.T) {
	s, err := newExternalServer(os.Getpid(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	cpu0, _, ok := s.Usage()
	ref0 := ownCPU(t)
	if !ok {
		t.Fatal("Usage of this process: not measurable")
	}
	// Spend 300 ms of CPU in this process, however long a loaded machine takes to give it.
	deadline := time.Now().Add(time.Minute)
	for ownCPU(t)-ref0 < 300*time.Millisecond && time.Now().Before(deadline) {
		for i := 0; i < 1e6; i++ {
			_ = i * i
		}
	}
	cpu1, peak, ok := s.Usage()
	ref := ownCPU(t) - ref0
	if !ok {
		t.Fatal("second Usage: not measurable")
	}
	// /proc counts in ticks of 10 ms, and other goroutines of the test binary spend a little.
	if got := cpu1 - cpu0; got < ref-50*time.Millisecond || got > ref+50*time.Millisecond {
		t.Errorf("CPU between the readings = %v, the kernel's own count %v", got, ref)
	}
	if peak < 1<<20 {
		t.Errorf("peak RSS = %d bytes, want the process's (over 1 MiB)", peak)
	}

	// A process that is gone is refused when the flag is read, not reported as idle.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatalf("starting `true`: %v", err)
	}
	if _, err := newExternalServer(gone.Process.Pid, "", ""); err == nil || !strings.Contains(err.Error(), "--server-pid") {
		t.Errorf("a finished process: %v, want an error naming --server-pid", err)
	}
	// Without --server-pid there is nothing to measure.
	if _, _, ok := (&externalServer{}).Usage(); ok {
		t.Error("Usage without a pid reported a measurement")
	}
}

// `--server-metrics` reads the samples bench needs from that server's /metrics, with --token
// where the server wants one, and a /metrics it cannot read is said at the start.
func TestExternalServerReadsMetrics(t *testing.T) {
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer op-token" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Fprintln(w, "# HELP urbanbrain_storage_rows_total Records written to the store, by sink.")
		fmt.Fprintln(w, `urbanbrain_storage_rows_total{sink="storage.events"} 1234`)
		fmt.Fprintln(w, `urbanbrain_storage_rows_total{sink="storage.incidents"} 56`)
	}))
	defer prom.Close()
	s, err := newExternalServer(0, prom.URL+"/metrics", "op-token")
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
	if _, err := newExternalServer(0, prom.URL+"/metrics", ""); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a /metrics that wants a token, without one: %v, want the 401 at the start", err)
	}
	if _, err := newExternalServer(0, "127.0.0.1:8080/metrics", ""); err == nil {
		t.Error("a --server-metrics without a scheme was taken")
	}
}

// The flags measure a server given with --kafka-brokers; without it bench says so instead of
// starting a server of its own and ignoring them.
func TestBenchServerFlagsNeedKafkaBrokers(t *testing.T) {
	t.Setenv(benchServerEnv, "") // were the check lost, bench must not become a server here
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"bench", "--server-pid", fmt.Sprint(os.Getpid()), "--duration", "1s"}, &stdout, &stderr)
	}()
	select {
	case code := <-done:
		if code == 0 || !strings.Contains(stderr.String(), "--kafka-brokers") {
			t.Errorf("exit %d, stderr %q; want a failure naming --kafka-brokers", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("bench started a load instead of refusing the flags")
	}
}
