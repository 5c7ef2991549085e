package query

import (
	"context"
	"fmt"

	"github.com/urbanbrain/urbanbrain/storage"
)

// Querier runs one statement with its arguments: a backend's read connection.
type Querier func(ctx context.Context, stmt string, args ...any) (Rows, error)

// Breakdown answers storage.Breakdown for the incidents created in f's range, in f's scope,
// with the same statements on every backend: only the Dialect's table expression, integer
// cast and milestone rows differ. A period is at most storage.MaxReportRange, so every
// statement reads a bounded slice of the incidents.
func (d *Dialect) Breakdown(ctx context.Context, q Querier, f storage.KPIFilter, o storage.BreakdownOptions) (storage.Breakdown, error) {
	var out storage.Breakdown
	if err := f.ValidateReport(); err != nil {
		return out, err
	}
	o = o.WithDefaults()
	w := d.KPIIncidents(f)
	from := " FROM " + d.IncidentsTable + w.SQL()
	n := d.Int("count(" + d.CountAll + ")")

	for _, g := range []struct {
		col string
		dst *[]storage.Count
	}{{"source", &out.BySource}, {"category", &out.ByCategory}, {"district", &out.ByDistrict}} {
		*g.dst = []storage.Count{}
		err := each(ctx, q, "SELECT "+g.col+", "+n+from+" GROUP BY "+g.col, w.Args, func(r Rows) error {
			var c storage.Count
			var v int64
			err := r.Scan(&c.Key, &v)
			c.Count = int(v)
			*g.dst = append(*g.dst, c)
			return err
		})
		if err != nil {
			return storage.Breakdown{}, fmt.Errorf("incidents by %s: %w", g.col, err)
		}
	}

	// Grids, with how many of their incidents were late over a stage.
	late, lateArgs := d.Late(o.Limits)
	firstReached, firstArgs := d.FirstReachedCols()
	rows, rowArgs := d.Milestones([]string{"grid", "district", "severity"}, firstReached, firstArgs, w)
	out.Grids = []storage.GridCount{}
	err := each(ctx, q, "SELECT grid, max(district), "+n+", "+d.Int(d.CountIf(late))+" FROM ("+rows+") GROUP BY grid",
		append(lateArgs, rowArgs...), func(r Rows) error {
			var g storage.GridCount
			var c, l int64
			err := r.Scan(&g.Grid, &g.District, &c, &l)
			g.Incidents, g.Overdue = int(c), int(l)
			out.Grids = append(out.Grids, g)
			return err
		})
	if err != nil {
		return storage.Breakdown{}, fmt.Errorf("incidents by grid: %w", err)
	}

	out.Repeats = []storage.RepeatCount{}
	err = each(ctx, q, "SELECT grid, category, "+n+from+" GROUP BY grid, category HAVING "+n+" >= ?",
		w.ArgsWith(o.MinRepeat), func(r Rows) error {
			var c storage.RepeatCount
			var v int64
			err := r.Scan(&c.Grid, &c.Category, &v)
			c.Incidents = int(v)
			out.Repeats = append(out.Repeats, c)
			return err
		})
	if err != nil {
		return storage.Breakdown{}, fmt.Errorf("repeat problems: %w", err)
	}

	out.Reported = []storage.ReportedIncident{}
	many := d.KPIIncidents(f)
	many.Add(Computed, "report_count", " >= ?", o.MinReports)
	err = each(ctx, q, "SELECT id, title, category, district, grid, "+d.Int("report_count")+" FROM "+d.IncidentsTable+many.SQL()+
		" ORDER BY report_count DESC, id LIMIT ?", many.ArgsWith(o.MaxReported), func(r Rows) error {
		var inc storage.ReportedIncident
		var v int64
		err := r.Scan(&inc.ID, &inc.Title, &inc.Category, &inc.District, &inc.Grid, &v)
		inc.Reports = int(v)
		out.Reported = append(out.Reported, inc)
		return err
	})
	if err != nil {
		return storage.Breakdown{}, fmt.Errorf("much-reported incidents: %w", err)
	}

	out.Rules = []storage.RuleHits{}
	err = each(ctx, q, "SELECT rule_id, "+n+", "+d.Int("sum(report_count)")+from+" GROUP BY rule_id", w.Args, func(r Rows) error {
		var h storage.RuleHits
		var c, s int64
		err := r.Scan(&h.Rule, &c, &s)
		h.Incidents, h.Reports = int(c), int(s)
		out.Rules = append(out.Rules, h)
		return err
	})
	if err != nil {
		return storage.Breakdown{}, fmt.Errorf("rule hits: %w", err)
	}

	out.Sort(o)
	return out, nil
}

// each runs stmt and calls fn on every row.
func each(ctx context.Context, q Querier, stmt string, args []any, fn func(Rows) error) error {
	rows, err := q(ctx, stmt, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
