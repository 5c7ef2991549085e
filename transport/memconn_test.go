package transport

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// The in-memory connection passes x/net's conformance suite for net.Conn: basic and
// concurrent I/O, deadlines that abort blocked reads and writes, past deadlines, Close.
func TestMemConnIsANetConn(t *testing.T) {
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		a, b := memConnPair("127.0.0.1:9092")
		return a, b, func() { a.Close(); b.Close() }, nil
	})
}

// A read deadline that passes while it is being replaced does not time out the read after it:
// the new setting is the one that counts (grpc's bufconn, tried first, failed about a third
// of these reads).
func TestMemConnDeadlineResetIsNotATimeout(t *testing.T) {
	a, b := memConnPair("127.0.0.1:9092")
	defer a.Close()
	defer b.Close()
	buf := make([]byte, 1)
	for i := range 300 {
		a.SetReadDeadline(time.Now().Add(time.Millisecond))
		time.Sleep(time.Millisecond)
		a.SetReadDeadline(time.Time{})
		go func() {
			time.Sleep(2 * time.Millisecond)
			b.Write([]byte{byte(i)})
		}()
		if _, err := a.Read(buf); err != nil {
			t.Fatalf("read %d after its deadline was cleared: %v", i, err)
		}
		if buf[0] != byte(i) {
			t.Fatalf("read %d got byte %d", i, buf[0])
		}
	}
}

// A deadline set again before it passes counts from its new time, later or earlier: the timer
// each direction reuses must neither fire for the setting it replaced nor miss the new one.
func TestMemConnDeadlineMovedLaterOrEarlier(t *testing.T) {
	a, b := memConnPair("127.0.0.1:9092")
	defer a.Close()
	defer b.Close()
	buf := make([]byte, 1)
	a.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	a.SetReadDeadline(time.Now().Add(time.Minute))
	go func() {
		time.Sleep(200 * time.Millisecond) // well after the first setting would have passed
		b.Write([]byte{7})
	}()
	if _, err := a.Read(buf); err != nil || buf[0] != 7 {
		t.Fatalf("read under a deadline moved later: byte %d, %v; want 7, nil", buf[0], err)
	}

	a.SetReadDeadline(time.Now().Add(time.Hour))
	set := time.Now()
	a.SetReadDeadline(set.Add(20 * time.Millisecond))
	done := make(chan error, 1)
	go func() { _, err := a.Read(buf); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read under a deadline moved earlier: %v, want %v", err, os.ErrDeadlineExceeded)
		}
		if waited := time.Since(set); waited < 20*time.Millisecond {
			t.Fatalf("a read under a deadline 20 ms away failed after %v", waited)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a read under a deadline moved from an hour to 20 ms did not end")
	}

	// A firing of an earlier setting that was already waiting for the pipe when the deadline
	// was moved later, or cleared, changes nothing (expire called here stands for it).
	a.SetReadDeadline(time.Now().Add(time.Millisecond))
	a.SetReadDeadline(time.Now().Add(time.Minute))
	a.r.expire(&a.r.readBy)
	b.Write([]byte{8})
	if _, err := a.Read(buf); err != nil || buf[0] != 8 {
		t.Fatalf("read after a stale firing of a deadline moved later: byte %d, %v; want 8, nil", buf[0], err)
	}
	a.SetReadDeadline(time.Time{})
	a.r.expire(&a.r.readBy)
	b.Write([]byte{9})
	if _, err := a.Read(buf); err != nil || buf[0] != 9 {
		t.Fatalf("read after a stale firing of a cleared deadline: byte %d, %v; want 9, nil", buf[0], err)
	}
}

// A write larger than what a direction holds waits for the reader and arrives whole and in
// order; a timeout is os.ErrDeadlineExceeded, as on a socket; the other end's Close ends a
// blocked write, and a read after the writer's Close drains what is left, then reads EOF.
func TestMemConnBigWritesTimeoutsAndClose(t *testing.T) {
	a, b := memConnPair("127.0.0.1:9092")
	want := bytes.Repeat([]byte("0123456789abcdef"), 3*memPipeMax/16+5)
	go func() {
		a.Write(want)
		a.Close()
	}()
	got, err := io.ReadAll(b)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes (%v), want the %d written", len(got), err, len(want))
	}
	if n, err := b.Write([]byte("x")); err == nil {
		t.Errorf("wrote %d bytes to a closed peer", n)
	}

	c, d := memConnPair("127.0.0.1:9092")
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past its deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	var ne net.Error
	if _, err := c.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("a timed-out read's error %v is not a net.Error timeout", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Write(make([]byte, 2*memPipeMax))
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	d.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a write blocked on a full pipe ended without an error when the reader closed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a write blocked on a full pipe did not end when the reader closed")
	}
}

// Two large writes at once arrive each in one piece, as on a socket; a deadline set after
// Close is refused.
func TestMemConnWritesDoNotInterleave(t *testing.T) {
	a, b := memConnPair("127.0.0.1:9092")
	x, y := bytes.Repeat([]byte{'x'}, memPipeMax+memPipeMax/2), bytes.Repeat([]byte{'y'}, memPipeMax+memPipeMax/2)
	go func() {
		done := make(chan struct{})
		go func() { a.Write(x); close(done) }()
		a.Write(y)
		<-done
		a.Close()
	}()
	got, err := io.ReadAll(b)
	if err != nil || len(got) != len(x)+len(y) {
		t.Fatalf("read %d bytes (%v), want %d", len(got), err, len(x)+len(y))
	}
	runs := 1
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1] {
			runs++
		}
	}
	if runs != 2 {
		t.Errorf("the two writes arrived in %d runs, want 2", runs)
	}
	b.Close()
	if err := b.SetReadDeadline(time.Now().Add(time.Hour)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("a deadline after Close: %v, want net.ErrClosed", err)
	}
}
