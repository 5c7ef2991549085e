package ingest

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/urbanbrain/urbanbrain/event"
)

// Outcomes of one input.
const (
	OutcomeAccepted  = "accepted"
	OutcomeDuplicate = "duplicate"
	OutcomeRejected  = "rejected"
)

// TypeUnknown labels rejected input whose type could not be read.
const TypeUnknown = "unknown"

var (
	metricTypes    = [...]string{event.TypeSensorReading, event.TypeHotlineTicket, event.TypeVideoDetection, TypeUnknown}
	metricOutcomes = [...]string{OutcomeAccepted, OutcomeDuplicate, OutcomeRejected}
)

func typeIndex(t string) int {
	switch t {
	case event.TypeSensorReading:
		return 0
	case event.TypeHotlineTicket:
		return 1
	case event.TypeVideoDetection:
		return 2
	default:
		return 3
	}
}

// counters are plain atomics, read by Stats and by the Prometheus collector: one source of
// truth, and no allocation on the hot path.
type counters struct {
	events   [len(metricTypes)][len(metricOutcomes)]atomic.Uint64
	rejected [numClasses]atomic.Uint64
}

func (c *counters) accepted(typ string)  { c.events[typeIndex(typ)][0].Add(1) }
func (c *counters) duplicate(typ string) { c.events[typeIndex(typ)][1].Add(1) }
func (c *counters) reject(typ string, class Class) {
	c.events[typeIndex(typ)][2].Add(1)
	if class < numClasses {
		c.rejected[class].Add(1)
	}
}

// Counts are the outcomes for one event type.
type Counts struct {
	Accepted, Duplicates, Rejected uint64
}

// Stats is a snapshot of what ingest has done since it started.
type Stats struct {
	// ByType is keyed by event type; input rejected before its type was known counts under
	// TypeUnknown.
	ByType map[string]Counts
	// Rejected counts rejections by reason class (Class.String()).
	Rejected map[string]uint64
}

// Total sums ByType.
func (s Stats) Total() Counts {
	var t Counts
	for _, c := range s.ByType {
		t.Accepted += c.Accepted
		t.Duplicates += c.Duplicates
		t.Rejected += c.Rejected
	}
	return t
}

// Stats returns the counters so far.
func (s *Service) Stats() Stats {
	st := Stats{ByType: make(map[string]Counts, len(metricTypes)), Rejected: make(map[string]uint64)}
	for i, typ := range metricTypes {
		st.ByType[typ] = Counts{
			Accepted:   s.counts.events[i][0].Load(),
			Duplicates: s.counts.events[i][1].Load(),
			Rejected:   s.counts.events[i][2].Load(),
		}
	}
	for c := Class(1); c < numClasses; c++ {
		st.Rejected[c.String()] = s.counts.rejected[c].Load()
	}
	return st
}

var (
	eventsDesc = prometheus.NewDesc("urbanbrain_ingest_events_total",
		"Inputs handled by ingest, by event type and outcome (accepted, duplicate, rejected).",
		[]string{"type", "outcome"}, nil)
	rejectedDesc = prometheus.NewDesc("urbanbrain_ingest_rejected_total",
		"Inputs ingest rejected and dead-lettered, by reason class.",
		[]string{"reason"}, nil)
)

// collector exposes counters to Prometheus.
type collector struct{ c *counters }

func (col collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- eventsDesc
	ch <- rejectedDesc
}

func (col collector) Collect(ch chan<- prometheus.Metric) {
	for i, typ := range metricTypes {
		for j, outcome := range metricOutcomes {
			send(ch, eventsDesc, col.c.events[i][j].Load(), typ, outcome)
		}
	}
	for c := Class(1); c < numClasses; c++ {
		send(ch, rejectedDesc, col.c.rejected[c].Load(), c.String())
	}
}

func send(ch chan<- prometheus.Metric, desc *prometheus.Desc, v uint64, labels ...string) {
	m, err := prometheus.NewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(desc, err)
	}
	ch <- m
}
