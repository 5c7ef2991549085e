package transport

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// With --broker-sync a produce is acknowledged only once its records are on the disk. kfake's
// own SyncWrites does that by fsyncing the segment and index file of every produced batch from
// its one goroutine, so every request of every client waits for each batch's two disk flushes
// in turn: at 3,000 events/s the embedded default fell seconds behind (docs/performance.md).
//
// syncedAcks gives the same guarantee with group commit, as databases do for their logs: the
// broker writes batches to the page cache without waiting, and the response to a request that
// wrote something is held on its connection until a flush of the data directory's file system
// that began after the response was made — so after the write — has finished. One flush
// covers every batch written before it began, from every connection, and the broker's
// goroutine never waits for the disk. kfake answers a connection's requests one at a time, so
// holding a response holds only that client, and its responses stay in order.

// writeKeys are the requests whose effects kfake persists and whose answers must therefore
// wait for the flush: records, committed offsets, transactions and producer ids, and topics.
var writeKeys = map[int16]bool{
	0:  true, // Produce
	8:  true, // OffsetCommit
	19: true, // CreateTopics
	20: true, // DeleteTopics
	21: true, // DeleteRecords
	22: true, // InitProducerID
	24: true, // AddPartitionsToTxn
	25: true, // AddOffsetsToTxn
	26: true, // EndTxn
	28: true, // TxnOffsetCommit
	33: true, // AlterConfigs
	37: true, // CreatePartitions
	44: true, // IncrementalAlterConfigs
}

// errAcksClosed answers a held response when the broker stops before its flush.
var errAcksClosed = errors.New("embedded broker stopped before the flush")

// syncedAcks runs the flushes: each round takes every response waiting at its start.
type syncedAcks struct {
	flush func() error // flushes the file system of the data directory (syncfs)
	log   *zap.Logger

	flushes, failures, acks atomic.Uint64
	flushNanos              atomic.Int64

	mu      sync.Mutex
	waiting []chan error
	closed  bool
	kick    chan struct{} // capacity 1: a response is waiting
	done    chan struct{}
	stopped chan struct{} // closed when run returns
}

// newSyncedAcks starts the flushing goroutine; Close stops it.
func newSyncedAcks(flush func() error, log *zap.Logger) *syncedAcks {
	s := &syncedAcks{
		flush:   flush,
		log:     log,
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go s.run()
	return s
}

// dataDirFlush makes the flush of a data directory; tests put a flush of their own here.
var dataDirFlush = dirFlush

// dirFlush is the flush of the file system that holds dir: syncfs(2) on Linux, which writes
// every dirty page and inode of that file system and commits its journal once, however many
// partitions' files were written. It reports an error where there is no such call (the caller
// then falls back to kfake's fsync per batch).
func dirFlush(dir string) (flush func() error, closeDir func() error, err error) {
	if !syncfsSupported {
		return nil, nil, errors.ErrUnsupported
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, nil, err
	}
	return func() error { return syncfs(f) }, f.Close, nil
}

func (s *syncedAcks) run() {
	defer close(s.stopped)
	for {
		select {
		case <-s.kick:
		case <-s.done:
			return
		}
		s.mu.Lock()
		round := s.waiting
		s.waiting = nil
		s.mu.Unlock()
		if len(round) == 0 {
			continue
		}
		start := time.Now()
		err := s.flush()
		s.flushNanos.Add(int64(time.Since(start)))
		s.flushes.Add(1)
		s.acks.Add(uint64(len(round)))
		if err != nil {
			s.failures.Add(1)
			s.log.Error("flushing the data directory failed: the writes waiting for it are refused, their clients send again",
				zap.Int("waiting", len(round)), zap.Error(err))
		}
		for _, w := range round {
			w <- err
		}
	}
}

// wait returns once a flush that began after the call has finished, with its error.
func (s *syncedAcks) wait() error {
	w := make(chan error, 1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errAcksClosed
	}
	s.waiting = append(s.waiting, w)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default: // a round is already due; it will take this one too
	}
	select {
	case err := <-w:
		return err
	case <-s.stopped:
		select { // the last round may have answered just before stopping
		case err := <-w:
			return err
		default:
			return errAcksClosed
		}
	}
}

// FlushStats counts the flushes behind acknowledged writes (Embedded.FlushStats).
type FlushStats struct {
	Flushes  uint64        // flushes of the data directory's file system
	Failures uint64        // of them failed (their writes were refused)
	Acks     uint64        // responses to writes that waited for a flush
	Time     time.Duration // spent flushing
}

func (s *syncedAcks) stats() FlushStats {
	return FlushStats{Flushes: s.flushes.Load(), Failures: s.failures.Load(), Acks: s.acks.Load(),
		Time: time.Duration(s.flushNanos.Load())}
}

// Close stops the flushes; responses still waiting get errAcksClosed, so their connections
// close and the clients send again, as after a broker's crash.
func (s *syncedAcks) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	close(s.done)
	<-s.stopped
}

// listener wraps the broker's listener so that every connection holds its write responses
// for a flush.
func (s *syncedAcks) listener(ln net.Listener) net.Listener {
	return &ackListener{Listener: ln, acks: s}
}

type ackListener struct {
	net.Listener
	acks *syncedAcks
}

func (l *ackListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &ackConn{Conn: c, acks: l.acks}, nil
}

// ackConn is the broker's side of a client connection. It reads the header of each request
// as the broker reads it, remembers the correlation ids of write requests, and holds a
// response to one of them until a flush has finished. kfake writes each response whole, in
// one Write.
type ackConn struct {
	net.Conn
	acks *syncedAcks

	scan requestScan // read side; only Read touches it

	mu      sync.Mutex
	pending []int32 // correlation ids of write requests read and not yet answered
}

func (c *ackConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.scan.feed(p[:n], func(key int16, corr int32) {
		if writeKeys[key] {
			c.mu.Lock()
			c.pending = append(c.pending, corr)
			c.mu.Unlock()
		}
	})
	return n, err
}

func (c *ackConn) Write(b []byte) (int, error) {
	if len(b) >= 8 && c.answersWrite(int32(binary.BigEndian.Uint32(b[4:8]))) {
		if err := c.acks.wait(); err != nil {
			return 0, err
		}
	}
	return c.Conn.Write(b)
}

// answersWrite reports whether a response with this correlation id answers a write request,
// and forgets that request and any before it (a produce with acks=0 gets no response).
func (c *ackConn) answersWrite(corr int32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range c.pending {
		if p == corr {
			c.pending = c.pending[i+1:]
			return true
		}
	}
	return false
}

// requestScan follows the Kafka request framing of a byte stream — a 4-byte size, then a body
// that begins with the api key (2 bytes), its version (2) and the correlation id (4) — and
// reports each request's key and correlation id, however the stream is split into reads.
type requestScan struct {
	size  [4]byte
	sizeN int   // bytes of size read
	left  int64 // bytes of the body not yet read
	head  [8]byte
	headN int
}

func (s *requestScan) feed(p []byte, request func(key int16, corr int32)) {
	for len(p) > 0 {
		if s.sizeN < 4 {
			n := copy(s.size[s.sizeN:], p)
			s.sizeN += n
			p = p[n:]
			if s.sizeN == 4 {
				s.left = int64(int32(binary.BigEndian.Uint32(s.size[:])))
				s.headN = 0
				if s.left <= 0 {
					s.sizeN = 0 // an empty or nonsensical frame: the broker closes the connection
				}
			}
			continue
		}
		if s.headN < len(s.head) {
			n := min(len(s.head)-s.headN, len(p))
			if int64(n) > s.left {
				n = int(s.left)
			}
			copy(s.head[s.headN:], p[:n])
			s.headN += n
			s.left -= int64(n)
			p = p[n:]
			if s.headN == len(s.head) {
				request(int16(binary.BigEndian.Uint16(s.head[0:2])), int32(binary.BigEndian.Uint32(s.head[4:8])))
			}
		} else {
			n := int(min(s.left, int64(len(p))))
			s.left -= int64(n)
			p = p[n:]
		}
		if s.left == 0 {
			s.sizeN = 0
		}
	}
}
