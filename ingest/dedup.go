package ingest

import "sync"

// seenSet remembers the last n keys added, first in first out: a ring of keys plus a map from
// key to its ring slot. FIFO rather than LRU because a replay usually comes once (a producer
// retry, a redelivery after a rebalance), so refreshing on hit buys nothing and costs a list.
type seenSet struct {
	mu   sync.Mutex
	ring []string
	next int
	slot map[string]int
}

func newSeenSet(n int) *seenSet {
	return &seenSet{ring: make([]string, n), slot: make(map[string]int, n)}
}

// add records key and reports whether it was new.
func (s *seenSet) add(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.slot[key]; ok {
		return false
	}
	if old := s.ring[s.next]; old != "" {
		delete(s.slot, old)
	}
	s.ring[s.next] = key
	s.slot[key] = s.next
	s.next++
	if s.next == len(s.ring) {
		s.next = 0
	}
	return true
}

// remove forgets key, so that an event whose write failed is accepted again when retried.
func (s *seenSet) remove(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.slot[key]; ok {
		delete(s.slot, key)
		s.ring[i] = ""
	}
}

func (s *seenSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.slot)
}
