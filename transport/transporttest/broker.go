// Package transporttest starts urbanbrain's embedded Kafka broker for tests: a real
// Kafka-protocol broker in the test process, on a free port and a temporary data directory,
// that a test can stop and restart on the same address to exercise reconnects.
package transporttest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
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

	ctl   net.Listener // restart requests from RestartCommand, see Main
	ctlWG sync.WaitGroup
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
	b.mu.Lock()
	ctl := b.ctl
	b.mu.Unlock()
	if ctl != nil {
		ctl.Close()
		b.ctlWG.Wait()
	}
	if err := b.Stop(); err != nil {
		b.t.Errorf("close broker: %v", err)
	}
}

// restartArg is the first argument of the command RestartCommand returns.
const restartArg = "-transporttest.restart-broker"

// RestartCommand returns a command line that restarts this broker and exits once it is up
// again: the test binary itself, which Main turns into a small client of a control socket
// this broker listens on. It exists for watermill's Pub/Sub suite, whose reconnect test
// restarts the broker by running a command (Features.RestartServiceCommand); the test
// package must use Main in its TestMain.
func (b *Broker) RestartCommand() []string {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctl == nil {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.t.Fatalf("restart control listener: %v", err)
		}
		b.ctl = ln
		b.ctlWG.Add(1)
		go b.serveRestarts(ln)
	}
	exe, err := os.Executable()
	if err != nil {
		b.t.Fatalf("test executable: %v", err)
	}
	return []string{exe, restartArg, b.ctl.Addr().String()}
}

func (b *Broker) serveRestarts(ln net.Listener) {
	defer b.ctlWG.Done()
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		// One request at a time: restarts must not overlap anyway.
		reply := "ok"
		if err := b.Restart(); err != nil {
			reply = "error: " + strings.ReplaceAll(err.Error(), "\n", " ")
		}
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _ = fmt.Fprintln(conn, reply)
		conn.Close()
	}
}

// Main runs the tests, unless the binary was started by a RestartCommand: then it asks the
// broker to restart, waits until it is back, and returns the exit code. Use it as
//
//	func TestMain(m *testing.M) { os.Exit(transporttest.Main(m)) }
func Main(m *testing.M) int {
	if len(os.Args) == 3 && os.Args[1] == restartArg {
		if err := requestRestart(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "restart broker:", err)
			return 1
		}
		return 0
	}
	return m.Run()
}

func requestRestart(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetReadDeadline(time.Now().Add(60 * time.Second)); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line = strings.TrimSpace(line); line != "ok" {
		return errors.New(line)
	}
	return nil
}
