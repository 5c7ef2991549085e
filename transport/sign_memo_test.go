package transport

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap/zaptest"
)

// After much churn over topics and sizes, what VerifyFetched remembers is consistent: every
// place it finds leads to the slot that holds that place, the counts and bytes are those of
// the slots in use, and a free slot holds nothing.
func TestVerifiedRecordsStayConsistent(t *testing.T) {
	s := NewSigner(bytes.Repeat([]byte{7}, 32))
	topics := []string{"city.events", "city.incidents", "city.signals"}
	for i := range 3 * verifiedKeep {
		m := kafka.Message{Topic: topics[i%3], Partition: i % 5, Offset: int64(i / 15), Key: []byte("k"),
			Value: []byte(strings.Repeat("v", 1+i%3000))}
		if i%97 == 0 {
			m.Value = []byte(strings.Repeat("x", 400<<10)) // some large enough to reach the byte bound
		}
		s.Sign(&m)
		if err := s.VerifyFetched(m); err != nil {
			t.Fatal(err)
		}
	}
	v := &s.seen
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.byPlace) != v.n || v.n > len(v.ring) {
		t.Fatalf("%d places found for %d records remembered in %d slots", len(v.byPlace), v.n, len(v.ring))
	}
	for place, i := range v.byPlace {
		if v.ring[i].place != place {
			t.Fatalf("place %v leads to slot %d, which holds %v", place, i, v.ring[i].place)
		}
	}
	sum := 0
	for i := range v.ring {
		used := (i-v.head+len(v.ring))%len(v.ring) < v.n
		switch r := v.ring[i]; {
		case used:
			sum += r.size()
		case r.value != nil || r.place != (recordPlace{}):
			t.Fatalf("free slot %d still holds %v", i, r.place)
		}
	}
	if sum != v.bytes || v.bytes > verifiedKeepBytes {
		t.Errorf("the slots in use hold %d bytes, counted %d, bound %d", sum, v.bytes, verifiedKeepBytes)
	}
}

// VerifyFetched keeps the bytes of the records it passed by reference, which holds only while
// every fetched record has buffers of its own that nothing else writes to. kafka-go gives it
// them today; this fails if an upgrade makes records share the fetch's buffer.
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
