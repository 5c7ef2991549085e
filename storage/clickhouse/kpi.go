package clickhouse

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
	// Copies of an event are identical: dropping them with LIMIT 1 BY over the few columns
	// counted is far cheaper than FINAL over whole rows.
	rows, err := s.conn.Query(ctx, "SELECT intDiv(time_ms, 60000) * 60000 AS minute, type, count() FROM "+
		"(SELECT time_ms, type FROM events"+w.SQL()+" LIMIT 1 BY type, id) GROUP BY minute, type ORDER BY minute, type", w.Args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: event rates: %w", err)
	}
	defer rows.Close()
	out := []storage.EventRate{}
	for rows.Next() {
		var (
			minute int64
			typ    string
			n      uint64
		)
		if err := rows.Scan(&minute, &typ, &n); err != nil {
			return nil, fmt.Errorf("clickhouse: event rates: %w", err)
		}
		out = append(out, storage.EventRate{Minute: canon.FromMillis(minute), Type: typ, Count: int(n)})
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
		rows, err := s.conn.Query(readCtx(ctx), "SELECT "+g.col+", count() FROM incidents FINAL"+w.SQL()+" GROUP BY "+g.col, w.Args...)
		if err != nil {
			return storage.OpenIncidents{}, fmt.Errorf("clickhouse: open incidents by %s: %w", g.col, err)
		}
		counts := []storage.Count{}
		for rows.Next() {
			var (
				key string
				n   uint64
			)
			if err := rows.Scan(&key, &n); err != nil {
				rows.Close()
				return storage.OpenIncidents{}, fmt.Errorf("clickhouse: open incidents by %s: %w", g.col, err)
			}
			counts = append(counts, storage.Count{Key: key, Count: int(n)})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return storage.OpenIncidents{}, fmt.Errorf("clickhouse: open incidents by %s: %w", g.col, err)
		}
		storage.SortCounts(counts)
		*g.dst = counts
	}
	for _, c := range out.BySeverity {
		out.Total += c.Count
	}
	return out, nil
}

// StageTimes reports, per stage of the loop, how many incidents created in f's range completed
// it, their mean time, and the on-time rate against limits.
func (s *Store) StageTimes(ctx context.Context, f storage.KPIFilter, limits storage.StageLimits) ([]storage.StageStat, error) {
	if err := f.Validate(true); err != nil {
		return nil, err
	}
	w := dialect.KPIIncidents(f)

	// The first time each incident reached each status (see dialect.FirstReached).
	milestones, milestoneArgs := dialect.FirstReachedCols()
	cols, colArgs := dialect.StageSums(limits)
	stmt := "SELECT severity, " + strings.Join(cols, ", ") + " FROM (" +
		"SELECT severity, t_created, " + strings.Join(query.MilestoneCols(), ", ") + " FROM (" +
		"SELECT id, severity, created_ms AS t_created FROM incidents FINAL" + w.SQL() + ") " +
		"ANY LEFT JOIN (SELECT incident_id AS id, " + strings.Join(milestones, ", ") +
		" FROM incident_changes GROUP BY incident_id) USING id) GROUP BY severity"
	args := append(append(colArgs, w.Args...), milestoneArgs...)
	rows, err := s.conn.Query(readCtx(ctx), stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: stage times: %w", err)
	}
	defer rows.Close()
	var sums []storage.StageSums
	for rows.Next() {
		var sev string
		dst := []any{&sev}
		counts := make([]uint64, 2*len(storage.Stages))
		totals := make([]int64, len(storage.Stages))
		for i := range storage.Stages {
			dst = append(dst, &counts[2*i], &totals[i], &counts[2*i+1])
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, fmt.Errorf("clickhouse: stage times: %w", err)
		}
		for i, st := range storage.Stages {
			sums = append(sums, storage.StageSums{Stage: st.Name, Severity: sev,
				Completed: int(counts[2*i]), SumMs: totals[i], OnTime: int(counts[2*i+1])})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: stage times: %w", err)
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
	rows, err := s.conn.Query(readCtx(ctx), "SELECT report_count, count() FROM incidents FINAL"+w.SQL()+
		" GROUP BY report_count ORDER BY report_count", w.Args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: report counts: %w", err)
	}
	defer rows.Close()
	out := []storage.ReportCount{}
	for rows.Next() {
		var (
			reports int64
			n       uint64
		)
		if err := rows.Scan(&reports, &n); err != nil {
			return nil, fmt.Errorf("clickhouse: report counts: %w", err)
		}
		out = append(out, storage.ReportCount{Reports: int(reports), Incidents: int(n)})
	}
	return out, rows.Err()
}

// IncidentBreakdown tells, for the incidents created in f's range, where they came from and
// where they are, which grids and problems recur and which rules raised them (a period report).
func (s *Store) IncidentBreakdown(ctx context.Context, f storage.KPIFilter, o storage.BreakdownOptions) (storage.Breakdown, error) {
	b, err := dialect.Breakdown(ctx, s.query, f, o)
	if err != nil {
		return b, fmt.Errorf("clickhouse: %w", err)
	}
	return b, nil
}

func (s *Store) query(ctx context.Context, stmt string, args ...any) (query.Rows, error) {
	rows, err := s.conn.Query(readCtx(ctx), stmt, args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}
