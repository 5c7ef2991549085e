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
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/simulate"
	"github.com/urbanbrain/urbanbrain/transport"
)

func simulateCommand(stderr io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("urbanbrain simulate", flag.ContinueOnError)
	var (
		rate     = fs.Float64("rate", 20, "events per second, all sources together")
		duration = fs.Duration("duration", 0, "how long to run (0: until interrupted)")
		seed     = fs.Int64("seed", 0, "random seed (0: from the clock)")
		brokers  = fs.String("kafka-brokers", "127.0.0.1:9092", "Kafka brokers to produce to (ignored with --http-url)")
		httpURL  = fs.String("http-url", "", "send to this urbanbrain instead, e.g. http://127.0.0.1:8080 (POST /api/v1/events)")
		token    = fs.String("token", "", "ingest token for --http-url (urbanbrain token --role ingest)")
		cityDir  = fs.String("city-dir", "", "city data directory (default: the demo city)")
		logLevel = fs.String("log-level", "info", "debug, info, warn or error")
	)
	fs.String("config", "", "YAML configuration file")
	return &ffcli.Command{
		Name:       "simulate",
		ShortUsage: "urbanbrain simulate --rate N [--duration D] [--http-url URL --token T | --kafka-brokers B]",
		ShortHelp:  "send realistic mixed demo traffic (sensors, 12345 work orders, video) to Kafka or HTTP",
		FlagSet:    fs,
		Options:    parseOptions(),
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
			if *httpURL != "" {
				if *token == "" {
					return errors.New("--http-url needs --token (urbanbrain token --role ingest)")
				}
				sink = &simulate.HTTPSink{URL: strings.TrimRight(*httpURL, "/"), Token: *token,
					Client: &http.Client{Timeout: 10 * time.Second}}
			} else {
				pub, err := transport.NewPublisher(transport.PublisherConfig{Brokers: splitComma(*brokers)}, log.Named("kafka"))
				if err != nil {
					return err
				}
				defer func() { _ = pub.Close() }()
				sink = kafkaSink{transport.NewDomainPublisher(pub)}
			}
			sim, err := simulate.New(simulate.Config{Rate: *rate, Duration: *duration, Seed: *seed}, m, sink, log)
			if err != nil {
				return err
			}
			if err := sim.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("simulate: %w", err)
			}
			return nil
		},
	}
}

type kafkaSink struct{ out *transport.DomainPublisher }

func (k kafkaSink) Send(ctx context.Context, topic, key string, value []byte) error {
	return k.out.Publish(ctx, topic, key, value)
}

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
