package engine

import (
	"github.com/prometheus/client_golang/prometheus"
)

// collector exposes the engine's counters to Prometheus at scrape time, so evaluating an
// event costs no metric update beyond the atomic counters Stats reads anyway.
//
//	urbanbrain_rules_loaded                      rules loaded (enabled or not)
//	urbanbrain_rules_reloads_total               rule set swaps since start
//	urbanbrain_rules_late_events_total           events too late for stateful rules
//	urbanbrain_rules_rewinds_total               times a backlog took a quiet street's clock back
//	urbanbrain_rules_signals_total{rule,kind}    signals published: kind fire or clear
//	urbanbrain_rules_failures_total{rule}        run-time failures of a rule
//	urbanbrain_rules_quarantined{rule}           1 while a rule is disabled for failing
//	urbanbrain_rules_state_keys{rule}            group keys with state
type collector struct{ e *Engine }

var (
	descLoaded      = prometheus.NewDesc("urbanbrain_rules_loaded", "Rules loaded, enabled or not.", nil, nil)
	descReloads     = prometheus.NewDesc("urbanbrain_rules_reloads_total", "Rule set swaps since start.", nil, nil)
	descLate        = prometheus.NewDesc("urbanbrain_rules_late_events_total", "Events later than the allowed lateness, ignored by stateful rules.", nil, nil)
	descRewinds     = prometheus.NewDesc("urbanbrain_rules_rewinds_total", "Times an outage's backlog took back the run-on of a quiet street's clock.", nil, nil)
	descSignals     = prometheus.NewDesc("urbanbrain_rules_signals_total", "Signals published, by rule and kind (fire, clear).", []string{"rule", "kind"}, nil)
	descFailures    = prometheus.NewDesc("urbanbrain_rules_failures_total", "Run-time failures of a rule on an event.", []string{"rule"}, nil)
	descQuarantined = prometheus.NewDesc("urbanbrain_rules_quarantined", "1 while a rule is disabled on this instance because it kept failing.", []string{"rule"}, nil)
	descKeys        = prometheus.NewDesc("urbanbrain_rules_state_keys", "Group keys a stateful rule holds state for.", []string{"rule"}, nil)
)

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLoaded, descReloads, descLate, descRewinds, descSignals, descFailures, descQuarantined, descKeys} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	set := c.e.set.Load()
	ch <- prometheus.MustNewConstMetric(descLoaded, prometheus.GaugeValue, float64(len(set.rules)))
	ch <- prometheus.MustNewConstMetric(descReloads, prometheus.CounterValue, float64(c.e.reloads.Load()))
	ch <- prometheus.MustNewConstMetric(descLate, prometheus.CounterValue, float64(c.e.late.Load()))
	ch <- prometheus.MustNewConstMetric(descRewinds, prometheus.CounterValue, float64(c.e.rewound.Load()))
	for _, l := range set.rules {
		s := l.stats()
		ch <- prometheus.MustNewConstMetric(descSignals, prometheus.CounterValue, float64(s.Matched), s.RuleID, "fire")
		ch <- prometheus.MustNewConstMetric(descSignals, prometheus.CounterValue, float64(s.Cleared), s.RuleID, "clear")
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(s.Failed), s.RuleID)
		q := 0.0
		if s.Quarantined {
			q = 1
		}
		ch <- prometheus.MustNewConstMetric(descQuarantined, prometheus.GaugeValue, q, s.RuleID)
		if l.kind != "" {
			ch <- prometheus.MustNewConstMetric(descKeys, prometheus.GaugeValue, float64(s.Keys), s.RuleID)
		}
	}
}
