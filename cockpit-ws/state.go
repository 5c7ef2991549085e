package cockpit

import (
	"encoding/json"
	"fmt"

	"github.com/gorilla/websocket"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
)

// Delta operations.
const (
	OpUpsert = "upsert" // the incident's latest state
	OpRemove = "remove" // closed, or left the caller's scope
	OpNoop   = "noop"   // a change the caller may not see; keeps the numbering gap-free
)

type snapshotFrame struct {
	Type      string           `json:"type"`
	Seq       uint64           `json:"seq"`
	Epoch     string           `json:"epoch"`
	Incidents []event.Incident `json:"incidents"`
}

type deltaFrame struct {
	Type     string          `json:"type"`
	Seq      uint64          `json:"seq"`
	Op       string          `json:"op"`
	ID       string          `json:"id,omitempty"`
	Incident *event.Incident `json:"incident,omitempty"`
}

// view is what one connection gets for a delta; frames are encoded once per view, not once
// per connection.
type view int

const (
	viewNoop   view = iota // outside the caller's scope
	viewLeave              // was in scope, is not any more: remove without the new state
	viewFull               // in scope, personal data visible
	viewMasked             // in scope, personal data masked
	numViews
)

// delta is one change of the open set, numbered.
type delta struct {
	seq uint64
	op  string // OpUpsert or OpRemove
	inc event.Incident
	// prevArea is where the incident was before the change; nil if it was not open.
	prevArea *event.Area
	frames   [numViews]*websocket.PreparedMessage
}

// viewFor decides what a caller with claims c (who may see personal data if seeAll) gets.
func (d *delta) viewFor(c auth.Claims, seeAll bool) view {
	switch {
	case c.CanSee(d.inc.Area) && seeAll:
		return viewFull
	case c.CanSee(d.inc.Area):
		return viewMasked
	case d.prevArea != nil && c.CanSee(*d.prevArea):
		return viewLeave
	default:
		return viewNoop
	}
}

// frame returns the encoded frame of view v, encoding it on first use. Callers hold the hub's
// lock. masker supplies the claims used for masking (any role without personal-data access).
func (d *delta) frame(v view, masker auth.Claims) (*websocket.PreparedMessage, error) {
	if pm := d.frames[v]; pm != nil {
		return pm, nil
	}
	f := deltaFrame{Type: "delta", Seq: d.seq, Op: d.op, ID: d.inc.ID}
	switch v {
	case viewNoop:
		f.Op, f.ID = OpNoop, ""
	case viewLeave:
		f.Op = OpRemove
	case viewFull:
		f.Incident = &d.inc
	case viewMasked:
		m := auth.MaskIncident(d.inc, masker)
		f.Incident = &m
	}
	b, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode delta %d of %s: %w", d.seq, d.inc.ID, err)
	}
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, b)
	if err != nil {
		return nil, fmt.Errorf("prepare delta %d: %w", d.seq, err)
	}
	d.frames[v] = pm
	return pm, nil
}

// history is a ring of the most recent deltas, for clients that resume after a reconnect.
type history struct {
	ring []*delta
	next int // where the next delta goes
	full bool
}

func newHistory(size int) *history { return &history{ring: make([]*delta, size)} }

func (h *history) add(d *delta) {
	h.ring[h.next] = d
	h.next = (h.next + 1) % len(h.ring)
	if h.next == 0 {
		h.full = true
	}
}

// after returns the deltas numbered after seq, oldest first, and false if some of them have
// already left the ring (the client must take a new snapshot). last is the newest number.
func (h *history) after(seq, last uint64) ([]*delta, bool) {
	if seq > last {
		return nil, false
	}
	n := int(last - seq)
	held := h.next
	if h.full {
		held = len(h.ring)
	}
	if n > held {
		return nil, false
	}
	out := make([]*delta, 0, n)
	for i := n; i > 0; i-- {
		out = append(out, h.ring[(h.next-i+len(h.ring))%len(h.ring)])
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
