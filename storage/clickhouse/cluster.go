package clickhouse

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// A store past one server (Config.Cluster, --clickhouse-cluster) keeps each table in two parts
// on every server of the cluster:
//
//   - <table>_local, the MergeTree table of the migrations, holding this shard's rows;
//   - <table>, a Distributed table over the <table>_local of every shard, which the store
//     writes to and reads from. Every server has one, so any server answers any query.
//
// ClickHouse 18.16 runs `ON CLUSTER` DDL only through ZooKeeper, so the store does not use it:
// it connects to every address of Config.Addrs in turn and runs the migrations there itself
// (each server records them in its own, local, schema_migrations). The addresses must
// therefore be every server of the cluster.
//
// Rows are sharded by street: events by their street, and every table about an incident
// (incidents, timeline, report links, dispatches, audit records) by the street embedded in the
// incident id ("INC-<street>-…", event.IncidentStreet). Deduplication (FINAL, LIMIT 1 BY)
// happens on each shard, so it is only right if every copy and version of a key lands on the
// same shard: a replayed event has the same street, and every version, timeline row, link and
// dispatch of an incident has the same incident id, whatever the incident's current area.
// An incident and the events of its street also land together.
//
// Inserts into a Distributed table are asynchronous on 18.16 by default (queued on the
// receiving server and forwarded later): the store inserts with insert_distributed_sync = 1, so
// an insert returns once every shard has its rows, a reader sees its writes, and a row a shard
// refuses fails the insert (for the batch writer to isolate) instead of a background queue.
//
// On 18.16 a Distributed table created AS its local table cannot be inserted into when the
// local table has a MATERIALIZED column (the forwarded block carries it and the shard refuses
// it), so the Distributed table is declared from the local table's columns with MATERIALIZED
// columns turned into ALIAS columns of the same expression. Two 18.16 bugs also shape the
// reads (see keyCond and in): PREWHERE on a Distributed table read FINAL fails ("Cannot find
// column version in source stream"), and a subquery over a Distributed table inside IN must be
// GLOBAL (computed once by the server that got the query and shipped to the shards; a plain IN
// would run it on each shard against every shard, which ClickHouse refuses by default).

// incidentStreet is event.IncidentStreet in ClickHouse: what lies between "INC-" and the
// last '-', or the empty string for an id of another form.
const incidentStreet = `extract(%s, '^INC-(.*)-[^-]*$')`

// shardingKeys is the Distributed sharding expression of every table. A migration that creates
// a table not listed here fails on a cluster: a new table must say how it is sharded.
var shardingKeys = map[string]string{
	"events":           "cityHash64(street)",
	"incidents":        "cityHash64(" + fmt.Sprintf(incidentStreet, "id") + ")",
	"incident_changes": "cityHash64(" + fmt.Sprintf(incidentStreet, "incident_id") + ")",
	"incident_reports": "cityHash64(" + fmt.Sprintf(incidentStreet, "incident_id") + ")",
	"dispatches":       "cityHash64(" + fmt.Sprintf(incidentStreet, "incident_id") + ")",
	"audit_log":        "cityHash64(" + fmt.Sprintf(incidentStreet, "incident_id") + ")",
}

// local is the name of the MergeTree table that holds a table's rows on a server: the table
// itself on one server, <table>_local on a cluster.
func (s *Store) local(table string) string {
	if s.cfg.Cluster == "" {
		return table
	}
	return table + "_local"
}

// keyCond is the clause for a condition on a table's key in a read FINAL: PREWHERE, which
// reads only the key's granules, on one server; WHERE on a cluster, where 18.16 fails
// PREWHERE on a Distributed table read FINAL.
func (s *Store) keyCond() string {
	if s.cfg.Cluster == "" {
		return "PREWHERE"
	}
	return "WHERE"
}

// in is the operator for a subquery over the store's tables: GLOBAL IN on a cluster.
func (s *Store) in() string {
	if s.cfg.Cluster == "" {
		return "IN"
	}
	return "GLOBAL IN"
}

// writeCtx is the context of inserts: synchronous Distributed inserts on a cluster.
func (s *Store) writeCtx(ctx context.Context) context.Context {
	if s.cfg.Cluster == "" {
		return ctx
	}
	return ch.Context(ctx, ch.WithSettings(ch.Settings{"insert_distributed_sync": 1}))
}

var (
	createTableStmt = regexp.MustCompile(`(?is)^(\s*CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+)([A-Za-z_][A-Za-z0-9_]*)(\b.*)$`)
	alterTableStmt  = regexp.MustCompile(`(?is)^(\s*ALTER\s+TABLE\s+)([A-Za-z_][A-Za-z0-9_]*)(\b.*)$`)
)

// runStatement runs one migration statement on one server. On a cluster, CREATE TABLE IF NOT
// EXISTS t creates t_local and then the Distributed table t over it; ALTER TABLE t alters
// t_local and then t, so that the Distributed table keeps the local table's columns. Other
// statements are refused on a cluster: they would need their own translation.
func (s *Store) runStatement(ctx context.Context, conn driver.Conn, stmt string) error {
	if s.cfg.Cluster == "" {
		return conn.Exec(ctx, stmt)
	}
	if m := createTableStmt.FindStringSubmatch(stmt); m != nil {
		table := m[2]
		if _, ok := shardingKeys[table]; !ok {
			return fmt.Errorf("table %s has no sharding key for a cluster (clickhouse.shardingKeys)", table)
		}
		if err := conn.Exec(ctx, m[1]+s.local(table)+m[3]); err != nil {
			return err
		}
		return s.createDistributed(ctx, conn, table)
	}
	if m := alterTableStmt.FindStringSubmatch(stmt); m != nil {
		if err := conn.Exec(ctx, m[1]+s.local(m[2])+m[3]); err != nil {
			return err
		}
		return conn.Exec(ctx, stmt)
	}
	return fmt.Errorf("statement is not CREATE TABLE IF NOT EXISTS or ALTER TABLE, which the store cannot run on a cluster: %.60s", stmt)
}

// createDistributed creates the Distributed table over table_local, with its columns.
func (s *Store) createDistributed(ctx context.Context, conn driver.Conn, table string) error {
	rows, err := conn.Query(ctx, "SELECT name, type, default_kind, default_expression FROM system.columns WHERE database = ? AND table = ?",
		s.cfg.Database, s.local(table))
	if err != nil {
		return fmt.Errorf("columns of %s: %w", s.local(table), err)
	}
	var cols []string
	for rows.Next() {
		var name, typ, kind, expr string
		if err := rows.Scan(&name, &typ, &kind, &expr); err != nil {
			rows.Close()
			return fmt.Errorf("columns of %s: %w", s.local(table), err)
		}
		col := "`" + name + "` " + typ
		switch kind {
		case "":
		case "DEFAULT":
			col += " DEFAULT " + expr
		case "MATERIALIZED", "ALIAS":
			col += " ALIAS " + expr
		default:
			rows.Close()
			return fmt.Errorf("column %s.%s: %s columns are not supported on a cluster", s.local(table), name, kind)
		}
		cols = append(cols, col)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("columns of %s: %w", s.local(table), err)
	}
	if len(cols) == 0 {
		return fmt.Errorf("table %s not found", s.local(table))
	}
	ddl := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n    %s\n) ENGINE = Distributed('%s', '%s', '%s', %s)",
		table, strings.Join(cols, ",\n    "), s.cfg.Cluster, s.cfg.Database, s.local(table), shardingKeys[table])
	if err := conn.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("create distributed table %s: %w", table, err)
	}
	return nil
}
