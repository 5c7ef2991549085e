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
// taker accepts, so what a consumer is handed is exactly what it would have decoded.
//
// The values are shared between goroutines: handlers treat what they are handed as read-only,
// and copy before they change anything (canon.Incident, the cockpit's masked and converted
// views, the dispatcher's tracked state). The race detector holds them to it in every test
// that runs the whole process.
type sharedDecodes struct {
	mu      sync.Mutex
	entries map[decodedKey]*decodedEntry
	// takers are the consumers seen decoding each kind, learned as they decode: an entry
	// is dropped once as many consumers took it.
	takers map[decodedKind]map[int]struct{}
	ring   []decodedKey // the keys in the order they were kept, for the bound
	next   int
	ids    int // the last consumer id handed out

	hits, misses atomic.Uint64
}

// decodedKeep bounds the values kept for consumers that have not taken them yet: a second's
// worth of records at 10,000 events/s and their signals and changes, which covers a storage
// sink's batch interval. A consumer further behind (a replay, a slow store) decodes again.
const decodedKeep = 16384

type decodedKind struct {
	topic string
	typ   reflect.Type
}

type decodedKey struct {
	decodedKind
	partition int
	offset    int64
}

type decodedEntry struct {
	raw    []byte
	ceType string
	value  any
	taken  int
}

func newSharedDecodes(reg prometheus.Registerer) *sharedDecodes {
	d := &sharedDecodes{
		entries: make(map[decodedKey]*decodedEntry),
		takers:  make(map[decodedKind]map[int]struct{}),
		ring:    make([]decodedKey, decodedKeep),
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

// decodeShared decodes rec, a CloudEvent of one of types, into out for consumer, or hands it
// the value another consumer of this process decoded from the same record.
func decodeShared[T any](d *sharedDecodes, consumer int, rec kafka.Message, types []string, out *T) error {
	if d == nil {
		return decodeAny(rec.Value, types, out)
	}
	key := decodedKey{decodedKind{rec.Topic, reflect.TypeFor[T]()}, rec.Partition, rec.Offset}
	if v, ok := d.take(key, consumer, rec.Value, types); ok {
		*out = v.(T)
		return nil
	}
	env, err := event.DecodeAny(rec.Value, types, out)
	if err != nil {
		return err
	}
	d.keep(key, rec.Value, env.Type, *out)
	return nil
}

// take returns the value kept for key, if it was decoded from raw as a type in types.
func (d *sharedDecodes) take(key decodedKey, consumer int, raw []byte, types []string) (any, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	takers := d.takers[key.decodedKind]
	if _, ok := takers[consumer]; !ok {
		if takers == nil {
			takers = make(map[int]struct{})
			d.takers[key.decodedKind] = takers
		}
		takers[consumer] = struct{}{}
	}
	e, ok := d.entries[key]
	if !ok || !bytes.Equal(e.raw, raw) || !slices.Contains(types, e.ceType) {
		d.misses.Add(1)
		return nil, false
	}
	e.taken++
	if e.taken >= len(takers) {
		delete(d.entries, key)
	}
	d.hits.Add(1)
	return e.value, true
}

// keep keeps value, decoded from raw, for the kind's other consumers, if it has any.
func (d *sharedDecodes) keep(key decodedKey, raw []byte, ceType string, value any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.takers[key.decodedKind]) < 2 {
		return
	}
	if _, ok := d.entries[key]; ok {
		return // two consumers decoded it at once; the first kept is as good
	}
	if old := d.ring[d.next]; old.typ != nil {
		delete(d.entries, old) // gone already when every consumer took it
	}
	d.ring[d.next] = key
	d.next = (d.next + 1) % len(d.ring)
	d.entries[key] = &decodedEntry{raw: raw, ceType: ceType, value: value, taken: 1}
}
