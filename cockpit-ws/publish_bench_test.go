package cockpit

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
)

type nopVerifier struct{}

func (nopVerifier) Verify(string) (auth.Claims, error) { return auth.Claims{}, auth.ErrTokenInvalid }

// BenchmarkPublish measures the hub's own share of a fan-out: one change, one tick, the
// frames of three subscriptions encoded and 1,000 connections' queues filled, without
// sockets (BenchmarkFanout has them).
func BenchmarkPublish(b *testing.B) {
	h, err := New(Config{}, nopVerifier{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	audience := []auth.Claims{
		{Subject: "a", Role: auth.RoleAdmin},
		{Subject: "o", Role: auth.RoleOperator, District: "D1"},
		{Subject: "w", Role: auth.RoleWorker, Grids: []string{"G9"}},
	}
	conns := make([]*conn, 1000)
	for i := range conns {
		conns[i] = newConn(nil, audience[i%len(audience)], feedCockpit, 1)
		h.conns[conns[i]] = struct{}{}
		if err := h.subscribeLocked(conns[i], Request{CoordSys: event.CoordWGS84}); err != nil {
			b.Fatal(err)
		}
		<-conns[i].queue // the snapshot
	}
	inc := event.Incident{ID: "INC-S1-1", Status: event.StatusDispatched, Title: "积水 来电13812345678",
		Area: event.Area{District: "D1", Street: "S1", Grid: "G1"},
		Reports: []event.Report{{EventID: "e1", Caller: &event.Caller{Name: "张三丰", Phone: "13812345678"},
			Summary: "地下通道积水"}}}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := ProcessCPU()
	for i := range b.N {
		inc.Version = int64(i + 1)
		if err := h.HandleIncidentChange(context.Background(), event.IncidentChange{Incident: inc}); err != nil {
			b.Fatal(err)
		}
		h.flush()
		for _, c := range conns {
			if c.sub.view.claims.Role != auth.RoleWorker {
				<-c.queue
			}
		}
	}
	b.ReportMetric(float64((ProcessCPU()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
	if s := h.Stats(); s.Connections != len(conns) {
		b.Fatalf("%d connections left, a queue overflowed", s.Connections)
	}
}

// BenchmarkKPIs measures one KPI computation (done once per distinct scope and filter every
// KPIInterval, under the hub's lock) over 10,000 open incidents, a full stage log, 2,000
// sensors and a minute of events at 2,000 a second.
func BenchmarkKPIs(b *testing.B) {
	now := time.Date(2025, 7, 1, 9, 0, 0, 0, time.UTC)
	h, err := New(Config{Now: func() time.Time { return now }}, nopVerifier{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	area := func(i int) event.Area {
		d := fmt.Sprintf("D%d", i%4)
		return event.Area{District: d, Street: fmt.Sprintf("%s-S%d", d, i%12), Grid: fmt.Sprintf("G%03d", i%144)}
	}
	sevs := []string{event.SeverityRed, event.SeverityOrange, event.SeverityYellow, event.SeverityBlue}
	for i := range 10000 {
		inc := event.Incident{ID: fmt.Sprintf("INC-%d", i), Version: 1, Status: event.StatusNew, Category: fmt.Sprintf("%04d", 100+i%17),
			Severity: sevs[i%4], Area: area(i), CreatedAt: now.Add(-time.Hour)}
		h.Restore(event.IncidentChange{Incident: inc})
		inc.Version, inc.Status = 2, event.StatusDispatched
		h.Restore(event.IncidentChange{Incident: inc, Change: event.Change{At: now.Add(-30 * time.Minute)}})
		if i%2 == 0 {
			inc.Version, inc.Status = 3, event.StatusAccepted
			h.Restore(event.IncidentChange{Incident: inc, Change: event.Change{At: now.Add(-10 * time.Minute)}})
		}
	}
	for s := range 60 * 2000 {
		at := now.Add(-time.Duration(s) * time.Second / 2000)
		_ = h.HandleEvent(context.Background(), event.Event{Type: event.TypeSensorReading, Received: at, Area: area(s),
			Sensor: &event.SensorReading{DeviceID: fmt.Sprintf("S-%d", s%2000), Status: "ok"}})
	}
	subs := map[string]*subscription{}
	for _, q := range []Request{{}, {Filter: Filter{District: []string{"D1"}}}, {Filter: Filter{Severity: []string{"red", "orange"}}}} {
		q.CoordSys = event.CoordWGS84
		key, kpiKey := subKey(feedCockpit, auth.Claims{Subject: "v", Role: auth.RoleViewer}, q)
		subs[key] = newSubscription(key, kpiKey, feedCockpit, auth.Claims{Subject: "v", Role: auth.RoleViewer}, q, "e", h.cfg)
	}
	var all []*subscription
	for name, s := range subs {
		all = append(all, s)
		b.Run(strings.NewReplacer("|", " ").Replace(name[strings.Index(name, "d="):]), func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				h.mu.Lock()
				k := h.computeKPIsLocked([]*subscription{s}, now)
				h.mu.Unlock()
				if k[0].Stages[event.StageDispatch].Count == 0 {
					b.Fatal("no stages")
				}
			}
		})
	}
	b.Run("all three in one pass", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			h.mu.Lock()
			_ = h.computeKPIsLocked(all, now)
			h.mu.Unlock()
		}
	})
}
