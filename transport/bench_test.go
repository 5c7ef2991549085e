package transport_test

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/segmentio/kafka-go"

	"github.com/urbanbrain/urbanbrain/transport"
	"github.com/urbanbrain/urbanbrain/transport/transporttest"
)

// BenchmarkPublishConsume and BenchmarkRawKafkaGo measure the same work on the same kind of
// broker with the same settings (acks=all, 5 ms batch timeout, Hash balancer on UUID keys,
// 6 partitions, 512-byte values, the same fetch limits and commit mode), once through this
// package and watermill, once with a bare kafka-go Writer and Reader. The ratio of their
// ns/op is what the transport costs.
//
//   - publish/…: 32 goroutines, or one, publish b.N records synchronously, one per call, as
//     handlers do. Throughput here is set by BatchTimeout and the number of publishers.
//   - consume/commit=…: b.N records are already on the topic (written untimed); one
//     consumer-group stream takes each, acks it and commits (per record, or every 100 ms).
const benchPayload = 512

// benchPublishModes: many concurrent publishers share batches; a single one (a handler
// that publishes, then acks, then takes the next message) waits out BatchTimeout on every
// record, so its rate is about 1/BatchTimeout.
var benchPublishModes = []struct {
	name         string
	publishers   int
	batchTimeout time.Duration
}{
	{"publishers=32/batch=5ms", 32, 5 * time.Millisecond},
	{"publishers=1/batch=5ms", 1, 5 * time.Millisecond},
	{"publishers=1/batch=500us", 1, 500 * time.Microsecond},
}

// benchCommitModes: interval 0 is a synchronous commit per message (SyncCommit here,
// CommitInterval 0 in kafka-go).
var benchCommitModes = []struct {
	name     string
	interval time.Duration
}{
	{"commit=sync", 0},
	{"commit=100ms", 100 * time.Millisecond},
}

func benchBroker(b *testing.B, topic string) []string {
	br := transporttest.NewBroker(b, transport.EmbeddedConfig{Partitions: 6, Topics: []string{topic}})
	return br.Addrs()
}

func payload(b *testing.B) []byte {
	p := make([]byte, benchPayload)
	if _, err := rand.Read(p); err != nil {
		b.Fatal(err)
	}
	return p
}

// publishConcurrently calls publish n times from the given number of goroutines and
// returns the first error.
func publishConcurrently(n, publishers int, publish func() error) error {
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		next  = make(chan struct{})
	)
	for range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				if err := publish(); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	for range n {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	return first
}

// fill writes n records to topic in large batches, untimed, for the consume benchmarks.
func fill(b *testing.B, addrs []string, topic string, n int) {
	b.Helper()
	w := &kafka.Writer{
		Addr: kafka.TCP(addrs...), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchSize: 1000, BatchTimeout: time.Millisecond, Transport: &kafka.Transport{},
	}
	defer w.Close()
	body := payload(b)
	batch := make([]kafka.Message, 0, 1000)
	for i := 0; i < n; i++ {
		// The header is what the watermill publisher would have written; the raw reader
		// ignores it, the subscriber uses it as the message UUID.
		id := watermill.NewUUID()
		batch = append(batch, kafka.Message{
			Topic: topic, Key: []byte(id), Value: body,
			Headers: []kafka.Header{{Key: transport.HeaderUUID, Value: []byte(id)}},
		})
		if len(batch) == cap(batch) || i == n-1 {
			if err := w.WriteMessages(context.Background(), batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

func BenchmarkPublishConsume(b *testing.B) {
	for _, mode := range benchPublishModes {
		b.Run("publish/"+mode.name, func(b *testing.B) {
			topic := "bench-" + watermill.NewShortUUID()
			addrs := benchBroker(b, topic)
			pub, err := transport.NewPublisher(transport.PublisherConfig{
				Brokers: addrs, BatchTimeout: mode.batchTimeout,
			}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer pub.Close()
			body := payload(b)
			b.SetBytes(benchPayload)
			b.ReportAllocs()
			b.ResetTimer()
			err = publishConcurrently(b.N, mode.publishers, func() error {
				return pub.Publish(topic, message.NewMessage(watermill.NewUUID(), body))
			})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
		})
	}
	for _, mode := range benchCommitModes {
		b.Run("consume/"+mode.name, func(b *testing.B) {
			topic := "bench-" + watermill.NewShortUUID()
			addrs := benchBroker(b, topic)
			fill(b, addrs, topic, b.N)
			sub, err := transport.NewSubscriber(transport.SubscriberConfig{
				Brokers: addrs, GroupID: "bench",
				CommitInterval: mode.interval, SyncCommit: mode.interval == 0,
			}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Close()
			b.SetBytes(benchPayload)
			b.ReportAllocs()
			b.ResetTimer()
			msgs, err := sub.Subscribe(context.Background(), topic)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; i++ {
				select {
				case m := <-msgs:
					m.Ack()
				case <-time.After(30 * time.Second):
					b.Fatalf("consumed %d of %d", i, b.N)
				}
			}
			b.StopTimer()
		})
	}
}

func BenchmarkRawKafkaGo(b *testing.B) {
	for _, mode := range benchPublishModes {
		b.Run("publish/"+mode.name, func(b *testing.B) {
			topic := "bench-" + watermill.NewShortUUID()
			addrs := benchBroker(b, topic)
			w := &kafka.Writer{
				Addr:                   kafka.TCP(addrs...),
				Balancer:               &kafka.Hash{},
				RequiredAcks:           kafka.RequireAll,
				BatchTimeout:           mode.batchTimeout,
				AllowAutoTopicCreation: true,
				Transport:              &kafka.Transport{},
			}
			defer w.Close()
			body := payload(b)
			ctx := context.Background()
			b.SetBytes(benchPayload)
			b.ReportAllocs()
			b.ResetTimer()
			err := publishConcurrently(b.N, mode.publishers, func() error {
				return w.WriteMessages(ctx, kafka.Message{Topic: topic, Key: []byte(watermill.NewUUID()), Value: body})
			})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
		})
	}
	for _, mode := range benchCommitModes {
		b.Run("consume/"+mode.name, func(b *testing.B) {
			topic := "bench-" + watermill.NewShortUUID()
			addrs := benchBroker(b, topic)
			fill(b, addrs, topic, b.N)
			b.SetBytes(benchPayload)
			b.ReportAllocs()
			b.ResetTimer()
			r := kafka.NewReader(kafka.ReaderConfig{
				Brokers: addrs, GroupID: "bench", Topic: topic,
				MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 500 * time.Millisecond,
				CommitInterval: mode.interval, HeartbeatInterval: time.Second,
				SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second,
				JoinGroupBackoff: 500 * time.Millisecond, ReadLagInterval: -1,
				StartOffset: kafka.FirstOffset,
			})
			defer r.Close()
			ctx := context.Background()
			for i := 0; i < b.N; i++ {
				fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				m, err := r.FetchMessage(fctx)
				if err == nil {
					err = r.CommitMessages(fctx, m)
				}
				cancel()
				if err != nil {
					b.Fatalf("message %d of %d: %v", i, b.N, err)
				}
			}
			b.StopTimer()
		})
	}
}
