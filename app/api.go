package app

import (
	"context"
	"errors"
	"net"

	"github.com/urbanbrain/urbanbrain/api"
	"github.com/urbanbrain/urbanbrain/event"
)

// newAPI builds the HTTP API (package api) on this process's parts. Run serves it; tests
// read its routing table.
func (a *App) newAPI() *api.Server {
	l := a.cfg.HTTPLimits
	d := api.Deps{
		Config: api.Config{
			API:            a.cfg.Runs(CompAPI),
			CommandTimeout: a.cfg.CommandTimeout,
			CAPSender:      a.cfg.CAPSender,
			CAPSenderName:  a.cfg.CAPSenderName,

			ReadHeaderTimeout: l.HTTPReadHeaderTimeout,
			ReadTimeout:       l.HTTPReadTimeout,
			WriteTimeout:      l.HTTPWriteTimeout,
			IdleTimeout:       l.HTTPIdleTimeout,
			MaxBody:           l.HTTPMaxBody,

			RateLimit:       l.RateLimit,
			RateBurst:       l.RateBurst,
			RateLimitIngest: l.RateLimitIngest,
			RateBurstIngest: l.RateBurstIngest,

			MetricsTokenRequired: l.MetricsTokenRequired,
		},
		Log:      a.log,
		Registry: a.registry,

		Issuer:   a.issuer,
		Accounts: a.accounts.dir,
		Sessions: a.accounts.sessions,

		City:        a.city,
		StageLimits: a.stageLimits,
		Store:       a.store, // nil before Run opens it
		Objects:     a.objects,
		Outputs:     outputSink{a},
		Outcomes:    commandOutcomes{a},

		Catalog:     a.catalog,
		RuleStats:   a.rules,
		PublishRule: a.publishRuleVersion,

		Ready: a.readiness,
	}
	if a.cfg.Runs(CompIngest) {
		d.Ingest = a.ingest
	}
	if a.cfg.Runs(CompCockpit) {
		d.Cockpit = a.cockpit
	}
	return api.New(d)
}

// commandOutcomes brings a command's outcome from city.command-results (results.go) and the
// store's progress (store.go) to the request that sent it.
type commandOutcomes struct{ a *App }

func (o commandOutcomes) Expect(commandID string) (<-chan event.CommandResult, func()) {
	return o.a.results.expect(commandID), func() { o.a.results.forget(commandID) }
}

func (o commandOutcomes) AwaitStored(ctx context.Context, id string, version int64) bool {
	return o.a.awaitStored(ctx, id, version)
}

// readiness is what GET /readyz answers: the broker answers, the store is open and answers,
// and every stage runs, has joined its group and loaded what it owns.
func (a *App) readiness(ctx context.Context) api.Readiness {
	checks := map[string]string{"broker": "ok", "store": "ok", "router": "ok"}
	ok := true
	if err := a.pingBroker(ctx); err != nil {
		checks["broker"], ok = err.Error(), false
	}
	if a.store == nil {
		checks["store"], ok = "not open", false
	} else if err := a.store.Ping(ctx); err != nil {
		checks["store"], ok = err.Error(), false
	}
	if !a.ready.Load() {
		checks["router"], ok = "not running", false
	}
	// Every stage has joined its group and loaded what it owns: a member that still waits for
	// its first assignment (a rebalance after a restart) is not ready to answer for the city.
	owned := map[string]any{}
	if names := a.stages.Load(); names != nil {
		for st, name := range *names {
			parts, joined := st.Loaded()
			if !joined {
				checks["router"], ok = "stage "+name+" has not joined its group yet", false
			}
			owned[name] = map[string]any{"partitions": parts, "lag": st.Stats().Lag}
		}
	}
	return api.Readiness{Ready: ok, Checks: checks, Stages: owned}
}

func (a *App) pingBroker(ctx context.Context) error {
	if len(a.brokers) == 0 {
		return errors.New("no broker")
	}
	if a.embedded != nil {
		if err := a.embedded.Err(); err != nil { // a failed flush: it refuses every write
			return err
		}
	}
	var d net.Dialer
	var lastErr error
	for _, b := range a.brokers {
		c, err := d.DialContext(ctx, "tcp", b)
		if err == nil {
			_ = c.Close()
			return nil
		}
		lastErr = err
	}
	return lastErr
}
