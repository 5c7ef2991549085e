package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/urbanbrain/urbanbrain/app"
	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/simulate/loadbench"
)

// benchServerEnv, set in the environment of a child `urbanbrain bench`, makes it the server
// under test instead of the benchmark: the server then runs in a process of its own, so its
// CPU and memory are measured apart from the load generator's and the clients'.
const benchServerEnv = "UB_BENCH_SERVER_DIR"

func benchCommand(stdout, stderr io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("urbanbrain bench", flag.ContinueOnError)
	var (
		rate       = fs.Float64("rate", 0, "events per second; 0 = flat out (bounded by --max-backlog)")
		duration   = fs.Duration("duration", 60*time.Second, "how long to load the server")
		clients    = fs.Int("clients", 10, "cockpit websocket clients")
		maxBacklog = fs.Int64("max-backlog", 5000, "flat out: events acknowledged and not yet through every stage")
		drain      = fs.Duration("drain", 2*time.Minute, "how long to wait after the load for the lag to reach zero")
		seed       = fs.Int64("seed", 1, "simulator seed")
		jsonOut    = fs.Bool("json", false, "print the report as JSON")
		brokers    = fs.String("kafka-brokers", "", "drive the urbanbrain consuming from this cluster instead of starting one (server CPU and memory are then not measured, unless --server-pid)")
		serverPID  = fs.Int("server-pid", 0, "with --kafka-brokers: the process id of that urbanbrain, on this machine, whose CPU and peak RSS to measure (Linux /proc)")
		metricsURL = fs.String("server-metrics", "", "with --kafka-brokers: that urbanbrain's /metrics URL, e.g. http://127.0.0.1:8080/metrics, for the stored count (with --token when it needs one)")
		cockpitURL = fs.String("cockpit-url", "", "with --kafka-brokers: base URL of that urbanbrain's websockets, e.g. ws://host:8080")
		token      = fs.String("token", "", "with --cockpit-url: a token for /ws/cockpit; with --server-metrics: for /metrics too")
		partitions = fs.Int("partitions", 0, fmt.Sprintf("partitions per topic of the embedded server (default %d, as serve's)", app.EmbeddedPartitions))
		keep       = fs.Bool("keep", false, "keep the embedded server's data directory")
		logLevel   = fs.String("log-level", "warn", "debug, info, warn or error")
		cpuProfile = fs.String("server-cpuprofile", "", "write the embedded server's CPU profile to this file (go tool pprof)")
		brokerSync = fs.Bool("broker-sync", true, "the embedded server's --broker-sync: acknowledge a write only once it is on the disk")
	)
	var kafkaSec app.Config // with --kafka-brokers: --kafka-tls*, --kafka-sasl-*, as serve's
	kafkaSec.RegisterKafkaClientFlags(fs)
	return &ffcli.Command{
		Name:       "bench",
		ShortUsage: "urbanbrain bench [--rate N|0] [--duration D] [--clients N] [--json] [--kafka-brokers B]",
		ShortHelp:  "end-to-end load benchmark: start the embedded default, drive it with simulated traffic, report",
		LongHelp: "Starts urbanbrain with the embedded broker and SQLite in a child process on 127.0.0.1 with a\n" +
			"temporary data directory, opens --clients cockpit websockets, sends simulated traffic at --rate\n" +
			"(0: flat out) for --duration, waits for the lag to drain, and reports the sustained rate through\n" +
			"every stage, the server's CPU and peak RSS, latencies, lag and the counts that prove nothing\n" +
			"was lost. docs/performance.md says how each figure is measured.",
		FlagSet: fs,
		Exec: func(ctx context.Context, _ []string) error {
			if dir := os.Getenv(benchServerEnv); dir != "" {
				return benchServe(ctx, dir, *partitions, *logLevel, *cpuProfile, *brokerSync, stderr)
			}
			log, err := newLogger(*logLevel, "console", stderr)
			if err != nil {
				return err
			}
			m, err := loadCity("")
			if err != nil {
				return err
			}
			cfg := loadbench.Config{Rate: *rate, Duration: *duration, Clients: *clients, MaxBacklog: *maxBacklog,
				Drain: *drain, Seed: *seed, Progress: stderr, Log: log}
			if *brokers == "" && (*serverPID != 0 || *metricsURL != "") {
				return errors.New("bench: --server-pid and --server-metrics measure a server given with --kafka-brokers")
			}
			if *brokers != "" {
				cfg.Brokers, cfg.CockpitURL, cfg.Token = splitComma(*brokers), *cockpitURL, *token
				if *serverPID != 0 || *metricsURL != "" {
					srv, err := newExternalServer(*serverPID, *metricsURL, *token)
					if err != nil {
						return err
					}
					cfg.Server = srv
				}
				kafkaSec.KafkaBrokers = cfg.Brokers
				if cfg.Security, err = kafkaSec.KafkaSecurity(); err != nil {
					return err
				}
				if cfg.CockpitURL == "" {
					cfg.Clients = 0
				}
			} else {
				srv, err := startBenchServer(ctx, *partitions, *logLevel, *cpuProfile, *brokerSync, *keep, stderr)
				if err != nil {
					return err
				}
				defer srv.stop(stderr)
				cfg.Brokers, cfg.CockpitURL, cfg.Token, cfg.Server = []string{srv.broker}, "ws://"+srv.http, srv.token, srv
			}
			fmt.Fprintf(stderr, "bench: loading for %v ...\n", *duration)
			rep, err := loadbench.Run(ctx, cfg, m)
			if err != nil {
				return err
			}
			return writeReport(stdout, *jsonOut, rep, func() { rep.Print(stdout) })
		},
	}
}

// benchServer is the child process running the server under test.
type benchServer struct {
	cmd          *exec.Cmd
	stdin        io.WriteCloser
	dir          string
	keep         bool
	http, broker string
	token        string
	peak         int64
}

func freeLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startBenchServer(ctx context.Context, partitions int, logLevel, cpuProfile string, brokerSync, keep bool, stderr io.Writer) (*benchServer, error) {
	dir, err := os.MkdirTemp("", "urbanbrain-bench-")
	if err != nil {
		return nil, err
	}
	s := &benchServer{dir: dir, keep: keep}
	// The signing key is made here, so the benchmark can sign its clients' tokens.
	key, err := auth.LoadOrCreateKey(dir)
	if err != nil {
		return nil, err
	}
	if s.token, err = auth.NewIssuer(key, app.TokenIssuer).Issue(auth.Claims{Subject: "bench", Role: auth.RoleOperator}, auth.MaxTTL(auth.RoleOperator)); err != nil {
		return nil, err
	}
	if s.http, err = freeLoopback(); err != nil {
		return nil, err
	}
	if s.broker, err = freeLoopback(); err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if cpuProfile != "" {
		if cpuProfile, err = filepath.Abs(cpuProfile); err != nil {
			return nil, err
		}
	}
	s.cmd = exec.Command(exe, "bench", "--partitions", strconv.Itoa(partitions), "--log-level", logLevel, "--server-cpuprofile", cpuProfile,
		"--broker-sync="+strconv.FormatBool(brokerSync))
	s.cmd.Env = append(os.Environ(), benchServerEnv+"="+dir, "UB_BENCH_HTTP="+s.http, "UB_BENCH_BROKER="+s.broker)
	s.cmd.Stdout, s.cmd.Stderr = stderr, stderr
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "bench: server (pid %d) starting on %s, broker %s, data in %s\n", s.cmd.Process.Pid, s.http, s.broker, dir)
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get("http://" + s.http + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop(stderr)
			return nil, errors.New("bench: the server did not become ready within 90s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Usage reads the child's CPU time and peak RSS.
func (s *benchServer) Usage() (time.Duration, int64, bool) {
	return procUsage(s.cmd.Process.Pid, &s.peak)
}

// Metric reads one sample from the server's /metrics.
func (s *benchServer) Metric(name, labels string) (float64, bool) {
	v, err := metricAt("http://"+s.http+"/metrics", "", name, labels)
	return v, err == nil
}

// externalServer is a server bench did not start (--kafka-brokers), measured by its process id
// (--server-pid) and its /metrics (--server-metrics), either or both.
type externalServer struct {
	pid            int
	metrics, token string
	peak           int64
}

func newExternalServer(pid int, metrics, token string) (*externalServer, error) {
	s := &externalServer{pid: pid, metrics: metrics, token: token}
	if pid != 0 {
		if _, _, ok := s.Usage(); !ok {
			return nil, fmt.Errorf("bench: --server-pid %d: no such process to measure here (/proc/%d/stat)", pid, pid)
		}
	}
	if metrics != "" {
		if u, err := url.Parse(metrics); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("bench: --server-metrics %q: want an http(s) URL of /metrics", metrics)
		}
		// Read it once now: a wrong address, path or token is said at the start, not by a
		// figure missing from the report. (A server without a storage sink has no such sample.)
		if _, err := metricAt(metrics, token, "urbanbrain_storage_rows_total", ""); err != nil && !errors.Is(err, errNoSample) {
			return nil, fmt.Errorf("bench: --server-metrics: %w", err)
		}
	}
	return s, nil
}

func (s *externalServer) Usage() (time.Duration, int64, bool) {
	if s.pid == 0 {
		return 0, 0, false
	}
	return procUsage(s.pid, &s.peak)
}

func (s *externalServer) Metric(name, labels string) (float64, bool) {
	if s.metrics == "" {
		return 0, false
	}
	v, err := metricAt(s.metrics, s.token, name, labels)
	return v, err == nil
}

// procUsage reads a process's CPU time (/proc/<pid>/stat) and raises *peak to its peak RSS
// (VmHWM) so far; ok is false where there is no such process to read.
func procUsage(pid int, peak *int64) (cpu time.Duration, peakRSS int64, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0, 0, false
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // utime: field 14 of the line
	st, _ := strconv.ParseInt(f[12], 10, 64) // stime: field 15
	const ticks = 100                        // USER_HZ on Linux
	cpu = time.Duration(ut+st) * time.Second / ticks
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		sc := bufio.NewScanner(strings.NewReader(string(st)))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				*peak = max(*peak, kb<<10)
			}
		}
	}
	return cpu, *peak, true
}

// errNoSample: the metrics were read, and name with those labels was not among them.
var errNoSample = errors.New("no such sample")

// metricsClient reads /metrics; a server that stops answering does not hold the report up.
var metricsClient = &http.Client{Timeout: 10 * time.Second}

// metricAt reads one sample from the Prometheus text at addr (with token as a bearer token,
// if any): the first line of name whose labels contain labels.
func metricAt(addr, token, name, labels string) (float64, error) {
	req, err := http.NewRequest(http.MethodGet, addr, nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden:
		return 0, fmt.Errorf("GET %s: %s (a server with --metrics-token-required needs --token, of a role that may read incidents)", addr, resp.Status)
	default:
		return 0, fmt.Errorf("GET %s: %s", addr, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || !strings.Contains(line, labels) {
			continue
		}
		f := strings.Fields(line)
		return strconv.ParseFloat(f[len(f)-1], 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errNoSample
}

func (s *benchServer) stop(stderr io.Writer) {
	_ = s.stdin.Close() // the child stops when its stdin closes
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			fmt.Fprintf(stderr, "bench: server exited: %v\n", err)
		}
	case <-time.After(60 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	if s.keep {
		fmt.Fprintf(stderr, "bench: data kept in %s\n", s.dir)
		return
	}
	_ = os.RemoveAll(s.dir)
}

// benchServe is the child: the embedded default (broker, SQLite, every component) on the
// addresses its parent chose, until its stdin closes or it is signalled.
func benchServe(ctx context.Context, dir string, partitions int, logLevel, cpuProfile string, brokerSync bool, stderr io.Writer) error {
	log, err := newLogger(logLevel, "console", stderr)
	if err != nil {
		return err
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	cfg := app.DefaultConfig()
	cfg.DataDir = dir
	cfg.HTTPAddr = os.Getenv("UB_BENCH_HTTP")
	cfg.BrokerListen = os.Getenv("UB_BENCH_BROKER")
	cfg.Partitions = partitions
	cfg.BrokerSync = brokerSync
	cfg.LogLevel = logLevel
	cfg.DataDir = filepath.Clean(dir)
	// Every bench client shares the one bench token: the per-token websocket limit is lifted
	// to what --clients asks for (the limit is what the bench would otherwise measure).
	cfg.CockpitTokenConnections = cfg.CockpitMaxConnections
	a, err := app.New(cfg, log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
	go func() { // an orphaned child must not outlive its parent
		for ctx.Err() == nil {
			if os.Getppid() == 1 {
				cancel()
			}
			time.Sleep(time.Second)
		}
	}()
	return a.Run(ctx)
}
