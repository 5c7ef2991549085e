package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
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
// syncedAcks gives that guarantee with group commit, as databases do for their logs (what
// differs from kfake's own is in docs/performance.md, "Shared flushes"): the broker writes
// batches to the page cache without waiting, and the response to every request but a
// read-only one is held on its connection until a flush of the data directory's file system
// that began after the response was made — so after the write — has finished. One flush
// covers every batch written before it began, from every connection, and the broker's
// goroutine never waits for the disk. kfake answers a connection's requests one at a time, so
// holding a response holds only that client, and its responses stay in order.

// readOnlyKeys are the requests that change nothing kfake persists, so their answers need not
// wait for a flush. Every other answer waits — records, committed and deleted offsets, group
// membership, transactions, topics, configs, ACLs, credentials, and any request added later.
// Fetches above all must not wait: they are most of the requests.
var readOnlyKeys = map[int16]bool{
	1:  true, // Fetch
	2:  true, // ListOffsets
	3:  true, // Metadata
	9:  true, // OffsetFetch
	10: true, // FindCoordinator
	12: true, // Heartbeat (classic groups: nothing persisted)
	15: true, // DescribeGroups
	16: true, // ListGroups
	17: true, // SaslHandshake
	18: true, // ApiVersions
	23: true, // OffsetForLeaderEpoch
	29: true, // DescribeAcls
	32: true, // DescribeConfigs
	35: true, // DescribeLogDirs
	36: true, // SaslAuthenticate
	46: true, // ListPartitionReassignments
	48: true, // DescribeClientQuotas
	50: true, // DescribeUserScramCredentials
	60: true, // DescribeCluster
	61: true, // DescribeProducers
	65: true, // DescribeTransactions
	66: true, // ListTransactions
	69: true, // ConsumerGroupDescribe
	75: true, // DescribeTopicPartitions
}

// errAcksClosed answers a held response when the broker stops before its flush.
var errAcksClosed = errors.New("embedded broker stopped before the flush")

// errFlushFailed wraps the first failed flush. It stays: after a failed writeback the kernel
// may have marked the pages clean, so a later flush that succeeds proves nothing about the
// writes before it (PostgreSQL stops on a failed fsync for the same reason). Every write from
// then on is refused until the instance is restarted on a healthy disk.
type errFlushFailed struct{ err error }

func (e errFlushFailed) Error() string {
	return "the embedded broker's data directory could not be flushed; it refuses writes until restarted: " + e.err.Error()
}
func (e errFlushFailed) Unwrap() error { return e.err }

// syncedAcks runs the flushes: each round takes every response waiting at its start.
type syncedAcks struct {
	flush func() error // flushes the file system of the data directory (syncfs)
	log   *zap.Logger

	flushes, failures, acks atomic.Uint64
	flushNanos              atomic.Int64

	mu      sync.Mutex
	waiting []chan error
	closed  bool
	failed  error         // the first failed flush, errFlushFailed
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
// partitions' files were written. It reports errors.ErrUnsupported where there is no such
// call or the file system is not one it shares flushes on (flushableFS); the broker then
// fsyncs every batch itself, with kfake's SyncWrites.
func dirFlush(dir string) (flush func() error, closeDir func() error, err error) {
	if !syncfsSupported {
		return nil, nil, fmt.Errorf("%w: no syncfs(2) on this system", errors.ErrUnsupported)
	}
	ok, fsType, err := flushableFS(dir)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, fmt.Errorf("%w: the file system of %s (type %#x) is not ext4 or tmpfs", errors.ErrUnsupported, dir, fsType)
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
		s.mu.Lock()
		if err != nil {
			s.failures.Add(1)
			if s.failed == nil {
				s.failed = errFlushFailed{err}
				s.log.Error("flushing the data directory failed: every write is refused from now on; restart once the disk is fixed",
					zap.Int("waiting", len(round)), zap.Error(err))
			}
		}
		// A write handled while a failed flush ran joined this round; this flush may succeed
		// only because the kernel reported the failure once, so it is refused too.
		if s.failed != nil {
			err = s.failed
		} else {
			s.acks.Add(uint64(len(round)))
		}
		s.mu.Unlock()
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
	if s.failed != nil {
		s.mu.Unlock()
		return s.failed
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

// err is the failed flush that stops every write, if one failed.
func (s *syncedAcks) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// FlushStats counts the flushes behind acknowledged writes (Embedded.FlushStats).
type FlushStats struct {
	Flushes  uint64        // flushes of the data directory's file system
	Failures uint64        // of them failed (their writes were refused)
	Acks     uint64        // responses to writes released by a flush that succeeded
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
// as the broker reads it and holds the response to any but a read-only request until a flush
// has finished. kfake writes each response whole, in one Write.
type ackConn struct {
	net.Conn
	acks *syncedAcks

	scan requestScan // read side; only Read touches it

	mu sync.Mutex
	// unanswered are the last two requests read, oldest first. kfake reads request k+2 only
	// once k's response is written (or, for a produce with acks=0, skipped), so a response
	// always answers one of them.
	unanswered [2]request
	n          int
}

type request struct {
	corr int32
	hold bool
}

func (c *ackConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.scan.feed(p[:n], func(key int16, corr int32) {
		c.mu.Lock()
		if c.n == len(c.unanswered) {
			c.unanswered[0] = c.unanswered[1]
			c.n--
		}
		c.unanswered[c.n] = request{corr: corr, hold: !readOnlyKeys[key]}
		c.n++
		c.mu.Unlock()
	})
	return n, err
}

func (c *ackConn) Write(b []byte) (int, error) {
	if len(b) < 8 || c.holds(int32(binary.BigEndian.Uint32(b[4:8]))) {
		if err := c.acks.wait(); err != nil {
			return 0, err
		}
	}
	return c.Conn.Write(b)
}

// holds reports whether the response with this correlation id must wait for a flush. The
// request it answers is one of the last two read, but clients may reuse correlation ids
// (responses come in order) and a produce with acks=0 gets no response, so when both carry the
// id the response may answer either: it waits if either must. Nothing is forgotten here, so
// the request answered is always among those compared; a request the window has passed can
// only add a wait. A response that matches no request read waits too: the safe side.
func (c *ackConn) holds(corr int32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	found := false
	for _, r := range c.unanswered[:c.n] {
		if r.corr == corr {
			if r.hold {
				return true
			}
			found = true
		}
	}
	return !found
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
				s.left = int64(binary.BigEndian.Uint32(s.size[:])) // unsigned, as the broker reads it
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
