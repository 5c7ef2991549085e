package cockpit

import (
	"context"
	"testing"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
)

type nopVerifier struct{}

func (nopVerifier) Verify(string) (auth.Claims, error) { return auth.Claims{}, auth.ErrTokenInvalid }

// BenchmarkPublish measures the hub's own share of a fan-out: deciding each connection's view,
// encoding the views and queueing 1,000 frames, without sockets (BenchmarkFanout has them).
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
		conns[i] = newConn(nil, audience[i%len(audience)], 1)
		h.conns[conns[i]] = struct{}{}
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
		for _, c := range conns {
			<-c.queue
		}
	}
	b.ReportMetric(float64((ProcessCPU()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
	if s := h.Stats(); s.Connections != len(conns) {
		b.Fatalf("%d connections left, a queue overflowed", s.Connections)
	}
}
