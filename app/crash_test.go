package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/incidents"
	"github.com/urbanbrain/urbanbrain/transport"
)

// TestHelperServeProcess is not a test: run by serveProcess as a child process, it runs every
// component against the broker in URBANBRAIN_HELPER_SERVE until it is killed.
func TestHelperServeProcess(t *testing.T) {
	broker := os.Getenv("URBANBRAIN_HELPER_SERVE")
	if broker == "" {
		return
	}
	cfg := DefaultConfig()
	cfg.DataDir = os.Getenv("URBANBRAIN_HELPER_SERVE_DIR")
	cfg.HTTPAddr = os.Getenv("URBANBRAIN_HELPER_SERVE_HTTP")
	cfg.KafkaBrokers = []string{broker}
	cfg.Partitions = 3
	cfg.WorkflowPolicy = os.Getenv("URBANBRAIN_HELPER_POLICY")
	if p, err := strconv.Atoi(os.Getenv("URBANBRAIN_HELPER_PARTITIONS")); err == nil {
		cfg.Partitions = p
	}
	log := zap.NewNop()
	if os.Getenv("URBANBRAIN_HELPER_LOG") != "" { // for diagnosing a failing drill: the children's logs on stderr
		log, _ = zap.NewDevelopment()
		log = log.WithOptions(zap.IncreaseLevel(zap.InfoLevel)).With(zap.String("node", cfg.HTTPAddr))
	}
	a, err := New(cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper serve:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "helper serve:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// startNode starts the whole app in a child process on broker with data in dir and waits
// for /readyz. It can be killed with SIGKILL (a real crash) or stopped with SIGTERM.
func startNode(t testing.TB, broker, dir string, env ...string) *nodeProc {
	t.Helper()
	httpAddr := freeAddr(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperServeProcess$")
	cmd.Env = append(os.Environ(), "URBANBRAIN_HELPER_SERVE="+broker, "URBANBRAIN_HELPER_SERVE_DIR="+dir,
		"URBANBRAIN_HELPER_SERVE_HTTP="+httpAddr)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &nodeProc{http: httpAddr, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(n.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-n.exited
	})
	eventually(t, 90*time.Second, "the app process to be ready", func() bool {
		select {
		case <-n.exited:
			t.Fatalf("app process exited early")
		default:
		}
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return n
}

// demoCity is the demo city 云川市 as the binary ships it.
func demoCity(t testing.TB) *city.Map {
	t.Helper()
	demo, err := fs.Sub(city.DemoFS, "demo")
	if err != nil {
		t.Fatal(err)
	}
	m, err := city.Load(demo)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// producerTo is a bare kafka-go producer to broker, as a city's own systems would write.
func producerTo(t testing.TB, broker string) *kafka.Writer {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(broker), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, Transport: &kafka.Transport{}}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// The app is killed with SIGKILL while 12345 tickets stream in, then started again on the same
// data directory. Every stage lost whatever it had handled but not committed, and handled it
// again: the changelog must still show each ticket linked exactly once, one incident per
// ticket, and one dispatch per incident — nothing lost, nothing duplicated.
func TestCrashMidStreamLosesAndDuplicatesNothing(t *testing.T) {
	t.Parallel()
	broker := brokerProcess(t)
	dir := t.TempDir()
	app := startNode(t, broker, dir)

	// One complaint in every grid of the demo city: far enough apart that none joins another.
	cityMap := demoCity(t)
	grids := cityMap.Grids()
	w := producerTo(t, broker)
	want := map[string]bool{}
	for i, g := range grids {
		id := fmt.Sprintf("T-crash-%04d", i)
		want[id] = true
		b, _ := json.Marshal(hotlineTicket(id, event.RequestComplaint, "0401", "夜间施工噪音扰民", "13812345678", g.Centroid))
		if err := w.WriteMessages(t.Context(), kafka.Message{Topic: event.TopicIngestHotline, Key: []byte(g.Street), Value: b}); err != nil {
			t.Fatal(err)
		}
		if i == len(grids)/3 {
			// Mid-stream: the stages have records in flight, some committed, some not.
			time.Sleep(300 * time.Millisecond)
			app.kill(t)
		}
		time.Sleep(10 * time.Millisecond)
	}
	startNode(t, broker, dir)

	var (
		reports    map[string]map[string]bool // ticket → incidents it is a report of
		opened     map[string]int             // incident → open changes
		dispatched map[string]int             // incident → dispatch changes (distinct versions)
	)
	eventually(t, 90*time.Second, "every ticket to be linked and dispatched", func() bool {
		reports, opened, dispatched = map[string]map[string]bool{}, map[string]int{}, map[string]int{}
		seen := map[string]bool{} // incident/version: a record written twice counts once
		err := transport.ReadAll(t.Context(), []string{broker}, event.TopicIncidents, func(_ string, v []byte) error {
			var ch event.IncidentChange
			if _, err := event.Decode(v, event.TypeIncidentChanged, &ch); err != nil {
				return err
			}
			key := fmt.Sprintf("%s/%d", ch.Incident.ID, ch.Incident.Version)
			if seen[key] {
				return nil
			}
			seen[key] = true
			switch ch.Change.Action {
			case incidents.ActionOpen:
				opened[ch.Incident.ID]++
			case event.ActionDispatch:
				dispatched[ch.Incident.ID]++
			}
			for _, r := range ch.Incident.Reports {
				if reports[r.EventID] == nil {
					reports[r.EventID] = map[string]bool{}
				}
				reports[r.EventID][ch.Incident.ID] = true
			}
			return nil
		})
		if err != nil {
			t.Logf("read changelog: %v", err)
			return false
		}
		return len(reports) >= len(want) && len(dispatched) >= len(opened)
	})
	for id := range want {
		if n := len(reports[id]); n != 1 {
			t.Errorf("ticket %s is a report of %d incidents, want 1", id, n)
		}
	}
	if len(opened) != len(want) {
		t.Errorf("%d incidents opened for %d tickets in distinct grids", len(opened), len(want))
	}
	for inc, n := range opened {
		if n != 1 {
			t.Errorf("incident %s opened %d times", inc, n)
		}
		if dispatched[inc] != 1 {
			t.Errorf("incident %s dispatched %d times, want 1", inc, dispatched[inc])
		}
	}
	if t.Failed() {
		var ids []string
		for id := range reports {
			ids = append(ids, id)
		}
		t.Logf("tickets seen: %s", strings.Join(ids, " "))
	}
}
