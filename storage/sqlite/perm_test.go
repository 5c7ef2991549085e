package sqlite_test

import (
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage/sqlite"
)

// Issue 11 item 6: the database (callers' names, phones, ID numbers) and its WAL were 0644,
// readable by every local user. The store makes them the owner's only — new files, the
// directory it creates, and the files of a store made before.
func TestDatabaseFilesArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "urbanbrain.db")
	s, err := sqlite.Open(sqlite.Config{Path: path}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.HandleEvents(t.Context(), []event.Event{{ID: "e1", Type: event.TypeSensorReading}}); err != nil {
		t.Fatal(err)
	}
	mode := func(p string) os.FileMode {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	if m := mode(dir); m != 0o700 {
		t.Errorf("directory %v; want 0700", m)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if m := mode(p); m&0o077 != 0 {
			t.Errorf("%s is %v; want no access for group and others", filepath.Base(p), m)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A store made before: its files are taken back on open.
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o644); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	s, err = sqlite.Open(sqlite.Config{Path: path}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if _, err := os.Stat(p); err == nil && mode(p)&0o077 != 0 {
			t.Errorf("reopened: %s is %v; want no access for group and others", filepath.Base(p), mode(p))
		}
	}
}
