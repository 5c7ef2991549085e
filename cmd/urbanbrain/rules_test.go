package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/city/citytest"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/replay"
)

// `urbanbrain rules replay` over a generated file reports the matches of a rules directory
// and the rejected lines.
func TestRulesReplayCommand(t *testing.T) {
	dir := t.TempDir()
	m := citytest.Demo(t)
	var points []event.Point
	for _, g := range m.Grids() {
		points = append(points, g.Centroid)
	}
	var buf bytes.Buffer
	gen, err := replay.Generate(&buf, replay.Readings{N: 3000, Points: points, Start: time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC), Seed: 9, BadEvery: 1000})
	if err != nil {
		t.Fatal(err)
	}
	events := filepath.Join(dir, "readings.jsonl")
	if err := os.WriteFile(events, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	rulesDir := filepath.Join(dir, "rules")
	if err := os.Mkdir(rulesDir, 0o700); err != nil {
		t.Fatal(err)
	}
	rule := "id: temperature-high\nname: 高温\ntypes: [city.sensor.reading]\nwhen: sensor.metrics.temperature > 50\nraise: {category: \"0402\", severity: orange}\n"
	if err := os.WriteFile(filepath.Join(rulesDir, "hot.yaml"), []byte(rule), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"rules", "replay", "--events", events, "--rules", rulesDir, "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var rep replay.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	if rep.Lines != 3000 || rep.Rules[0].Matched != uint64(gen.Hot) || rep.Rejected != gen.Malformed+gen.BadLat {
		t.Errorf("report %+v; want %d hot, %d rejected", rep, gen.Hot, gen.Malformed+gen.BadLat)
	}
	stdout.Reset()
	if code := run([]string{"rules", "replay", "--events", events, "--rules", rulesDir}, &stdout, &stderr); code != 0 ||
		!bytes.Contains(stdout.Bytes(), []byte("temperature-high")) || !bytes.Contains(stdout.Bytes(), []byte("records/s")) {
		t.Errorf("text report (exit %d):\n%s", code, stdout.String())
	}
	if code := run([]string{"rules", "replay"}, &stdout, &stderr); code != 1 {
		t.Errorf("no --events: exit %d", code)
	}
}
