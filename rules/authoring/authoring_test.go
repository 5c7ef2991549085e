package authoring_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/authoring"
	"github.com/urbanbrain/urbanbrain/rules/engine"
	"github.com/urbanbrain/urbanbrain/rules/lang"
	"github.com/urbanbrain/urbanbrain/rules/rulestest"
)

const gasText = `# 燃气浓度超标
id: gas-high
name: 燃气浓度超标
types: [city.sensor.reading]
when: sensor.kind == "gas" && sensor.metrics.ppm > 50   # 50 ppm
raise: {category: "0103", severity: orange}
`

func mustApply(t *testing.T, c *authoring.Catalog, v authoring.RuleVersion, err error) authoring.RuleVersion {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	// Through the wire form, as every instance reads it.
	b, err := v.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := authoring.DecodeVersion(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(back); err != nil {
		t.Fatal(err)
	}
	return back
}

// A rule's life through the catalog: every change is a new version with its author; stale
// edits are refused; deleting keeps the history; the same versions applied again or out of
// order give the same current rules.
func TestCatalogVersionsAndHistory(t *testing.T) {
	c := authoring.NewCatalog()
	t0 := rulestest.At
	v1, err := c.Create([]byte(gasText), "alice", "first", t0)
	v1 = mustApply(t, c, v1, err)
	if v1.Version != 1 || v1.Action != authoring.ActionCreate || !strings.Contains(v1.Source, "# 燃气浓度超标") || !strings.Contains(v1.Source, "version: 1") {
		t.Fatalf("v1 = %+v", v1)
	}
	if _, err := c.Create([]byte(gasText), "bob", "", t0); !errors.Is(err, authoring.ErrRuleExists) {
		t.Errorf("second create: %v, want ErrRuleExists", err)
	}
	v2, err := c.Update("gas-high", []byte(strings.Replace(gasText, "> 50", "> 30", 1)), 1, "bob", "lower", t0.Add(time.Hour))
	mustApply(t, c, v2, err)
	if _, err := c.Update("gas-high", []byte(gasText), 1, "carol", "", t0.Add(2*time.Hour)); !errors.Is(err, authoring.ErrVersionConflict) {
		t.Errorf("stale update: %v, want ErrVersionConflict", err)
	}
	if _, err := c.Update("gas-high", []byte(strings.Replace(gasText, "id: gas-high", "id: gas-other", 1)), 0, "carol", "", t0); err == nil {
		t.Error("an update that changes the id was accepted")
	}
	v3, changed, err := c.SetEnabled("gas-high", false, 0, "carol", "noisy", t0.Add(3*time.Hour))
	if !changed {
		t.Fatal("disable changed nothing")
	}
	mustApply(t, c, v3, err)
	if _, changed, _ := c.SetEnabled("gas-high", false, 0, "carol", "", t0); changed {
		t.Error("disabling a disabled rule made a version")
	}
	cur := c.Current()
	if len(cur) != 1 || cur[0].Version != 3 || cur[0].Enabled || !strings.Contains(cur[0].When, "> 30") {
		t.Fatalf("current %+v", cur)
	}
	v4, err := c.Delete("gas-high", 3, "dave", "obsolete", t0.Add(4*time.Hour))
	mustApply(t, c, v4, err)
	if len(c.Current()) != 0 {
		t.Error("deleted rule is current")
	}
	v5, err := c.Create([]byte(gasText), "erin", "again", t0.Add(5*time.Hour))
	mustApply(t, c, v5, err)

	var got []string
	for _, v := range c.History("gas-high") {
		got = append(got, fmt.Sprintf("%d %s %s", v.Version, v.Action, v.Author))
	}
	want := "1 create alice|2 update bob|3 disable carol|4 delete dave|5 create erin"
	if strings.Join(got, "|") != want {
		t.Errorf("history %q, want %q", strings.Join(got, "|"), want)
	}

	// Another instance reading the topic in another order ends with the same rules.
	other := authoring.NewCatalog()
	for _, n := range []int{5, 2, 4, 1, 3, 2} {
		v, _ := c.Version("gas-high", n)
		if _, err := other.Apply(v); err != nil {
			t.Fatal(err)
		}
	}
	if a, b := c.Current(), other.Current(); len(a) != 1 || len(b) != 1 || a[0].Version != 5 || b[0].Version != 5 || a[0].Source != b[0].Source {
		t.Errorf("catalogs disagree: %+v vs %+v", a, b)
	}
	if changed, err := other.Apply(v5); changed || err != nil {
		t.Errorf("re-applying v5: changed %v err %v", changed, err)
	}
}

// A version that does not compile here (a function this instance does not have) stays in the
// history with its error; the version before it keeps running.
func TestCatalogKeepsLastGoodVersion(t *testing.T) {
	c := authoring.NewCatalog()
	v1, err := c.Create([]byte(gasText), "alice", "", rulestest.At)
	mustApply(t, c, v1, err)
	bad := authoring.RuleVersion{RuleID: "gas-high", Version: 2, Action: authoring.ActionUpdate, Author: "future", At: rulestest.At,
		Source: strings.Replace(strings.Replace(gasText, "sensor.metrics.ppm > 50", `ppm_trend(sensor) > 50`, 1), "id: gas-high", "id: gas-high\nversion: 2", 1)}
	changed, err := c.Apply(bad)
	if err == nil || changed {
		t.Fatalf("applying a version that does not compile: changed %v err %v", changed, err)
	}
	if cur := c.Current(); len(cur) != 1 || cur[0].Version != 1 {
		t.Errorf("current %+v, want version 1", cur)
	}
	if head, _ := c.Head("gas-high"); head.Version != 2 {
		t.Errorf("head %d", head.Version)
	}
	if errs := c.VersionErrors(); errs["gas-high@2"] == nil {
		t.Errorf("version errors %v", errs)
	}
}

// The rules directory seeds the topic only with what it lacks: a rule edited through the API
// keeps its edit; a file with a higher version wins.
func TestSeed(t *testing.T) {
	c := authoring.NewCatalog()
	v1, err := c.Create([]byte(gasText), "alice", "", rulestest.At)
	mustApply(t, c, v1, err)
	v2, err := c.Update("gas-high", []byte(strings.Replace(gasText, "> 50", "> 40", 1)), 0, "bob", "", rulestest.At)
	mustApply(t, c, v2, err)

	dir := rulestest.Parse(t, gasText+"---\n"+strings.Replace(strings.Replace(gasText, "gas-high", "gas-low", 1), "> 50", "> 5", 1))
	seed := c.Seed(dir, rulestest.At)
	if len(seed) != 1 || seed[0].RuleID != "gas-low" || seed[0].Author != authoring.SeedAuthor || seed[0].Version != 1 {
		t.Fatalf("seed %+v, want only gas-low", seed)
	}
	newer := rulestest.Parse(t, strings.Replace(gasText, "id: gas-high", "id: gas-high\nversion: 7", 1))
	if seed := c.Seed(newer, rulestest.At); len(seed) != 1 || seed[0].Version != 7 {
		t.Fatalf("seed %+v, want gas-high version 7", seed)
	}
}

func TestDiff(t *testing.T) {
	c := authoring.NewCatalog()
	v1, err := c.Create([]byte(gasText), "alice", "", rulestest.At)
	v1 = mustApply(t, c, v1, err)
	v2, err := c.Update("gas-high", []byte(strings.Replace(strings.Replace(gasText, "> 50", "> 30", 1), "orange", "red", 1)), 1, "bob", "", rulestest.At)
	v2 = mustApply(t, c, v2, err)
	d := authoring.Diff(v1, v2)
	var fields []string
	for _, ch := range d.Changes {
		fields = append(fields, ch.Field+": "+ch.From+" → "+ch.To)
	}
	want := `version: 1 → 2|when: sensor.kind == "gas" && sensor.metrics.ppm > 50 → sensor.kind == "gas" && sensor.metrics.ppm > 30|raise.severity: orange → red`
	if got := strings.Join(fields, "|"); got != want {
		t.Errorf("changes\n got %s\nwant %s", got, want)
	}
	for _, line := range []string{"--- gas-high@1", "+++ gas-high@2", "-version: 1", "+version: 2",
		`-when: sensor.kind == "gas" && sensor.metrics.ppm > 50 # 50 ppm`, `+when: sensor.kind == "gas" && sensor.metrics.ppm > 30 # 50 ppm`} {
		if !strings.Contains(d.Unified, line+"\n") {
			t.Errorf("unified diff lacks %q:\n%s", line, d.Unified)
		}
	}
}

// A dry run says, event by event, whether the rule fired and why.
func TestDryRunExplainsConditions(t *testing.T) {
	r := rulestest.Parse(t, `
id: water
name: 水位
types: [city.sensor.reading]
when: sensor.kind == "water_level" && (sensor.metrics.level_cm > 80 || sensor.status == "alarm")
raise: {category: "0104", severity: orange, title: "水位 {{sensor.metrics.level_cm}}"}
`)[0]
	high := rulestest.Sensor("d1", "WL-1", "water_level", map[string]float64{"level_cm": 90})
	low := rulestest.Sensor("d2", "WL-1", "water_level", map[string]float64{"level_cm": 40})
	hotline := rulestest.Hotline("d3", "投诉", "0401", "normal", "吵")
	rep, err := authoring.DryRun(context.Background(), engine.Config{}, r, []event.Event{high, low, hotline}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Steps) != 3 || rep.Fired != 1 {
		t.Fatalf("report %+v", rep)
	}
	explain := func(c *engine.Condition) string {
		var b strings.Builder
		var walk func(c *engine.Condition)
		walk = func(c *engine.Condition) {
			if c.Op != "" {
				fmt.Fprintf(&b, "%s%v[", c.Op, c.Value)
				for _, p := range c.Parts {
					walk(p)
				}
				b.WriteString("]")
				return
			}
			fmt.Fprintf(&b, "(%s=%v", c.Expr, c.Value)
			for _, o := range c.Operands {
				fmt.Fprintf(&b, " %s=%v", o.Expr, o.Value)
			}
			b.WriteString(")")
		}
		walk(c)
		return b.String()
	}
	s1, s2 := rep.Steps[0], rep.Steps[1]
	if !s1.Matched || len(s1.Signals) != 1 || s1.Signals[0].Title != "水位 90" {
		t.Errorf("step 1 %+v", s1)
	}
	want1 := `&&true[(sensor.kind == "water_level"=true sensor.kind=water_level "water_level"=water_level)||true[(sensor.metrics.level_cm > 80=true sensor.metrics.level_cm=90 80=80)(sensor.status == "alarm"=false sensor.status=ok "alarm"=alarm)]]`
	if got := explain(s1.Condition); got != want1 {
		t.Errorf("step 1 condition\n got %s\nwant %s", got, want1)
	}
	want2 := `&&false[(sensor.kind == "water_level"=true sensor.kind=water_level "water_level"=water_level)||false[(sensor.metrics.level_cm > 80=false sensor.metrics.level_cm=40 80=80)(sensor.status == "alarm"=false sensor.status=ok "alarm"=alarm)]]`
	if got := explain(s2.Condition); s2.Matched || len(s2.Signals) != 0 || got != want2 {
		t.Errorf("step 2 matched %v signals %d condition\n got %s\nwant %s", s2.Matched, len(s2.Signals), got, want2)
	}
	if rep.Steps[2].Listens || rep.Steps[2].Condition != nil {
		t.Errorf("step 3 %+v: the rule does not listen to hotline tickets", rep.Steps[2])
	}
}

// A dry run of a window rule shows the group and the window after each event, and what the
// clock does after the last one.
func TestDryRunWindowState(t *testing.T) {
	r := rulestest.Parse(t, rulestest.NoiseWindow)[0]
	var evs []event.Event
	for i, d := range []time.Duration{0, 10 * time.Minute, 20 * time.Minute} {
		ev := rulestest.Hotline(fmt.Sprintf("w%d", i), "投诉", "0401", "normal", "吵")
		ev.Area.Community = "A"
		ev.Time = rulestest.At.Add(d)
		evs = append(evs, ev)
	}
	rep, err := authoring.DryRun(context.Background(), engine.Config{}, r, evs, rulestest.At.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range rep.Steps {
		if s.Group != "A" || s.State == nil || s.State.Window == nil || s.State.Window.Count != i+1 || s.State.Having == nil || *s.State.Having != (i == 2) {
			t.Fatalf("step %d: %+v state %+v", i, s, s.State)
		}
	}
	if len(rep.Steps[2].Signals) != 1 || rep.Steps[2].Signals[0].Kind != "fire" {
		t.Errorf("third step signals %+v", rep.Steps[2].Signals)
	}
	if len(rep.After) != 1 || rep.After[0].Kind != "clear" {
		t.Errorf("after %+v, want the clear once the hour has passed", rep.After)
	}
}

// A backtest with a known answer: the new version (two complaints an hour instead of three)
// raises one more incident, for community B, and the report says which.
func TestBacktestComparesVersions(t *testing.T) {
	cur := rulestest.Parse(t, rulestest.NoiseWindow)[0]
	cand := rulestest.Parse(t, strings.Replace(strings.Replace(rulestest.NoiseWindow, "count >= 3", "count >= 2", 1), "id: noise", "version: 2\nid: noise", 1))[0]
	var evs []event.Event
	add := func(community string, at time.Duration) {
		ev := rulestest.Hotline(fmt.Sprintf("%s-%d", community, len(evs)), "投诉", "0401", "normal", "噪音")
		ev.Area.Community, ev.Area.CommunityName = community, community+"社区"
		ev.Time = rulestest.At.Add(at)
		evs = append(evs, ev)
	}
	add("A", 0)
	add("B", 5*time.Minute)
	add("A", 10*time.Minute)
	add("C", 12*time.Minute)
	add("B", 30*time.Minute)
	add("A", 40*time.Minute)
	add("C", 50*time.Minute)
	add("C", 55*time.Minute)
	add("C", 58*time.Minute)
	add("D", 3*time.Hour) // alone

	rep, err := authoring.Backtest(context.Background(), engine.Config{}, cand, &cur, evs, rulestest.At, rulestest.At.Add(6*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	keys := func(incs []authoring.IncidentSummary) string {
		var ks []string
		for _, i := range incs {
			ks = append(ks, fmt.Sprintf("%s×%d", i.CorrelationKey, i.Signals))
		}
		return strings.Join(ks, " ")
	}
	if got := keys(rep.Current.Incidents); got != "noise:A×1 noise:C×1" {
		t.Errorf("current incidents %q", got)
	}
	if got := keys(rep.Candidate.Incidents); got != "noise:A×1 noise:B×1 noise:C×1" {
		t.Errorf("candidate incidents %q", got)
	}
	c := rep.Compare
	if c == nil || c.IncidentDelta != 1 || c.Both != 2 || keys(c.OnlyCandidate) != "noise:B×1" || len(c.OnlyCurrent) != 0 {
		t.Fatalf("comparison %+v", c)
	}
	if b := c.OnlyCandidate[0]; b.Title != "B社区 1小时内 2 起噪声投诉" || b.FirstEventID != "B-4" {
		t.Errorf("B incident %+v", b)
	}
	if rep.Candidate.Clears != 3 || rep.Current.Clears != 2 {
		t.Errorf("clears %d / %d, want 3 / 2 (every window ages out before the end)", rep.Candidate.Clears, rep.Current.Clears)
	}
}

// A rule sent as JSON is kept as block YAML, so its versions read and diff like any other.
func TestCreateFromJSON(t *testing.T) {
	c := authoring.NewCatalog()
	v, err := c.Create([]byte(`{"id": "json-rule", "name": "JSON", "types": ["city.video.detection"],
  "when": "video.algorithm == \"smoke_fire\"", "raise": {"category": "0501", "severity": "red"}}`), "carol", "", rulestest.At)
	if err != nil {
		t.Fatal(err)
	}
	want := "id: \"json-rule\"\nversion: 1\nname: \"JSON\"\ntypes: [\"city.video.detection\"]\nwhen: \"video.algorithm == \\\"smoke_fire\\\"\"\nraise:\n  category: \"0501\"\n  severity: \"red\"\n"
	if v.Source != want {
		t.Errorf("source\n%s\nwant\n%s", v.Source, want)
	}
	if _, err := v.Rule(); err != nil {
		t.Error(err)
	}
}

func newEngine(t testing.TB, rs []lang.Rule, log *zap.Logger) *engine.Engine {
	t.Helper()
	eng, err := engine.New(engine.Config{}, rs, log)
	if err != nil {
		t.Fatal(err)
	}
	return eng
}
