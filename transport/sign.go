package transport

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"sync"

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
}

// NewSigner returns a Signer with key (at least 32 bytes of secret shared by the instances).
func NewSigner(key []byte) *Signer {
	k := append([]byte(nil), key...)
	return &Signer{macs: sync.Pool{New: func() any { return hmac.New(sha256.New, k) }}}
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
		return ErrUnsigned
	case n > 1 || len(got) <= len(signatureVersion) || string(got[:len(signatureVersion)]) != signatureVersion:
		return ErrBadSignature
	}
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
