package storagetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
)

// BenchEvents is how many events BenchmarkQueries stores: a city's week of readings at
// about 1.7 events a second.
const BenchEvents = 1_000_000

// BenchQueryIncidents is how many incidents BenchmarkQueries stores beside the events.
const BenchQueryIncidents = 20_000

// benchWorld spreads events over 7 days, 20 districts, 200 streets and grids, 2,000 devices and
// 200 cameras, one in ten a 12345 ticket; and incidents over the same week, half of them closed.
func benchWorld(b *testing.B, s Store) {
	ctx := b.Context()
	const batch = 10_000
	step := 7 * 24 * time.Hour / BenchEvents
	evs := make([]event.Event, 0, batch)
	for i := range BenchEvents {
		street := fmt.Sprintf("s%03d", i%200)
		a := area(fmt.Sprintf("d%02d", i%20), street, "c"+street, "g"+street)
		tm := at(time.Duration(i) * step)
		var e event.Event
		switch {
		case i%10 == 0:
			e = hotlineEvent(fmt.Sprintf("b-%07d", i), a, tm)
			e.Hotline.Content = []string{"地下通道积水, 车辆无法通行", "小区门口垃圾桶满了", "路灯不亮", "广场舞噪音太大"}[i/10%4]
		case i%10 == 1:
			e = videoEvent(fmt.Sprintf("b-%07d", i), a, fmt.Sprintf("cam-%03d", i%200), tm)
		default:
			e = sensorEvent(fmt.Sprintf("b-%07d", i), a, fmt.Sprintf("dev-%04d", i%2000), tm)
		}
		// Positions on a 0.2° square around the city centre.
		e.Location = &event.Point{Lon: 120.05 + float64(i%997)/997*0.2, Lat: 30.17 + float64(i%991)/991*0.2}
		evs = append(evs, e)
		if len(evs) == batch {
			if err := s.HandleEvents(ctx, evs); err != nil {
				b.Fatal(err)
			}
			evs = evs[:0]
		}
	}
	log := make([]event.IncidentChange, 0, 2000)
	for i := range BenchQueryIncidents {
		street := fmt.Sprintf("s%03d", i%200)
		spec := incidentSpec{
			id:       fmt.Sprintf("INC-%s-%07d", street, i),
			category: []string{"waterlogging", "garbage", "gas", "parking"}[i%4],
			severity: []string{event.SeverityRed, event.SeverityOrange, event.SeverityYellow, event.SeverityBlue}[i/4%4],
			area:     area(fmt.Sprintf("d%02d", i%20), street, "c"+street, "g"+street),
			created:  at(time.Duration(i) * 7 * 24 * time.Hour / BenchQueryIncidents),
			worker:   fmt.Sprintf("w%03d", i%300),
			steps:    []int{1, 3, 5, 7}[i%4],
		}
		log = append(log, spec.changelog()...)
		if len(log) >= 2000 {
			if err := s.HandleIncidentChanges(ctx, log); err != nil {
				b.Fatal(err)
			}
			log = log[:0]
		}
	}
	if err := s.HandleIncidentChanges(ctx, log); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkQueries measures the cockpit's and the search page's queries on BenchEvents events
// and BenchQueryIncidents incidents. Loading takes a while; open must return an empty store.
func BenchmarkQueries(b *testing.B, open func(b *testing.B) Store) {
	s := open(b)
	start := time.Now()
	benchWorld(b, s)
	b.Logf("loaded %d events and %d incidents in %s", BenchEvents, BenchQueryIncidents, time.Since(start).Round(time.Millisecond))
	ctx := b.Context()
	day := storage.KPIFilter{Since: at(6 * 24 * time.Hour), Until: at(7 * 24 * time.Hour)}
	hour := storage.KPIFilter{Since: at(7*24*time.Hour - time.Hour), Until: at(7 * 24 * time.Hour)}
	limits := storage.StageLimits{event.StageSignFor: {event.SeverityRed: 30 * time.Minute}}
	queries := []struct {
		name string
		run  func() (int, error)
	}{
		{"cockpit/event-rates-last-hour", func() (int, error) { r, err := s.EventRates(ctx, hour); return len(r), err }},
		{"cockpit/event-rates-last-day", func() (int, error) { r, err := s.EventRates(ctx, day); return len(r), err }},
		{"cockpit/open-incidents", func() (int, error) { r, err := s.OpenIncidents(ctx, storage.KPIFilter{}); return r.Total, err }},
		{"cockpit/open-incidents-district", func() (int, error) {
			r, err := s.OpenIncidents(ctx, storage.KPIFilter{District: "d06"})
			return r.Total, err
		}},
		{"cockpit/stage-times-week", func() (int, error) {
			r, err := s.StageTimes(ctx, storage.KPIFilter{Since: at(0), Until: at(7 * 24 * time.Hour)}, limits)
			return r[0].Completed, err
		}},
		{"cockpit/report-counts-week", func() (int, error) {
			r, err := s.ReportCounts(ctx, storage.KPIFilter{Since: at(0), Until: at(7 * 24 * time.Hour)})
			return len(r), err
		}},
		{"search/device-history", func() (int, error) {
			r, err := s.ListEvents(ctx, storage.EventFilter{DeviceID: "dev-0042"})
			return len(r), err
		}},
		{"search/camera-history-day", func() (int, error) {
			r, err := s.ListEvents(ctx, storage.EventFilter{DeviceID: "cam-021", Since: day.Since, Until: day.Until})
			return len(r), err
		}},
		{"search/events-within-500m", func() (int, error) {
			r, err := s.ListEvents(ctx, storage.EventFilter{Near: &storage.Circle{Lon: 120.15, Lat: 30.27, RadiusM: 500}})
			return len(r), err
		}},
		{"search/events-text", func() (int, error) {
			r, err := s.ListEvents(ctx, storage.EventFilter{Text: "路灯"})
			return len(r), err
		}},
		{"search/events-street-day", func() (int, error) {
			r, err := s.ListEvents(ctx, storage.EventFilter{Street: "s042", Since: day.Since, Until: day.Until})
			return len(r), err
		}},
		{"search/incidents-text", func() (int, error) {
			r, err := s.ListIncidents(ctx, storage.IncidentFilter{Text: "garbage"})
			return len(r), err
		}},
		{"search/incidents-district-open", func() (int, error) {
			r, err := s.ListIncidents(ctx, storage.IncidentFilter{District: "d06", OpenOnly: true})
			return len(r), err
		}},
		{"search/incident-detail", func() (int, error) {
			d, err := s.GetIncident(ctx, "INC-s042-0000042")
			return len(d.Timeline), err
		}},
	}
	for _, q := range queries {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				n, err := q.run()
				if err != nil {
					b.Fatal(err)
				}
				if n == 0 {
					b.Fatal("the query found nothing")
				}
			}
		})
	}
}
