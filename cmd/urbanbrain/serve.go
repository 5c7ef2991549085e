package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"

	"github.com/urbanbrain/urbanbrain/app"
	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/simulate/people"
)

func serveCommand(stdout, stderr io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("urbanbrain serve", flag.ContinueOnError)
	var cfg app.Config
	cfg.RegisterFlags(fs)
	pace := fs.Float64("demo-pace", people.DefaultPace, "with --demo, simulated grid workers, operators and 12345 call-backs work the incidents through the API at this many times human speed (60: a minute of theirs is a second); 0: no simulated people")
	fs.String("config", "", "YAML configuration file (keys are the flag names)")
	return &ffcli.Command{
		Name:       "serve",
		ShortUsage: "urbanbrain serve [--demo] [--kafka-brokers host:port,...] [flags]",
		ShortHelp:  "run the components (all by default) on the embedded broker or a Kafka cluster",
		FlagSet:    fs,
		Options:    parseOptions(),
		Exec: func(ctx context.Context, _ []string) error {
			log, err := newLogger(cfg.LogLevel, cfg.LogFormat, stderr)
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			if *pace < 0 || *pace > 3600 {
				return fmt.Errorf("--demo-pace %v: want 0 (off) up to 3600", *pace)
			}
			a, err := app.New(cfg, log)
			if err != nil {
				return err
			}
			g, gctx := errgroup.WithContext(ctx)
			g.Go(func() error { return a.Run(gctx) })
			if cfg.Demo {
				g.Go(func() error { printDemo(gctx, a, cfg, *pace, stdout); return nil })
			}
			if cfg.Demo && *pace > 0 {
				g.Go(func() error {
					return demoPeople(gctx, a, people.Config{Pace: *pace}, log.Named("people"))
				})
			}
			return g.Wait()
		},
	}
}

// demoTokenTTL is the life of the tokens the demo prints: an afternoon's tour. Anyone who
// saw the console holds them, so they must not outlive it by days.
const demoTokenTTL = 4 * time.Hour

// printDemo waits until the server is ready, then prints tokens and links for a newcomer.
func printDemo(ctx context.Context, a *app.App, cfg app.Config, pace float64, w io.Writer) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !a.Ready() {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
	base := cfg.PublicURL
	if base == "" {
		_, port, _ := net.SplitHostPort(a.HTTPAddr())
		base = "http://127.0.0.1:" + port
	}
	worker := demoWorker(a)
	tokens := []struct {
		who    string
		claims auth.Claims
	}{
		{"viewer (the wall screen: read-only, whole city)", auth.Claims{Subject: "demo-wall", Role: auth.RoleViewer}},
		{"operator (whole city, phone numbers masked)", auth.Claims{Subject: "demo-operator", Role: auth.RoleOperator}},
		{"supervisor (may see personal data)", auth.Claims{Subject: "demo-supervisor", Role: auth.RoleSupervisor}},
		{"worker " + worker.Name + " (grids " + strings.Join(worker.Grids, ",") + ")", auth.Claims{Subject: worker.ID, Role: auth.RoleWorker, Grids: worker.Grids}},
		{"rule author", auth.Claims{Subject: "demo-rule-author", Role: auth.RoleRuleAuthor}},
		{"producer (ingest)", auth.Claims{Subject: "demo-producer", Role: auth.RoleIngest}},
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nurbanbrain demo is up: %s (Kafka-protocol broker on %s)\n\n", base, strings.Join(a.BrokerAddrs(), ","))
	var operatorToken, viewerToken, workerToken string
	for _, t := range tokens {
		tok, err := a.Issuer().Issue(t.claims, demoTokenTTL)
		if err != nil {
			fmt.Fprintf(&b, "  %s: cannot sign token: %v\n", t.who, err)
			continue
		}
		switch t.claims.Role {
		case auth.RoleOperator:
			operatorToken = tok
		case auth.RoleViewer:
			viewerToken = tok
		case auth.RoleWorker:
			workerToken = tok
		}
		fmt.Fprintf(&b, "  %s:\n    %s\n", t.who, tok)
	}
	wsBase := "ws" + strings.TrimPrefix(base, "http")
	// The token goes in the fragment, which the browser keeps to itself: the page reads it
	// and passes it on the websocket (docs/cockpit.md).
	fmt.Fprintf(&b, "\nWall screen (领导驾驶舱), open in a browser:\n  %s/#token=%s\n", base, viewerToken)
	fmt.Fprintf(&b, "\nTry:\n  curl -H 'Authorization: Bearer %s' '%s/api/v1/incidents?limit=5'\n", operatorToken, base)
	fmt.Fprintf(&b, "  websocket: %s/ws/cockpit?access_token=%s\n", wsBase, operatorToken)
	fmt.Fprintf(&b, "  worker's tasks: %s/ws/worker?access_token=%s\n", wsBase, workerToken)
	fmt.Fprintf(&b, "  metrics:   %s/metrics   health: %s/readyz\n", base, base)
	fmt.Fprintf(&b, "\nSign in (登录) at %s/login/ with these demo accounts:\n", base)
	for _, acct := range demoAccounts(ctx, a, base, worker) {
		fmt.Fprintf(&b, "  %-34s %-10s %-24s %s\n", acct.who, acct.page, acct.username, acct.password)
	}
	if pace > 0 {
		fmt.Fprintf(&b, "\nSimulated people work the incidents through the API at %g× human speed: grid workers sign for,\n"+
			"handle and resolve them, the operator triages, verifies and closes, 12345 calls back (--demo-pace 0: off).\n", pace)
	}
	fmt.Fprintln(&b)
	fmt.Fprint(w, b.String())
}

// demoWorker picks the first grid worker of the city for the demo worker token.
func demoWorker(a *app.App) city.Worker {
	for _, g := range a.City().Grids() {
		for _, w := range a.City().Workers(g.Code) {
			if w.Role == "worker" {
				return w
			}
		}
	}
	return city.Worker{ID: "demo-worker", Name: "demo-worker"}
}

func newLogger(level, format string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch format {
	case "json":
		enc = zapcore.NewJSONEncoder(encCfg)
	case "console":
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	default:
		return nil, fmt.Errorf("--log-format %q: want console or json", format)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl)), nil
}

// demoAccount is an account the demo makes for each kind of user, with the page they use.
type demoAccount struct{ who, page, username, password string }

// demoAccounts makes a sign-in account for each kind of user through the API (as an admin would),
// with a fresh random password each. An account kept in the data dir from an earlier start
// keeps the password printed then: `urbanbrain user reset` sets a new one.
func demoAccounts(ctx context.Context, a *app.App, base string, worker city.Worker) []demoAccount {
	admin, err := a.Issuer().Issue(auth.Claims{Subject: "demo-setup", Role: auth.RoleAdmin}, time.Minute)
	if err != nil {
		return nil
	}
	accts := []struct {
		demoAccount
		role string
	}{
		{demoAccount{who: "leadership (wall screen, 驾驶舱)", page: "/", username: "demo-leader"}, auth.RoleViewer},
		{demoAccount{who: "operator (desk, 坐席)", page: "/desk/", username: "demo-operator"}, auth.RoleOperator},
		{demoAccount{who: "supervisor (desk, 值班长)", page: "/desk/", username: "demo-supervisor"}, auth.RoleSupervisor},
		{demoAccount{who: "grid worker " + worker.Name + " (phone, 网格员)", page: "/m/", username: worker.ID}, auth.RoleWorker},
		{demoAccount{who: "rule author (rule studio, 规则)", page: "/rules/", username: "demo-author"}, auth.RoleRuleAuthor},
	}
	var out []demoAccount
	for _, d := range accts {
		d.password = rand.Text() // 26 characters of base32 from crypto/rand
		body, _ := json.Marshal(map[string]string{"username": d.username, "role": d.role, "password": d.password})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/users", bytes.NewReader(body))
		if err != nil {
			continue
		}
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			d.password = "(not made: " + err.Error() + ")"
		} else {
			_ = resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusCreated:
			case http.StatusConflict:
				d.password = "(kept from an earlier start; `urbanbrain user reset " + d.username + "`)"
			default:
				d.password = fmt.Sprintf("(not made: HTTP %d)", resp.StatusCode)
			}
		}
		out = append(out, d.demoAccount)
	}
	return out
}
