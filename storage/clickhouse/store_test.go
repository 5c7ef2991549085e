package clickhouse_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/storage/clickhouse"
	"github.com/urbanbrain/urbanbrain/storage/clickhouse/clickhousetest"
	"github.com/urbanbrain/urbanbrain/storage/storagetest"
)

func TestMain(m *testing.M) { clickhousetest.Main(m) }

// databases gives each test its own database and the same one when the test reopens.
var databases sync.Map // testing.TB → string

func openStore(tb testing.TB, log *zap.Logger) *clickhouse.Store {
	tb.Helper()
	srv := clickhousetest.Require(tb)
	db, ok := databases.Load(tb)
	if !ok {
		db, _ = databases.LoadOrStore(tb, clickhousetest.Database("conf"))
		tb.Cleanup(func() { databases.Delete(tb) })
	}
	s, err := clickhouse.Open(tb.Context(), clickhouse.Config{Addrs: []string{srv.Addr()}, Database: db.(string)}, log)
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	clickhousetest.Require(t)
	storagetest.Run(t, func(t *testing.T) storagetest.Store {
		return openStore(t, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	})
}

func TestMigrationsRunOnce(t *testing.T) {
	for range 3 {
		s := openStore(t, zap.NewNop())
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	s := openStore(t, zap.NewNop())
	versions, err := s.AppliedMigrations(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(versions) != "[1 2 3 4]" { // 3: dispatches.level (issue 12); 4: incidents' source and rule (issue 14)
		t.Fatalf("applied migrations = %v, want [1 2 3 4], each once", versions)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     clickhouse.Config
		wantErr bool
	}{
		{"ok", clickhouse.Config{Addrs: []string{"127.0.0.1:9000"}, Database: "urbanbrain"}, false},
		{"no address", clickhouse.Config{Database: "urbanbrain"}, true},
		{"empty address", clickhouse.Config{Addrs: []string{""}, Database: "urbanbrain"}, true},
		{"database with a quote", clickhouse.Config{Addrs: []string{"h:9000"}, Database: "x'; DROP"}, true},
		{"cluster", clickhouse.Config{Addrs: []string{"a:9000", "b:9000"}, Database: "d", Cluster: "urbanbrain"}, false},
		{"cluster with a quote", clickhouse.Config{Addrs: []string{"a:9000"}, Database: "d", Cluster: "x'"}, true},
		{"negative timeout", clickhouse.Config{Addrs: []string{"h:9000"}, Database: "d", QueryTimeout: -1}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err != nil) != tc.wantErr {
				t.Errorf("Validate() = %v, want error: %v", err, tc.wantErr)
			}
		})
	}
}

// clusterStore opens a store on the cluster, in the test's own database (the same one when the
// test reopens).
func clusterStore(tb testing.TB, c *clickhousetest.Cluster, log *zap.Logger) *clickhouse.Store {
	tb.Helper()
	db, ok := databases.Load(tb)
	if !ok {
		db, _ = databases.LoadOrStore(tb, clickhousetest.Database("cluster"))
		tb.Cleanup(func() { databases.Delete(tb) })
	}
	s, err := clickhouse.Open(tb.Context(), clickhouse.Config{Addrs: c.Addrs(), Cluster: c.Name, Database: db.(string)}, log)
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return s
}

// TestClusterConformance runs the conformance suite through the Distributed tables of a
// cluster of two unreplicated shards.
func TestClusterConformance(t *testing.T) {
	c := clickhousetest.NewCluster(t, "urbanbrain", 2)
	storagetest.Run(t, func(t *testing.T) storagetest.Store {
		return clusterStore(t, c, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	})
}

// TestClusterSpreadsRows checks that rows really land on both shards, that every version of an
// incident lands on one, and that the answers through the Distributed tables count each row once.
func TestClusterSpreadsRows(t *testing.T) {
	c := clickhousetest.NewCluster(t, "urbanbrain", 2)
	s := clusterStore(t, c, zap.NewNop())
	ctx := t.Context()
	base := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	const streets = 16
	var events []event.Event
	var changes []event.IncidentChange
	for i := range streets {
		street := fmt.Sprintf("st%02d", i)
		area := event.Area{District: "d1", Street: street, Grid: "g" + street}
		for j := range 5 {
			events = append(events, event.Event{ID: fmt.Sprintf("e-%s-%d", street, j), Type: event.TypeSensorReading,
				Source: "iot/x", Time: base.Add(time.Duration(j) * time.Minute), Area: area,
				Sensor: &event.SensorReading{DeviceID: "dev-" + street, Kind: "water_level"}})
		}
		id := "INC-" + street + "-0001"
		for v := int64(1); v <= 3; v++ {
			st := event.StatusNew
			if v == 3 {
				st = event.StatusDispatched
			}
			changes = append(changes, event.IncidentChange{
				Incident: event.Incident{ID: id, Version: v, Status: st, Category: "flood", Severity: "high",
					Area: area, CreatedAt: base, UpdatedAt: base.Add(time.Duration(v) * time.Minute)},
				Change: event.Change{Action: "test", To: st, At: base.Add(time.Duration(v) * time.Minute)},
			})
		}
	}
	// Twice, as a replay would.
	for range 2 {
		if err := s.HandleEvents(ctx, events); err != nil {
			t.Fatal(err)
		}
		if err := s.HandleIncidentChanges(ctx, changes); err != nil {
			t.Fatal(err)
		}
	}

	db, _ := databases.Load(t)
	var totalEvents, totalIncidents uint64
	for i, srv := range c.Servers {
		conn, err := ch.Open(&ch.Options{Addr: []string{srv.Addr()}, Auth: ch.Auth{Database: db.(string)}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var ev, inc uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM events_local FINAL").Scan(&ev); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, "SELECT count() FROM incidents_local FINAL").Scan(&inc); err != nil {
			t.Fatal(err)
		}
		t.Logf("shard %d (%s): %d events, %d incidents", i+1, srv.Addr(), ev, inc)
		if ev == 0 || inc == 0 {
			t.Errorf("shard %d holds %d events and %d incidents: rows are not spread over the shards", i+1, ev, inc)
		}
		// Every version of an incident, and its timeline, are on the shard of its street.
		var split uint64
		if err := conn.QueryRow(ctx, `SELECT count() FROM (SELECT id, count() AS n FROM incidents_local GROUP BY id)
			WHERE n % 3 != 0`).Scan(&split); err != nil {
			t.Fatal(err)
		}
		if split != 0 {
			t.Errorf("shard %d: %d incidents without all their versions", i+1, split)
		}
		var misplaced uint64
		if err := conn.QueryRow(ctx, `SELECT count() FROM incident_changes_local
			WHERE incident_id NOT IN (SELECT id FROM incidents_local)`).Scan(&misplaced); err != nil {
			t.Fatal(err)
		}
		if misplaced != 0 {
			t.Errorf("shard %d: %d timeline rows away from their incident", i+1, misplaced)
		}
		totalEvents += ev
		totalIncidents += inc
	}
	if totalEvents != 5*streets || totalIncidents != streets {
		t.Errorf("shards hold %d events and %d incidents, want %d and %d", totalEvents, totalIncidents, 5*streets, streets)
	}
	n, err := s.CountIncidents(ctx, storage.IncidentFilter{Status: []event.Status{event.StatusDispatched}})
	if err != nil {
		t.Fatal(err)
	}
	if n != streets {
		t.Errorf("dispatched incidents through the Distributed table = %d, want %d", n, streets)
	}
	evs, err := s.ListEvents(ctx, storage.EventFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 5*streets {
		t.Errorf("events through the Distributed table = %d, want %d", len(evs), 5*streets)
	}
}
