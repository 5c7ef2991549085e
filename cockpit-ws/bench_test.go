package cockpit_test

import (
	"sync"
	"testing"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/auth/authtest"
	cockpit "github.com/urbanbrain/urbanbrain/cockpit-ws"
	"github.com/urbanbrain/urbanbrain/event"
)

// BenchmarkFanout measures one incident change, flushed as one tick, reaching 1,000
// connected websocket clients (real gorilla clients over loopback): an op ends when every
// client has read the delta.
func BenchmarkFanout(b *testing.B) {
	everyone := []auth.Claims{admin}
	mixed := []auth.Claims{
		admin,    // full view
		operator, // masked view
		{Subject: "v", Role: auth.RoleViewer, District: "D1"}, // masked, one district
	}
	for _, bc := range []struct {
		name     string
		audience []auth.Claims
	}{{"1000-admins", everyone}, {"1000-mixed", mixed}} {
		b.Run(bc.name, func(b *testing.B) { benchFanout(b, 1000, bc.audience) })
	}
}

func benchFanout(b *testing.B, clients int, audience []auth.Claims) {
	// One token per audience, many screens each: the per-token limit is raised to what the benchmark needs.
	f := startWithLog(b, cockpit.Config{SubjectConnections: 1 << 16}, zap.NewNop())
	tokens := make([]string, len(audience))
	for i, c := range audience {
		tokens[i] = authtest.Token(b, f.iss, c)
	}
	got := make(chan struct{}, clients)
	var readers sync.WaitGroup
	defer readers.Wait()
	defer f.hub.Close() // ends the readers
	for i := range clients {
		ws, resp, err := websocket.DefaultDialer.Dial(f.url()+"?access_token="+tokens[i%len(tokens)], nil)
		if err != nil {
			b.Fatalf("client %d: %v %s", i, err, body(resp))
		}
		if _, _, err := ws.ReadMessage(); err != nil { // the snapshot
			b.Fatal(err)
		}
		readers.Go(func() {
			defer ws.Close()
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
				got <- struct{}{}
			}
		})
	}
	ch := withCaller(incident("INC-330106001-1", 0, event.StatusDispatched, "D1", "G1"))
	ch.Incident.Assignment = event.Assignment{WorkerID: "w-17", WorkerName: "王网格", Grid: "G1"}

	b.ReportAllocs()
	b.ResetTimer()
	cpu := cockpit.ProcessCPU()
	for i := range b.N {
		ch.Incident.Version = int64(i + 1)
		f.change(b, ch)
		f.flush()
		for range clients {
			<-got
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cockpit.ProcessCPU()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*clients), "ns/delivery")
}
