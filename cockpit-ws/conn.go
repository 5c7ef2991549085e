package cockpit

import (
	"io"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
)

// conn is one connected screen. The hub's fan-out only ever does a non-blocking send on
// queue; everything written to the socket is written by writeLoop.
type conn struct {
	ws     *websocket.Conn
	claims auth.Claims
	seeAll bool // the role may see personal data
	queue  chan *websocket.PreparedMessage

	once   sync.Once
	done   chan struct{} // closed by stop
	code   int           // close code to send, 0 for none; set before done is closed
	reason string
}

func newConn(ws *websocket.Conn, claims auth.Claims, queueSize int) *conn {
	return &conn{
		ws:     ws,
		claims: claims,
		seeAll: auth.Can(claims.Role, auth.PermSeePersonalData),
		queue:  make(chan *websocket.PreparedMessage, queueSize),
		done:   make(chan struct{}),
	}
}

// stop ends the connection; the first caller's close code wins. A zero code closes the
// socket without a close frame (the peer is gone already).
func (c *conn) stop(code int, reason string) {
	c.once.Do(func() {
		c.code, c.reason = code, reason
		close(c.done)
	})
}

func deadline(d time.Duration) time.Time { return time.Now().Add(d) }

// writeLoop owns every write to c: the snapshot, then queued deltas and pings, until c is
// stopped or a write fails. Closing the socket on the way out ends readLoop.
func (h *Hub) writeLoop(c *conn, snap []event.Incident, seq uint64) {
	defer c.ws.Close()
	fail := func(what string, err error) {
		h.log.Debug("cockpit write failed", zap.String("what", what), zap.String("subject", c.claims.Subject), zap.Error(err))
		c.stop(0, "")
	}
	msg, err := h.snapshotMessage(c, snap, seq)
	if err != nil {
		h.log.Error("cockpit snapshot", zap.Error(err))
		c.stop(websocket.CloseInternalServerErr, "snapshot failed")
		h.writeClose(c)
		return
	}
	_ = c.ws.SetWriteDeadline(deadline(h.cfg.WriteTimeout))
	if err := c.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
		fail("snapshot", err)
		return
	}
	ping := time.NewTicker(h.cfg.PingInterval)
	defer ping.Stop()
	for {
		// A stopped connection gets nothing more, even if frames are waiting.
		select {
		case <-c.done:
			h.writeClose(c)
			return
		default:
		}
		select {
		case <-c.done:
			h.writeClose(c)
			return
		case pm := <-c.queue:
			_ = c.ws.SetWriteDeadline(deadline(h.cfg.WriteTimeout))
			if err := c.ws.WritePreparedMessage(pm); err != nil {
				fail("delta", err)
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, deadline(h.cfg.WriteTimeout)); err != nil {
				fail("ping", err)
				return
			}
		}
	}
}

func (h *Hub) writeClose(c *conn) {
	if c.code == 0 {
		return
	}
	msg := websocket.FormatCloseMessage(c.code, c.reason)
	_ = c.ws.WriteControl(websocket.CloseMessage, msg, deadline(h.cfg.WriteTimeout))
}

// readLoop reads until the client goes: it answers nothing itself but keeps the read deadline
// moving on pongs and messages, and enforces the read limit. Client messages (future
// subscription filters) are read and ignored.
func (h *Hub) readLoop(c *conn) {
	wait := 2 * h.cfg.PingInterval
	c.ws.SetReadLimit(h.cfg.ReadLimit)
	_ = c.ws.SetReadDeadline(deadline(wait))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(deadline(wait)) })
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return
		}
		_ = c.ws.SetReadDeadline(deadline(wait))
	}
}
