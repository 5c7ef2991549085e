package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/storage/internal/canon"
	"github.com/urbanbrain/urbanbrain/storage/internal/query"
)

// EventRates counts events per minute and type (source) in f's range, oldest minute first.
func (s *Store) EventRates(ctx context.Context, f storage.KPIFilter) ([]storage.EventRate, error) {
	if err := f.ValidateRates(); err != nil {
		return nil, err
	}
	w := dialect.KPIEvents(f)
	rows, err := s.r.QueryContext(ctx, `SELECT (time_ms / 60000) * 60000 AS minute, type, count(*) FROM events`+
		w.SQL()+` GROUP BY minute, type ORDER BY minute, type`, w.Args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: event rates: %w", err)
	}
	defer rows.Close()
	out := []storage.EventRate{}
	for rows.Next() {
		var (
			r      storage.EventRate
			minute int64
		)
		if err := rows.Scan(&minute, &r.Type, &r.Count); err != nil {
			return nil, fmt.Errorf("sqlite: event rates: %w", err)
		}
		r.Minute = canon.FromMillis(minute)
		out = append(out, r)
	}
	return out, rows.Err()
}

// OpenIncidents counts the open incidents in f's scope by severity, category and district.
func (s *Store) OpenIncidents(ctx context.Context, f storage.KPIFilter) (storage.OpenIncidents, error) {
	var out storage.OpenIncidents
	if err := f.Validate(false); err != nil {
		return out, err
	}
	w := dialect.KPIOpen(f)
	for _, g := range []struct {
		col string
		dst *[]storage.Count
	}{{"severity", &out.BySeverity}, {"category", &out.ByCategory}, {"district", &out.ByDistrict}} {
		counts, err := s.counts(ctx, "SELECT "+g.col+", count(*) FROM incidents"+w.SQL()+" GROUP BY "+g.col, w.Args)
		if err != nil {
			return storage.OpenIncidents{}, fmt.Errorf("sqlite: open incidents by %s: %w", g.col, err)
		}
		*g.dst = counts
	}
	for _, c := range out.BySeverity {
		out.Total += c.Count
	}
	return out, nil
}

func (s *Store) counts(ctx context.Context, query string, args []any) ([]storage.Count, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []storage.Count{}
	for rows.Next() {
		var c storage.Count
		if err := rows.Scan(&c.Key, &c.Count); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	storage.SortCounts(out)
	return out, rows.Err()
}

// StageTimes reports, per stage of the loop, how many incidents created in f's range completed
// it, their mean time, and the on-time rate against limits.
func (s *Store) StageTimes(ctx context.Context, f storage.KPIFilter, limits storage.StageLimits) ([]storage.StageStat, error) {
	if err := f.Validate(true); err != nil {
		return nil, err
	}
	w := dialect.KPIIncidents(f)
	// The first time each incident reached each status; NULL when it has not (yet).
	milestones, milestoneArgs := dialect.FirstReachedCols()
	cols, colArgs := dialect.StageSums(limits)
	stmt := "SELECT severity, " + strings.Join(cols, ", ") + " FROM (SELECT i.severity, i.created_ms AS t_created, " +
		strings.Join(milestones, ", ") + " FROM incidents i" + w.SQL() + ") GROUP BY severity"
	// Arguments in the order their placeholders appear in the text.
	ordered := append(append(colArgs, milestoneArgs...), w.Args...)
	rows, err := s.r.QueryContext(ctx, stmt, ordered...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: stage times: %w", err)
	}
	defer rows.Close()
	var sums []storage.StageSums
	for rows.Next() {
		var sev string
		vals := make([]int64, 3*len(storage.Stages))
		dst := []any{&sev}
		for i := range vals {
			dst = append(dst, &vals[i])
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, fmt.Errorf("sqlite: stage times: %w", err)
		}
		for i, st := range storage.Stages {
			sums = append(sums, storage.StageSums{Stage: st.Name, Severity: sev,
				Completed: int(vals[3*i]), SumMs: vals[3*i+1], OnTime: int(vals[3*i+2])})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: stage times: %w", err)
	}
	return storage.StageStats(sums, limits), nil
}

// ReportCounts tells how many incidents created in f's range have each number of reports,
// fewest reports first.
func (s *Store) ReportCounts(ctx context.Context, f storage.KPIFilter) ([]storage.ReportCount, error) {
	if err := f.Validate(true); err != nil {
		return nil, err
	}
	w := dialect.KPIIncidents(f)
	rows, err := s.r.QueryContext(ctx, "SELECT report_count, count(*) FROM incidents"+w.SQL()+
		" GROUP BY report_count ORDER BY report_count", w.Args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: report counts: %w", err)
	}
	defer rows.Close()
	out := []storage.ReportCount{}
	for rows.Next() {
		var rc storage.ReportCount
		if err := rows.Scan(&rc.Reports, &rc.Incidents); err != nil {
			return nil, fmt.Errorf("sqlite: report counts: %w", err)
		}
		out = append(out, rc)
	}
	return out, rows.Err()
}

// IncidentBreakdown tells, for the incidents created in f's range, where they came from and
// where they are, which grids and problems recur and which rules raised them (a period report).
func (s *Store) IncidentBreakdown(ctx context.Context, f storage.KPIFilter, o storage.BreakdownOptions) (storage.Breakdown, error) {
	b, err := dialect.Breakdown(ctx, s.query, f, o)
	if err != nil {
		return b, fmt.Errorf("sqlite: %w", err)
	}
	return b, nil
}

func (s *Store) query(ctx context.Context, stmt string, args ...any) (query.Rows, error) {
	rows, err := s.r.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}
