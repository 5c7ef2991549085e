package transport

import (
	"context"
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap/zaptest"
)

// The consumers of one process share what they decode of a record (app's sharedDecodes), and
// hand a value over only for the very bytes it was decoded from, which they keep by reference:
// that holds only while every fetched record has buffers of its own that nothing else writes
// to. kafka-go gives it them today; this fails if an upgrade makes records share the fetch's
// buffer.
func TestFetchedRecordsHaveBuffersOfTheirOwn(t *testing.T) {
	e, err := StartEmbedded(EmbeddedConfig{Listen: "127.0.0.1:0", Partitions: 1, Topics: []string{"t"}}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := &kafka.Writer{Addr: kafka.TCP(e.Addrs()...), Topic: "t", BatchSize: 100, BatchTimeout: time.Millisecond,
		Compression: kafka.Snappy, AllowAutoTopicCreation: true}
	defer w.Close()
	var msgs []kafka.Message
	for i := range 50 {
		msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf("value %d", i)),
			Headers: []kafka.Header{{Key: SignatureHeader, Value: []byte(fmt.Sprintf("v1:%d", i))}}})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	f := newFetcher(&Security{}, e.Addrs(), "t", 0, kafka.FirstOffset, 1<<20, 100*time.Millisecond, 0)
	defer f.close()
	var got []kafka.Message
	for len(got) < len(msgs) && ctx.Err() == nil {
		recs, err := f.fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, recs...)
	}
	if len(got) != len(msgs) {
		t.Fatalf("fetched %d records of %d", len(got), len(msgs))
	}
	type span struct{ from, to uintptr }
	var spans []span
	for _, m := range got {
		for _, b := range [][]byte{m.Key, m.Value, m.Headers[0].Value} {
			if cap(b) != len(b) {
				t.Fatalf("offset %d: a buffer of %d bytes in one of %d", m.Offset, len(b), cap(b))
			}
			p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
			spans = append(spans, span{p, p + uintptr(len(b))})
		}
	}
	for i, a := range spans {
		for _, b := range spans[i+1:] {
			if a.from < b.to && b.from < a.to {
				t.Fatalf("two fetched records share bytes: %v and %v", a, b)
			}
		}
	}
}
