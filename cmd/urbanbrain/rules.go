package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/rules/engine"
	"github.com/urbanbrain/urbanbrain/rules/lang"
	"github.com/urbanbrain/urbanbrain/rules/replay"
)

// rulesCommand groups the rule author's offline tools.
func rulesCommand(stdin io.Reader, stdout, stderr io.Writer) *ffcli.Command {
	return &ffcli.Command{
		Name:        "rules",
		ShortUsage:  "urbanbrain rules replay --events FILE [--rules DIR] [--type T]",
		ShortHelp:   "test rules offline against a file of events",
		Subcommands: []*ffcli.Command{replayCommand(stdin, stdout, stderr)},
		Exec:        func(context.Context, []string) error { return flag.ErrHelp },
	}
}

func replayCommand(stdin io.Reader, stdout, stderr io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("urbanbrain rules replay", flag.ContinueOnError)
	var (
		events   = fs.String("events", "", "JSON-lines file of events: one CloudEvent or bare payload per line (- for stdin)")
		rulesDir = fs.String("rules", "", "directory of rule files (default: the demo city's rules)")
		typ      = fs.String("type", "", "event type of bare payload lines: city.sensor.reading, city.hotline.ticket or city.video.detection")
		cityDir  = fs.String("city-dir", "", "city data directory, to locate events (default: the demo city)")
		lateness = fs.Duration("allowed-lateness", engine.DefaultAllowedLateness, "how late an event may be for stateful rules")
		asJSON   = fs.Bool("json", false, "print the report as JSON")
		logLevel = fs.String("log-level", "warn", "debug, info, warn or error")
	)
	return &ffcli.Command{
		Name:       "replay",
		ShortUsage: "urbanbrain rules replay --events FILE [--rules DIR] [--type T] [--json]",
		ShortHelp:  "run ingest's decoder and the rules over a file, with no broker and no store",
		LongHelp: "Every line goes through ingest (validated, located on the city map, or rejected with its\n" +
			"reason) and every accepted event through the rules, on the events' own time. The report\n" +
			"gives matches per rule, rejected lines by reason (with examples), and records per second.",
		FlagSet: fs,
		Exec: func(ctx context.Context, _ []string) error {
			if *events == "" {
				return errors.New("--events is required")
			}
			log, err := newLogger(*logLevel, "console", stderr)
			if err != nil {
				return err
			}
			m, err := loadCity(*cityDir)
			if err != nil {
				return fmt.Errorf("city: %w", err)
			}
			rs, err := loadRuleDir(*rulesDir)
			if err != nil {
				return err
			}
			in := stdin
			if *events != "-" {
				f, err := os.Open(*events)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			rep, err := replay.Run(ctx, replay.Config{Type: *typ, Rules: rs, Areas: m,
				Engine: engine.Config{AllowedLateness: *lateness}}, in, log)
			if err != nil {
				return err
			}
			return writeReport(stdout, *asJSON, rep, func() { printReport(stdout, rep) })
		},
	}
}

func loadRuleDir(dir string) ([]lang.Rule, error) {
	var fsys fs.FS
	if dir == "" {
		sub, err := fs.Sub(city.DemoFS, "demo/rules")
		if err != nil {
			return nil, err
		}
		fsys = sub
	} else {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("--rules: %w", err)
		}
		fsys = os.DirFS(dir)
	}
	rs, err := lang.Load(fsys)
	if err != nil {
		return nil, fmt.Errorf("rules:\n%w", err)
	}
	return rs, nil
}

func printReport(w io.Writer, rep replay.Report) {
	fmt.Fprintf(w, "lines %d: accepted %d, duplicates %d, rejected %d\n", rep.Lines, rep.Accepted, rep.Duplicates, rep.Rejected)
	for _, class := range slices.Sorted(maps.Keys(rep.RejectedBy)) {
		fmt.Fprintf(w, "  rejected %-16s %d\n", class, rep.RejectedBy[class])
	}
	for _, s := range rep.Samples {
		fmt.Fprintf(w, "  line %d (%s): %s\n", s.Line, s.Class, s.Reason)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "rule\tversion\tevaluated\tmatched\tcleared\tfailed\t")
	for _, r := range rep.Rules {
		q := ""
		if r.Quarantined {
			q = "  quarantined: " + r.LastError
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", r.RuleID, r.Version, r.Evaluated, r.Matched, r.Cleared, r.Failed, q)
	}
	_ = tw.Flush()
	if rep.Late > 0 {
		fmt.Fprintf(w, "events too late for stateful rules: %d\n", rep.Late)
	}
	fmt.Fprintf(w, "\nsignals %d, clears %d\n", rep.Signals, rep.Clears)
	fmt.Fprintf(w, "%d records in %v: %.0f records/s", rep.Lines, rep.Elapsed.Round(time.Millisecond), rep.RecordsPerSecond)
	if rep.RecordsPerCPUSecond > 0 {
		fmt.Fprintf(w, ", %.0f records per CPU-second (%v CPU)", rep.RecordsPerCPUSecond, rep.CPU.Round(time.Millisecond))
	}
	fmt.Fprintln(w)
}

// writeReport prints a command's report as indented JSON, or as text with printText.
func writeReport(w io.Writer, asJSON bool, rep any, printText func()) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printText()
	return nil
}
