package lang_test

import (
	"fmt"
	"testing"

	"github.com/expr-lang/expr"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/lang"
)

// Every field completion offers compiles in a condition of its event type (or, raise-only,
// is the window's), and the ones an author needs most are there.
func TestFieldsCompile(t *testing.T) {
	for _, typ := range lang.EventTypes {
		fields := lang.Fields(typ)
		if len(fields) < 10 {
			t.Fatalf("%s: %d fields", typ, len(fields))
		}
		for _, f := range fields {
			if f.RaiseOnly {
				continue
			}
			opts := append([]expr.Option{expr.Env(lang.EnvFor(typ))}, lang.BaseOptions...)
			if _, err := expr.Compile(fmt.Sprintf("%s != nil || true", f.Path), opts...); err != nil {
				t.Errorf("%s: %s does not compile: %v", typ, f.Path, err)
			}
		}
	}
	has := func(typ, path string) bool {
		for _, f := range lang.Fields(typ) {
			if f.Path == path {
				return true
			}
		}
		return false
	}
	for typ, path := range map[string]string{event.TypeSensorReading: "sensor.metrics", event.TypeHotlineTicket: "hotline.content",
		event.TypeVideoDetection: "video.confidence"} {
		if !has(typ, path) || !has(typ, "area.district") || !has(typ, "window.count") {
			t.Errorf("%s: %s, area.district or window.count missing", typ, path)
		}
	}
	if has(event.TypeHotlineTicket, "hotline.caller_phone") || lang.Fields("nonsense") != nil {
		t.Error("a field rules may not read is offered, or an unknown type has fields")
	}
}
