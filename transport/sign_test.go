package transport_test

import (
	"bytes"
	"errors"
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
