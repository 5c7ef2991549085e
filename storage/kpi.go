package storage

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
)

// KPIFilter scopes a KPI query. District and Grids narrow it to the caller's scope as in
// IncidentFilter. Since and Until bound the time the KPI is about (the event's time, or the
// incident's creation time): Since <= t < Until, both required except for OpenIncidents, which
// is about now and ignores them.
type KPIFilter struct {
	District string
	Grids    []string
	Since    time.Time
	Until    time.Time
}

// MaxKPIRange is the longest Since..Until of EventRates: a week of minutes is 10,080 points
// per source, about what a chart can show.
const MaxKPIRange = 7 * 24 * time.Hour

// Validate reports every problem with the filter, wrapped in ErrInvalidFilter. needRange is
// false for OpenIncidents.
func (f KPIFilter) Validate(needRange bool) error {
	var errs []error
	errs = append(errs, validateGrids(f.Grids)...)
	if needRange {
		if f.Since.IsZero() || f.Until.IsZero() {
			errs = append(errs, fmt.Errorf("since and until are required"))
		} else {
			errs = append(errs, validateRange(f.Since, f.Until)...)
		}
	}
	return wrapInvalid(errs)
}

// ValidateRates is Validate for EventRates, which also caps the range.
func (f KPIFilter) ValidateRates() error { return f.validateWithin(MaxKPIRange) }

// validateWithin is Validate(true) with a range of at most longest.
func (f KPIFilter) validateWithin(longest time.Duration) error {
	if err := f.Validate(true); err != nil {
		return err
	}
	if f.Until.Sub(f.Since) > longest {
		return wrapInvalid([]error{fmt.Errorf("range %s is longer than %s", f.Until.Sub(f.Since), longest)})
	}
	return nil
}

// EventRate is how many events of one type (source: sensor, hotline, video) happened in one
// minute. Minutes without events are absent.
type EventRate struct {
	Minute time.Time `json:"minute"`
	Type   string    `json:"type"`
	Count  int       `json:"count"`
}

// SortEventRates orders rates by minute, then type: the order every backend returns.
func SortEventRates(rs []EventRate) {
	sort.Slice(rs, func(i, j int) bool {
		if !rs[i].Minute.Equal(rs[j].Minute) {
			return rs[i].Minute.Before(rs[j].Minute)
		}
		return rs[i].Type < rs[j].Type
	})
}

// Count is the number of incidents with one value of a dimension.
type Count struct {
	Key   string `json:"key"`
	Count int    `json:"count"`
}

// SortCounts orders counts largest first, then by key: the order every backend returns.
func SortCounts(cs []Count) {
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].Count != cs[j].Count {
			return cs[i].Count > cs[j].Count
		}
		return cs[i].Key < cs[j].Key
	})
}

// OpenIncidents counts the incidents that are open now, by severity, category and district.
type OpenIncidents struct {
	Total      int     `json:"total"`
	BySeverity []Count `json:"by_severity"`
	ByCategory []Count `json:"by_category"`
	ByDistrict []Count `json:"by_district"`
}

// Stages of the incident loop whose times the KPIs report. Each is measured from the first
// time the incident reached From (its creation when From is empty) to the first time it reached
// To; an incident that has not reached To yet does not count in the stage.
var Stages = []Stage{
	{Name: event.StageDispatch, To: event.StatusDispatched},                            // 派遣: time to dispatch
	{Name: event.StageSignFor, From: event.StatusDispatched, To: event.StatusAccepted}, // 签收: time to sign for
	{Name: event.StageHandle, From: event.StatusAccepted, To: event.StatusResolved},    // 处置
	{Name: event.StageVerify, From: event.StatusResolved, To: event.StatusClosed},      // 核查/结案
	{Name: event.StageResolve, To: event.StatusResolved},                               // time to resolve, end to end
}

// Stage is one measured span of the loop.
type Stage struct {
	Name     string
	From, To event.Status
}

// StageLimits are the time limits of stages by severity: limits[stage][severity]. A stage or
// severity without a limit has no on-time rate.
type StageLimits map[string]map[string]time.Duration

// StageSums is what a backend computes for one stage and severity: how many incidents of that
// severity completed the stage, the sum of their durations in milliseconds, and how many of
// them took no longer than the limit (0 when there is no limit). Integers only, so that every
// backend's answer is exactly the same; StageStats derives means and rates from them.
type StageSums struct {
	Stage     string
	Severity  string
	Completed int
	SumMs     int64
	OnTime    int
}

// StageStat is the KPI of one stage: how many incidents completed it, the mean time they took,
// and the on-time rate among those whose severity has a limit.
type StageStat struct {
	Stage     string `json:"stage"`
	Completed int    `json:"completed"`
	// MeanMs is the mean duration in whole milliseconds (0 when nothing completed).
	MeanMs int64 `json:"mean_ms"`
	// Limited is how many completed incidents had a limit; OnTime how many of them met it.
	Limited    int      `json:"limited"`
	OnTime     int      `json:"on_time"`
	OnTimeRate *float64 `json:"on_time_rate"` // OnTime/Limited; null when Limited is 0
}

// StageStats folds a backend's sums into one StageStat per stage, in the order of Stages.
func StageStats(sums []StageSums, limits StageLimits) []StageStat {
	out := make([]StageStat, len(Stages))
	total := make([]int64, len(Stages))
	for i, st := range Stages {
		out[i].Stage = st.Name
	}
	for _, s := range sums {
		i := slices.IndexFunc(Stages, func(st Stage) bool { return st.Name == s.Stage })
		if i < 0 {
			continue
		}
		out[i].Completed += s.Completed
		total[i] += s.SumMs
		if _, ok := limits[s.Stage][s.Severity]; ok {
			out[i].Limited += s.Completed
			out[i].OnTime += s.OnTime
		}
	}
	for i := range out {
		if out[i].Completed > 0 {
			out[i].MeanMs = total[i] / int64(out[i].Completed)
		}
		if out[i].Limited > 0 {
			r := float64(out[i].OnTime) / float64(out[i].Limited)
			out[i].OnTimeRate = &r
		}
	}
	return out
}

// LimitMs is the limit of stage for severity in milliseconds, or -1 when there is none, as the
// backends put it into their queries.
func (l StageLimits) LimitMs(stage, severity string) int64 {
	d, ok := l[stage][severity]
	if !ok {
		return -1
	}
	return d.Milliseconds()
}

// Severities lists the severities that have a limit for stage, sorted, so that the query
// text a backend builds from the limits is deterministic.
func (l StageLimits) Severities(stage string) []string {
	var out []string
	for sev := range l[stage] {
		out = append(out, sev)
	}
	sort.Strings(out)
	return out
}

// ReportCount is how many incidents have a given number of reports (一事多报: a count above one
// is a problem reported several times).
type ReportCount struct {
	Reports   int `json:"reports"`
	Incidents int `json:"incidents"`
}
