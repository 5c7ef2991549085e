package storage

import (
	"sort"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
)

// MaxReportRange is the longest Since..Until of IncidentBreakdown: a month, the longest
// period a leadership report covers.
const MaxReportRange = 31 * 24 * time.Hour

// ValidateReport is Validate for IncidentBreakdown, which also caps the range.
func (f KPIFilter) ValidateReport() error { return f.validateWithin(MaxReportRange) }

// IncidentSource is where an incident came from: the event type of its first report
// (event.TypeHotlineTicket for 12345, a sensor reading or a camera detection), or "" when it
// has none. Backends store it as a column so that reports can count by it.
func IncidentSource(inc event.Incident) string {
	if len(inc.Reports) == 0 {
		return ""
	}
	return inc.Reports[0].EventType
}

// BreakdownOptions are the thresholds of IncidentBreakdown.
type BreakdownOptions struct {
	// Limits decide which incidents were overdue: those that took longer than their
	// severity's limit over any stage they completed (the test of the stages' on-time rate).
	Limits StageLimits
	// MinRepeat is how many incidents of one category in one grid make a repeat problem;
	// less than 2 means 2.
	MinRepeat int
	// MinReports is how many reports make an incident a much-reported one; less than 2 means 2.
	MinReports int
	// MaxReported caps the much-reported incidents listed; 0 or less means 20.
	MaxReported int
}

// WithDefaults is o with the defaults of its unset fields applied.
func (o BreakdownOptions) WithDefaults() BreakdownOptions {
	o.MinRepeat = max(o.MinRepeat, 2)
	o.MinReports = max(o.MinReports, 2)
	if o.MaxReported <= 0 {
		o.MaxReported = 20
	}
	return o
}

// Breakdown is what a period report needs of the incidents created in a KPIFilter's range,
// beyond the stage times: how many, where they came from and where they are, the grids and
// problems that recur, and which rules raised them.
type Breakdown struct {
	Total      int     `json:"total"`
	BySource   []Count `json:"by_source"` // IncidentSource
	ByCategory []Count `json:"by_category"`
	ByDistrict []Count `json:"by_district"`
	// Grids holds every grid with an incident (ungridded ones under ""), most incidents first.
	Grids []GridCount `json:"grids"`
	// Repeats are the grid × category pairs with at least MinRepeat incidents, most first.
	Repeats []RepeatCount `json:"repeats"`
	// Reported are the incidents with at least MinReports reports (一事多报), most first, at
	// most MaxReported.
	Reported []ReportedIncident `json:"reported"`
	// Rules are the rules that opened incidents, most incidents first ("" for none).
	Rules []RuleHits `json:"rules"`
}

// GridCount is one grid's incidents and how many of them were overdue.
type GridCount struct {
	Grid      string `json:"grid"`
	District  string `json:"district"`
	Incidents int    `json:"incidents"`
	Overdue   int    `json:"overdue"`
}

// RepeatCount is a repeat problem: one category's incidents in one grid.
type RepeatCount struct {
	Grid      string `json:"grid"`
	Category  string `json:"category"`
	Incidents int    `json:"incidents"`
}

// ReportedIncident is an incident reported many times.
type ReportedIncident struct {
	ID       string `json:"id"`
	Title    string `json:"title"`
	Category string `json:"category"`
	District string `json:"district"`
	Grid     string `json:"grid"`
	Reports  int    `json:"reports"`
}

// RuleHits is what one rule opened: incidents, and the reports those incidents gathered.
type RuleHits struct {
	Rule      string `json:"rule"`
	Incidents int    `json:"incidents"`
	Reports   int    `json:"reports"`
}

// Sort puts every list of b in the order every backend returns, and applies MaxReported.
func (b *Breakdown) Sort(o BreakdownOptions) {
	o = o.WithDefaults()
	for _, cs := range [][]Count{b.BySource, b.ByCategory, b.ByDistrict} {
		SortCounts(cs)
	}
	sort.Slice(b.Grids, func(i, j int) bool {
		x, y := b.Grids[i], b.Grids[j]
		if x.Incidents != y.Incidents {
			return x.Incidents > y.Incidents
		}
		if x.Overdue != y.Overdue {
			return x.Overdue > y.Overdue
		}
		return x.Grid < y.Grid
	})
	sort.Slice(b.Repeats, func(i, j int) bool {
		x, y := b.Repeats[i], b.Repeats[j]
		if x.Incidents != y.Incidents {
			return x.Incidents > y.Incidents
		}
		if x.Grid != y.Grid {
			return x.Grid < y.Grid
		}
		return x.Category < y.Category
	})
	sort.Slice(b.Reported, func(i, j int) bool {
		if b.Reported[i].Reports != b.Reported[j].Reports {
			return b.Reported[i].Reports > b.Reported[j].Reports
		}
		return b.Reported[i].ID < b.Reported[j].ID
	})
	if len(b.Reported) > o.MaxReported {
		b.Reported = b.Reported[:o.MaxReported]
	}
	sort.Slice(b.Rules, func(i, j int) bool {
		if b.Rules[i].Incidents != b.Rules[j].Incidents {
			return b.Rules[i].Incidents > b.Rules[j].Incidents
		}
		return b.Rules[i].Rule < b.Rules[j].Rule
	})
	b.Total = 0
	for _, c := range b.BySource {
		b.Total += c.Count
	}
}
