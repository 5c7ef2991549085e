package lang_test

import (
	"errors"
	"fmt"

	"github.com/urbanbrain/urbanbrain/rules/lang"
)

// A misspelt field is found when the rule is loaded, with its place in the file and in the
// expression.
func ExampleParse_compileError() {
	src := `id: water-level-high
name: 水位超警戒
types: [city.sensor.reading]
when: |
  sensor.kind == "water_level" &&
    sensor.metrics["level_cm"] > 80 && sensor.levle > 0
raise:
  category: "0104"
  severity: orange
`
	_, err := lang.Parse("water.yaml", []byte(src))
	var ce *lang.CompileError
	if errors.As(err, &ce) {
		fmt.Printf("%s %s line %d column %d: %s\n", ce.Pos, ce.Field, ce.Line, ce.Column, ce.Msg)
	}
	fmt.Println(err)
	// Output:
	// water.yaml:6:47 when line 2 column 45: type lang.Sensor has no field levle
	// water.yaml:6:47: rule water-level-high: when: type lang.Sensor has no field levle (2:45)
	//  |   sensor.metrics["level_cm"] > 80 && sensor.levle > 0
	//  | ............................................^
}
