package lang

import (
	"fmt"
	"strings"
	"testing"
)

// TestBoundsOf: the comparisons the index reads, and those it must leave alone.
func TestBoundsOf(t *testing.T) {
	tests := []struct {
		when string
		want string
	}{
		{`sensor.metrics.temperature > 50`, "sensor.metrics.temperature>50"},
		{`sensor.kind == "x" && sensor.metrics["level_cm"] >= 80.5`, "sensor.metrics.level_cm>=80.5"},
		{`50 < sensor.metrics.x && sensor.metrics.x <= 60`, "sensor.metrics.x>50 sensor.metrics.x<=60"},
		{`0.8 >= video.confidence`, "video.confidence<=0.8"},
		{`sensor.metrics.x > -3`, "sensor.metrics.x>-3"},
		{`sensor.metrics.x > 1 || sensor.metrics.y > 1`, ""},
		{`!(sensor.metrics.x > 1)`, ""},
		{`sensor.metrics.x == 1`, ""},
		{`sensor.metrics?.x > 1`, ""},
		{`sensor.metrics.x > sensor.metrics.y`, ""},
		{`sensor.metrics.x * 2 > 1`, ""},
		{`video.object_count > 1`, ""},
		{`let m = sensor.metrics; m.x > 1`, ""},
	}
	for _, tt := range tests {
		var got []string
		for _, b := range boundsOf(tt.when) {
			op := map[[2]bool]string{{true, true}: ">", {true, false}: ">=", {false, true}: "<", {false, false}: "<="}[[2]bool{b.Lower, b.Strict}]
			got = append(got, fmt.Sprintf("%s%s%v", b.Num.Field, op, b.N))
		}
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("%s: %q, want %q", tt.when, g, tt.want)
		}
	}
}
