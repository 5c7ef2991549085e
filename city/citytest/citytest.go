// Package citytest gives tests the demo city, loaded once per test binary.
package citytest

import (
	"sync"
	"testing"

	"github.com/urbanbrain/urbanbrain/city"
)

var demo = sync.OnceValues(city.LoadDemo)

// Demo is the demo city 云川市, shared by every test of the binary (it is read-only), or the
// test fails with why it did not load.
func Demo(t testing.TB) *city.Map {
	t.Helper()
	m, err := demo()
	if err != nil {
		t.Fatalf("load the demo city: %v", err)
	}
	return m
}
