package app

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/transport"
)

// Partition ownership is a lifecycle. Topics are co-partitioned by street, so partition p of
// city.signals and city.commands holds the same streets as partition p of city.incidents.
// When a stage is assigned partition p it reads that changelog partition to its end before it
// handles a record of p (Restore is idempotent by incident and version); when p is revoked it
// forgets those streets, so it neither answers for them nor fires their SLA clocks while
// another instance owns them.

// loadIncidents is the incidents stage's OnAssigned: partition p's incidents, their ids seen
// and their SLA clocks, from city.incidents partition p.
func (a *App) loadIncidents(ctx context.Context, p int, _ map[string]int64) error {
	start := time.Now()
	n, err := readChangelog(ctx, a, p, func(ch event.IncidentChange, _ []byte) { a.incidents.Restore(ch) })
	if err != nil {
		return fmt.Errorf("load incidents of partition %d: %w", p, err)
	}
	a.log.Info("partition loaded", zap.String("stage", "incidents"), zap.Int("partition", p),
		zap.Int("changes", n), zap.Duration("took", time.Since(start)))
	return nil
}

// forgetIncidents is the incidents stage's OnRevoked.
func (a *App) forgetIncidents(p int) {
	n := a.incidents.Forget(func(street string) bool { return transport.PartitionOf(street, a.partitions) == p })
	a.log.Info("partition given up", zap.String("stage", "incidents"), zap.Int("partition", p), zap.Int("incidents", n))
}

// loadDispatch is the dispatch stage's OnAssigned: the open dispatches (the workers' load) of
// partition p's streets as the changelog has them now. Only each incident's newest version
// matters to it, so each change is read for its incident's id and version first, and only
// the newest is decoded whole (an incident has about ten versions on the simulator's
// changelog; decoding them all was a fifth of a restart's CPU).
func (a *App) loadDispatch(ctx context.Context, p int, _ map[string]int64) error {
	type head struct {
		Incident struct {
			ID      string `json:"id"`
			Version int64  `json:"version"`
		} `json:"incident"`
	}
	type newest struct {
		version int64
		value   []byte
	}
	latest := make(map[string]newest)
	_, err := readChangelog(ctx, a, p, func(h head, raw []byte) {
		if cur, ok := latest[h.Incident.ID]; !ok || h.Incident.Version > cur.version {
			latest[h.Incident.ID] = newest{h.Incident.Version, bytes.Clone(raw)}
		}
	})
	if err != nil {
		return fmt.Errorf("load dispatch state of partition %d: %w", p, err)
	}
	for _, n := range latest {
		var ch event.IncidentChange
		if _, err := event.Decode(n.value, event.TypeIncidentChanged, &ch); err != nil {
			a.log.Warn("changelog record not decodable; skipped", zap.Int("partition", p), zap.Error(err))
			continue
		}
		a.dispatch.Restore(ch)
	}
	return nil
}

// owns says whether this instance owns, and has loaded, the partition of street in the stage
// named name.
func (a *App) owns(name, street string) bool {
	names := a.stages.Load()
	if names == nil {
		return false
	}
	for st, n := range *names {
		if n == name {
			parts, _ := st.Loaded()
			return slices.Contains(parts, transport.PartitionOf(street, a.partitions))
		}
	}
	return false
}

// readChangelog feeds every decodable change of city.incidents partition p to fn, decoded
// as T (the whole change, or the part a loader needs), with the record's value.
func readChangelog[T any](ctx context.Context, a *App, p int, fn func(T, []byte)) (int, error) {
	n := 0
	err := transport.ReadPartition(ctx, a.brokers, event.TopicIncidents, p, a.signedOnly("changelog load", func(rec kafka.Message) error {
		var v T
		if _, err := event.Decode(rec.Value, event.TypeIncidentChanged, &v); err != nil {
			a.log.Warn("changelog record not decodable; skipped", zap.Int("partition", p), zap.Error(err))
			return nil
		}
		n++
		fn(v, rec.Value)
		return nil
	}))
	return n, err
}

// forgetRuleState is the rules stage's OnRevoked: the stateful rules' windows, durations and
// silence timers of partition p's streets are dropped, so this instance's rule clock raises
// nothing (no device-silent alarm) for streets another instance now owns; the new owner
// rebuilds them (loadRuleState).
func (a *App) forgetRuleState(p int) {
	n := a.rules.Forget(func(street string) bool { return transport.PartitionOf(street, a.partitions) == p })
	a.log.Info("partition given up", zap.String("stage", "rules"), zap.Int("partition", p), zap.Int("streets", n))
}

// loadRuleState is the rules stage's OnAssigned: it rebuilds the stateful rules' windows, held
// durations and silence timers of partition p's streets by handing the engine that partition's
// events of the last Horizon again (Rebuild), up to where handling resumes. Their signals were
// raised by the previous owner (or are raised again from the resume point on), so the replay
// only moves state: stateless rules are not run and nothing is explained or returned. The
// engine runs on the events' own time, so a for: 3m held for two minutes before the move
// fires at three minutes of event time here.
func (a *App) loadRuleState(ctx context.Context, p int, start map[string]int64) error {
	horizon := a.rules.Horizon()
	resume, ok := start[event.TopicEvents]
	if horizon == 0 || !ok || resume < 0 { // no stateful rule, or nothing handled before
		return nil
	}
	began := time.Now()
	since := began.Add(-horizon)
	n := 0
	err := transport.ReadPartitionSince(ctx, a.brokers, event.TopicEvents, p, since, resume, a.signedOnly("rule state rebuild", func(rec kafka.Message) error {
		var ev event.Event
		if err := decodeAny(rec.Value, eventTypes, &ev); err != nil {
			return nil // dead-lettered when it was handled
		}
		n++
		a.rules.Rebuild(ctx, ev)
		return nil
	}))
	if err != nil {
		return fmt.Errorf("rebuild rule state of partition %d: %w", p, err)
	}
	a.log.Info("rule state rebuilt", zap.Int("partition", p), zap.Int("events", n), zap.Duration("horizon", horizon),
		zap.Duration("took", time.Since(began)))
	return nil
}
