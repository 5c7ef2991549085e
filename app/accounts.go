package app

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/transport"
)

// Local accounts (docs/api.md, "Accounts and sign-in"): they live on city.accounts (compacted,
// signed like every internal record), which every instance reads on start and follows (the
// accounts route of routes.go) into its directory, so a sign-in and a session work on any
// node. The sign-in and account routes are package api's (api/accounts.go); the versions they
// save come back here through the route.

func (c *Config) registerAccountFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.SessionTTL, "session-ttl", 12*time.Hour, "how long a signed-in session lasts (at most the role's token lifetime)")
	fs.BoolVar(&c.SecureCookies, "secure-cookies", false, "mark session cookies Secure (HTTPS only); set it whenever the pages are served over TLS")
}

// accounts is the accounts part of App.
type accounts struct {
	dir      *auth.Directory
	sessions *auth.Sessions
}

func (a *App) newAccounts(key []byte) {
	a.accounts.dir = auth.NewDirectory(nil)
	a.accounts.sessions = auth.NewSessions(key, a.cfg.SessionTTL)
	a.accounts.sessions.Secure = a.cfg.SecureCookies
	a.accounts.sessions.Check = a.accounts.dir.Check
}

// startAccounts creates city.accounts and reads it whole before the API answers.
func (a *App) startAccounts(ctx context.Context) error {
	if !a.cfg.Runs(CompAPI) && !a.cfg.Runs(CompCockpit) {
		return nil
	}
	if err := ensureCompactedTopic(ctx, a.brokers, event.TopicAccounts, a.log); err != nil {
		return err
	}
	n := 0
	err := transport.ReadRecords(ctx, a.brokers, event.TopicAccounts, a.signedOnly("accounts", func(rec kafka.Message) error {
		var acc auth.Account
		if _, err := event.Decode(rec.Value, event.TypeAccount, &acc); err != nil {
			a.log.Warn("city.accounts: skipping undecodable record", zap.Error(err))
			return nil
		}
		n++
		a.accounts.dir.Apply(acc)
		return nil
	}))
	if err != nil {
		return fmt.Errorf("read %s: %w", event.TopicAccounts, err)
	}
	a.log.Info("accounts loaded", zap.Int("versions_read", n), zap.Int("accounts", len(a.accounts.dir.List())))
	return nil
}

// applyAccount is the accounts route's handler: another instance's change, or this one's
// coming back.
func (a *App) applyAccount(_ context.Context, acc auth.Account) error {
	a.accounts.dir.Apply(acc)
	return nil
}
