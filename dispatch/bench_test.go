package dispatch_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jonboulle/clockwork"

	"github.com/urbanbrain/urbanbrain/dispatch"
	"github.com/urbanbrain/urbanbrain/event"
)

// BenchmarkHandleOpen measures one dispatch decision on the demo city, returning both
// records (their encoding is the stage runner's): new incidents spread over every grid, by day.
func BenchmarkHandleOpen(b *testing.B) {
	m := demo(b)
	d, err := dispatch.New(dispatch.Config{Now: clockwork.NewFakeClockAt(tuesdayMorning).Now}, m, nil)
	if err != nil {
		b.Fatal(err)
	}
	grids := m.Grids()
	changes := make([]event.IncidentChange, b.N)
	for i := range changes {
		g := grids[i%len(grids)]
		changes[i] = opened(fmt.Sprintf("INC-%s-%08d", g.Street, i), g, "0202")
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := d.HandleIncidentChange(ctx, changes[i]); err != nil {
			b.Fatal(err)
		}
	}
}
