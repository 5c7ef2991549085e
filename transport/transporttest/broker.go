// Package transporttest starts urbanbrain's embedded Kafka broker for tests: a real
// Kafka-protocol broker in the test process, on a free port and a temporary data directory,
// that a test can stop and restart on the same address to exercise reconnects.
package transporttest

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/transport"
)

// Broker is an embedded broker owned by one test and closed when it ends.
type Broker struct {
	t   testing.TB
	cfg transport.EmbeddedConfig
	log *zap.Logger

	mu    sync.Mutex
	e     *transport.Embedded // nil while stopped
	addrs []string
}

// NewBroker starts a broker. Zero fields of cfg get test defaults: a temporary DataDir and
// 127.0.0.1 on a free port. The broker is closed in t.Cleanup.
func NewBroker(t testing.TB, cfg transport.EmbeddedConfig) *Broker {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	b := &Broker{t: t, cfg: cfg, log: zap.NewNop()}
	e, err := transport.StartEmbedded(cfg, b.log)
	if err != nil {
		t.Fatalf("start embedded broker: %v", err)
	}
	b.e, b.addrs = e, e.Addrs()
	// Later restarts must come back on the same address, so pin the port chosen now.
	b.cfg.Listen = b.addrs[0]
	t.Cleanup(b.close)
	return b
}

// Addrs returns the broker's addresses; they stay the same across restarts.
func (b *Broker) Addrs() []string { return append([]string(nil), b.addrs...) }

// Stop closes the broker, persisting its state. Clients see the connection drop.
func (b *Broker) Stop() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stopLocked()
}

func (b *Broker) stopLocked() error {
	if b.e == nil {
		return nil
	}
	err := b.e.Close()
	b.e = nil
	return err
}

// Start starts a stopped broker again on the same data directory and address.
func (b *Broker) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.startLocked()
}

func (b *Broker) startLocked() error {
	if b.e != nil {
		return nil
	}
	// The port was ours a moment ago; a client's connect attempt in TIME_WAIT does not
	// block a listener, but another process grabbing it would. Retry briefly for that.
	deadline := time.Now().Add(5 * time.Second)
	for {
		e, err := transport.StartEmbedded(b.cfg, b.log)
		if err == nil {
			b.e = e
			return nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return fmt.Errorf("restart broker on %s: %w", b.cfg.Listen, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Restart stops the broker and starts it again on the same data directory and address.
func (b *Broker) Restart() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.stopLocked(); err != nil {
		return err
	}
	return b.startLocked()
}

func (b *Broker) close() {
	if err := b.Stop(); err != nil {
		b.t.Errorf("close broker: %v", err)
	}
}
