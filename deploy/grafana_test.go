package deploy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const dashboardFile = "grafana/urbanbrain-clickhouse.json"

type dashboard struct {
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Title      string     `json:"title"`
		Datasource datasource `json:"datasource"`
		Targets    []struct {
			Datasource datasource `json:"datasource"`
			RawSQL     string     `json:"rawSql"`
		} `json:"targets"`
	} `json:"panels"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

const chPlugin = "grafana-clickhouse-datasource"

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s does not parse: %v", dashboardFile, err)
	}
	return d
}

var createTable = regexp.MustCompile(`(?i)\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([A-Za-z_][A-Za-z0-9_]*)`)

// migrationTables lists the tables the ClickHouse migrations create.
func migrationTables(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../storage/clickhouse/migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no ClickHouse migrations found (%v)", err)
	}
	var tables []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range createTable.FindAllStringSubmatch(string(b), -1) {
			tables = append(tables, m[1])
		}
	}
	if len(tables) == 0 {
		t.Fatal("the migrations create no table: the CREATE TABLE pattern no longer matches")
	}
	return tables
}

var sqlComment = regexp.MustCompile(`--[^\n]*|/\*(?s:.*?)\*/`)
var tableRef = regexp.MustCompile(`(?i)\b(?:FROM|JOIN)\s+([A-Za-z_][A-Za-z0-9_.]*)`)

// tablesIn returns the tables a query reads: the names after FROM and JOIN (a subquery's
// parenthesis is not a name).
func tablesIn(query string) []string {
	var out []string
	for _, m := range tableRef.FindAllStringSubmatch(sqlComment.ReplaceAllString(query, " "), -1) {
		out = append(out, m[1])
	}
	return out
}

func TestTablesIn(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"SELECT count() FROM incidents FINAL", []string{"incidents"}},
		{"SELECT 1 FROM (SELECT id FROM events) ANY LEFT JOIN dispatches USING id", []string{"events", "dispatches"}},
		{"SELECT 1 from system.parts -- FROM nothing", []string{"system.parts"}},
		{"SELECT 1", nil},
	} {
		if got := tablesIn(tc.query); !slices.Equal(got, tc.want) {
			t.Errorf("tablesIn(%q) = %q, want %q", tc.query, got, tc.want)
		}
	}
}

func TestGrafanaDashboard(t *testing.T) {
	d := loadDashboard(t)
	tables := migrationTables(t)

	var hasVar bool
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == chPlugin {
			hasVar = true
		}
	}
	if !hasVar {
		t.Errorf("no ${datasource} template variable of type datasource for %s", chPlugin)
	}
	if len(d.Panels) == 0 {
		t.Fatal("the dashboard has no panels")
	}
	for _, p := range d.Panels {
		if p.Datasource != (datasource{chPlugin, "${datasource}"}) {
			t.Errorf("panel %q: data source %+v, want %s ${datasource}", p.Title, p.Datasource, chPlugin)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if q.Datasource != (datasource{chPlugin, "${datasource}"}) {
				t.Errorf("panel %q: query data source %+v, want %s ${datasource}", p.Title, q.Datasource, chPlugin)
			}
			used := tablesIn(q.RawSQL)
			if len(used) == 0 {
				t.Errorf("panel %q: the query reads no table: %q", p.Title, q.RawSQL)
			}
			for _, tb := range used {
				if !slices.Contains(tables, tb) {
					t.Errorf("panel %q reads table %q, which the ClickHouse migrations do not create (they create %s)",
						p.Title, tb, strings.Join(tables, ", "))
				}
			}
		}
	}
}
