package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sync/errgroup"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/incidents"
	"github.com/urbanbrain/urbanbrain/webhook"
)

// The work-order loop's wiring (docs/workflow.md): the correlation and SLA policy, the SLA
// clock, agency webhooks and the audit log's projection. The worker and operator endpoints (my
// tasks, merge, split, timeline) are package api's (api/workflow.go).

func (c *Config) registerWorkflowFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.WorkflowPolicy, "workflow-policy", "", "YAML file with the correlation and SLA policy (default: the built-in policy, docs/workflow.md)")
	fs.DurationVar(&c.SLATick, "sla-tick", time.Second, "how often SLA clocks are checked")
	fs.DurationVar(&c.CommandMaxAge, "command-max-age", 24*time.Hour, "commands older than this are dead-lettered as replays, not applied (0: no limit; docs/security.md)")
	fs.BoolVar(&c.WebhookAllowPrivate, "webhook-allow-private", false, "let agency webhooks reach private and loopback addresses (agencies on an inner network)")
}

func (c *Config) validateWorkflow() []error {
	var errs []error
	if c.SLATick <= 0 || c.SLATick > time.Minute {
		errs = append(errs, fmt.Errorf("--sla-tick %s: want 1ns..1m", c.SLATick))
	}
	return errs
}

// loadPolicy is the --workflow-policy file, or the built-in policy.
func loadPolicy(cfg Config) (incidents.Policy, error) {
	if cfg.WorkflowPolicy == "" {
		return incidents.DefaultPolicy(), nil
	}
	b, err := os.ReadFile(cfg.WorkflowPolicy)
	if err != nil {
		return incidents.Policy{}, fmt.Errorf("--workflow-policy: %w", err)
	}
	return incidents.ParsePolicy(b)
}

// webhookSecretsFile holds each webhook's secret (agency code, or "cap:<name>" for a CAP
// subscriber → secret), created with a random secret for every agency of the city that has a
// webhook and every --cap-subscribers entry that has none yet. The receiver gets its secret
// from the operator, out of band.
const webhookSecretsFile = "webhook-secrets.yaml"

// newNotifier builds the agency notifier from the city's 权责清单 (agencies with a webhook URL).
func (a *App) newNotifier() (*webhook.Notifier, error) {
	path := filepath.Join(a.cfg.DataDir, webhookSecretsFile)
	secrets := map[string]string{}
	if b, err := os.ReadFile(path); err == nil {
		if err := yaml.Unmarshal(b, &secrets); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	urls := map[string]string{} // target → URL: the agencies with a webhook, then the CAP subscribers
	for _, ag := range a.city.Agencies() {
		if ag.Webhook != "" {
			urls[ag.Code] = ag.Webhook
		}
	}
	for name, url := range a.cfg.CAPSubscribers {
		urls[capTarget(name)] = url
	}
	targets := map[string]webhook.Target{}
	added := false
	for name, url := range urls {
		if secrets[name] == "" {
			var b [32]byte
			if _, err := rand.Read(b[:]); err != nil {
				return nil, err
			}
			secrets[name], added = hex.EncodeToString(b[:]), true
		}
		targets[name] = webhook.Target{URL: url, Secret: secrets[name]}
	}
	if added {
		b, err := yaml.Marshal(secrets)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return webhook.New(webhook.Config{Targets: targets, AllowPrivate: a.cfg.WebhookAllowPrivate,
		AllowLoopback: a.cfg.WebhookAllowPrivate, Tracer: a.tracer}, outputSink{a}, a.log.Named("webhook"))
}

// dispatchRetryEvery is how often unanswered dispatches are looked for.
const dispatchRetryEvery = 10 * time.Second

// runWorkflow runs the SLA clock (with the incidents component), the agency notifier and the
// retry of unanswered dispatches (with dispatch) until ctx ends.
func (a *App) runWorkflow(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	if a.cfg.Runs(CompIncidents) {
		g.Go(func() error { return a.incidents.RunClock(gctx, a.cfg.SLATick, a.emit) })
	}
	if a.cfg.Runs(CompDispatch) {
		g.Go(func() error { return a.webhook.Run(gctx) })
		// A dispatch whose command was refused or lost is decided again (dispatch.Retry).
		g.Go(func() error {
			return a.runTimer(gctx, "dispatch retry", dispatchRetryEvery, func(now time.Time) event.Outputs {
				return a.dispatch.Retry(now, func(street string) bool { return a.owns("dispatch", street) })
			})
		})
	}
	return g.Wait()
}

// auditStore is a backend that keeps the audit log (storage/sqlite does); with one that does
// not, the audit topic is still written, and timelines show the changelog only.
type auditStore interface {
	HandleAudits(ctx context.Context, recs []event.AuditRecord) error
	ListAudit(ctx context.Context, incidentID string) ([]event.AuditRecord, error)
}

// auditSinks projects city.audit into the store, when the backend keeps an audit log.
func (a *App) auditSinks() []storageSink {
	as, ok := a.store.(auditStore)
	if !ok || !a.cfg.Runs(CompStorage) {
		return nil
	}
	return []storageSink{{name: "storage.audit", topic: event.TopicAudit, write: batchOf(a, []string{event.TypeAudit}, as.HandleAudits)}}
}
