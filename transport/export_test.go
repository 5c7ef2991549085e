package transport

import "time"

// SetReadTimeout sets how long one request of a partition read may take and returns what
// puts it back. Only for tests that do not run in parallel: it changes a package variable.
func SetReadTimeout(d time.Duration) (restore func()) {
	old := readTimeout
	readTimeout = d
	return func() { readTimeout = old }
}
