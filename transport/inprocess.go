package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"
)

// The embedded broker's clients in its own process (every stage, sink and producer of the
// embedded default) reach it through in-memory connections, not loopback TCP: each Kafka
// request and response over TCP is a write and a read system call on each side and a wake-up
// through the network poller, and at 5,000 events/s those were a tenth of the process's CPU
// (docs/performance.md). Clients of other processes — kcat, simulate, another instance —
// connect over TCP to the advertised address, and the broker cannot tell the two apart: same
// protocol, same SASL and TLS.
//
// The connections are written here rather than taken from grpc's test/bufconn, which was
// tried first: it allocates both of a connection's 256 KiB buffers up front (the embedded
// default opens about 130 connections), and a read-deadline timer that fired while it was
// being replaced times out the next read.

// listenInProcess makes the listener the broker accepts on: tcp's connections and the
// in-memory ones of its dialMemory.
func listenInProcess(tcp net.Listener) *bothListener {
	l := &bothListener{tcp: tcp, conns: make(chan net.Conn), done: make(chan struct{})}
	go l.acceptTCP()
	return l
}

// bothListener accepts from a TCP listener and from in-memory dials. It reports the TCP
// address, which the broker advertises.
type bothListener struct {
	tcp   net.Listener
	conns chan net.Conn
	done  chan struct{}

	once sync.Once
	err  error // why it stopped accepting, set before done is closed
}

// acceptTCP hands on tcp's connections until it fails; its failure stops the listener, as a
// failed TCP listener stopped the broker's accepting before.
func (l *bothListener) acceptTCP() {
	for {
		c, err := l.tcp.Accept()
		if err != nil {
			l.stop(err)
			return
		}
		select {
		case l.conns <- c:
		case <-l.done:
			c.Close()
			return
		}
	}
}

func (l *bothListener) stop(err error) {
	l.once.Do(func() {
		l.err = err
		close(l.done)
		l.tcp.Close()
	})
}

func (l *bothListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

func (l *bothListener) Close() error {
	l.stop(net.ErrClosed)
	return nil
}

func (l *bothListener) Addr() net.Addr { return l.tcp.Addr() }

// closed reports whether the listener stopped accepting.
func (l *bothListener) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// dialMemory opens an in-memory connection that the listener's Accept returns the other end
// of. Both ends report the broker's address: it is a loopback connection without the system
// calls.
func (l *bothListener) dialMemory(ctx context.Context) (net.Conn, error) {
	client, server := memConnPair(memAddr(l.tcp.Addr().String()))
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, &net.OpError{Op: "dial", Net: "memory", Addr: server.addr, Err: net.ErrClosed}
	case <-ctx.Done():
		return nil, &net.OpError{Op: "dial", Net: "memory", Addr: server.addr, Err: ctx.Err()}
	}
}

// dialInProcess returns a Security.Dial that reaches the broker at addrs through l while it
// listens, and anything else — the same address too, once this broker is closed and another
// may serve it — over the network.
func dialInProcess(l *bothListener, addrs []string) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		if slices.Contains(addrs, address) && !l.closed() {
			c, err := l.dialMemory(ctx)
			if err == nil || !l.closed() {
				return c, err
			}
			// It closed meanwhile: the network's, as below.
		}
		return (&net.Dialer{Timeout: dialTimeout}).DialContext(ctx, network, address)
	}
}

// memAddr is the broker's address as a net.Addr of the memory network.
type memAddr string

func (memAddr) Network() string  { return "memory" }
func (a memAddr) String() string { return string(a) }

// memPipeMax bounds what one direction of a connection holds unread; a writer past it waits
// for the reader, as on a socket whose buffer is full. The buffer grows only as far as it is
// used and is let go once it is read empty.
const memPipeMax = 1 << 20

// memConnPair returns the two ends of a connection.
func memConnPair(addr memAddr) (a, b *memConn) {
	ab, ba := newMemPipe(), newMemPipe()
	return &memConn{r: ba, w: ab, addr: addr}, &memConn{r: ab, w: ba, addr: addr}
}

// memConn is one end of an in-memory connection: it reads one pipe and writes the other.
type memConn struct {
	r, w *memPipe
	addr memAddr
}

func (c *memConn) Read(b []byte) (int, error)  { return c.r.read(b) }
func (c *memConn) Write(b []byte) (int, error) { return c.w.write(b) }

// Close ends both directions: the other end reads what was written and then EOF, and its
// writes fail.
func (c *memConn) Close() error {
	c.r.close(true)
	c.w.close(false)
	return nil
}

func (c *memConn) LocalAddr() net.Addr  { return c.addr }
func (c *memConn) RemoteAddr() net.Addr { return c.addr }

func (c *memConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

func (c *memConn) SetReadDeadline(t time.Time) error {
	return c.r.setDeadline(&c.r.readBy, &c.r.readerClosed, t)
}

func (c *memConn) SetWriteDeadline(t time.Time) error {
	return c.w.setDeadline(&c.w.writeBy, &c.w.writerClosed, t)
}

// memPipe is one direction of a connection.
type memPipe struct {
	mu      sync.Mutex
	changed sync.Cond // data, room, a close or a deadline: the waiters look again
	buf     []byte    // the unread bytes are buf[off:]
	off     int

	readerClosed bool // the reading end closed: writes fail, its reads too
	writerClosed bool // the writing end closed: reads drain what is left, then EOF
	writing      bool // a Write is under way: another waits for it, so writes never interleave

	readBy, writeBy deadline
}

// deadline is one direction's read or write deadline. Its timer is made once and reset with
// every setting (kafka-go sets a deadline for each request: a timer each was 0.5 % of the
// server's CPU at 5,000 events/s); a firing that an earlier setting left in flight finds the
// deadline not passed and changes nothing.
type deadline struct {
	timer  *time.Timer
	at     time.Time // zero: none
	passed bool
}

func newMemPipe() *memPipe {
	p := &memPipe{}
	p.changed.L = &p.mu
	return p
}

// setDeadline sets d, the deadline of the end that closed sets when it closes.
func (p *memPipe) setDeadline(d *deadline, closed *bool, t time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if *closed {
		return net.ErrClosed
	}
	if d.timer != nil {
		d.timer.Stop()
	}
	d.at, d.passed = t, false
	switch wait := time.Until(t); {
	case t.IsZero():
	case wait <= 0:
		d.passed = true
		p.changed.Broadcast()
	case d.timer == nil:
		d.timer = time.AfterFunc(wait, func() { p.expire(d) })
	default:
		d.timer.Reset(wait)
	}
	return nil
}

// expire is d's timer firing: the deadline has passed unless it was set again meanwhile (to
// none, or later: then the timer was reset, or is reset here should the clock say it is early).
func (p *memPipe) expire(d *deadline) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d.at.IsZero() || d.passed {
		return
	}
	if wait := time.Until(d.at); wait > 0 {
		d.timer.Reset(wait)
		return
	}
	d.passed = true
	p.changed.Broadcast()
}

func (p *memPipe) read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		switch {
		case p.readerClosed:
			return 0, net.ErrClosed
		case p.readBy.passed:
			return 0, os.ErrDeadlineExceeded
		case len(b) == 0:
			return 0, nil
		case p.off < len(p.buf):
			n := copy(b, p.buf[p.off:])
			p.off += n
			if p.off == len(p.buf) {
				p.off, p.buf = 0, p.buf[:0]
				if cap(p.buf) > 64<<10 {
					p.buf = nil // a large response is not kept for the small ones after it
				}
			}
			p.changed.Broadcast()
			return n, nil
		case p.writerClosed:
			return 0, io.EOF
		}
		p.changed.Wait()
	}
}

func (p *memPipe) write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, mine := 0, false
	defer func() {
		if mine {
			p.writing = false
			p.changed.Broadcast()
		}
	}()
	for {
		switch {
		case p.writerClosed:
			return n, net.ErrClosed
		case p.readerClosed:
			// As a socket whose peer is gone says: kafka-go retries this one, on a new
			// connection, where io.ErrClosedPipe (its own clients' "closed") it does not.
			return n, os.NewSyscallError("write", syscall.EPIPE)
		case p.writeBy.passed:
			return n, os.ErrDeadlineExceeded
		case len(b) == 0:
			return n, nil
		case p.writing && !mine:
			p.changed.Wait()
			continue
		}
		mine, p.writing = true, true
		if room := memPipeMax - (len(p.buf) - p.off); room > 0 {
			if p.off > 0 && p.off >= len(p.buf)-p.off && len(p.buf)+min(room, len(b)) > cap(p.buf) {
				// Move the unread bytes to the front before the buffer grows, when they are
				// no more than what the move frees (else the buffer grows, to at most twice
				// memPipeMax, and a reader freeing a little room at a time is not followed
				// by a copy of all that is unread).
				p.buf = p.buf[:copy(p.buf, p.buf[p.off:])]
				p.off = 0
			}
			k := min(room, len(b))
			p.buf = append(p.buf, b[:k]...)
			b, n = b[k:], n+k
			p.changed.Broadcast()
			continue
		}
		p.changed.Wait()
	}
}

// close marks the pipe closed by its reading end (reader) or its writing end.
func (p *memPipe) close(reader bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := &p.writeBy
	if reader {
		p.readerClosed = true
		p.buf, p.off = nil, 0
		d = &p.readBy
	} else {
		p.writerClosed = true
	}
	if d.timer != nil {
		d.timer.Stop()
	}
	d.at = time.Time{} // a firing in flight finds no deadline
	p.changed.Broadcast()
}
