package app

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/urbanbrain/urbanbrain/event"
)

func changeRecord(t *testing.T, offset int64, id string, version int64) kafka.Message {
	t.Helper()
	b, err := event.Encode(event.TypeIncidentChanged, id, time.Now(), event.IncidentChange{
		Incident: event.Incident{ID: id, Version: version, Reports: []event.Report{{EventID: "e-1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	return kafka.Message{Topic: event.TopicIncidents, Partition: 2, Offset: offset, Value: b}
}

func TestSharedDecodesHandEachConsumerTheRecordItReads(t *testing.T) {
	d := newSharedDecodes(prometheus.NewRegistry())
	types := []string{event.TypeIncidentChanged}
	dispatch, cockpit, store := d.consumer(), d.consumer(), d.consumer()
	read := func(consumer int, rec kafka.Message) event.IncidentChange {
		t.Helper()
		var ch event.IncidentChange
		if err := decodeShared(d, consumer, rec, types, &ch); err != nil {
			t.Fatal(err)
		}
		return ch
	}
	// The first record teaches the cache its three consumers; from the second on, one decode
	// serves all three.
	for _, c := range []int{dispatch, cockpit, store} {
		read(c, changeRecord(t, 0, "INC-1", 1))
	}
	hits, misses, kept := d.hits.Load(), d.misses.Load(), len(d.entries)
	rec := changeRecord(t, 1, "INC-1", 2)
	for _, c := range []int{dispatch, cockpit, store} {
		if ch := read(c, rec); ch.Incident.ID != "INC-1" || ch.Incident.Version != 2 || len(ch.Incident.Reports) != 1 {
			t.Fatalf("consumer %d read %+v", c, ch.Incident)
		}
	}
	if got, want := d.hits.Load()-hits, uint64(2); got != want {
		t.Errorf("shared %d times, want %d (one decode for three consumers)", got, want)
	}
	if got := d.misses.Load() - misses; got != 1 {
		t.Errorf("decoded %d times, want 1", got)
	}
	if len(d.entries) != kept {
		t.Errorf("%d values kept, %d before: the one every consumer took is still kept", len(d.entries), kept)
	}

	// Other bytes at the same position (a log that was rewritten) are decoded, not shared.
	read(dispatch, changeRecord(t, 5, "INC-2", 1))
	if ch := read(cockpit, changeRecord(t, 5, "INC-3", 7)); ch.Incident.ID != "INC-3" || ch.Incident.Version != 7 {
		t.Errorf("read %s v%d from other bytes at the same offset, want INC-3 v7", ch.Incident.ID, ch.Incident.Version)
	}

	// A consumer that does not accept the record's type gets the same error as without sharing.
	read(dispatch, changeRecord(t, 6, "INC-4", 1))
	var other event.IncidentChange
	err := decodeShared(d, store, changeRecord(t, 6, "INC-4", 1), []string{event.TypeSignal}, &other)
	if err == nil || !strings.Contains(err.Error(), "want one of") {
		t.Errorf("decoding as another type: err = %v, want the type refused", err)
	}
}

func TestSharedDecodesKeepABoundedNumber(t *testing.T) {
	d := newSharedDecodes(prometheus.NewRegistry())
	types := []string{event.TypeIncidentChanged}
	fast, slow := d.consumer(), d.consumer()
	var ch event.IncidentChange
	first := changeRecord(t, 0, "INC-1", 1)
	for _, c := range []int{fast, slow} { // both known from here on
		if err := decodeShared(d, c, first, types, &ch); err != nil {
			t.Fatal(err)
		}
	}
	// The fast consumer runs far ahead of the slow one: what it decoded is kept only up to
	// the bound, and the slow one decodes the rest for itself.
	rec := changeRecord(t, 1, "INC-1", 2)
	for off := int64(1); off <= decodedKeep+100; off++ {
		rec.Offset = off
		if err := decodeShared(d, fast, rec, types, &ch); err != nil {
			t.Fatal(err)
		}
	}
	if len(d.entries) != decodedKeep {
		t.Errorf("%d values kept, want the bound %d", len(d.entries), decodedKeep)
	}
	misses := d.misses.Load()
	rec.Offset = 1 // pushed out
	if err := decodeShared(d, slow, rec, types, &ch); err != nil || ch.Incident.Version != 2 {
		t.Fatalf("slow consumer read v%d, %v", ch.Incident.Version, err)
	}
	if d.misses.Load() != misses+1 {
		t.Error("a value pushed out of the bound was not decoded again")
	}
	rec.Offset = decodedKeep + 100 // still kept
	if err := decodeShared(d, slow, rec, types, &ch); err != nil || d.misses.Load() != misses+1 {
		t.Errorf("a kept value was decoded again (err %v)", err)
	}
}

func TestSharedDecodesKeepNothingForASingleConsumer(t *testing.T) {
	d := newSharedDecodes(prometheus.NewRegistry())
	only := d.consumer()
	var sig event.IncidentChange
	for off := int64(0); off < 10; off++ {
		if err := decodeShared(d, only, changeRecord(t, off, "INC-1", off+1), []string{event.TypeIncidentChanged}, &sig); err != nil {
			t.Fatal(err)
		}
	}
	if len(d.entries) != 0 {
		t.Errorf("%d values kept for nobody", len(d.entries))
	}
}

func TestSharedDecodesCountTheConsumersOfEachPartition(t *testing.T) {
	// Dispatch (a group shared by the instances) owns partition 0 here, the cockpit and the
	// SQLite sink (groups of this instance) read every partition: a record of partition 1 is
	// done with once the two of them took it.
	d := newSharedDecodes(prometheus.NewRegistry())
	types := []string{event.TypeIncidentChanged}
	dispatch, cockpit, store := d.consumer(), d.consumer(), d.consumer()
	var ch event.IncidentChange
	for off := int64(0); off < 100; off++ {
		r0, r1 := changeRecord(t, off, "INC-a", off+1), changeRecord(t, off, "INC-b", off+1)
		r0.Partition, r1.Partition = 0, 1
		for _, c := range []int{dispatch, cockpit, store} {
			if err := decodeShared(d, c, r0, types, &ch); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []int{cockpit, store} {
			if err := decodeShared(d, c, r1, types, &ch); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Only what the first records left while the consumers were being learned.
	if n := len(d.entries); n > 2 {
		t.Errorf("%d values kept after every consumer of their partition took them", n)
	}
}

func TestSharedDecodesCountAConsumerHandedARecordAgainOnce(t *testing.T) {
	d := newSharedDecodes(prometheus.NewRegistry())
	types := []string{event.TypeIncidentChanged}
	a, b, c := d.consumer(), d.consumer(), d.consumer()
	var ch event.IncidentChange
	for _, id := range []int{a, b, c} {
		if err := decodeShared(d, id, changeRecord(t, 0, "INC-1", 1), types, &ch); err != nil {
			t.Fatal(err)
		}
	}
	rec := changeRecord(t, 1, "INC-1", 2)
	// a decodes, b's handler fails and b is handed the record again: c must still share it.
	for _, id := range []int{a, b, b} {
		if err := decodeShared(d, id, rec, types, &ch); err != nil {
			t.Fatal(err)
		}
	}
	misses := d.misses.Load()
	if err := decodeShared(d, c, rec, types, &ch); err != nil || d.misses.Load() != misses {
		t.Errorf("the third consumer decoded again (err %v): a repeated take counted as another consumer", err)
	}
}

func TestSharedDecodesKeepABoundedNumberOfBytes(t *testing.T) {
	// A stalled consumer (a sink waiting out a store outage) while another reads on: what is
	// kept for it stays within the byte bound, however large the records.
	d := newSharedDecodes(prometheus.NewRegistry())
	types := []string{event.TypeIncidentChanged}
	reader, stalled := d.consumer(), d.consumer()
	b, err := event.Encode(event.TypeIncidentChanged, "INC-1", time.Now(), event.IncidentChange{
		Incident: event.Incident{ID: "INC-1", Version: 1, Title: strings.Repeat("积水", 20000)}}) // ≈ 120 KB
	if err != nil {
		t.Fatal(err)
	}
	var ch event.IncidentChange
	rec := kafka.Message{Topic: event.TopicIncidents, Value: b}
	for _, c := range []int{reader, stalled} {
		if err := decodeShared(d, c, rec, types, &ch); err != nil {
			t.Fatal(err)
		}
	}
	for off := int64(1); off < 1000; off++ {
		rec.Offset = off
		if err := decodeShared(d, reader, rec, types, &ch); err != nil {
			t.Fatal(err)
		}
	}
	if d.bytes > decodedKeepBytes || len(d.entries)*len(b) > decodedKeepBytes {
		t.Errorf("%d values of %d bytes kept (%d bytes counted), over the bound of %d", len(d.entries), len(b), d.bytes, decodedKeepBytes)
	}
	if len(d.entries) < decodedKeepBytes/len(b)-1 {
		t.Errorf("only %d values kept, want about %d: the bound gave up more than it had to", len(d.entries), decodedKeepBytes/len(b))
	}
}
