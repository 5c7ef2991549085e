package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap/zaptest"
)

// The scan finds every request's key and correlation id however the stream is cut into reads,
// including frames shorter than a header, which the broker refuses.
func TestRequestScanFindsEveryRequestHoweverTheStreamIsCut(t *testing.T) {
	t.Parallel()
	frame := func(key int16, corr int32, body int) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(8+body))
		b = binary.BigEndian.AppendUint16(b, uint16(key))
		b = binary.BigEndian.AppendUint16(b, 9) // version
		b = binary.BigEndian.AppendUint32(b, uint32(corr))
		for i := range body {
			b = append(b, byte(i)) // bytes that look like sizes and keys must not confuse it
		}
		return b
	}
	var stream []byte
	stream = append(stream, frame(0, 1, 300)...)
	stream = append(stream, frame(1, 2, 0)...)
	stream = append(stream, frame(8, 3, 17)...)
	stream = append(stream, 0, 0, 0, 3, 0xAA, 0xBB, 0xCC) // a 3-byte body: no header to report
	stream = append(stream, frame(0, -5, 1)...)
	type req struct {
		key  int16
		corr int32
	}
	want := []req{{0, 1}, {1, 2}, {8, 3}, {0, -5}}
	for cut := 1; cut <= len(stream); cut++ {
		var s requestScan
		var got []req
		for p := stream; len(p) > 0; {
			n := min(cut, len(p))
			s.feed(p[:n], func(key int16, corr int32) { got = append(got, req{key, corr}) })
			p = p[n:]
		}
		if !slices.Equal(got, want) {
			t.Fatalf("reads of %d bytes: found %v, want %v", cut, got, want)
		}
	}
}

// gatedFlush stands in for the flush of the data directory: open, it returns at once; closed,
// each flush reports that it began and waits for the test to give it its result.
type gatedFlush struct {
	mu      sync.Mutex
	hold    chan error // nil: open
	calls   atomic.Int32
	entered chan struct{}
}

func (g *gatedFlush) flush() error {
	g.calls.Add(1)
	g.mu.Lock()
	hold := g.hold
	g.mu.Unlock()
	if hold == nil {
		return nil
	}
	g.entered <- struct{}{}
	return <-hold
}

// close makes the next flushes wait; it returns the channel that answers them.
func (g *gatedFlush) close() chan error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold = make(chan error)
	return g.hold
}

// open lets every flush through, the one waiting too.
func (g *gatedFlush) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hold != nil {
		close(g.hold)
		g.hold = nil
	}
}

// startGatedBroker starts the embedded broker with SyncWrites and a data directory whose flush
// the test controls. Not parallel: it sets a package variable.
func startGatedBroker(t *testing.T) (*Embedded, *gatedFlush) {
	t.Helper()
	if !syncfsSupported {
		t.Skip("skipped: this system has no syncfs(2); the broker fsyncs every batch itself (kfake SyncWrites)")
	}
	g := &gatedFlush{entered: make(chan struct{}, 64)}
	old := dataDirFlush
	dataDirFlush = func(string) (func() error, func() error, error) { return g.flush, func() error { return nil }, nil }
	t.Cleanup(func() { dataDirFlush = old })
	e, err := StartEmbedded(EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Partitions: 1, SyncWrites: true,
		Topics: []string{"t", "other"}}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.open(); _ = e.Close() })
	return e, g
}

func syncedWriter(e *Embedded) *kafka.Writer {
	return &kafka.Writer{Addr: kafka.TCP(e.Addrs()...), Topic: "t", RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, MaxAttempts: 1}
}

// produceHeld makes the flushes wait and starts a produce with w; it returns once the flush
// the produce waits for has begun.
func produceHeld(ctx context.Context, t *testing.T, e *Embedded, g *gatedFlush) (hold, done chan error, w *kafka.Writer) {
	t.Helper()
	hold = g.close()
	w = syncedWriter(e)
	t.Cleanup(func() { w.Close() })
	done = make(chan error, 1)
	go func() { done <- w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("v")}) }()
	select {
	case <-g.entered:
	case <-ctx.Done():
		t.Fatal("no flush began for the produce")
	}
	return hold, done, w
}

// With SyncWrites a produce is acknowledged only after a flush that began after its records
// were written has finished, and while that flush runs the broker goes on answering others.
func TestSyncWritesAcknowledgeAProduceOnlyAfterItsFlush(t *testing.T) {
	e, g := startGatedBroker(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	hold, done, _ := produceHeld(ctx, t, e, g)
	select {
	case err := <-done:
		t.Fatalf("the produce was answered (%v) while its flush had not finished", err)
	default:
	}

	// Another client is answered meanwhile: the broker's goroutine does not wait for the disk.
	if n := lastOffset(ctx, t, e, "other"); n != 0 {
		t.Fatalf("another topic holds %d records", n)
	}
	if hwm := lastOffset(ctx, t, e, "t"); hwm != 1 {
		t.Fatalf("the record is not in the log while its acknowledgement waits: high watermark %d", hwm)
	}

	hold <- nil
	if err := <-done; err != nil {
		t.Fatalf("produce after its flush: %v", err)
	}
}

// Twenty producers writing at once are acknowledged by at most two flushes: the one running
// when they wrote, and one for all that came during it.
func TestSyncWritesShareAFlush(t *testing.T) {
	e, g := startGatedBroker(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	g.close()
	before := g.calls.Load()
	const producers = 20
	done := make(chan error, producers)
	for i := range producers {
		w := syncedWriter(e)
		defer w.Close()
		go func() { done <- w.WriteMessages(ctx, kafka.Message{Value: fmt.Appendf(nil, "%d", i)}) }()
	}
	select {
	case <-g.entered:
	case <-ctx.Done():
		t.Fatal("no flush began")
	}
	// Every record is in the log, so every response has been made and waits for a flush.
	for lastOffset(ctx, t, e, "t") < producers {
		if ctx.Err() != nil {
			t.Fatal("the records did not all reach the log")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("a produce was answered (%v) before any flush finished", err)
	default:
	}
	g.open()
	for range producers {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := g.calls.Load() - before; n > 2 {
		t.Fatalf("%d produces took %d flushes, want at most 2", producers, n)
	}
	if st, ok := e.FlushStats(); !ok || st.Acks < producers || st.Failures != 0 {
		t.Fatalf("flush stats %+v (%v): want at least %d acknowledgements, no failure", st, ok, producers)
	}
}

// A flush that fails is not an acknowledgement: the producer gets an error, and the next
// produce, once the disk is back, succeeds.
func TestSyncWritesFailedFlushFailsTheProduce(t *testing.T) {
	e, g := startGatedBroker(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	hold, done, w := produceHeld(ctx, t, e, g)
	hold <- errors.New("input/output error")
	if err := <-done; err == nil {
		t.Fatal("the produce succeeded although its flush failed")
	}
	if st, _ := e.FlushStats(); st.Failures != 1 {
		t.Fatalf("flush stats %+v: want one failure", st)
	}
	g.open()
	if err := w.WriteMessages(ctx, kafka.Message{Value: []byte("again")}); err != nil {
		t.Fatalf("produce after the disk came back: %v", err)
	}
}

// With the real flush (syncfs of the data directory's file system) records and committed
// offsets are acknowledged, and a restart on the same directory finds them.
func TestSyncWritesFlushTheDataDirectory(t *testing.T) {
	if !syncfsSupported {
		t.Skip("skipped: this system has no syncfs(2); the broker fsyncs every batch itself (kfake SyncWrites)")
	}
	t.Parallel()
	dir := t.TempDir()
	cfg := EmbeddedConfig{DataDir: dir, Listen: "127.0.0.1:0", Partitions: 1, SyncWrites: true, Topics: []string{"t"}}
	e, err := StartEmbedded(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if e.acks == nil {
		t.Fatal("SyncWrites with a data directory on Linux should share flushes")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	w := syncedWriter(e)
	msgs := make([]kafka.Message, 100)
	for i := range msgs {
		msgs[i] = kafka.Message{Value: fmt.Appendf(nil, "%d", i)}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e2, err := StartEmbedded(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if n := lastOffset(ctx, t, e2, "t"); n != int64(len(msgs)) {
		t.Fatalf("after a restart the log holds %d records, want %d", n, len(msgs))
	}
}

func lastOffset(ctx context.Context, t *testing.T, e *Embedded, topic string) int64 {
	t.Helper()
	conn, err := kafka.DialLeader(ctx, "tcp", e.Addrs()[0], topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := conn.ReadLastOffset()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
