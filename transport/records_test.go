package transport_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/segmentio/kafka-go"

	"github.com/urbanbrain/urbanbrain/transport"
	"github.com/urbanbrain/urbanbrain/transport/transporttest"
)

// rawWriter is a bare kafka-go producer, standing in for a producer outside urbanbrain.
func rawWriter(t *testing.T, addrs []string) *kafka.Writer {
	t.Helper()
	w := &kafka.Writer{
		Addr: kafka.TCP(addrs...), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, Transport: &kafka.Transport{},
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// readRaw reads n records of topic from the start with a bare kafka-go group reader.
func readRaw(t *testing.T, addrs []string, topic string, n int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: addrs, Topic: topic, GroupID: "raw-" + watermill.NewShortUUID(),
		MaxWait: 200 * time.Millisecond, StartOffset: kafka.FirstOffset, ReadLagInterval: -1,
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var out []kafka.Message
	for range n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func header(m kafka.Message, key string) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// TestPublisherRecords checks what the Publisher writes: the partition key from metadata
// (or the UUID when there is none), metadata as headers, the UUID in its own header, and
// no header for the keys that describe the record itself.
func TestPublisherRecords(t *testing.T) {
	t.Parallel()
	b := transporttest.NewBroker(t, transport.EmbeddedConfig{})
	addrs := b.Addrs()
	const topic = "records"
	ensureTopic(t, addrs, 3, topic)
	pub := newPublisher(t, addrs)

	keyed := message.NewMessage(watermill.NewUUID(), []byte("a"))
	keyed.Metadata.Set(transport.KeyMetadata, "310104")
	keyed.Metadata.Set("ce_type", "city.sensor.reading")
	keyed.Metadata.Set(transport.MetadataOffset, "99") // stale, from a consumed message
	unkeyed := message.NewMessage(watermill.NewUUID(), []byte("b"))
	if err := pub.Publish(topic, keyed, unkeyed); err != nil {
		t.Fatal(err)
	}

	byUUID := map[string]kafka.Message{}
	for _, m := range readRaw(t, addrs, topic, 2) {
		id, ok := header(m, transport.HeaderUUID)
		if !ok {
			t.Fatalf("record %d/%d has no %s header", m.Partition, m.Offset, transport.HeaderUUID)
		}
		byUUID[id] = m
	}
	tests := []struct {
		name        string
		msg         *message.Message
		wantKey     string
		wantHeaders map[string]string
		noHeaders   []string
	}{
		{"keyed", keyed, "310104", map[string]string{"ce_type": "city.sensor.reading"},
			[]string{transport.KeyMetadata, transport.MetadataOffset}},
		{"unkeyed falls back to the UUID", unkeyed, unkeyed.UUID, nil, []string{transport.KeyMetadata}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := byUUID[tt.msg.UUID]
			if !ok {
				t.Fatalf("no record with UUID %s", tt.msg.UUID)
			}
			if string(m.Key) != tt.wantKey {
				t.Errorf("key %q, want %q", m.Key, tt.wantKey)
			}
			if string(m.Value) != string(tt.msg.Payload) {
				t.Errorf("value %q, want %q", m.Value, tt.msg.Payload)
			}
			for k, v := range tt.wantHeaders {
				if got, _ := header(m, k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			for _, k := range tt.noHeaders {
				if _, ok := header(m, k); ok {
					t.Errorf("header %s written, want none", k)
				}
			}
		})
	}
}

// TestSubscriberMetadata consumes records from a producer outside urbanbrain (binary-mode
// CloudEvent headers, no UUID header) and from the Publisher: headers become metadata, the
// key and the record's position are there, and the UUID round-trips or is derived stably.
func TestSubscriberMetadata(t *testing.T) {
	t.Parallel()
	b := transporttest.NewBroker(t, transport.EmbeddedConfig{})
	addrs := b.Addrs()
	const topic = "meta"
	ensureTopic(t, addrs, 1, topic)

	err := rawWriter(t, addrs).WriteMessages(context.Background(), kafka.Message{
		Topic: topic, Key: []byte("310104"), Value: []byte(`{"level":3.2}`),
		Headers: []kafka.Header{
			{Key: "ce_specversion", Value: []byte("1.0")},
			{Key: "ce_id", Value: []byte("wl-1")},
			{Key: "ce_type", Value: []byte("city.sensor.reading")},
			{Key: "content-type", Value: []byte("application/json")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	sent := message.NewMessage(watermill.NewUUID(), []byte("x"))
	sent.Metadata.Set("trace", "t-1")
	if err := newPublisher(t, addrs).Publish(topic, sent); err != nil {
		t.Fatal(err)
	}

	ch := subscribe(t, newSubscriber(t, transport.SubscriberConfig{Brokers: addrs, GroupID: "meta"}), topic)
	foreign, own := receive(t, ch), (*message.Message)(nil)
	foreign.Ack()
	own = receive(t, ch)
	own.Ack()

	for k, want := range map[string]string{
		"ce_id": "wl-1", "ce_type": "city.sensor.reading", "ce_specversion": "1.0",
		"content-type": "application/json", transport.KeyMetadata: "310104",
		transport.MetadataTopic: topic, transport.MetadataPartition: "0", transport.MetadataOffset: "0",
	} {
		if got := foreign.Metadata.Get(k); got != want {
			t.Errorf("foreign record: metadata %s = %q, want %q", k, got, want)
		}
	}
	if got := transport.MessageKey(foreign); got != "310104" {
		t.Errorf("MessageKey = %q, want 310104", got)
	}
	if want := topic + "/0/0"; foreign.UUID != want {
		t.Errorf("foreign record UUID %q, want %q (derived from its position)", foreign.UUID, want)
	}
	if own.UUID != sent.UUID {
		t.Errorf("UUID %q did not round-trip, want %q", own.UUID, sent.UUID)
	}
	if got := own.Metadata.Get("trace"); got != "t-1" {
		t.Errorf("metadata trace = %q, want t-1", got)
	}
	if got := own.Metadata.Get(transport.MetadataOffset); got != "1" {
		t.Errorf("offset metadata %q, want 1", got)
	}
}

// TestDomainPublisher checks the adapter the domain packages publish through.
func TestDomainPublisher(t *testing.T) {
	t.Parallel()
	b := transporttest.NewBroker(t, transport.EmbeddedConfig{})
	addrs := b.Addrs()
	const topic = "domain"
	ensureTopic(t, addrs, 6, topic)
	dp := transport.NewDomainPublisher(newPublisher(t, addrs))

	if err := dp.Publish(context.Background(), topic, "310104", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := dp.Publish(cancelled, topic, "310104", []byte("never")); !errors.Is(err, context.Canceled) {
		t.Errorf("publish with a cancelled context: %v, want context.Canceled", err)
	}

	m := receive(t, subscribe(t, newSubscriber(t, transport.SubscriberConfig{Brokers: addrs, GroupID: "d"}), topic))
	m.Ack()
	if transport.MessageKey(m) != "310104" || string(m.Payload) != "v1" {
		t.Fatalf("got key %q payload %q, want 310104 v1", transport.MessageKey(m), m.Payload)
	}
	if m.UUID == "" {
		t.Fatal("no UUID")
	}
}

// TestReadAll replays a topic and checks per-key order, that records written during the
// replay are left out (the bound is the high-water mark at the call), and that the
// callback's error comes back as is.
func TestReadAll(t *testing.T) {
	t.Parallel()
	b := transporttest.NewBroker(t, transport.EmbeddedConfig{})
	addrs := b.Addrs()
	const topic, keys, perKey = "changelog", 8, 25
	ensureTopic(t, addrs, 4, topic)
	dp := transport.NewDomainPublisher(newPublisher(t, addrs))
	ctx := context.Background()
	for i := range perKey {
		for k := range keys {
			if err := dp.Publish(ctx, topic, fmt.Sprintf("inc-%d", k), []byte(strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
	}

	seen := map[string][]int{}
	wroteDuring := false
	err := transport.ReadAll(ctx, addrs, topic, func(key string, value []byte) error {
		if !wroteDuring {
			wroteDuring = true
			// One record per key lands on every partition; none may be replayed.
			for k := range keys {
				if err := dp.Publish(ctx, topic, fmt.Sprintf("inc-%d", k), []byte("late")); err != nil {
					return err
				}
			}
		}
		v, err := strconv.Atoi(string(value))
		if err != nil {
			return fmt.Errorf("key %s: unexpected value %q (written after the call)", key, value)
		}
		seen[key] = append(seen[key], v)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]int, perKey)
	for i := range want {
		want[i] = i
	}
	if len(seen) != keys {
		t.Fatalf("%d keys, want %d", len(seen), keys)
	}
	for k, got := range seen {
		if !slices.Equal(got, want) {
			t.Errorf("key %s: %v, want %v", k, got, want)
		}
	}

	stop := errors.New("stop here")
	calls := 0
	err = transport.ReadAll(ctx, addrs, topic, func(string, []byte) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("ReadAll with failing callback: err %v after %d calls, want %v after 1", err, calls, stop)
	}

	ensureTopic(t, addrs, 2, "empty")
	err = transport.ReadAll(ctx, addrs, "empty", func(string, []byte) error { return errors.New("called") })
	if err != nil {
		t.Fatalf("ReadAll of an empty topic: %v", err)
	}
}

// TestEnsureTopics checks creation and idempotence: a second call, even with another
// partition count, leaves the topic alone.
func TestEnsureTopics(t *testing.T) {
	t.Parallel()
	b := transporttest.NewBroker(t, transport.EmbeddedConfig{})
	addrs := b.Addrs()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for _, parts := range []int{5, 5, 2} {
		if err := transport.EnsureTopics(ctx, addrs, parts, "city.events", "city.signals"); err != nil {
			t.Fatalf("EnsureTopics(%d): %v", parts, err)
		}
	}
	conn, err := kafka.DialContext(ctx, "tcp", addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, topic := range []string{"city.events", "city.signals"} {
		ps, err := conn.ReadPartitions(topic)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 5 {
			t.Errorf("%s: %d partitions, want 5", topic, len(ps))
		}
	}
	if err := transport.EnsureTopics(ctx, addrs, 0, "x"); err == nil {
		t.Error("EnsureTopics with 0 partitions: no error")
	}
}

// writeNumbered writes n records numbered 0..n-1 (a number, then pad bytes), keyed by key.
func writeNumbered(t *testing.T, addrs []string, topic, key string, n, pad int) {
	t.Helper()
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Topic: topic, Key: []byte(key), Value: fmt.Appendf(nil, "%d %s", i, strings.Repeat("x", pad))}
	}
	if err := rawWriter(t, addrs).WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

// A changelog read goes on from where it stopped when the broker restarts under it: every
// record once, in order.
func TestReadPartitionGoesOnAfterABrokerRestart(t *testing.T) {
	t.Parallel()
	b := transporttest.NewBroker(t, transport.EmbeddedConfig{})
	addrs := b.Addrs()
	const topic, n = "restarted-changelog", 3000
	ensureTopic(t, addrs, 1, topic)
	writeNumbered(t, addrs, topic, "k", n, 10_000) // 30 MB: a read takes several fetches
	var got []int
	err := transport.ReadPartition(context.Background(), addrs, topic, 0, func(m kafka.Message) error {
		v, err := strconv.Atoi(strings.Fields(string(m.Value))[0])
		if err != nil {
			return err
		}
		got = append(got, v)
		if len(got) == 1000 {
			return b.Restart()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]int, n)
	for i := range want {
		want[i] = i
	}
	if !slices.Equal(got, want) {
		t.Fatalf("read %d records (first %v), want 0..%d once each in order", len(got), got[:min(len(got), 5)], n-1)
	}
}

// Reading every partition of a topic takes longer than one request may (a node's start
// reads every changelog at once): each partition still reads in full. (Not parallel: it
// changes the package's request timeout.)
func TestReadRecordsOutlastsTheRequestTimeout(t *testing.T) {
	b := transporttest.NewBroker(t, transport.EmbeddedConfig{})
	addrs := b.Addrs()
	const topic = "slow-changelog"
	ensureTopic(t, addrs, 3, topic)
	for k := range 6 {
		writeNumbered(t, addrs, topic, fmt.Sprintf("k%d", k), 50, 0)
	}
	defer transport.SetReadTimeout(300 * time.Millisecond)()
	seen, slow := map[string]int{}, false
	err := transport.ReadRecords(context.Background(), addrs, topic, func(m kafka.Message) error {
		if !slow {
			slow = true
			time.Sleep(time.Second) // every other partition's connection has waited this long
		}
		seen[string(m.Key)]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k := range 6 {
		if n := seen[fmt.Sprintf("k%d", k)]; n != 50 {
			t.Errorf("key k%d: %d records, want 50", k, n)
		}
	}
}
