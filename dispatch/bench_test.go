package dispatch_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jonboulle/clockwork"

	"github.com/urbanbrain/urbanbrain/dispatch"
	"github.com/urbanbrain/urbanbrain/event"
)

type discard struct{}

func (discard) Publish(context.Context, string, string, []byte) error { return nil }

// BenchmarkHandleOpen measures one dispatch decision on the demo city, with both records
// encoded: new incidents spread over every grid, by day.
func BenchmarkHandleOpen(b *testing.B) {
	m := demo(b)
	d, err := dispatch.New(dispatch.Config{Now: clockwork.NewFakeClockAt(tuesdayMorning).Now}, m, discard{}, nil)
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
		if err := d.HandleIncidentChange(ctx, changes[i]); err != nil {
			b.Fatal(err)
		}
	}
}
