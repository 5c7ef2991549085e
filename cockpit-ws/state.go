package cockpit

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/gorilla/websocket"

	"github.com/urbanbrain/urbanbrain/event"
)

// Frame types, the "type" member of every message the server sends.
const (
	FrameSnapshot = "snapshot" // the subscription's state at seq
	FrameDelta    = "delta"    // the net change of one tick, seq+1
	FrameResumed  = "resumed"  // resume accepted; the missed deltas follow
	FrameReload   = "reload"   // resume impossible; a snapshot follows
	FrameKPI      = "kpi"      // KPIs of the subscription's scope (not numbered)
	FrameMap      = "map"      // the grid layer (not numbered)
	FrameError    = "error"    // a client message was refused; the subscription is unchanged
)

// Reasons of a reload frame.
const (
	ReloadEpochChanged    = "epoch_changed"    // the server restarted, the subscription expired, or the filter differs
	ReloadHistoryExceeded = "history_exceeded" // the missed deltas are no longer kept
	ReloadUnknownSeq      = "unknown_seq"      // the client claims a seq the subscription never sent
)

// Reasons of a removal.
const (
	RemoveClosed = "closed" // 结案
	RemoveLeft   = "left"   // no longer matches the subscription (moved, re-graded, out of scope)
)

type snapshotFrame struct {
	Type      string            `json:"type"`
	Feed      string            `json:"feed"`
	Epoch     string            `json:"epoch"`
	Seq       uint64            `json:"seq"`
	CoordSys  string            `json:"coordsys"`
	Filter    Filter            `json:"filter"`
	At        time.Time         `json:"at"`
	Incidents []*event.Incident `json:"incidents"`
}

type deltaFrame struct {
	Type    string            `json:"type"`
	Seq     uint64            `json:"seq"`
	Changes int               `json:"changes"` // changelog records this frame is the net effect of
	At      time.Time         `json:"at"`
	Upsert  []*event.Incident `json:"upsert"`
	Remove  []removal         `json:"remove"`
}

type removal struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

type resumedFrame struct {
	Type  string `json:"type"`
	Epoch string `json:"epoch"`
	Seq   uint64 `json:"seq"` // the client's seq; deltas seq+1.. follow
	Last  uint64 `json:"last"`
}

type reloadFrame struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

type kpiFrame struct {
	Type string    `json:"type"`
	At   time.Time `json:"at"`
	KPI  *KPIs     `json:"kpi"`
}

type mapFrame struct {
	Type       string            `json:"type"`
	CoordSys   string            `json:"coordsys"`
	Grids      json.RawMessage   `json:"grids"`
	Categories map[string]string `json:"categories"`
}

type errorFrame struct {
	Type  string `json:"type"`
	Code  string `json:"code"`
	Error string `json:"error"`
}

// Codes of error frames.
const (
	ErrCodeInvalidRequest = "invalid_request" // malformed or invalid subscribe message
	ErrCodeRateLimited    = "rate_limited"    // subscribe messages too often
	ErrCodeUnavailable    = "unavailable"     // e.g. too many subscriptions, or no map loaded
)

func prepare(v any) (*websocket.PreparedMessage, int, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, 0, fmt.Errorf("encode frame: %w", err)
	}
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, b)
	if err != nil {
		return nil, 0, fmt.Errorf("prepare frame: %w", err)
	}
	return pm, len(b), nil
}

// history holds a subscription's most recent delta frames, consecutive by seq, for clients
// that resume after a reconnect. It is bounded by frame count and bytes.
type history struct {
	frames   []histFrame
	bytes    int
	maxLen   int
	maxBytes int
}

type histFrame struct {
	seq  uint64
	pm   *websocket.PreparedMessage
	size int
}

func newHistory(maxLen, maxBytes int) *history { return &history{maxLen: maxLen, maxBytes: maxBytes} }

func (h *history) add(seq uint64, pm *websocket.PreparedMessage, size int) {
	h.frames = append(h.frames, histFrame{seq: seq, pm: pm, size: size})
	h.bytes += size
	drop := 0 // the newest frame stays even if it alone exceeds maxBytes
	for len(h.frames)-drop > 1 && (len(h.frames)-drop > h.maxLen || h.bytes > h.maxBytes) {
		h.bytes -= h.frames[drop].size
		h.frames[drop] = histFrame{}
		drop++
	}
	h.frames = h.frames[drop:]
}

// trim drops the oldest frames until the history holds at most maxBytes (the newest frame
// stays even if it alone is larger).
func (h *history) trim(maxBytes int) {
	drop := 0
	for len(h.frames)-drop > 1 && h.bytes > maxBytes {
		h.bytes -= h.frames[drop].size
		h.frames[drop] = histFrame{}
		drop++
	}
	h.frames = h.frames[drop:]
}

// after returns the frames numbered after seq, oldest first, given that last is the newest
// number sent; ok is false if some have left the history or seq is from the future.
func (h *history) after(seq, last uint64) ([]*websocket.PreparedMessage, bool) {
	if seq > last {
		return nil, false
	}
	n := int(last - seq)
	if n == 0 {
		return nil, true
	}
	if n > len(h.frames) {
		return nil, false
	}
	out := make([]*websocket.PreparedMessage, 0, n)
	for _, f := range h.frames[len(h.frames)-n:] {
		out = append(out, f.pm)
	}
	return out, true
}

// tombstones remembers the closing version of recently closed incidents, oldest forgotten
// first, so a redelivered older version of a closed incident does not reopen it on the wall.
type tombstones struct {
	version map[string]int64
	order   []string
	next    int
	size    int
}

func newTombstones(size int) *tombstones {
	return &tombstones{version: make(map[string]int64), size: size}
}

func (t *tombstones) put(id string, version int64) {
	if _, ok := t.version[id]; !ok {
		if len(t.order) < t.size {
			t.order = append(t.order, id)
		} else {
			delete(t.version, t.order[t.next])
			t.order[t.next] = id
			t.next = (t.next + 1) % t.size
		}
	}
	t.version[id] = version
}

func (t *tombstones) get(id string) (int64, bool) {
	v, ok := t.version[id]
	return v, ok
}
