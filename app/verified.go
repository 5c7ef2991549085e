package app

import (
	"bytes"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/urbanbrain/urbanbrain/transport"
)

// verifiedRecords lets the consumer groups of one process that read the same record check its
// signature once. Every event is read by rules, the cockpit's KPIs and the events sink, every
// incident change by dispatch, the cockpit and the incidents sink; each checked the HMAC of the
// same bytes, about 3 % of the server's CPU at 5,000 events/s (docs/performance.md).
//
// A check is shared only for the very record that was checked: the same topic, partition and
// offset, and equal key, value and signature header. The signature is an HMAC over the topic,
// key and value, so such a record would verify exactly as the first did. A record that failed
// its check is never remembered, and each reader still counts and dead-letters it.
//
// A record is remembered until every other reader of its topic in this process has taken it,
// or until verifiedKeep later records pushed it out; a reader that comes after that checks for
// itself. The bytes are kept by reference (fetched records have buffers of their own:
// transport.TestFetchedRecordsHaveBuffersOfTheirOwn).
type verifiedRecords struct {
	mu      sync.Mutex
	readers map[string]map[string]bool // topic → the consumer groups of this process that check its records
	seen    map[recordPlace]*verifiedRecord
	ring    []verifiedSlot // the remembered records in the order they were checked, for the bound
	next    int

	checked, shared atomic.Uint64
}

// verifiedKeep bounds what is remembered: about a second of shared records at 10,000 events a
// second, which covers a storage sink's batch interval.
const verifiedKeep = 16384

type recordPlace struct {
	topic     string
	partition int
	offset    int64
}

type verifiedSlot struct {
	place recordPlace
	entry *verifiedRecord
}

type verifiedRecord struct {
	key, value, sig []byte
	left            int // readers yet to take it
	slot            int // its place in the ring
}

func newVerifiedRecords(reg prometheus.Registerer) *verifiedRecords {
	v := &verifiedRecords{readers: make(map[string]map[string]bool), seen: make(map[recordPlace]*verifiedRecord), ring: make([]verifiedSlot, verifiedKeep)}
	registerResults(reg, "records_signature_checks_total",
		"Signatures of records of internal topics found valid: checked for the consumer, or shared from another consumer's check of the same record.",
		map[string]*atomic.Uint64{"checked": &v.checked, "shared": &v.shared})
	return v
}

// reader registers group as a consumer group of this process that checks the records of
// topics (again: a second Run of the same App).
func (v *verifiedRecords) reader(group string, topics ...string) {
	if v == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, t := range topics {
		if v.readers[t] == nil {
			v.readers[t] = make(map[string]bool)
		}
		v.readers[t][group] = true
	}
}

// check returns verify(rec), or nil without calling it when another reader of this process
// found the same record valid. A nil *verifiedRecords shares nothing.
func (v *verifiedRecords) check(rec kafka.Message, verify func(kafka.Message) error) error {
	sig, ok := soleSignature(rec)
	if v == nil || !ok {
		return verify(rec) // unsigned or twice signed: the check says which
	}
	place := recordPlace{rec.Topic, rec.Partition, rec.Offset}
	v.mu.Lock()
	readers := len(v.readers[rec.Topic])
	if e := v.seen[place]; e != nil && bytes.Equal(e.sig, sig) && bytes.Equal(e.key, rec.Key) && bytes.Equal(e.value, rec.Value) {
		if e.left--; e.left <= 0 {
			delete(v.seen, place)
			v.ring[e.slot] = verifiedSlot{} // nothing holds its bytes any longer
		}
		v.mu.Unlock()
		v.shared.Add(1)
		return nil
	}
	v.mu.Unlock()
	if err := verify(rec); err != nil {
		return err
	}
	v.checked.Add(1)
	if readers < 2 {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.seen[place]; ok {
		return nil // two readers checked it at once
	}
	if old := v.ring[v.next]; old.entry != nil && v.seen[old.place] == old.entry {
		delete(v.seen, old.place)
	}
	e := &verifiedRecord{key: rec.Key, value: rec.Value, sig: sig, left: readers - 1, slot: v.next}
	v.ring[v.next] = verifiedSlot{place, e}
	v.next = (v.next + 1) % len(v.ring)
	v.seen[place] = e
	return nil
}

// soleSignature returns the record's signature header, if it has exactly one.
func soleSignature(rec kafka.Message) ([]byte, bool) {
	var sig []byte
	n := 0
	for _, h := range rec.Headers {
		if h.Key == transport.SignatureHeader {
			sig = h.Value
			n++
		}
	}
	return sig, n == 1
}
