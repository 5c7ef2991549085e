package app

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/transport"
)

func TestVerifiedRecordsCheckEachRecordOncePerProcess(t *testing.T) {
	signer := transport.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	v := newVerifiedRecords(prometheus.NewRegistry())
	v.reader("urbanbrain.rules", event.TopicEvents)
	v.reader("urbanbrain.cockpit.events.i1", event.TopicEvents)
	v.reader("urbanbrain.storage.events", event.TopicEvents)
	v.reader("urbanbrain.storage.events", event.TopicEvents) // a second Run registers its groups again
	v.reader("urbanbrain.incidents", event.TopicSignals, event.TopicCommands)

	var macs int
	verify := func(m kafka.Message) error { macs++; return signer.Verify(m) }
	signed := func(topic string, offset int64, value string) kafka.Message {
		m := kafka.Message{Topic: topic, Partition: 1, Offset: offset, Key: []byte("990101001"), Value: []byte(value)}
		signer.Sign(&m)
		return m
	}
	check := func(t *testing.T, rec kafka.Message, wantMACs int, wantErr error) {
		t.Helper()
		macs = 0
		if err := v.check(rec, verify); !errors.Is(err, wantErr) {
			t.Fatalf("check = %v, want %v", err, wantErr)
		}
		if macs != wantMACs {
			t.Fatalf("checked the signature %d times, want %d", macs, wantMACs)
		}
	}

	t.Run("three readers of one record: one check", func(t *testing.T) {
		rec := signed(event.TopicEvents, 10, `{"a":1}`)
		check(t, rec, 1, nil)
		check(t, rec, 0, nil)
		check(t, rec, 0, nil)
		if _, ok := v.seen[recordPlace{event.TopicEvents, 1, 10}]; ok {
			t.Error("the record is still remembered after all three readers took it")
		}
		check(t, rec, 1, nil) // a fourth read (a replay after a rebalance) checks again
	})
	t.Run("a record of one reader is not remembered", func(t *testing.T) {
		rec := signed(event.TopicSignals, 3, `{"s":1}`)
		check(t, rec, 1, nil)
		check(t, rec, 1, nil)
	})
	t.Run("other bytes at the same place are checked", func(t *testing.T) {
		rec := signed(event.TopicEvents, 20, `{"a":2}`)
		check(t, rec, 1, nil)

		altered := rec
		altered.Value = []byte(`{"a":3}`) // the signature of {"a":2}
		check(t, altered, 1, transport.ErrBadSignature)

		otherKey := rec
		otherKey.Key = []byte("990101002")
		check(t, otherKey, 1, transport.ErrBadSignature)

		resigned := signed(event.TopicEvents, 20, `{"a":4}`) // a rewritten log: a valid record of other bytes
		check(t, resigned, 1, nil)

		unsigned := rec
		unsigned.Headers = nil
		check(t, unsigned, 1, transport.ErrUnsigned)

		twice := rec
		twice.Headers = append(append([]kafka.Header(nil), rec.Headers...), rec.Headers...)
		check(t, twice, 1, transport.ErrBadSignature)

		check(t, rec, 0, nil) // the first record is still remembered for its last reader
	})
	t.Run("a record that failed is never remembered", func(t *testing.T) {
		forged := signed(event.TopicEvents, 30, `{"a":5}`)
		forged.Value = []byte(`{"a":6}`)
		check(t, forged, 1, transport.ErrBadSignature)
		check(t, forged, 1, transport.ErrBadSignature)
		check(t, forged, 1, transport.ErrBadSignature)
	})
	t.Run("the bound: the oldest is given up", func(t *testing.T) {
		first := signed(event.TopicEvents, 1000, `{"b":0}`)
		check(t, first, 1, nil)
		for i := range int64(verifiedKeep) {
			v.check(signed(event.TopicEvents, 2000+i, `{"b":1}`), verify)
		}
		if len(v.seen) > verifiedKeep {
			t.Errorf("%d records remembered, bound %d", len(v.seen), verifiedKeep)
		}
		check(t, first, 1, nil)
	})
	if got := v.shared.Load(); got == 0 {
		t.Error("records_signature_checks_total{result=shared} never counted")
	}
}

func TestVerifiedRecordsNilChecksEveryRecord(t *testing.T) {
	signer := transport.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	var v *verifiedRecords
	v.reader("g", event.TopicEvents)
	m := kafka.Message{Topic: event.TopicEvents, Value: []byte("x")}
	if err := v.check(m, signer.Verify); !errors.Is(err, transport.ErrUnsigned) {
		t.Fatalf("check = %v, want ErrUnsigned", err)
	}
	signer.Sign(&m)
	if err := v.check(m, signer.Verify); err != nil {
		t.Fatal(err)
	}
}
