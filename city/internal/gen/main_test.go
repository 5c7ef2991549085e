package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestDemoIsUpToDate fails when the committed demo files differ from what the generator
// writes now: run `go generate ./city` after changing the generator.
func TestDemoIsUpToDate(t *testing.T) {
	dir := t.TempDir()
	grids := layout()
	if err := writeGeoJSON(filepath.Join(dir, "grids.geojson"), grids); err != nil {
		t.Fatal(err)
	}
	if err := writeRoster(filepath.Join(dir, "roster.yaml"), grids); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"grids.geojson", "roster.yaml"} {
		want, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("..", "..", "demo", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("city/demo/%s is stale: run go generate ./city", name)
		}
	}
}
