package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/authoring"
	"github.com/urbanbrain/urbanbrain/rules/lang"
	"github.com/urbanbrain/urbanbrain/transport"
)

// Rules as data, wired: the city.rules topic (created compacted, one partition), the catalog
// every instance rebuilds from it on start and follows through a per-instance route, the
// rules directory seeding it, and the clock that drives stateful rules. The authoring API is
// package api's (api/rules.go); it saves versions through publishRuleVersion.

const ruleClockEvery = time.Second

// startRules makes sure city.rules exists, reads it whole into the catalog, seeds it from the
// rules directory with what it lacks, and loads the catalog's rules into the engine. It runs
// before the router, so every instance starts with the rules the topic holds.
func (a *App) startRules(ctx context.Context) error {
	if !a.cfg.Runs(CompRules) && !a.cfg.Runs(CompAPI) {
		return nil
	}
	if err := ensureCompactedTopic(ctx, a.brokers, event.TopicRules, a.log); err != nil {
		return err
	}
	n := 0
	err := transport.ReadRecords(ctx, a.brokers, event.TopicRules, a.signedOnly("rule catalog", func(rec kafka.Message) error {
		v, err := authoring.DecodeVersion(rec.Value)
		if err != nil {
			a.log.Warn("city.rules: skipping undecodable record", zap.Error(err))
			return nil
		}
		n++
		if _, err := a.catalog.Apply(v); err != nil {
			a.log.Warn("city.rules: version does not compile here; the one before stays current",
				zap.String("rule", v.RuleID), zap.Int("version", v.Version), zap.Error(err))
		}
		return nil
	}))
	if err != nil {
		return fmt.Errorf("read %s: %w", event.TopicRules, err)
	}
	seeded := 0
	for _, v := range a.catalog.Seed(a.ruleSet, time.Now()) {
		if err := a.publishRuleVersion(ctx, v); err != nil {
			return fmt.Errorf("seed %s: %w", v.Key(), err)
		}
		if _, err := a.catalog.Apply(v); err != nil {
			return fmt.Errorf("seed %s: %w", v.Key(), err)
		}
		seeded++
	}
	if err := a.rules.SetRules(a.catalog.Current()); err != nil {
		return fmt.Errorf("load rules from %s: %w", event.TopicRules, err)
	}
	a.catalog.OnChange(func(current []lang.Rule) {
		if err := a.rules.SetRules(current); err != nil {
			a.log.Error("reload rules", zap.Error(err))
			return
		}
		a.log.Info("rules reloaded", zap.Int("rules", len(current)))
	})
	a.log.Info("rules loaded from "+event.TopicRules, zap.Int("versions_read", n), zap.Int("seeded", seeded),
		zap.Int("rules", len(a.catalog.Current())))
	return nil
}

// applyRuleVersion is the route handler of city.rules: every instance applies every version.
func (a *App) applyRuleVersion(_ context.Context, v authoring.RuleVersion) error {
	if _, err := a.catalog.Apply(v); err != nil {
		a.log.Warn("city.rules: version does not compile here; the one before stays current",
			zap.String("rule", v.RuleID), zap.Int("version", v.Version), zap.Error(err))
	}
	return nil
}

func (a *App) publishRuleVersion(ctx context.Context, v authoring.RuleVersion) error {
	b, err := v.Encode()
	if err != nil {
		return err
	}
	return a.Publish(ctx, event.TopicRules, v.Key(), b)
}

// runRuleClock ticks the rules engine with the wall clock, so that silence and held
// conditions are noticed on streets where no event arrives.
func (a *App) runRuleClock(ctx context.Context) error {
	if !a.cfg.Runs(CompRules) {
		return nil
	}
	return a.runTimer(ctx, "rules clock", ruleClockEvery, func(now time.Time) event.Outputs {
		outs, err := a.rules.Tick(ctx, now)
		if err != nil {
			a.log.Warn("rules clock", zap.Error(err))
		}
		return outs
	})
}

// runTimer calls fire every period until ctx ends and produces what it returns; outputs the
// broker did not take are sent again with the next tick's, in order.
func (a *App) runTimer(ctx context.Context, name string, every time.Duration, fire func(now time.Time) event.Outputs) error {
	t := time.NewTicker(every)
	defer t.Stop()
	var unsent event.Outputs
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			unsent = append(unsent, fire(now)...)
			if len(unsent) == 0 {
				continue
			}
			if err := a.emit(ctx, unsent); err != nil {
				if ctx.Err() == nil {
					a.log.Warn(name+": outputs not sent, retried on the next tick", zap.Int("outputs", len(unsent)), zap.Error(err))
				}
				continue
			}
			unsent = nil
		}
	}
}

// ensureCompactedTopic creates topic (city.rules, city.accounts) with one partition and
// cleanup.policy=compact, or sets that policy on an existing topic. Compaction keeps the latest
// record of each key (a rule version has its own key, an account its username); it keeps the
// topic from being aged out by time retention. A broker that refuses the policy (some managed
// offerings) is logged, not fatal: set retention.ms=-1 on the topic by hand.
func ensureCompactedTopic(ctx context.Context, brokers []string, topic string, log *zap.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c := transport.Client(brokers) // the process's TLS and SASL
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		return fmt.Errorf("ensure %s: metadata: %w", topic, err)
	}
	exists := slices.ContainsFunc(md.Topics, func(t kafka.Topic) bool { return t.Name == topic && t.Error == nil })
	if !exists {
		rf := min(3, len(md.Brokers))
		resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
			Topic: topic, NumPartitions: 1, ReplicationFactor: rf,
			ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}},
		}}})
		if err != nil {
			return fmt.Errorf("ensure %s: %w", topic, err)
		}
		if terr := resp.Errors[topic]; terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
			return fmt.Errorf("ensure %s: %w", topic, terr)
		}
	}
	policy, err := topicConfig(ctx, c, topic, "cleanup.policy")
	if err == nil && policy == "compact" {
		return nil
	}
	_, aerr := c.IncrementalAlterConfigs(ctx, &kafka.IncrementalAlterConfigsRequest{Resources: []kafka.IncrementalAlterConfigsRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
		Configs: []kafka.IncrementalAlterConfigsRequestConfig{{Name: "cleanup.policy", Value: "compact", ConfigOperation: kafka.ConfigOperationSet}},
	}}})
	if aerr != nil {
		log.Warn(topic+" is not compacted and the policy could not be set: keep its retention unlimited by hand",
			zap.String("cleanup.policy", policy), zap.NamedError("describe", err), zap.NamedError("alter", aerr))
	}
	return nil
}

func topicConfig(ctx context.Context, c *kafka.Client, topic, name string) (string, error) {
	resp, err := c.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{name},
	}}})
	if err != nil {
		return "", err
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return "", r.Error
		}
		for _, e := range r.ConfigEntries {
			if e.ConfigName == name {
				return e.ConfigValue, nil
			}
		}
	}
	return "", fmt.Errorf("%s: no %s", topic, name)
}
