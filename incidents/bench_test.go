package incidents_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/incidents"
)

// BenchmarkHandleSignal measures a signal's path through the service, up to the changelog
// record it returns (encoding it is the stage runner's, measured with the encoder). "new" opens an incident per signal; "link" sends ten signals per correlation key, so
// nine in ten join an open incident of at most ten reports (the whole incident is encoded on
// every change, so unbounded growth would measure b.N instead of the service).
func BenchmarkHandleSignal(b *testing.B) {
	for _, bc := range []struct {
		name string
		key  func(i int) string
	}{
		{"new", func(i int) string { return fmt.Sprintf("k-%d", i) }},
		{"link", func(i int) string { return fmt.Sprintf("k-%d", i/10) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			svc, err := incidents.New(incidents.Config{Now: clockwork.NewFakeClockAt(t0).Now}, nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			sigs := make([]event.Signal, b.N)
			for i := range sigs {
				sigs[i] = sensorSignal("flood", fmt.Sprintf("ev-%d", i), bc.key(i), event.SeverityYellow)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, err := svc.HandleSignal(ctx, sigs[i]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRestore rebuilds a service from a changelog of 100,000 changes: 12,500 incidents,
// each opened, linked twice, then dispatched, accepted, started, resolved and closed.
func BenchmarkRestore(b *testing.B) {
	const perIncident = 8
	const total = 100_000
	changes := make([]event.IncidentChange, 0, total)
	for i := range total / perIncident {
		inc := event.Incident{
			ID: fmt.Sprintf("INC-990101%03d-%06d", i%30, i), Status: event.StatusNew,
			Category: "0202", Severity: event.SeverityOrange, CorrelationKey: fmt.Sprintf("k-%d", i),
			Area: event.Area{Street: fmt.Sprintf("990101%03d", i%30)}, CreatedAt: t0,
		}
		step := func(action string, to event.Status, cmdID string) {
			inc.Version++
			from := inc.Status
			inc.Status = to
			inc.UpdatedAt = t0.Add(time.Duration(inc.Version) * time.Minute)
			changes = append(changes, event.IncidentChange{Incident: inc, Change: event.Change{
				Action: action, From: from, To: to, CommandID: cmdID, At: inc.UpdatedAt,
			}})
		}
		link := func(action string, n int) {
			ev := fmt.Sprintf("ev-%d-%d", i, n)
			inc.Reports = append(inc.Reports[:len(inc.Reports):len(inc.Reports)],
				event.Report{EventID: ev, SignalID: "flood@1/" + ev, RuleID: "flood", At: t0})
			inc.ReportCount = len(inc.Reports)
			step(action, event.StatusNew, "")
		}
		link(incidents.ActionOpen, 0)
		link(incidents.ActionLink, 1)
		link(incidents.ActionLink, 2)
		inc.Assignment = event.Assignment{WorkerID: "W-1", Agency: "water"}
		step(event.ActionDispatch, event.StatusDispatched, "dispatch:"+inc.ID)
		step(event.ActionAccept, event.StatusAccepted, inc.ID+"/accept")
		step(event.ActionStart, event.StatusInProgress, inc.ID+"/start")
		step(event.ActionResolve, event.StatusResolved, inc.ID+"/resolve")
		step(event.ActionClose, event.StatusClosed, inc.ID+"/close")
	}

	b.ReportAllocs()
	for b.Loop() {
		svc, err := incidents.New(incidents.Config{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range changes {
			svc.Restore(c)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/total, "ns/change")
}
