// Command urbanbrain is the city command-centre backend: `serve` runs the components,
// `token` signs an access token, `simulate` sends realistic demo traffic, `bench`
// measures the embedded default end to end under load. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/peterbourgon/ff/v3/ffyaml"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root := &ffcli.Command{
		Name:       "urbanbrain",
		ShortUsage: "urbanbrain <serve|token|user|simulate|bench|rules> [flags]",
		ShortHelp:  "city command-centre backend",
		Subcommands: []*ffcli.Command{
			serveCommand(stdout, stderr),
			tokenCommand(stdout),
			simulateCommand(stderr),
			benchCommand(stdout, stderr),
			rulesCommand(os.Stdin, stdout, stderr),
			userCommand(os.Stdin, stdout),
		},
		Exec: func(context.Context, []string) error { return flag.ErrHelp },
	}
	if err := root.ParseAndRun(ctx, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 2
		}
		fmt.Fprintln(stderr, "urbanbrain:", err)
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			return ec.ExitCode()
		}
		return 1
	}
	return 0
}

// parseOptions makes flags, URBANBRAIN_* environment variables and an optional YAML file
// (--config) one configuration source; flags win over env, env over the file.
func parseOptions() []ff.Option {
	return []ff.Option{
		ff.WithEnvVarPrefix("URBANBRAIN"),
		ff.WithConfigFileFlag("config"),
		ff.WithConfigFileParser(ffyaml.Parser),
		ff.WithAllowMissingConfigFile(false),
	}
}
