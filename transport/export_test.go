package transport

import "time"

// SetReadTimeout sets how long one request of a partition read may take and returns what
// puts it back. Only for tests that do not run in parallel: it changes a package variable.
func SetReadTimeout(d time.Duration) (restore func()) {
	old := readTimeout
	readTimeout = d
	return func() { readTimeout = old }
}

// Checked is how many signatures s computed to check records.
func (s *Signer) Checked() uint64 { return s.checked.Load() }

// Remembered is how many passed records VerifyFetched remembers.
func (s *Signer) Remembered() int { return s.seen.len() }

// RememberedBytes is how many bytes of passed records VerifyFetched remembers.
func (s *Signer) RememberedBytes() int {
	s.seen.mu.Lock()
	defer s.seen.mu.Unlock()
	return s.seen.bytes
}

// The bounds on what VerifyFetched remembers.
const (
	VerifiedKeep      = verifiedKeep
	VerifiedKeepBytes = verifiedKeepBytes
)
