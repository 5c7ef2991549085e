//go:build linux

package cockpit_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/auth/authtest"
	"github.com/urbanbrain/urbanbrain/city"
	cockpit "github.com/urbanbrain/urbanbrain/cockpit-ws"
	"github.com/urbanbrain/urbanbrain/event"
)

// The load benchmark runs the hub in a child process (this test binary again, with
// -cockpit.load-server) so that the server's CPU and memory are measured apart from the
// 1,000 clients', which run in the benchmark's own process on the same two cores.
var (
	loadServer = flag.String("cockpit.load-server", "", "internal: run as the load benchmark's server process (base64 JSON config)")
	loadPhase  = flag.Duration("cockpit.load-phase", 10*time.Second, "length of each measured phase of BenchmarkCockpitLoad")
	loadEvery  = flag.Int("cockpit.load-change-every", 10, "one event in this many is an incident change in BenchmarkCockpitLoad")
	loadRounds = flag.Int("cockpit.load-rounds", 5, "stalled phases in BenchmarkCockpitLoad, each between two reader-only phases")
)

type loadConfig struct {
	EventsPerSecond int    `json:"events_per_second"`
	ChangeEvery     int    `json:"change_every"` // one event in this many changes an incident
	FlushInterval   string `json:"flush_interval"`
}

// phaseReport is what the server process says after each phase.
type phaseReport struct {
	Name       string        `json:"name"`
	Start      int64         `json:"start_ns"`
	End        int64         `json:"end_ns"`
	Events     int           `json:"events"`
	Changes    int           `json:"changes"`
	CPUSeconds float64       `json:"cpu_seconds"`
	Wall       float64       `json:"wall_seconds"`
	HeapMB     float64       `json:"heap_mb"` // live heap after the last GC
	RSSMB      float64       `json:"rss_mb"`
	PeakRSSMB  float64       `json:"peak_rss_mb"`
	Stats      cockpit.Stats `json:"stats"`
	// DropsAt are when (unix ns) clients were dropped as too slow during the phase.
	DropsAt []int64 `json:"drops_at"`
}

// BenchmarkCockpitLoad: 1,000 cockpit connections (seven distinct subscriptions: city-wide
// masked and unmasked, four districts, red-and-orange) while the hub takes 2,000 events a
// second, one in ten of them an incident change. It measures, per phase, the latency from
// the change being accepted by the hub (HandleIncidentChange) to each client receiving the
// frame that carries it, and the server process's CPU and memory. Reader-only phases
// alternate with "stalled" phases, which add 10 clients that never read: the others' latency
// must not move, and the 10 must be dropped. Alternating, and comparing medians over phases,
// keeps the other load on the shared machine from deciding the comparison.
//
//	go test -run '^$' -bench CockpitLoad -benchtime 1x ./cockpit-ws/ [-args -cockpit.load-phase 10s -cockpit.load-rounds 5 -cockpit.load-change-every 10]
func BenchmarkCockpitLoad(b *testing.B) {
	for range b.N {
		runLoad(b, loadConfig{EventsPerSecond: 2000, ChangeEvery: *loadEvery, FlushInterval: "250ms"}, 1000, 10, *loadPhase)
	}
}

// audience is who the load clients are: a share of the 1,000 connections each.
var audience = []struct {
	name   string
	claims auth.Claims
	query  []string
	share  int // per thousand
}{
	{"city, masked (viewer)", auth.Claims{Subject: "wall", Role: auth.RoleViewer}, nil, 400},
	{"city, unmasked (supervisor)", auth.Claims{Subject: "sup", Role: auth.RoleSupervisor}, nil, 100},
	{"district 990101", auth.Claims{Subject: "d1", Role: auth.RoleViewer}, []string{"district=990101"}, 100},
	{"district 990102", auth.Claims{Subject: "d2", Role: auth.RoleViewer}, []string{"district=990102"}, 100},
	{"district 990103", auth.Claims{Subject: "d3", Role: auth.RoleViewer}, []string{"district=990103"}, 100},
	{"district 990104", auth.Claims{Subject: "d4", Role: auth.RoleViewer}, []string{"district=990104"}, 100},
	{"red and orange", auth.Claims{Subject: "sev", Role: auth.RoleViewer}, []string{"severity=red,orange"}, 100},
}

type loadReader struct {
	group int
	ws    *websocket.Conn
	seqs  []uint64
	recv  []int64
	err   error
}

func runLoad(b *testing.B, cfg loadConfig, readers, stalled int, phase time.Duration) {
	raw, _ := json.Marshal(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestLoadServerProcess$", "-test.bench=^$",
		"-cockpit.load-server="+base64.StdEncoding.EncodeToString(raw))
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Wait() }()
	out := bufio.NewScanner(stdout)
	out.Buffer(make([]byte, 1<<20), 1<<20)
	readLine := func(v any) {
		for out.Scan() {
			line := out.Bytes()
			if len(line) > 0 && line[0] == '{' {
				if err := json.Unmarshal(line, v); err != nil {
					b.Fatalf("server said %s: %v", line, err)
				}
				return
			}
		}
		b.Fatalf("server process ended: %v", out.Err())
	}
	var hello struct {
		URL    string   `json:"url"`
		Tokens []string `json:"tokens"`
	}
	readLine(&hello)

	var rs []*loadReader
	var wg sync.WaitGroup
	dialer := &websocket.Dialer{HandshakeTimeout: 30 * time.Second}
	for g, a := range audience {
		for range a.share * readers / 1000 {
			u := hello.URL + "?" + query(hello.Tokens[g], append([]string{"kpi=1"}, a.query...)...)
			ws, resp, err := dialer.Dial(u, nil)
			if err != nil {
				b.Fatalf("dial %d: %v %s", len(rs), err, body(resp))
			}
			rs = append(rs, &loadReader{group: g, ws: ws, seqs: make([]uint64, 0, 4096), recv: make([]int64, 0, 4096)})
		}
	}
	// The first reader of each group learns which changes each seq carried (their accept
	// times); the others only note when each seq arrived, so the clients stay cheap.
	var acceptsMu sync.Mutex
	accepts := make([]map[uint64][]int64, len(audience))
	for g := range accepts {
		accepts[g] = map[uint64][]int64{}
	}
	keeper := map[int]*loadReader{}
	for _, r := range rs {
		if keeper[r.group] == nil {
			keeper[r.group] = r
		}
	}
	for _, r := range rs {
		wg.Go(func() {
			var buf bytes.Buffer
			keep := keeper[r.group] == r
			for {
				_, rd, err := r.ws.NextReader()
				if err != nil {
					r.err = err
					return
				}
				buf.Reset()
				if _, err := buf.ReadFrom(rd); err != nil {
					r.err = err
					return
				}
				now := time.Now().UnixNano()
				msg := buf.Bytes()
				if !bytes.HasPrefix(msg, []byte(`{"type":"delta","seq":`)) {
					continue
				}
				rest := msg[len(`{"type":"delta","seq":`):]
				seq, _ := strconv.ParseUint(string(rest[:bytes.IndexByte(rest, ',')]), 10, 64)
				r.seqs = append(r.seqs, seq)
				r.recv = append(r.recv, now)
				if keep {
					var f struct {
						Upsert []struct {
							UpdatedAt time.Time `json:"updated_at"`
						} `json:"upsert"`
					}
					if err := json.Unmarshal(msg, &f); err != nil {
						r.err = err
						return
					}
					times := make([]int64, len(f.Upsert))
					for i, u := range f.Upsert {
						times[i] = u.UpdatedAt.UnixNano()
					}
					acceptsMu.Lock()
					accepts[r.group][seq] = times
					acceptsMu.Unlock()
				}
			}
		})
	}

	send := func(cmd string) phaseReport {
		if _, err := fmt.Fprintln(stdin, cmd); err != nil {
			b.Fatal(err)
		}
		var rep phaseReport
		readLine(&rep)
		return rep
	}
	// Phases alternate, so that the machine's other load falls on both kinds alike: readers
	// only, then with 10 new clients that never read, and so on.
	var reports []phaseReport
	var stalls []*websocket.Conn
	var stalledAt []int64 // when each batch of stalled clients connected
	reports = append(reports, send("run warmup "+(phase/3).String()))
	names := []string{"readers"}
	for range *loadRounds {
		names = append(names, "stalled", "readers")
	}
	for i, name := range names {
		if name == "stalled" {
			stalledAt = append(stalledAt, time.Now().UnixNano())
			for range stalled {
				ws, resp, err := dialer.Dial(hello.URL+"?"+query(hello.Tokens[0], "kpi=1"), nil)
				if err != nil {
					b.Fatalf("dial a stalled client: %v %s", err, body(resp))
				}
				stalls = append(stalls, ws) // and never read from it
			}
		}
		reports = append(reports, send(fmt.Sprintf("run %s-%d %s", name, i/2+1, phase)))
	}
	time.Sleep(time.Second) // the last tick's frames are on their way
	final := send("stats")
	for _, ws := range stalls {
		_ = ws.Close()
	}
	for _, r := range rs {
		_ = r.ws.Close()
	}
	wg.Wait()
	_ = stdin.Close()

	// Latency of every (client, change) pair, by the phase the change was accepted in; in
	// stalled phases also while the stalled clients were still connected.
	type window struct {
		name       string
		start, end int64
		rep        *phaseReport
	}
	var windows []window
	var drops []int64
	for i := range reports {
		rep := &reports[i]
		windows = append(windows, window{rep.Name, rep.Start, rep.End, rep})
		drops = append(drops, rep.DropsAt...)
	}
	var dropNotes []string
	for i, at := range stalledAt {
		next := int64(1 << 62)
		if i+1 < len(stalledAt) {
			next = stalledAt[i+1]
		}
		var mine []int64
		for _, d := range drops {
			if d >= at && d < next {
				mine = append(mine, d)
			}
		}
		if len(mine) == 0 {
			continue
		}
		last := slices.Max(mine)
		windows = append(windows, window{fmt.Sprintf("stalled-%d, until dropped", i+1), at, last, nil})
		dropNotes = append(dropNotes, fmt.Sprintf("stalled batch %d: %d of %d dropped as too slow, %.1f s to %.1f s after connecting",
			i+1, len(mine), stalled, float64(slices.Min(mine)-at)/1e9, float64(last-at)/1e9))
	}
	lat := make([][]int64, len(windows))
	disconnected := 0
	for _, r := range rs {
		if r.err != nil && !strings.Contains(r.err.Error(), "use of closed network connection") {
			disconnected++
		}
		for i, seq := range r.seqs {
			for _, acc := range accepts[r.group][seq] {
				for w, win := range windows {
					if acc >= win.start && acc < win.end {
						lat[w] = append(lat[w], r.recv[i]-acc)
					}
				}
			}
		}
	}
	// Printed, not logged: the testing package trims a benchmark's log to a few lines.
	var report strings.Builder
	logf := func(format string, args ...any) { fmt.Fprintf(&report, format+"\n", args...) }
	logf("%d readers (%d disconnected before the end), %d stalled per stalled phase; %d events/s, one in %d a change; tick %s",
		len(rs), disconnected, stalled, cfg.EventsPerSecond, cfg.ChangeEvery, cfg.FlushInterval)
	logf("%-26s %8s %9s %9s %9s %9s %10s %6s %8s %8s %8s", "phase", "changes", "samples", "p50", "p90", "p99", "max", "cpu", "live MB", "rss MB", "dropped")
	p99s := map[string][]float64{}
	for w, win := range windows {
		l := lat[w]
		slices.Sort(l)
		q := func(x float64) time.Duration {
			if len(l) == 0 {
				return 0
			}
			return time.Duration(l[min(len(l)-1, int(x*float64(len(l))))]).Round(100 * time.Microsecond)
		}
		if win.rep == nil {
			logf("%-26s %8s %9d %9v %9v %9v %10v", win.name, "", len(l), q(.5), q(.9), q(.99), q(1))
			continue
		}
		rep := win.rep
		logf("%-26s %8d %9d %9v %9v %9v %10v %5.0f%% %8.1f %8.1f %8d", rep.Name, rep.Changes, len(l), q(.5), q(.9), q(.99), q(1),
			100*rep.CPUSeconds/rep.Wall, rep.HeapMB, rep.RSSMB, len(rep.DropsAt))
		if kind, _, ok := strings.Cut(rep.Name, "-"); ok {
			p99s[kind] = append(p99s[kind], float64(q(.99).Microseconds())/1000)
			b.ReportMetric(float64(q(.5).Microseconds())/1000, rep.Name+"-p50-ms")
			b.ReportMetric(float64(q(.99).Microseconds())/1000, rep.Name+"-p99-ms")
			b.ReportMetric(100*rep.CPUSeconds/rep.Wall, rep.Name+"-cpu-%")
		}
	}
	for _, n := range dropNotes {
		logf("%s", n)
	}
	med := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
	if len(p99s["readers"]) > 0 && len(p99s["stalled"]) > 0 {
		r, st := med(p99s["readers"]), med(p99s["stalled"])
		logf("p99 of the reading clients: median %.1f ms in reader-only phases %v, %.1f ms in phases with stalled clients %v: %+.1f%%",
			r, p99s["readers"], st, p99s["stalled"], 100*(st-r)/r)
	}
	logf("server: peak RSS %.1f MB; connections at the end %d (of %d readers); slow dropped %d, write timeouts %d; %d frames for %d changes",
		final.PeakRSSMB, final.Stats.Connections, len(rs), final.Stats.SlowDropped, final.Stats.WriteTimeouts, final.Stats.Frames, final.Stats.Changes)
	fmt.Print(report.String())
	if gone := final.Stats.SlowDropped + final.Stats.WriteTimeouts; gone < uint64(len(stalls)) {
		b.Errorf("%d of %d stalled clients were dropped", gone, len(stalls))
	}
	if disconnected > 0 {
		b.Errorf("%d reading clients were disconnected", disconnected)
	}
	b.ReportMetric(final.PeakRSSMB, "peak-rss-MB")
}

// TestLoadServerProcess is the server side of BenchmarkCockpitLoad; it does nothing in a
// normal test run.
func TestLoadServerProcess(t *testing.T) {
	if *loadServer == "" {
		t.Skip("the load benchmark's server process; run BenchmarkCockpitLoad")
	}
	raw, err := base64.StdEncoding.DecodeString(*loadServer)
	if err != nil {
		t.Fatal(err)
	}
	var cfg loadConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	flush, err := time.ParseDuration(cfg.FlushInterval)
	if err != nil {
		t.Fatal(err)
	}
	m, err := city.LoadDemo()
	if err != nil {
		t.Fatal(err)
	}
	iss := authtest.NewIssuer(t)
	// 400 screens share the wall token: the per-token limit is raised to what the load needs.
	hub, err := cockpit.New(cockpit.Config{City: m, FlushInterval: flush, SubjectConnections: 1 << 16}, iss, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: hub}
	go func() { _ = srv.Serve(ln) }()
	ctx, cancel := context.WithCancel(context.Background())
	hubDone := make(chan error, 1)
	go func() { hubDone <- hub.Run(ctx) }()
	defer func() {
		cancel()
		<-hubDone
		_ = srv.Close()
	}()

	var tokens []string
	for _, a := range audience {
		tokens = append(tokens, authtest.Token(t, iss, a.claims))
	}
	say := func(v any) {
		b, _ := json.Marshal(v)
		fmt.Println(string(b))
	}
	say(map[string]any{"url": "ws://" + ln.Addr().String() + "/ws/cockpit", "tokens": tokens})

	gen := newGenerator(m)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		switch {
		case len(f) == 3 && f[0] == "run":
			d, err := time.ParseDuration(f[2])
			if err != nil {
				t.Fatal(err)
			}
			say(gen.run(hub, f[1], d, cfg))
		case len(f) == 1 && f[0] == "stats":
			say(phaseReport{Name: "final", PeakRSSMB: procStatusMB("VmHWM"), RSSMB: procStatusMB("VmRSS"), Stats: hub.Stats()})
		}
	}
}

// generator makes the load: events for the KPIs and, one in ChangeEvery, an incident change
// over a pool of incidents that move through the lifecycle and close.
type generator struct {
	rng    *rand.Rand
	grids  []city.Grid
	slots  []genIncident
	nextID int
}

type genIncident struct {
	inc  event.Incident
	open bool
}

var lifecycle = []event.Status{event.StatusNew, event.StatusDispatched, event.StatusAccepted, event.StatusInProgress, event.StatusResolved, event.StatusClosed}

func newGenerator(m *city.Map) *generator {
	return &generator{rng: rand.New(rand.NewPCG(1, 2)), grids: m.Grids(), slots: make([]genIncident, 3000)}
}

func (g *generator) change(now time.Time) event.IncidentChange {
	s := &g.slots[g.rng.IntN(len(g.slots))]
	if !s.open {
		g.nextID++
		gr := g.grids[g.rng.IntN(len(g.grids))]
		sev := []string{event.SeverityRed, event.SeverityOrange, event.SeverityYellow, event.SeverityBlue}[g.rng.IntN(4)]
		p := gr.Centroid
		s.inc = event.Incident{ID: fmt.Sprintf("INC-%s-%06d", gr.Street, g.nextID), Status: event.StatusNew,
			Category: "0202", Severity: sev, Title: gr.StreetName + gr.Name + " 12345 求助工单 积水", Area: gr.Area(), Location: &p,
			CorrelationKey: "hotline:0202:" + gr.Code, CreatedAt: now, ReportCount: 1,
			Reports: []event.Report{{EventID: fmt.Sprintf("T-%d", g.nextID), EventType: event.TypeHotlineTicket, At: now, Location: &p,
				Summary: "地下通道积水，来电13812345678", Caller: &event.Caller{Name: "王小明", Phone: "13812345678"}}}}
		s.open = true
	} else {
		i := slices.Index(lifecycle, s.inc.Status)
		s.inc.Status = lifecycle[i+1]
		if s.inc.Status == event.StatusDispatched {
			s.inc.Assignment = event.Assignment{WorkerID: "W-" + s.inc.Area.Grid + "-A", WorkerName: "陈立新", Grid: s.inc.Area.Grid}
		}
		s.open = s.inc.Status.Open()
	}
	s.inc.Version++
	inc := s.inc
	inc.Reports = slices.Clone(inc.Reports)
	inc.UpdatedAt = now // "accepted": the moment the hub is handed the change
	return event.IncidentChange{Incident: inc, Change: event.Change{Action: "load", To: inc.Status, At: now}}
}

func (g *generator) run(hub *cockpit.Hub, name string, d time.Duration, cfg loadConfig) phaseReport {
	rep := phaseReport{Name: name}
	cpu0 := cockpit.ProcessCPU()
	start := time.Now()
	rep.Start = start.UnixNano()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	s0 := hub.Stats()
	gone := s0.SlowDropped + s0.WriteTimeouts
	nextCheck := start
	for now := start; now.Sub(start) < d; now = <-tick.C {
		if now.After(nextCheck) {
			st := hub.Stats()
			for g := st.SlowDropped + st.WriteTimeouts; gone < g; gone++ {
				rep.DropsAt = append(rep.DropsAt, now.UnixNano())
			}
			nextCheck = now.Add(100 * time.Millisecond)
		}
		due := int(now.Sub(start).Seconds() * float64(cfg.EventsPerSecond))
		for ; rep.Events < due; rep.Events++ {
			t := time.Now()
			if rep.Events%cfg.ChangeEvery == 0 {
				_ = hub.HandleIncidentChange(context.Background(), g.change(t))
				rep.Changes++
				continue
			}
			gr := g.grids[g.rng.IntN(len(g.grids))]
			_ = hub.HandleEvent(context.Background(), event.Event{ID: strconv.Itoa(rep.Events), Type: event.TypeSensorReading,
				Received: t, Area: gr.Area(), Sensor: &event.SensorReading{DeviceID: fmt.Sprintf("S-%s-%d", gr.Code, g.rng.IntN(4)), Kind: "water_level", Status: "ok"}})
		}
	}
	end := time.Now()
	rep.End = end.UnixNano()
	rep.Wall = end.Sub(start).Seconds()
	rep.CPUSeconds = (cockpit.ProcessCPU() - cpu0).Seconds()
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(live)
	rep.HeapMB = float64(live[0].Value.Uint64()) / (1 << 20)
	rep.RSSMB = procStatusMB("VmRSS")
	rep.PeakRSSMB = procStatusMB("VmHWM")
	rep.Stats = hub.Stats()
	return rep
}

// procStatusMB reads a memory figure (VmRSS, VmHWM) of this process from /proc.
func procStatusMB(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}
