package simulate_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/simulate"
	"github.com/urbanbrain/urbanbrain/transport"
)

// TestKafkaSinkReachesRateOnEmbeddedBroker runs the simulator at a rate for a bounded time
// against the embedded broker. It asserts counts, not timings: what the sink reports as
// acknowledged is exactly what the broker holds, nothing failed, the records are spread over
// partitions, no more than the schedule allows was sent — and when fewer than 95 % of
// rate × duration arrived (a loaded machine), the run says why. The achieved rate is logged.
func TestKafkaSinkReachesRateOnEmbeddedBroker(t *testing.T) {
	t.Parallel()
	topics := []string{event.TopicIngestSensor, event.TopicIngestHotline, event.TopicIngestVideo}
	emb, err := transport.StartEmbedded(transport.EmbeddedConfig{Listen: "127.0.0.1:0", Partitions: 6, Topics: topics}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = emb.Close() }()
	sink, err := simulate.NewKafkaSink(simulate.KafkaSinkConfig{Brokers: emb.Addrs()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sink.Close() }()

	const rate, duration = 3000, 2 * time.Second
	sim, err := simulate.New(simulate.Config{Rate: rate, Duration: duration, Seed: 11}, demo(t), sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	p := sim.Progress()
	t.Logf("progress: %s", p)
	t.Logf("achieved %.0f/s of %d/s (%d of %d scheduled)", p.Rate(), rate, p.Delivery.Acked, p.Expected())

	if p.Delivery.Failed != 0 || p.Delivery.InFlight != 0 {
		t.Errorf("delivery %+v: want no failures and nothing in flight after Run", p.Delivery)
	}
	if p.Delivery.Acked != p.Produced {
		t.Errorf("acked %d, produced %d", p.Delivery.Acked, p.Produced)
	}
	if max := int64(rate*duration.Seconds()) + 1; p.Produced > max {
		t.Errorf("produced %d in %v at %d/s: more than the schedule allows (%d)", p.Produced, duration, rate, max)
	}
	if why := p.Shortfall(); why != "" {
		t.Logf("short of the rate (the machine is loaded?): %s", why)
	} else if float64(p.Delivery.Acked) < 0.95*rate*duration.Seconds()*0.9 {
		// Shortfall is measured against the run's own elapsed time; this guards the case
		// where the run ended early without a reason.
		t.Errorf("acked %d, far below %v × %d/s, and no shortfall reported", p.Delivery.Acked, duration, rate)
	}

	// What the broker holds, by partition.
	client := &kafka.Client{Addr: kafka.TCP(emb.Addrs()...), Timeout: 10 * time.Second}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, tp := range topics {
		for part := range 6 {
			req.Topics[tp] = append(req.Topics[tp], kafka.LastOffsetOf(part))
		}
	}
	resp, err := client.ListOffsets(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var held int64
	used := 0
	for tp, parts := range resp.Topics {
		for _, po := range parts {
			if po.Error != nil {
				t.Fatalf("%s/%d: %v", tp, po.Partition, po.Error)
			}
			held += po.LastOffset
			if tp == event.TopicIngestSensor && po.LastOffset > 0 {
				used++
			}
		}
	}
	if held != p.Delivery.Acked {
		t.Errorf("broker holds %d records, the sink reported %d acknowledged", held, p.Delivery.Acked)
	}
	if used < 2 {
		t.Errorf("sensor readings landed on %d partition(s), want them spread", used)
	}
}

// TestShortfallSaysWhy: a sink that acknowledges slower than the rate is reported as
// backpressure, and a run that reaches its rate reports none. Counts only: the slow sink
// holds every POST for 50 ms with two in flight, far below 2,000 events a second. It runs in
// a synctest bubble, the receiver served in process, so the second and the 50 ms holds pass
// on the bubble's clock: no real waiting, and a loaded machine cannot turn backpressure into
// a CPU shortfall.
func TestShortfallSaysWhy(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var got atomic.Int64
		slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(50 * time.Millisecond)
			got.Add(1)
			w.WriteHeader(http.StatusAccepted)
		})
		sink := &simulate.HTTPSink{URL: "http://api.test", Client: &http.Client{Transport: inProcess{slow}}, MaxBatch: 5, Concurrency: 2}
		sim, err := simulate.New(simulate.Config{Rate: 2000, Duration: time.Second, Seed: 12}, demo(t), sink, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := sim.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		p := sim.Progress()
		t.Logf("%s", p)
		why := p.Shortfall()
		if why == "" || !contains(why, "backpressure") {
			t.Errorf("Shortfall = %q, want producer backpressure", why)
		}
		if p.Delivery.Acked != p.Produced-p.Delivery.Failed || p.Delivery.InFlight != 0 {
			t.Errorf("delivery %+v after Run, produced %d", p.Delivery, p.Produced)
		}
		if batches := got.Load(); batches*5 < p.Delivery.Acked {
			t.Errorf("%d batches of at most 5 cannot carry %d events", batches, p.Delivery.Acked)
		}
	})
}

// inProcess is an http.RoundTripper that serves each request with its handler in the calling
// goroutine: no socket, so the client and the handler can run in a synctest bubble.
type inProcess struct{ h http.Handler }

func (rt inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		defer req.Body.Close()
	}
	rec := httptest.NewRecorder()
	rt.h.ServeHTTP(rec, req)
	return rec.Result(), nil
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
