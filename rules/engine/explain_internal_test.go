package engine

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// TestOperandNumbersAreEncodingJSONs: an explanation shows a numeric operand as the bytes
// encoding/json writes for it, for numbers at every magnitude, at the edges of the exponent
// form, and for random bit patterns; what JSON cannot carry shows as null.
func TestOperandNumbersAreEncodingJSONs(t *testing.T) {
	fs := []float64{0, math.Copysign(0, -1), 1, -1, 50, 50.5, 0.1, 1e-6, 9.99999e-7, 1e-7, -1e-7, 1.5e-10,
		1e20, 1e21, -1e21, 123456789e13, 5e-324, math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64,
		1e-100, 1e100, 1.7976931348623157e308, 2.2250738585072014e-308, 0.000001, 0.0000012345, 999999999999999999999.0}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		if f := math.Float64frombits(r.Uint64()); !math.IsNaN(f) && !math.IsInf(f, 0) {
			fs = append(fs, f)
		}
	}
	for _, f := range fs {
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := operandJSON(f); got != string(want) {
			t.Fatalf("operandJSON(%v) = %s, encoding/json writes %s", f, got, want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if got := operandJSON(f); got != "null" {
			t.Errorf("operandJSON(%v) = %s, want null", f, got)
		}
	}
}
