package deploy_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/urbanbrain/urbanbrain/storage/clickhouse"
	"github.com/urbanbrain/urbanbrain/storage/clickhouse/clickhousetest"
)

// TestGrafanaQueriesOnClickHouse runs every dashboard query, with Grafana's time range
// filled in, on a private ClickHouse holding the store's schema and a few known rows, and
// checks the answers. It skips where clickhouse-server is not installed (fails under
// URBANBRAIN_REQUIRE_TOOLS=1).
func TestGrafanaQueriesOnClickHouse(t *testing.T) {
	d := loadDashboard(t)
	srv := clickhousetest.New(t)
	ctx := t.Context()
	const db = "dashboard"
	store, err := clickhouse.Open(ctx, clickhouse.Config{Addrs: []string{srv.Addr()}, Database: db}, nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	conn, err := ch.Open(&ch.Options{Addr: []string{srv.Addr()}, Auth: ch.Auth{Database: db}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })

	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	const minute, hour = int64(60_000), int64(3_600_000)
	insert(ctx, t, conn, "INSERT INTO events (id, type, time_ms)", [][]any{
		{"e1", "sensor", base + 10_000},
		{"e1", "sensor", base + 10_000}, // a replayed copy counts once
		{"e2", "sensor", base + 20_000},
		{"e3", "hotline", base + 70_000},
		{"e4", "hotline", base - 3*hour}, // outside the range
	})
	insert(ctx, t, conn, "INSERT INTO incidents (id, version, open, severity, district, created_ms)", [][]any{
		{"A", int64(1), uint8(1), "high", "D1", base},
		{"A", int64(4), uint8(1), "high", "D1", base},
		{"B", int64(1), uint8(1), "low", "D2", base + 30*minute},
		{"B", int64(2), uint8(0), "low", "D2", base + 30*minute}, // closed by its newest version
		{"C", int64(1), uint8(1), "low", "D1", base + 90*minute},
	})
	insert(ctx, t, conn, "INSERT INTO incident_changes (incident_id, version, to_status, at_ms)", [][]any{
		{"A", int64(1), "new", base},
		{"A", int64(2), "dispatched", base + minute},
		{"A", int64(2), "dispatched", base + minute},
		{"A", int64(3), "accepted", base + 3*minute},
		{"A", int64(4), "resolved", base + 10*minute},
		{"B", int64(1), "new", base + 30*minute},
		{"B", int64(2), "closed", base + 40*minute},
	})

	ts := func(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339) }
	want := map[string][]string{
		"Events per minute by type": {
			ts(base) + " sensor 2",
			ts(base+minute) + " hotline 1",
		},
		"Open incidents by severity":                       {"high 1", "low 1"},
		"Open incidents by district":                       {"D1 2"},
		"Incidents created per hour":                       {ts(base) + " 2", ts(base+hour) + " 1"},
		"Mean time to dispatch / sign / resolve (minutes)": {"3 1 2 10"},
		"Stage times by severity (minutes)":                {"high 1 1 2 10", "low 2 NaN NaN NaN"},
	}
	from, to := strconv.FormatInt(base-hour, 10), strconv.FormatInt(base+2*hour, 10)
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			sql := strings.NewReplacer("${__from}", from, "${__to}", to).Replace(q.RawSQL)
			if strings.Contains(sql, "$") {
				t.Errorf("panel %q: a variable this test does not fill in: %s", p.Title, sql)
				continue
			}
			got, err := queryStrings(ctx, conn, sql)
			if err != nil {
				t.Errorf("panel %q: %v\n%s", p.Title, err, sql)
				continue
			}
			w, ok := want[p.Title]
			if !ok {
				t.Errorf("panel %q: no expected answer in this test; got %q", p.Title, got)
				continue
			}
			slices.Sort(got)
			if !slices.Equal(got, w) {
				t.Errorf("panel %q answered %q, want %q", p.Title, got, w)
			}
		}
	}
}

func insert(ctx context.Context, t *testing.T, conn ch.Conn, query string, rows [][]any) {
	t.Helper()
	b, err := conn.PrepareBatch(ctx, query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	for _, r := range rows {
		if err := b.Append(r...); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// queryStrings runs query and returns each row as its values joined by spaces; times are
// RFC 3339 in UTC.
func queryStrings(ctx context.Context, conn ch.Conn, query string) ([]string, error) {
	rows, err := conn.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	var out []string
	for rows.Next() {
		dst := make([]any, len(types))
		for i, ct := range types {
			dst[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, err
		}
		fields := make([]string, len(dst))
		for i, v := range dst {
			switch v := reflect.ValueOf(v).Elem().Interface().(type) {
			case time.Time:
				fields[i] = v.UTC().Format(time.RFC3339)
			default:
				fields[i] = fmt.Sprint(v)
			}
		}
		out = append(out, strings.Join(fields, " "))
	}
	return out, rows.Err()
}
