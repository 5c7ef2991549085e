//go:build unix

package cockpit_test

import (
	"encoding/json"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/urbanbrain/urbanbrain/auth/authtest"
	cockpit "github.com/urbanbrain/urbanbrain/cockpit-ws"
	"github.com/urbanbrain/urbanbrain/event"
)

// smallBufferDialer keeps the client's kernel receive buffer small (Linux autotunes it up to
// net.ipv4.tcp_rmem, 32 MiB here), so what an idle client absorbs is bounded by the server's
// send buffer (tcp_wmem max, 4 MiB here) plus 64 KiB.
// The size is set before connecting: shrinking the buffer of an established connection makes
// Linux drop segments it already announced room for, and the sender backs off for seconds.
var smallBufferDialer = &websocket.Dialer{
	NetDialContext: (&net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 64<<10)
		})
		return errors.Join(err, serr)
	}}).DialContext,
}

func TestSlowClientDropped(t *testing.T) {
	t.Parallel()
	// 120 × 64 KiB = 7.5 MiB: well beyond the ~4 MiB the socket buffers of the idle client
	// absorb, so its writer blocks and its queue of 4 fills.
	const changes = 120
	f := start(t, cockpit.Config{QueueSize: 4, WriteTimeout: time.Minute, HistorySize: 8})

	slow, resp, err := f.dial(smallBufferDialer, authtest.Token(t, f.iss, admin), nil)
	if err != nil {
		t.Fatalf("dial: %v %s", err, body(resp))
	}
	defer slow.Close()
	fast := f.connect(t, admin)
	fast.snapshot(0)

	big := strings.Repeat("x", 64<<10)
	for i := 1; i <= changes; i++ {
		ch := incident("INC-A", int64(i), event.StatusNew, "D1", "G1")
		ch.Incident.Title = big
		f.change(t, ch)
		f.flush()
		// Pace on the fast client only, so its queue never holds more than one frame.
		fast.delta(uint64(i), list("INC-A"), nil)
	}
	if s := f.hub.Stats(); s.SlowDropped != 1 || s.Connections != 1 {
		t.Fatalf("stats %+v, want the slow client dropped and the fast one connected", s)
	}

	// The slow client now reads what was buffered for it, then the close frame.
	_ = slow.SetReadDeadline(time.Now().Add(hangGuard))
	var seqs []uint64
	for {
		_, b, err := slow.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, cockpit.CloseSlowConsumer) {
				t.Fatalf("slow client ended with %v, want close %d", err, cockpit.CloseSlowConsumer)
			}
			break
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, f.Seq)
	}
	if len(seqs) == 0 || len(seqs)-1 >= changes {
		t.Fatalf("slow client read %d frames, want the snapshot and fewer than %d deltas", len(seqs), changes)
	}
	for i, seq := range seqs { // what it did get has no holes
		if seq != uint64(i) {
			t.Fatalf("slow client frame %d has seq %d", i, seq)
		}
	}
}
