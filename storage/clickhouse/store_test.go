package clickhouse_test

import (
	"fmt"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

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
	if fmt.Sprint(versions) != "[1 2]" {
		t.Fatalf("applied migrations = %v, want [1 2], each once", versions)
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
