package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/urbanbrain/urbanbrain/app"
	"github.com/urbanbrain/urbanbrain/auth"
)

func tokenCommand(stdout io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("urbanbrain token", flag.ContinueOnError)
	var (
		dataDir  = fs.String("data-dir", "./data", "data directory of the instance whose key signs the token")
		role     = fs.String("role", "", "role: admin, operator, supervisor, worker, rule_author, viewer, ingest")
		subject  = fs.String("subject", "", "who the token is for (a worker's roster id for workers)")
		district = fs.String("district", "", "limit the token to one district code")
		grids    = fs.String("grids", "", "comma-separated grid codes (workers)")
		ttl      = fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	)
	fs.String("config", "", "YAML configuration file")
	return &ffcli.Command{
		Name:       "token",
		ShortUsage: "urbanbrain token --role ROLE [--subject NAME] [--data-dir DIR]",
		ShortHelp:  "print a signed access token for this instance",
		FlagSet:    fs,
		Options:    parseOptions(),
		Exec: func(context.Context, []string) error {
			r, err := auth.ParseRole(*role)
			if err != nil {
				return fmt.Errorf("--role: %w", err)
			}
			if *subject == "" {
				*subject = r
			}
			key, err := auth.LoadOrCreateKey(*dataDir)
			if err != nil {
				return err
			}
			tok, err := auth.NewIssuer(key, app.TokenIssuer).Issue(auth.Claims{
				Subject: *subject, Role: r, District: *district, Grids: splitComma(*grids),
			}, *ttl)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(stdout, tok)
			return err
		},
	}
}
