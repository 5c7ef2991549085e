package app

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/storage/clickhouse/clickhousetest"
	"github.com/urbanbrain/urbanbrain/transport"
)

// TestHelperBrokerProcess is not a test: run by brokerProcess as a child process, it serves the
// embedded Kafka-protocol broker until its stdin closes. The fault test keeps the broker out of
// its own process so that the process's memory shows only what the app holds, not the backlog.
func TestHelperBrokerProcess(t *testing.T) {
	addr := os.Getenv("URBANBRAIN_HELPER_BROKER")
	if addr == "" {
		return
	}
	parts := 3
	if p, err := strconv.Atoi(os.Getenv("URBANBRAIN_HELPER_PARTITIONS")); err == nil {
		parts = p
	}
	emb, err := transport.StartEmbedded(transport.EmbeddedConfig{
		DataDir: os.Getenv("URBANBRAIN_HELPER_BROKER_DIR"), Listen: addr, Partitions: parts, Topics: event.AllTopics(),
	}, zap.NewNop())
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper broker:", err)
		os.Exit(2)
	}
	buf := make([]byte, 1)
	_, _ = os.Stdin.Read(buf) // returns when the parent closes the pipe or dies
	_ = emb.Close()
	os.Exit(0)
}

// brokerProcess starts the embedded broker in a child process and returns its address.
func brokerProcess(t testing.TB, env ...string) string {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperBrokerProcess$")
	cmd.Env = append(os.Environ(), "URBANBRAIN_HELPER_BROKER="+addr, "URBANBRAIN_HELPER_BROKER_DIR="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	eventually(t, 30*time.Second, "the broker process to listen", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	return addr
}

// feed writes records to the broker in batches, signed, the way upstream stages would: through
// the app's own producer.
type feed struct {
	t *testing.T
	a *App
}

func newFeed(t *testing.T, a *App) *feed { return &feed{t: t, a: a} }

func (f *feed) send(topic string, recs [][2]string) { // key, value
	f.t.Helper()
	for start := 0; start < len(recs); start += 500 {
		var msgs []kafka.Message
		for _, r := range recs[start:min(start+500, len(recs))] {
			msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte(r[0]), Value: []byte(r[1])})
		}
		if err := f.a.write(f.t.Context(), msgs...); err != nil {
			f.t.Fatalf("write to %s: %v", topic, err)
		}
	}
}

// sensorRecords are n sensor readings with ids prefix-0..n-1, padded to about 2.5 KB each so
// that a backlog is clearly bigger than anything the app should hold.
func sensorRecords(t *testing.T, prefix string, n int, base time.Time) [][2]string {
	pad := strings.Repeat("x", 2000)
	out := make([][2]string, n)
	for i := range out {
		street := fmt.Sprintf("s%d", i%7)
		e := event.Event{
			ID: fmt.Sprintf("%s-%06d", prefix, i), Type: event.TypeSensorReading, Source: "iot/test",
			Time: base.Add(time.Duration(i) * time.Millisecond), Received: base,
			Location: &event.Point{Lon: 120.15, Lat: 30.27},
			Area:     event.Area{District: "d1", Street: street, Grid: "g1"},
			Sensor:   &event.SensorReading{DeviceID: fmt.Sprintf("dev-%d", i%100), Kind: "water_level", Status: pad},
		}
		b, err := event.Encode(event.TypeSensorReading, e.ID, e.Time, e)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = [2]string{street, string(b)}
	}
	return out
}

// changelogRecords are n incidents with seven versions each, and one dispatch per incident.
func changelogRecords(t *testing.T, prefix string, n int, base time.Time) (changes, dispatches [][2]string) {
	steps := []event.Status{event.StatusNew, event.StatusNew, event.StatusDispatched, event.StatusAccepted,
		event.StatusInProgress, event.StatusResolved, event.StatusClosed}
	for i := range n {
		street := fmt.Sprintf("s%d", i%7)
		inc := event.Incident{ID: fmt.Sprintf("INC-%s-%s%05d", street, prefix, i), Category: "0401", Severity: event.SeverityYellow,
			Area: event.Area{District: "d1", Street: street, Grid: "g1"}, CreatedAt: base}
		for v, st := range steps {
			inc.Version, inc.Status, inc.UpdatedAt = int64(v+1), st, base.Add(time.Duration(v)*time.Minute)
			c := event.IncidentChange{Incident: inc, Change: event.Change{Action: "step", To: st, At: inc.UpdatedAt}}
			b, err := event.Encode(event.TypeIncidentChanged, fmt.Sprintf("%s/%d", inc.ID, v+1), inc.UpdatedAt, c)
			if err != nil {
				t.Fatal(err)
			}
			changes = append(changes, [2]string{street, string(b)})
		}
		d := event.Dispatch{ID: inc.ID + "/3", IncidentID: inc.ID, Assignment: event.Assignment{WorkerID: "w1"}, At: base}
		b, err := event.Encode(event.TypeDispatch, d.ID, d.At, d)
		if err != nil {
			t.Fatal(err)
		}
		dispatches = append(dispatches, [2]string{street, string(b)})
	}
	return changes, dispatches
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// ClickHouse stops while events and incident versions keep arriving and comes back later: the
// storage sinks stop consuming (the backlog stays in Kafka, and the process's memory does not
// grow with it), then catch up, and every event, incident version and dispatch is stored
// exactly once.
func TestStorageClickHouseDownThenBack(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: starts ClickHouse and a broker process")
	}
	srv := clickhousetest.New(t)
	broker := brokerProcess(t)
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.KafkaBrokers = []string{broker}
	cfg.Partitions = 3
	cfg.Components = []string{CompStorage}
	cfg.Store = StoreClickHouse
	cfg.ClickHouseAddrs = []string{srv.Addr()}
	cfg.ClickHouseDatabase = "fault"
	cfg.StoreBatchSize = 1000
	cfg.StoreFlushInterval = 100 * time.Millisecond
	r := startCfg(t, cfg)
	a := r.app
	f := newFeed(t, a)
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)

	conn, err := ch.Open(&ch.Options{Addr: []string{srv.Addr()}, Auth: ch.Auth{Database: "fault"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	count := func(query string) (uint64, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var n uint64
		err := conn.QueryRow(ctx, query).Scan(&n)
		return n, err
	}
	waitCount := func(what, query string, want uint64) {
		t.Helper()
		var last uint64
		eventually(t, 120*time.Second, fmt.Sprintf("%s: %d", what, want), func() bool {
			n, err := count(query)
			last = n
			return err == nil && n == want
		})
		_ = last
	}

	// 1. ClickHouse is up.
	const before, backlog, incBefore, incBacklog = 2_000, 25_000, 50, 300
	f.send(event.TopicEvents, sensorRecords(t, "up", before, base))
	chg, dsp := changelogRecords(t, "up", incBefore, base)
	f.send(event.TopicIncidents, chg)
	f.send(event.TopicDispatch, dsp)
	waitCount("events while up", "SELECT count() FROM events FINAL", before)
	waitCount("incident versions while up", "SELECT count() FROM incident_changes FINAL", incBefore*7)

	// 2. ClickHouse goes down; the sinks notice on their next write and stop consuming.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	f.send(event.TopicEvents, sensorRecords(t, "probe", 10, base))
	eventually(t, 60*time.Second, "a failed store write", func() bool {
		return counterValue(t, a, "urbanbrain_storage_write_failures_total") > 0
	})
	heapBefore := heapInUse()
	events := sensorRecords(t, "down", backlog, base)
	backlogBytes := 0
	for _, r := range events {
		backlogBytes += len(r[1])
	}
	f.send(event.TopicEvents, events)
	chg, dsp = changelogRecords(t, "down", incBacklog, base)
	f.send(event.TopicIncidents, chg)
	f.send(event.TopicDispatch, dsp)
	events, chg, dsp = nil, nil, nil
	// Let the sinks try to take more while the store is down: they must not.
	failures := counterValue(t, a, "urbanbrain_storage_write_failures_total")
	eventually(t, 60*time.Second, "more failed writes", func() bool {
		return counterValue(t, a, "urbanbrain_storage_write_failures_total") >= failures+3
	})
	heapAfter := heapInUse()
	growth := int64(heapAfter) - int64(heapBefore)
	t.Logf("backlog %d records (%.1f MB) while ClickHouse was down; heap %.1f MB → %.1f MB (%+.1f MB); most rows held %d",
		backlog+incBacklog*8, float64(backlogBytes)/1e6, float64(heapBefore)/1e6, float64(heapAfter)/1e6, float64(growth)/1e6,
		a.sinks.maxPending.Load())
	if limit := int64(backlogBytes / 5); growth > limit {
		t.Errorf("heap grew by %.1f MB with a %.1f MB backlog; want under %.1f MB: the backlog must stay in Kafka",
			float64(growth)/1e6, float64(backlogBytes)/1e6, float64(limit)/1e6)
	}
	if held := a.sinks.maxPending.Load(); held > int64(cfg.StoreBatchSize) {
		t.Errorf("a sink held %d records; want at most the batch size %d", held, cfg.StoreBatchSize)
	}

	// 3. ClickHouse comes back: everything arrives, exactly once.
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	totalEvents := uint64(before + 10 + backlog)
	totalIncidents := uint64(incBefore + incBacklog)
	waitCount("all events", "SELECT count() FROM events FINAL", totalEvents)
	waitCount("all incident versions", "SELECT count() FROM incident_changes FINAL", totalIncidents*7)
	waitCount("all dispatches", "SELECT count() FROM dispatches FINAL", totalIncidents)
	for _, c := range []struct {
		what  string
		query string
		want  uint64
	}{
		{"distinct events", "SELECT uniqExact(type, id) FROM events", totalEvents},
		{"events read", "SELECT count() FROM events FINAL", totalEvents},
		{"distinct incident versions", "SELECT uniqExact(incident_id, version) FROM incident_changes", totalIncidents * 7},
		{"incidents", "SELECT count() FROM incidents FINAL", totalIncidents},
		{"incidents not at their last version", "SELECT countIf(version != 7) FROM incidents FINAL", 0},
	} {
		n, err := count(c.query)
		if err != nil || n != c.want {
			t.Errorf("%s = %d (%v), want %d", c.what, n, err, c.want)
		}
	}
	// And through the store's own API.
	n, err := a.store.CountIncidents(context.Background(), storage.IncidentFilter{})
	if err != nil || n != int(totalIncidents) {
		t.Errorf("CountIncidents = %d (%v), want %d", n, err, totalIncidents)
	}
}

// counterValue sums a counter of the app's registry over its labels.
func counterValue(t *testing.T, a *App, name string) float64 {
	t.Helper()
	mfs, err := a.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
