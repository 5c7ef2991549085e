package transport

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"sync"
	"sync/atomic"

	"github.com/segmentio/kafka-go"
)

// SignatureHeader is the Kafka header that carries a record's signature.
const SignatureHeader = "urbanbrain-sig"

// signatureVersion prefixes the header value, so the scheme can change without ambiguity.
const signatureVersion = "v1:"

// The reasons Verify refuses a record; a stage dead-letters the record with them.
var (
	ErrUnsigned     = errors.New("record is not signed: internal topics take only records signed by an urbanbrain instance")
	ErrBadSignature = errors.New("record signature does not match: forged, altered, or moved from another topic or key")
)

// A Signer authenticates the records of internal topics: whoever can reach the broker can
// write a record, but only a holder of the key can write one that an urbanbrain stage takes.
// The signature is an HMAC-SHA256 over the topic, the key and the value, so a signed record
// cannot be altered, nor moved to another topic or street. Headers other than the signature
// are not covered. A Signer is safe for concurrent use.
type Signer struct {
	macs sync.Pool
	seen verifiedRecords
	// checked counts the signatures computed to check a record, for the tests.
	checked atomic.Uint64
}

// NewSigner returns a Signer with key (at least 32 bytes of secret shared by the instances).
func NewSigner(key []byte) *Signer {
	k := append([]byte(nil), key...)
	s := &Signer{macs: sync.Pool{New: func() any { return hmac.New(sha256.New, k) }}}
	s.seen.byPlace = make(map[recordPlace]int)
	s.seen.ring = make([]verifiedRecord, verifiedKeep)
	return s
}

// Sign sets m's signature header, replacing any signature it carried.
func (s *Signer) Sign(m *kafka.Message) {
	var sum [sha256.Size]byte
	mac := s.mac(sum[:0], m.Topic, m.Key, m.Value)
	sig := make([]byte, len(signatureVersion)+base64.RawStdEncoding.EncodedLen(len(mac)))
	base64.RawStdEncoding.Encode(sig[copy(sig, signatureVersion):], mac)
	for i, h := range m.Headers {
		if h.Key == SignatureHeader {
			m.Headers = append(m.Headers[:i:i], m.Headers[i+1:]...)
			break
		}
	}
	m.Headers = append(m.Headers, kafka.Header{Key: SignatureHeader, Value: sig})
}

// Verify checks m's signature: nil, ErrUnsigned or ErrBadSignature.
func (s *Signer) Verify(m kafka.Message) error {
	got, err := signatureOf(m)
	if err != nil {
		return err
	}
	return s.check(m, got)
}

// VerifyFetched is Verify for a record read from the broker, which the consumers of one
// process check once between them: rules, the events sink and the cockpit read every event,
// and five consumers read every incident change (HMAC-SHA256 was 3 % of the server's CPU at
// 5,000 events/s, most of it checking the same records again).
//
// A record that passed is remembered by its place in the log (topic, partition, offset) with
// its key, value and signature, and a record at that place with byte for byte the same key,
// value and signature passes without computing the HMAC again: the HMAC of the same topic,
// key and value is the same, so the answer is the one Verify would give. Anything else at
// that place is checked in full. The bytes are remembered by reference, not copied: the
// caller must not change a record's bytes after passing it here (kafka-go gives every fetched
// record buffers of its own). What is remembered is bounded by verifiedKeep records and
// verifiedKeepBytes of their bytes, the oldest forgotten first.
func (s *Signer) VerifyFetched(m kafka.Message) error {
	got, err := signatureOf(m)
	if err != nil {
		return err
	}
	place := recordPlace{m.Topic, m.Partition, m.Offset}
	if s.seen.has(place, m.Key, m.Value, got) {
		return nil
	}
	if err := s.check(m, got); err != nil {
		return err
	}
	s.seen.add(verifiedRecord{place: place, key: m.Key, value: m.Value, sig: got})
	return nil
}

// signatureOf returns m's one signature header value, or why m has none that can pass.
func signatureOf(m kafka.Message) ([]byte, error) {
	var got []byte
	n := 0
	for _, h := range m.Headers {
		if h.Key == SignatureHeader {
			got = h.Value
			n++
		}
	}
	switch {
	case n == 0:
		return nil, ErrUnsigned
	case n > 1 || len(got) <= len(signatureVersion) || string(got[:len(signatureVersion)]) != signatureVersion:
		return nil, ErrBadSignature
	}
	return got, nil
}

// check computes m's HMAC and compares it with got, its signature header value.
func (s *Signer) check(m kafka.Message, got []byte) error {
	s.checked.Add(1)
	var sum, sig [sha256.Size]byte
	enc := got[len(signatureVersion):]
	if base64.RawStdEncoding.DecodedLen(len(enc)) != len(sig) {
		return ErrBadSignature
	}
	if _, err := base64.RawStdEncoding.Decode(sig[:], enc); err != nil {
		return ErrBadSignature
	}
	if !hmac.Equal(sig[:], s.mac(sum[:0], m.Topic, m.Key, m.Value)) {
		return ErrBadSignature
	}
	return nil
}

// mac appends to dst the HMAC of the topic, key and value, the first two length-prefixed so no
// two records share an input.
func (s *Signer) mac(dst []byte, topic string, key, value []byte) []byte {
	h := s.macs.Get().(hash.Hash)
	defer s.macs.Put(h)
	h.Reset()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(topic)))])
	h.Write([]byte(topic))
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(key)))])
	h.Write(key)
	h.Write(value)
	return h.Sum(dst)
}

// Bounds on the records VerifyFetched remembers: about a second of records at 10,000 events/s
// over the internal topics, which covers a storage sink's batch interval behind the stages,
// and at most verifiedKeepBytes of their bytes (already held by the consumers that have not
// taken them: app's shared decodes keep the same values). A consumer further behind checks
// for itself.
const (
	verifiedKeep      = 16384
	verifiedKeepBytes = 16 << 20
)

type recordPlace struct {
	topic     string
	partition int
	offset    int64
}

type verifiedRecord struct {
	place           recordPlace
	key, value, sig []byte
}

func (r verifiedRecord) size() int { return len(r.key) + len(r.value) + len(r.sig) }

// verifiedRecords are the records VerifyFetched passed, oldest first in a ring.
type verifiedRecords struct {
	mu      sync.Mutex
	byPlace map[recordPlace]int // → index in ring
	ring    []verifiedRecord
	head    int // the oldest
	n       int
	bytes   int
}

// has reports whether the record at place passed with exactly these bytes.
func (v *verifiedRecords) has(place recordPlace, key, value, sig []byte) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	i, ok := v.byPlace[place]
	if !ok {
		return false
	}
	r := &v.ring[i]
	return r.place == place && bytes.Equal(r.sig, sig) && bytes.Equal(r.key, key) && bytes.Equal(r.value, value)
}

// add remembers r, forgetting the oldest records to keep within the bounds. A record that
// takes more than a sixteenth of the byte bound on its own is not remembered.
func (v *verifiedRecords) add(r verifiedRecord) {
	size := r.size()
	if size > verifiedKeepBytes/16 {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.byPlace[r.place]; ok {
		return // another consumer passed it meanwhile, or a record there with other bytes did
	}
	for v.n == len(v.ring) || (v.n > 0 && v.bytes+size > verifiedKeepBytes) {
		old := &v.ring[v.head]
		delete(v.byPlace, old.place)
		v.bytes -= old.size()
		*old = verifiedRecord{}
		v.head = (v.head + 1) % len(v.ring)
		v.n--
	}
	i := (v.head + v.n) % len(v.ring)
	v.ring[i] = r
	v.byPlace[r.place] = i
	v.n++
	v.bytes += size
}

// len is how many records are remembered.
func (v *verifiedRecords) len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.n
}
