package transport_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/urbanbrain/urbanbrain/transport"
)

func TestSignerRefusesWhatItDidNotSign(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	s := transport.NewSigner(key)
	signed := func() kafka.Message {
		m := kafka.Message{Topic: "city.commands", Key: []byte("990101001"), Value: []byte(`{"id":"c1","data":{"incident_id":"INC-1"}}`),
			Headers: []kafka.Header{{Key: "traceparent", Value: []byte("00-abc")}}}
		s.Sign(&m)
		return m
	}
	if err := s.Verify(signed()); err != nil {
		t.Fatalf("a signed record: %v", err)
	}
	resigned := signed()
	s.Sign(&resigned) // signing twice keeps one signature
	if err := s.Verify(resigned); err != nil {
		t.Errorf("a record signed twice: %v", err)
	}

	for _, tc := range []struct {
		name   string
		change func(*kafka.Message)
		want   error
	}{
		{"unsigned", func(m *kafka.Message) { m.Headers = m.Headers[:1] }, transport.ErrUnsigned},
		{"value altered", func(m *kafka.Message) { m.Value = bytes.Replace(m.Value, []byte("INC-1"), []byte("INC-2"), 1) }, transport.ErrBadSignature},
		{"moved to another street", func(m *kafka.Message) { m.Key = []byte("990101002") }, transport.ErrBadSignature},
		{"moved to another topic", func(m *kafka.Message) { m.Topic = "city.signals" }, transport.ErrBadSignature},
		{"key and value boundary moved", func(m *kafka.Message) {
			m.Key, m.Value = append(append([]byte{}, m.Key...), m.Value[0]), m.Value[1:]
		}, transport.ErrBadSignature},
		{"a second signature header", func(m *kafka.Message) {
			m.Headers = append(m.Headers, m.Headers[len(m.Headers)-1])
		}, transport.ErrBadSignature},
		{"garbage signature", func(m *kafka.Message) { m.Headers[1].Value = []byte("v1:!!!") }, transport.ErrBadSignature},
		{"another scheme", func(m *kafka.Message) { m.Headers[1].Value = []byte("v0:" + string(m.Headers[1].Value[3:])) }, transport.ErrBadSignature},
	} {
		m := signed()
		tc.change(&m)
		if err := s.Verify(m); !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify = %v, want %v", tc.name, err, tc.want)
		}
	}
	other := transport.NewSigner(bytes.Repeat([]byte{8}, 32))
	if err := other.Verify(signed()); !errors.Is(err, transport.ErrBadSignature) {
		t.Errorf("a record signed with another key: %v, want %v", err, transport.ErrBadSignature)
	}
}

// Consumers of one process check a record they all read once between them, and nothing but
// the very record that passed passes unchecked.
func TestVerifyFetchedChecksARecordOnce(t *testing.T) {
	s := transport.NewSigner(bytes.Repeat([]byte{7}, 32))
	fetched := func(topic string, offset int64, value string) kafka.Message {
		m := kafka.Message{Topic: topic, Partition: 2, Offset: offset, Key: []byte("990101001"), Value: []byte(value),
			Headers: []kafka.Header{{Key: "traceparent", Value: []byte("00-abc")}}}
		s.Sign(&m)
		return m // every call makes buffers of its own, as kafka-go does for every consumer
	}
	orig := fetched("city.events", 7, `{"id":"e1","data":{"value":1}}`)
	for consumer := range 3 {
		if err := s.VerifyFetched(fetched("city.events", 7, `{"id":"e1","data":{"value":1}}`)); err != nil {
			t.Fatalf("consumer %d: %v", consumer, err)
		}
	}
	if n := s.Checked(); n != 1 {
		t.Errorf("three consumers of one record computed %d signatures, want 1", n)
	}

	// At the same place, each of these differs from the record that passed and is checked.
	for _, tc := range []struct {
		name   string
		change func(*kafka.Message)
		want   error
	}{
		{"value altered, signature kept", func(m *kafka.Message) { m.Value = []byte(`{"id":"e1","data":{"value":9}}`) }, transport.ErrBadSignature},
		{"key altered", func(m *kafka.Message) { m.Key = []byte("990101002") }, transport.ErrBadSignature},
		{"signature altered", func(m *kafka.Message) {
			m.Headers[1].Value = append([]byte(nil), m.Headers[1].Value...)
			m.Headers[1].Value[5] ^= 1
		}, transport.ErrBadSignature},
		{"unsigned", func(m *kafka.Message) { m.Headers = m.Headers[:1] }, transport.ErrUnsigned},
		{"a second signature header", func(m *kafka.Message) { m.Headers = append(m.Headers, m.Headers[1]) }, transport.ErrBadSignature},
		{"the same bytes on another topic", func(m *kafka.Message) { m.Topic = "city.signals" }, transport.ErrBadSignature},
	} {
		m := fetched("city.events", 7, `{"id":"e1","data":{"value":1}}`)
		m.Headers = append([]kafka.Header(nil), m.Headers...)
		tc.change(&m)
		if err := s.VerifyFetched(m); !errors.Is(err, tc.want) {
			t.Errorf("%s: VerifyFetched = %v, want %v", tc.name, err, tc.want)
		}
	}
	before := s.Checked()
	if err := s.VerifyFetched(orig); err != nil {
		t.Fatalf("the record that passed, after the refusals: %v", err)
	}
	if s.Checked() != before {
		t.Error("the refusals made the record that passed be checked again")
	}

	// A forged record at a place no record passed is checked and refused, and not remembered.
	forged := fetched("city.events", 8, `{"id":"e2"}`)
	forged.Value = []byte(`{"id":"e3"}`)
	for range 2 {
		if err := s.VerifyFetched(forged); !errors.Is(err, transport.ErrBadSignature) {
			t.Errorf("a forged record: %v, want %v", err, transport.ErrBadSignature)
		}
	}

	// What is remembered is bounded: the records of four times the bound later, most of the
	// first ones are forgotten, and checked again.
	for off := range int64(4 * transport.VerifiedKeep) {
		if err := s.VerifyFetched(fetched("city.incidents", off, `{"id":"c"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Remembered(); n > transport.VerifiedKeep {
		t.Errorf("remembered %d records, more than the bound %d", n, transport.VerifiedKeep)
	}
	before = s.Checked()
	for off := range int64(transport.VerifiedKeep) {
		if err := s.VerifyFetched(fetched("city.incidents", off, `{"id":"c"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if again := s.Checked() - before; again < transport.VerifiedKeep/2 {
		t.Errorf("of the first %d records, %d were checked again after %d later ones; want most", transport.VerifiedKeep, again, 4*transport.VerifiedKeep)
	}

	// And so are the bytes: records of 512 KiB are remembered up to the byte bound.
	big := strings.Repeat("x", 512<<10)
	for off := range int64(64) {
		if err := s.VerifyFetched(fetched("city.rules", off, big)); err != nil {
			t.Fatal(err)
		}
	}
	if b := s.RememberedBytes(); b > transport.VerifiedKeepBytes {
		t.Errorf("remembered %d bytes, more than the bound %d", b, transport.VerifiedKeepBytes)
	}
}

func TestVerifyFetchedConcurrently(t *testing.T) {
	s := transport.NewSigner(bytes.Repeat([]byte{7}, 32))
	recs := make([]kafka.Message, 200)
	for i := range recs {
		recs[i] = kafka.Message{Topic: "city.incidents", Offset: int64(i), Key: []byte("k"), Value: []byte(fmt.Sprintf(`{"n":%d}`, i))}
		s.Sign(&recs[i])
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for _, m := range recs {
				if err := s.VerifyFetched(m); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	n := s.Checked()
	if n < uint64(len(recs)) || n > 4*uint64(len(recs)) {
		t.Errorf("computed %d signatures for %d records read by 4 consumers", n, len(recs))
	}
	for _, m := range recs { // a fifth consumer finds them all checked
		if err := s.VerifyFetched(m); err != nil {
			t.Fatal(err)
		}
	}
	if s.Checked() != n {
		t.Errorf("a fifth consumer computed %d signatures again", s.Checked()-n)
	}
}

func BenchmarkSignVerify(b *testing.B) {
	s := transport.NewSigner(bytes.Repeat([]byte{7}, 32))
	m := kafka.Message{Topic: "city.events", Key: []byte("990101001"), Value: bytes.Repeat([]byte("x"), 900)}
	b.ReportAllocs()
	for b.Loop() {
		m.Headers = m.Headers[:0]
		s.Sign(&m)
		if err := s.Verify(m); err != nil {
			b.Fatal(err)
		}
	}
}
