package transport

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kmsg"
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
// the test controls, speaking TLS with serverTLS if it is set. Not parallel: it sets a package
// variable.
func startGatedBroker(t *testing.T, serverTLS *tls.Config) (*Embedded, *gatedFlush) {
	t.Helper()
	g := &gatedFlush{entered: make(chan struct{}, 64)}
	old := dataDirFlush
	dataDirFlush = func(string) (func() error, func() error, error) { return g.flush, func() error { return nil }, nil }
	t.Cleanup(func() { dataDirFlush = old })
	e, err := StartEmbedded(EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Partitions: 1, SyncWrites: true,
		Topics: []string{"t", "other"}, TLS: serverTLS}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.open(); _ = e.Close() })
	return e, g
}

// syncedWriter produces to "t" as the broker's own process does: in memory, with its TLS.
func syncedWriter(e *Embedded) *kafka.Writer {
	return &kafka.Writer{Addr: kafka.TCP(e.Addrs()...), Topic: "t", RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, MaxAttempts: 1, Transport: e.ClientSecurity().Transport()}
}

// produceHeld makes the flushes wait and starts a produce; it returns once the flush the
// produce waits for has begun.
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
// were written has finished, and while that flush runs the broker goes on answering others —
// over TLS as well, where the acknowledgements must read the requests above the encryption.
func TestSyncWritesAcknowledgeAProduceOnlyAfterItsFlush(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", withTLS), func(t *testing.T) {
			var serverTLS *tls.Config
			if withTLS {
				serverTLS = &tls.Config{Certificates: []tls.Certificate{NewTestPKI(t).Server}, MinVersion: tls.VersionTLS12}
			}
			e, g := startGatedBroker(t, serverTLS)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()

			hold, done, _ := produceHeld(ctx, t, e, g)
			// Another client is answered meanwhile: the broker's goroutine does not wait for
			// the disk. The record is in the log, readable, while its acknowledgement waits.
			if n := lastOffset(ctx, t, e, "other"); n != 0 {
				t.Fatalf("another topic holds %d records", n)
			}
			if hwm := lastOffset(ctx, t, e, "t"); hwm != 1 {
				t.Fatalf("the record is not in the log while its acknowledgement waits: high watermark %d", hwm)
			}
			select {
			case err := <-done:
				t.Fatalf("the produce was answered (%v) while its flush had not finished", err)
			default:
			}
			hold <- nil
			if err := <-done; err != nil {
				t.Fatalf("produce after its flush: %v", err)
			}
		})
	}
}

// Twenty producers that write while a flush runs are all acknowledged by the one flush after
// it.
func TestSyncWritesShareAFlush(t *testing.T) {
	e, g := startGatedBroker(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	before := g.calls.Load()
	_, first, _ := produceHeld(ctx, t, e, g) // the running flush, for the first produce alone
	const producers = 20
	done := make(chan error, producers)
	for i := range producers {
		w := syncedWriter(e)
		defer w.Close()
		go func() { done <- w.WriteMessages(ctx, kafka.Message{Value: fmt.Appendf(nil, "%d", i)}) }()
	}
	for waiting := 0; waiting < producers; {
		if ctx.Err() != nil {
			t.Fatalf("%d of %d responses wait for the next flush", waiting, producers)
		}
		time.Sleep(5 * time.Millisecond)
		e.acks.mu.Lock()
		waiting = len(e.acks.waiting)
		e.acks.mu.Unlock()
	}
	g.open()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range producers {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := g.calls.Load() - before; n != 2 {
		t.Fatalf("1 + %d produces took %d flushes, want 2", producers, n)
	}
	if st, ok := e.FlushStats(); !ok || st.Acks < producers+1 || st.Failures != 0 {
		t.Fatalf("flush stats %+v (%v): want at least %d acknowledgements, no failure", st, ok, producers+1)
	}
}

// A flush that fails is not an acknowledgement, and none after it is either: after a failed
// writeback the kernel may have marked the pages clean, so the broker refuses every write
// until it is restarted, and says so to /readyz (Err).
func TestSyncWritesFailedFlushRefusesEveryWrite(t *testing.T) {
	e, g := startGatedBroker(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	hold, done, w := produceHeld(ctx, t, e, g)
	hold <- errors.New("input/output error")
	if err := <-done; err == nil {
		t.Fatal("the produce succeeded although its flush failed")
	}
	g.open()
	if err := w.WriteMessages(ctx, kafka.Message{Value: []byte("again")}); err == nil {
		t.Fatal("a produce after a failed flush was acknowledged")
	}
	if err := e.Err(); err == nil || !strings.Contains(err.Error(), "input/output error") {
		t.Fatalf("Err after a failed flush: %v", err)
	}
	if st, _ := e.FlushStats(); st.Failures != 1 {
		t.Fatalf("flush stats %+v: want one failure", st)
	}
}

// A client may reuse correlation ids (Kafka answers in order) and send produces with acks=0,
// which get no answer. Whatever it sends, its acknowledged produce is answered only after a
// flush that began with every record in the log.
func TestSyncWritesMatchAnswersToRequestsInOrder(t *testing.T) {
	metadata := kmsg.NewPtrMetadataRequest()
	metadata.SetVersion(1)
	for _, tc := range []struct {
		name     string
		frames   [][]byte
		records  int64 // in the log once the acknowledged produce is handled
		answered int   // responses the client gets
		produce  int   // which of them answers the acknowledged produce
	}{
		{"metadata then produce, one id", [][]byte{rawRequest(metadata, 7), rawRequest(rawProduce(-1), 7)}, 1, 2, 1},
		{"metadata, produce, metadata, one id",
			[][]byte{rawRequest(metadata, 7), rawRequest(rawProduce(-1), 7), rawRequest(metadata, 7)}, 1, 3, 1},
		{"produce without acks, metadata, produce, one id",
			[][]byte{rawRequest(rawProduce(0), 5), rawRequest(metadata, 5), rawRequest(rawProduce(-1), 5)}, 2, 2, 1},
		{"many produces without acks, then a produce",
			append(slices.Repeat([][]byte{rawRequest(rawProduce(0), 1)}, 50), rawRequest(rawProduce(-1), 2)), 51, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, g := startGatedBroker(t, nil)
			hold := g.close()
			c, err := net.Dial("tcp", e.Addrs()[0])
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(slices.Concat(tc.frames...)); err != nil {
				t.Fatal(err)
			}
			answers := make(chan error, tc.answered)
			go func() {
				for range tc.answered {
					answers <- readResponse(c)
				}
			}()
			covered := false // a flush that began with the produce's record in the log has ended
			for got := 0; got < tc.answered; {
				select {
				case <-g.entered:
					// While a flush is held nothing more is handled on this connection (its
					// response waits), so the log holds what was handled before the flush.
					if lastOffset(t.Context(), t, e, "t") >= tc.records {
						covered = true
					}
					hold <- nil
				case err := <-answers:
					if err != nil {
						t.Fatal(err)
					}
					if got == tc.produce && !covered {
						t.Fatal("the produce was answered before a flush that began after its write had ended")
					}
					got++
				}
			}
		})
	}
}

// A write handled while a flush that fails is running waits for the next flush, which may
// succeed only because the kernel reported the failure once: it is refused all the same.
func TestSyncWritesRefuseWhatWaitedDuringAFailedFlush(t *testing.T) {
	e, g := startGatedBroker(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	hold, first, _ := produceHeld(ctx, t, e, g)
	w := syncedWriter(e)
	defer w.Close()
	second := make(chan error, 1)
	go func() { second <- w.WriteMessages(ctx, kafka.Message{Value: []byte("during")}) }()
	for waiting := 0; waiting == 0; { // the second produce's answer waits for the next round
		if ctx.Err() != nil {
			t.Fatal("the second produce's answer never waited for a flush")
		}
		time.Sleep(5 * time.Millisecond)
		e.acks.mu.Lock()
		waiting = len(e.acks.waiting)
		e.acks.mu.Unlock()
	}
	g.mu.Lock()
	g.hold = nil // the next flush succeeds
	g.mu.Unlock()
	hold <- errors.New("input/output error")
	if err := <-first; err == nil {
		t.Fatal("the produce whose flush failed was acknowledged")
	}
	if err := <-second; err == nil {
		t.Fatal("a produce handled during a failed flush was acknowledged")
	}
}

// With the real flush (syncfs of the data directory's file system) records and committed
// offsets are acknowledged, and a restart on the same directory finds them. (A smoke test of
// the real call: a clean restart would find them from the page cache too.)
func TestSyncWritesFlushTheDataDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := EmbeddedConfig{DataDir: dir, Listen: "127.0.0.1:0", Partitions: 1, SyncWrites: true, Topics: []string{"t"}}
	if _, _, err := dirFlush(dir); errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("skipped: %v (the broker fsyncs every batch itself)", err)
	}
	e, err := StartEmbedded(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if e.acks == nil {
		t.Fatal("SyncWrites with a data directory on ext4 or tmpfs should share flushes")
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
	if st, _ := e.FlushStats(); st.Flushes == 0 || st.Failures != 0 {
		t.Fatalf("flush stats %+v: want flushes, no failure", st)
	}
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
	conn, err := e.ClientSecurity().Dialer().DialLeader(ctx, "tcp", e.Addrs()[0], topic, 0)
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

// rawRequest frames req as a client does: size, key, version, correlation id, client id.
func rawRequest(req kmsg.Request, corr int32) []byte {
	b := make([]byte, 4, 64)
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, 0xffff) // no client id
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// rawProduce is a produce of one record to partition 0 of "t" with the given acks.
func rawProduce(acks int16) kmsg.Request {
	rec := kmsg.NewRecord()
	rec.Value = []byte("v")
	batch := kmsg.NewRecordBatch()
	batch.Magic = 2
	batch.NumRecords = 1
	batch.FirstTimestamp = time.Now().UnixMilli()
	batch.MaxTimestamp = batch.FirstTimestamp
	batch.ProducerID, batch.ProducerEpoch, batch.FirstSequence = -1, -1, -1
	batch.Records = rec.AppendTo(nil)
	raw := batch.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))                                          // the batch's length
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli))) // its CRC
	part := kmsg.NewProduceRequestTopicPartition()
	part.Records = raw
	topic := kmsg.NewProduceRequestTopic()
	topic.Topic = "t"
	topic.Partitions = []kmsg.ProduceRequestTopicPartition{part}
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(3)
	req.Acks = acks
	req.TimeoutMillis = 10_000
	req.Topics = []kmsg.ProduceRequestTopic{topic}
	return req
}

// readResponse reads one response frame.
func readResponse(c net.Conn) error {
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return fmt.Errorf("reading a response: %w", err)
	}
	_, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(size[:])))
	return err
}
