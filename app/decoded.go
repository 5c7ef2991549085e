package app

import (
	"bytes"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/urbanbrain/urbanbrain/event"
)

// sharedDecodes lets the consumer groups of one process that read the same record decode it
// once. Rules and the events sink read every event; dispatch, the cockpit and the incidents
// sink read every incident change, the biggest records there are: decoding the same bytes
// again was about 8 % of the server's CPU at 5,000 events/s (docs/performance.md).
//
// A decoded value is kept until every consumer that decodes its topic into its type has taken
// it, or until decodedKeep later values pushed it out, whichever comes first; a consumer that
// comes after that decodes for itself. A value is only taken for the very bytes it was decoded
// from (the same topic, partition and offset, and equal bytes) and a CloudEvents type the
// taker accepts, so what a consumer is handed is exactly what it would have decoded. The bytes
// are kept by reference, which needs every fetched record to have buffers of its own
// (transport.TestFetchedRecordsHaveBuffersOfTheirOwn holds kafka-go to that).
//
// Consumers are counted per partition, because a group shared by several instances reads
// only the partitions it owns here while a per-instance group reads them all.
//
// The values are shared between goroutines: handlers treat what they are handed as read-only,
// and copy before they change anything (canon.Incident, the cockpit's masked and converted
// views, the dispatcher's tracked state). The race detector holds them to it in every test
// that runs the whole process.
type sharedDecodes struct {
	mu      sync.Mutex
	entries map[decodedKey]*decodedEntry
	// takers are the consumers seen decoding each kind on each partition, learned as they
	// decode: an entry is dropped once as many of them took it.
	takers map[decodedPlace]map[int]struct{}
	ring   []ringSlot // the kept entries in the order they were kept, for the bounds
	next   int
	bytes  int // the encoded size of the entries kept
	ids    int // the last consumer id handed out

	hits, misses atomic.Uint64
}

// Bounds on what is kept for consumers that have not taken it yet: about a second of records
// at 10,000 events/s, which covers a storage sink's batch interval, and at most
// decodedKeepBytes of records (as encoded; decoded they take two to three times that), so a
// stalled consumer — a sink waiting out a store outage — holds the others' values to that. A
// consumer further behind decodes for itself.
const (
	decodedKeep      = 16384
	decodedKeepBytes = 16 << 20
)

type decodedKind struct {
	topic string
	typ   reflect.Type
}

type decodedPlace struct {
	decodedKind
	partition int
}

type decodedKey struct {
	decodedPlace
	offset int64
}

type decodedEntry struct {
	raw    []byte
	ceType string
	value  any
	took   []int // the consumers that took it (a consumer handed the record again counts once)
}

type ringSlot struct {
	key   decodedKey
	entry *decodedEntry // nil when the slot is free
}

func newSharedDecodes(reg prometheus.Registerer) *sharedDecodes {
	d := &sharedDecodes{
		entries: make(map[decodedKey]*decodedEntry),
		takers:  make(map[decodedPlace]map[int]struct{}),
		ring:    make([]ringSlot, decodedKeep),
	}
	for _, c := range []struct {
		result string
		n      *atomic.Uint64
	}{{"shared", &d.hits}, {"decoded", &d.misses}} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "urbanbrain", Name: "records_decoded_total",
			Help:        "Records of internal topics handed to a consumer, decoded for it or shared from another consumer's decode.",
			ConstLabels: prometheus.Labels{"result": c.result}}, func() float64 { return float64(c.n.Load()) }))
	}
	return d
}

// consumer returns a new consumer's id: one per decoding handler (typed, batchOf). A nil
// *sharedDecodes shares nothing: every consumer decodes for itself.
func (d *sharedDecodes) consumer() int {
	if d == nil {
		return 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ids++
	return d.ids
}

// decodeShared decodes rec, a CloudEvent of one of types, into out (replacing what it held)
// for consumer, or hands it the value another consumer of this process decoded from the same
// record. The decode is event.DecodeInto's, in one pass for the usual record.
func decodeShared[T any](d *sharedDecodes, consumer int, rec kafka.Message, types []string, out *T) error {
	if d == nil {
		_, err := event.DecodeInto(rec.Value, types, out)
		return err
	}
	key := decodedKey{decodedPlace{decodedKind{rec.Topic, reflect.TypeFor[T]()}, rec.Partition}, rec.Offset}
	if v, ok := d.take(key, consumer, rec.Value, types); ok {
		*out = v.(T)
		return nil
	}
	env, err := event.DecodeInto(rec.Value, types, out)
	if err != nil {
		return err
	}
	d.keep(key, consumer, rec.Value, env.Type, *out)
	return nil
}

// take returns the value kept for key, if it was decoded from raw as a type in types.
func (d *sharedDecodes) take(key decodedKey, consumer int, raw []byte, types []string) (any, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	takers := d.takers[key.decodedPlace]
	if _, ok := takers[consumer]; !ok {
		if takers == nil {
			takers = make(map[int]struct{})
			d.takers[key.decodedPlace] = takers
		}
		takers[consumer] = struct{}{}
	}
	e, ok := d.entries[key]
	if !ok || !bytes.Equal(e.raw, raw) || !slices.Contains(types, e.ceType) {
		d.misses.Add(1)
		return nil, false
	}
	if !slices.Contains(e.took, consumer) {
		e.took = append(e.took, consumer)
	}
	if len(e.took) >= len(takers) {
		d.drop(key, e)
	}
	d.hits.Add(1)
	return e.value, true
}

// keep keeps value, decoded from raw by consumer, for the other consumers of its partition, if
// it has any.
func (d *sharedDecodes) keep(key decodedKey, consumer int, raw []byte, ceType string, value any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.takers[key.decodedPlace]) < 2 {
		return
	}
	if _, ok := d.entries[key]; ok {
		return // two consumers decoded it at once; the first kept is as good
	}
	e := &decodedEntry{raw: raw, ceType: ceType, value: value, took: []int{consumer}}
	d.evict(d.next)
	d.ring[d.next] = ringSlot{key: key, entry: e}
	d.next = (d.next + 1) % len(d.ring)
	d.entries[key] = e
	d.bytes += len(raw)
	// Over the byte bound: give up the oldest first.
	for i := d.next; d.bytes > decodedKeepBytes && i != (d.next+len(d.ring)-1)%len(d.ring); i = (i + 1) % len(d.ring) {
		d.evict(i)
	}
}

// evict gives up the entry in ring slot i, if it is still kept.
func (d *sharedDecodes) evict(i int) {
	if slot := d.ring[i]; slot.entry != nil {
		if d.entries[slot.key] == slot.entry {
			d.drop(slot.key, slot.entry)
		}
		d.ring[i] = ringSlot{}
	}
}

// drop forgets the entry kept for key.
func (d *sharedDecodes) drop(key decodedKey, e *decodedEntry) {
	delete(d.entries, key)
	d.bytes -= len(e.raw)
}
