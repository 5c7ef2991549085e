package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/urbanbrain/urbanbrain/app"
	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/simulate"
)

func simulateCommand(stderr io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("urbanbrain simulate", flag.ContinueOnError)
	var (
		rate        = fs.Float64("rate", 20, "events per second, all sources together")
		duration    = fs.Duration("duration", 0, "how long to run (0: until interrupted)")
		seed        = fs.Int64("seed", 0, "random seed (0: from the clock)")
		brokers     = fs.String("kafka-brokers", "127.0.0.1:9092", "Kafka brokers to produce to (ignored with --http-url)")
		httpURL     = fs.String("http-url", "", "send to this urbanbrain instead, e.g. http://127.0.0.1:8080 (POST /api/v1/events)")
		token       = fs.String("token", "", "ingest token for --http-url (urbanbrain token --role ingest)")
		cityDir     = fs.String("city-dir", "", "city data directory (default: the demo city)")
		logLevel    = fs.String("log-level", "info", "debug, info, warn or error")
		progress    = fs.Duration("progress", 5*time.Second, "print a progress line this often (0: only the summary)")
		maxInFlight = fs.Int("max-in-flight", 20000, "records awaiting the broker's acknowledgement before sending waits")
		batch       = fs.Int("batch", 500, "events per POST with --http-url")
		posts       = fs.Int("posts", 4, "POSTs in flight with --http-url")
	)
	var kafkaSec app.Config // --kafka-tls*, --kafka-sasl-*: as serve's
	kafkaSec.RegisterKafkaClientFlags(fs)
	fs.String("config", "", "YAML configuration file")
	return &ffcli.Command{
		Name:       "simulate",
		ShortUsage: "urbanbrain simulate --rate N [--duration D] [--http-url URL --token T | --kafka-brokers B]",
		ShortHelp:  "send realistic mixed demo traffic (sensors, 12345 work orders, video) to Kafka or HTTP",
		LongHelp: "Produces asynchronously in batches over the ingest topics' partitions (or in concurrent\n" +
			"batched POSTs), prints a progress line every --progress and a summary at the end. When\n" +
			"fewer than 95 % of the scheduled events were acknowledged it says why and exits with status 3.",
		FlagSet: fs,
		Options: parseOptions(),
		Exec: func(ctx context.Context, _ []string) error {
			log, err := newLogger(*logLevel, "console", stderr)
			if err != nil {
				return err
			}
			m, err := loadCity(*cityDir)
			if err != nil {
				return err
			}
			var sink simulate.Sink
			target := ""
			if *httpURL != "" {
				if *token == "" {
					return errors.New("--http-url needs --token (urbanbrain token --role ingest)")
				}
				sink = &simulate.HTTPSink{URL: strings.TrimRight(*httpURL, "/"), Token: *token,
					Client: &http.Client{Timeout: 30 * time.Second}, MaxBatch: *batch, Concurrency: *posts}
				target = *httpURL
			} else {
				kafkaSec.KafkaBrokers = splitComma(*brokers)
				sec, err := kafkaSec.KafkaSecurity()
				if err != nil {
					return err
				}
				ks, err := simulate.NewKafkaSink(simulate.KafkaSinkConfig{Brokers: kafkaSec.KafkaBrokers, Security: sec, MaxInFlight: *maxInFlight},
					log.Named("kafka"))
				if err != nil {
					return err
				}
				defer func() { _ = ks.Close() }()
				sink = ks
				target = *brokers
			}
			sim, err := simulate.New(simulate.Config{Rate: *rate, Duration: *duration, Seed: *seed}, m, sink, log)
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "simulate: %.0f events/s to %s", *rate, target)
			if *duration > 0 {
				fmt.Fprintf(stderr, " for %v", *duration)
			}
			fmt.Fprintln(stderr)
			stopProgress := printProgress(sim, *progress, stderr)
			runErr := sim.Run(ctx)
			stopProgress()
			if runErr != nil && !errors.Is(runErr, context.Canceled) {
				return fmt.Errorf("simulate: %w", runErr)
			}
			return summarize(sim, stderr)
		},
	}
}

// printProgress prints sim's progress every interval until the returned function is called.
func printProgress(sim *simulate.Simulator, every time.Duration, w io.Writer) (stop func()) {
	if every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(w, "simulate: %s\n", sim.Progress())
			}
		}
	}()
	return func() { close(done); <-finished }
}

// summarize prints what a finished run sent and whether it reached its rate; a run that did
// not is an error with exit status 3.
func summarize(sim *simulate.Simulator, w io.Writer) error {
	p, st := sim.Progress(), sim.Stats()
	fmt.Fprintf(w, "simulate: done in %.1fs: %d events sent (%d sensor readings, %d 12345 tickets, %d video detections, %d invalid), "+
		"%d acknowledged, %d failed; %.0f/s of a %.0f/s target\n",
		p.Elapsed.Seconds(), p.Produced, st.Sensor, st.Hotline, st.Video, st.Invalid, p.Delivery.Acked, p.Delivery.Failed, p.Rate(), p.Target)
	if cpu := processCPU(); cpu > 0 && p.Elapsed > 0 {
		fmt.Fprintf(w, "simulate: this process used %.1fs of CPU (%.0f %% of one core)%s\n",
			cpu.Seconds(), 100*cpu.Seconds()/p.Elapsed.Seconds(), loadAverage())
	}
	if why := p.Shortfall(); why != "" {
		fmt.Fprintf(w, "simulate: TARGET RATE NOT REACHED: %s\n", why)
		return exitError{code: 3, err: fmt.Errorf("target rate not reached: %s", why)}
	}
	fmt.Fprintln(w, "simulate: target rate reached")
	return nil
}

// exitError is an error with its own exit status.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }
func (e exitError) ExitCode() int { return e.code }

func loadCity(dir string) (*city.Map, error) {
	if dir == "" {
		return city.LoadDemo()
	}
	return city.Load(os.DirFS(dir))
}

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAverage is ", load average X" where /proc/loadavg exists: a generator short of CPU on a
// loaded machine says so.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	return ", load average " + f[0]
}
