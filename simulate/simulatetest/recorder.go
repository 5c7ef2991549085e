// Package simulatetest holds test helpers for code that consumes the simulator's output.
package simulatetest

import (
	"context"
	"sync"
)

// Record is one record a Recorder received.
type Record struct {
	Topic, Key string
	Value      []byte
}

// Recorder is a simulate.Sink that keeps everything it is sent, in order. Err, when set,
// is returned from Send instead of recording.
type Recorder struct {
	mu      sync.Mutex
	records []Record
	Err     error
}

// Send records one record.
func (r *Recorder) Send(_ context.Context, topic, key string, value []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Err != nil {
		return r.Err
	}
	r.records = append(r.records, Record{Topic: topic, Key: key, Value: append([]byte(nil), value...)})
	return nil
}

// Records returns a copy of what was recorded.
func (r *Recorder) Records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), r.records...)
}

// Count returns how many records went to topic ("" counts all).
func (r *Recorder) Count(topic string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.records {
		if topic == "" || rec.Topic == topic {
			n++
		}
	}
	return n
}
