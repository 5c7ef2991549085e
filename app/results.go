package app

import (
	"context"
	"sync"

	"github.com/urbanbrain/urbanbrain/event"
)

// resultWaiter connects HTTP requests waiting for a command's outcome to the
// city.command-results records that carry it. The waiter is registered before the command
// is published, so a fast outcome is never missed.
type resultWaiter struct {
	mu      sync.Mutex
	pending map[string]chan event.CommandResult
}

func newResultWaiter() *resultWaiter {
	return &resultWaiter{pending: make(map[string]chan event.CommandResult)}
}

func (rw *resultWaiter) expect(commandID string) <-chan event.CommandResult {
	ch := make(chan event.CommandResult, 1)
	rw.mu.Lock()
	rw.pending[commandID] = ch
	rw.mu.Unlock()
	return ch
}

func (rw *resultWaiter) forget(commandID string) {
	rw.mu.Lock()
	delete(rw.pending, commandID)
	rw.mu.Unlock()
}

// HandleResult delivers an outcome to its waiting request, if this process sent it.
func (rw *resultWaiter) HandleResult(_ context.Context, res event.CommandResult) error {
	rw.mu.Lock()
	ch, ok := rw.pending[res.CommandID]
	delete(rw.pending, res.CommandID)
	rw.mu.Unlock()
	if ok {
		ch <- res // buffered: never blocks
	}
	return nil
}
