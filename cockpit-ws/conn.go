package cockpit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/urbanbrain/urbanbrain/auth"
)

// conn is one connected screen. The hub only ever does a non-blocking send on queue;
// everything written to the socket is written by writeLoop.
type conn struct {
	ws     *websocket.Conn
	claims auth.Claims
	feed   feed
	queue  chan outbound
	// subscribes bounds subscribe messages: each may cost a snapshot.
	subscribes *rate.Limiter

	// Guarded by the hub's lock.
	sub *subscription
	kpi bool // wants KPI frames

	once   sync.Once
	done   chan struct{} // closed by stop
	code   int           // close code to send, 0 for none; set before done is closed
	reason string
}

// outbound is one item of a connection's queue: a shared frame (the common case: a delta or
// a KPI frame), or the start of a stream.
type outbound struct {
	pm    *websocket.PreparedMessage
	extra *extra
}

// extra is the start of a stream: resumed/reload frames and missed deltas (pre), then a
// snapshot if one is needed, then the map and KPI frames (post).
type extra struct {
	pre  []*websocket.PreparedMessage
	snap *snapshotJob
	post []*websocket.PreparedMessage
}

func newConn(ws *websocket.Conn, claims auth.Claims, f feed, queueSize int) *conn {
	return &conn{
		ws:         ws,
		claims:     claims,
		feed:       f,
		queue:      make(chan outbound, queueSize),
		subscribes: rate.NewLimiter(rate.Limit(2), 5),
		done:       make(chan struct{}),
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

// writeLoop owns every write to c: queued frames and pings, each with a deadline, until c
// is stopped or a write fails. Closing the socket on the way out ends readLoop.
func (h *Hub) writeLoop(c *conn) {
	defer c.ws.Close()
	write := func(pm *websocket.PreparedMessage) error {
		_ = c.ws.SetWriteDeadline(deadline(h.cfg.WriteTimeout))
		return c.ws.WritePreparedMessage(pm)
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
		var err error
		select {
		case <-c.done:
			h.writeClose(c)
			return
		case out := <-c.queue:
			err = h.writeOut(c, out, write)
		case <-ping.C:
			err = c.ws.WriteControl(websocket.PingMessage, nil, deadline(h.cfg.WriteTimeout))
		}
		if err != nil {
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				// The client stopped reading and the socket buffers are full: it is as slow
				// as one whose queue overflowed, and goes the same way.
				h.timeouts.Add(1)
				h.log.Warn("cockpit client stopped reading, disconnected", zap.String("subject", c.claims.Subject),
					zap.String("role", c.claims.Role), zap.Duration("write_timeout", h.cfg.WriteTimeout))
			} else {
				h.log.Debug("cockpit write failed", zap.String("subject", c.claims.Subject), zap.Error(err))
			}
			c.stop(0, "")
			return
		}
	}
}

func (h *Hub) writeOut(c *conn, out outbound, write func(*websocket.PreparedMessage) error) error {
	if out.pm != nil {
		return write(out.pm)
	}
	x := out.extra
	for _, pm := range x.pre {
		if err := write(pm); err != nil {
			return err
		}
	}
	if x.snap != nil {
		pm, err := x.snap.message(h.log)
		if err != nil {
			h.log.Error("cockpit snapshot", zap.Error(err))
			c.stop(websocket.CloseInternalServerErr, "snapshot failed")
			return nil // the loop sees done and sends the close frame
		}
		if err := write(pm); err != nil {
			return err
		}
	}
	for _, pm := range x.post {
		if err := write(pm); err != nil {
			return err
		}
	}
	return nil
}

func (h *Hub) writeClose(c *conn) {
	if c.code == 0 {
		return
	}
	msg := websocket.FormatCloseMessage(c.code, c.reason)
	_ = c.ws.WriteControl(websocket.CloseMessage, msg, deadline(h.cfg.WriteTimeout))
}

// clientMessage is what a client may send: {"type":"subscribe", ...Request}.
type clientMessage struct {
	Type string `json:"type"`
	Request
}

// readLoop reads until the client goes: it keeps the read deadline moving on pongs and
// messages, enforces the read limit, and handles subscribe messages.
func (h *Hub) readLoop(c *conn) {
	wait := 2 * h.cfg.PingInterval
	c.ws.SetReadLimit(h.cfg.ReadLimit)
	_ = c.ws.SetReadDeadline(deadline(wait))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(deadline(wait)) })
	for {
		typ, r, err := c.ws.NextReader()
		if err != nil {
			return
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return
		}
		_ = c.ws.SetReadDeadline(deadline(wait))
		if typ != websocket.TextMessage {
			continue
		}
		h.handleMessage(c, b)
	}
}

func (h *Hub) handleMessage(c *conn, b []byte) {
	refuse := func(code, msg string) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.conns[c]; ok {
			h.sendErrorLocked(c, code, msg)
		}
	}
	var m clientMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields() // a misspelt "fliter" must not silently mean "everything"
	if err := dec.Decode(&m); err != nil {
		refuse(ErrCodeInvalidRequest, fmt.Sprintf("message is not a valid JSON object: %v", err))
		return
	}
	if m.Type != "subscribe" {
		refuse(ErrCodeInvalidRequest, fmt.Sprintf("unknown message type %q (want subscribe)", m.Type))
		return
	}
	if !c.subscribes.Allow() {
		refuse(ErrCodeRateLimited, "too many subscribe messages; wait a second")
		return
	}
	r := m.Request
	err := r.normalize()
	if err == nil {
		err = checkFeed(c.feed, r)
	}
	if err == nil && r.Map && h.cfg.City == nil {
		err = errNoMap
	}
	if err != nil {
		refuse(ErrCodeInvalidRequest, err.Error())
		return
	}
	h.resubscribe(c, r)
}
