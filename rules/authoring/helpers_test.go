package authoring_test

import (
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/rules/engine"
	"github.com/urbanbrain/urbanbrain/rules/lang"
)

// The helpers and rules these tests share with the engine's (engine/engine_test.go,
// engine/stateful_test.go).

func mustParse(t testing.TB, src string) []lang.Rule {
	t.Helper()
	rs, err := lang.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return rs
}

func newEngine(t testing.TB, rs []lang.Rule, log *zap.Logger) *engine.Engine {
	t.Helper()
	eng, err := engine.New(engine.Config{}, rs, log)
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

const noiseWindow = `
id: noise-complaints
name: 同一社区一小时内三起噪声投诉
types: [city.hotline.ticket]
when: hotline.category_code == "0401"
group_by: area.community
window: {size: 1h, having: count >= 3}
raise:
  category: "0401"
  severity: yellow
  title: "{{area.community_name}} 1小时内 {{window.count}} 起噪声投诉"
  correlation_key: "noise:{{area.community}}"
`

func stats(eng *engine.Engine) map[string]engine.RuleStats {
	out := map[string]engine.RuleStats{}
	for _, s := range eng.Stats() {
		out[s.RuleID] = s
	}
	return out
}

func sensorRule(when string) string {
	return "id: hostile\nname: 恶意规则\ntypes: [city.sensor.reading]\nwhen: '" + strings.ReplaceAll(when, "'", "''") + "'" +
		"\nraise: {category: \"0104\", severity: red}\n"
}
