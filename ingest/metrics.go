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
	events     [len(metricTypes)][len(metricOutcomes)]atomic.Uint64
	rejected   [numClasses]atomic.Uint64
	categories [len(categoryBys)]atomic.Uint64
	unmatched  [len(unmatchedFields)]atomic.Uint64
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
	// Categories counts accepted 12345 tickets by how their category was decided
	// (event.CategoryBy…: given, mapped, keyword, default).
	Categories map[string]uint64
	// Unmatched counts accepted tickets whose producer named no category of the list, by
	// what it sent: UnmatchedCategory (a text no alias matched), UnmatchedCategoryCode (a
	// code not in the list).
	Unmatched map[string]uint64
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
	st := Stats{ByType: make(map[string]Counts, len(metricTypes)), Rejected: make(map[string]uint64),
		Categories: make(map[string]uint64, len(categoryBys)), Unmatched: make(map[string]uint64, len(unmatchedFields))}
	for i, by := range categoryBys {
		st.Categories[by] = s.counts.categories[i].Load()
	}
	for i, f := range unmatchedFields {
		st.Unmatched[f] = s.counts.unmatched[i].Load()
	}
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
	categoriesDesc = prometheus.NewDesc("urbanbrain_ingest_ticket_categories_total",
		"Accepted 12345 tickets by how their category was decided: given (a valid category_code), mapped (the producer's category text is an alias), keyword (the ticket's text), default (none: the generic category).",
		[]string{"by"}, nil)
	unmatchedDesc = prometheus.NewDesc("urbanbrain_ingest_ticket_category_unmatched_total",
		"Accepted 12345 tickets whose producer named no category of the list, by field: category (a text no alias matched), category_code (a code not in the list).",
		[]string{"field"}, nil)
)

// collector exposes counters to Prometheus.
type collector struct{ c *counters }

func (col collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- eventsDesc
	ch <- rejectedDesc
	ch <- categoriesDesc
	ch <- unmatchedDesc
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
	for i, by := range categoryBys {
		send(ch, categoriesDesc, col.c.categories[i].Load(), by)
	}
	for i, f := range unmatchedFields {
		send(ch, unmatchedDesc, col.c.unmatched[i].Load(), f)
	}
}

func send(ch chan<- prometheus.Metric, desc *prometheus.Desc, v uint64, labels ...string) {
	m, err := prometheus.NewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(desc, err)
	}
	ch <- m
}
