package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/urbanbrain/urbanbrain/app"
	"github.com/urbanbrain/urbanbrain/auth"
)

// defaultTokenTTL is what `token` issues without --ttl: a day, or less where the role's
// cap (auth.MaxTTL) is shorter.
const defaultTokenTTL = 24 * time.Hour

func tokenCommand(stdout io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("urbanbrain token", flag.ContinueOnError)
	var (
		dataDir  = fs.String("data-dir", "./data", "data directory of the instance whose key signs the token")
		role     = fs.String("role", "", "role: admin, operator, supervisor, worker, rule_author, viewer, ingest")
		subject  = fs.String("subject", "", "who the token is for (a worker's roster id for workers)")
		district = fs.String("district", "", "limit the token to one district code")
		grids    = fs.String("grids", "", "comma-separated grid codes (workers)")
		ttl      = fs.Duration("ttl", 0, "how long the token is valid (default 24h or the role's cap if shorter: admin 8h; operator, supervisor, rule_author 12h; worker 7d; viewer 30d; ingest 90d)")
	)
	fs.String("config", "", "YAML configuration file")
	return &ffcli.Command{
		Name:        "token",
		ShortUsage:  "urbanbrain token --role ROLE [--subject NAME] [--data-dir DIR] | urbanbrain token revoke <jti or token>",
		ShortHelp:   "print a signed access token for this instance, or revoke one",
		FlagSet:     fs,
		Options:     parseOptions(),
		Subcommands: []*ffcli.Command{revokeCommand(stdout)},
		Exec: func(context.Context, []string) error {
			r, err := auth.ParseRole(*role)
			if err != nil {
				return fmt.Errorf("--role: %w", err)
			}
			if *subject == "" {
				*subject = r
			}
			if *ttl == 0 {
				*ttl = min(defaultTokenTTL, auth.MaxTTL(r))
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

func revokeCommand(stdout io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("urbanbrain token revoke", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "./data", "data directory of the instance that must refuse the token")
	fs.String("config", "", "YAML configuration file")
	return &ffcli.Command{
		Name:       "revoke",
		ShortUsage: "urbanbrain token revoke [--data-dir DIR] <jti or token>",
		ShortHelp:  "refuse a token from now on (a running server notices within a second)",
		LongHelp: "Adds the token's id (jti) to <data-dir>/" + auth.RevokedFile + ". Give the whole token, or its id.\n" +
			"Instances with their own data directories need the file copied to each, like auth.key.",
		FlagSet: fs,
		Options: parseOptions(),
		Exec: func(_ context.Context, args []string) error {
			if len(args) != 1 {
				return errors.New("revoke: give exactly one token or token id")
			}
			key, err := auth.LoadOrCreateKey(*dataDir)
			if err != nil {
				return err
			}
			id, err := auth.Revoke(*dataDir, auth.NewIssuer(key, app.TokenIssuer), args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "revoked %s\n", id)
			return err
		},
	}
}
