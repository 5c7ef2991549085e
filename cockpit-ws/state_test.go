package cockpit

import (
	"net/url"
	"slices"
	"strconv"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/urbanbrain/urbanbrain/auth"
)

func TestHistoryAfter(t *testing.T) {
	t.Parallel()
	seqOf := map[*websocket.PreparedMessage]uint64{}
	frame := func(seq uint64) *websocket.PreparedMessage {
		pm, err := websocket.NewPreparedMessage(websocket.TextMessage, []byte(strconv.FormatUint(seq, 10)))
		if err != nil {
			t.Fatal(err)
		}
		seqOf[pm] = seq
		return pm
	}
	cases := []struct {
		name     string
		maxLen   int
		maxBytes int
		sizes    []int // of frames 1..n
		after    uint64
		want     []uint64
		ok       bool
	}{
		{"empty history, at the head", 4, 100, nil, 0, nil, true},
		{"at the head", 4, 100, []int{1, 1, 1, 1, 1, 1}, 6, nil, true},
		{"one behind", 4, 100, []int{1, 1, 1, 1, 1, 1}, 5, []uint64{6}, true},
		{"oldest kept", 4, 100, []int{1, 1, 1, 1, 1, 1}, 2, []uint64{3, 4, 5, 6}, true},
		{"left the ring", 4, 100, []int{1, 1, 1, 1, 1, 1}, 1, nil, false},
		{"from the future", 4, 100, []int{1, 1, 1, 1, 1, 1}, 7, nil, false},
		{"bytes bound", 100, 10, []int{4, 4, 4, 4}, 1, nil, false},
		{"bytes bound keeps what fits", 100, 10, []int{4, 4, 4, 4}, 2, []uint64{3, 4}, true},
		{"one frame over the bound is still kept", 100, 10, []int{4, 50}, 1, []uint64{2}, true},
	}
	for _, tc := range cases {
		h := newHistory(tc.maxLen, tc.maxBytes)
		for i, size := range tc.sizes {
			h.add(uint64(i+1), frame(uint64(i+1)), size)
		}
		pms, ok := h.after(tc.after, uint64(len(tc.sizes)))
		var got []uint64
		for _, pm := range pms {
			got = append(got, seqOf[pm])
		}
		if ok != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("%s: after(%d) = %v, %v; want %v, %v", tc.name, tc.after, got, ok, tc.want, tc.ok)
		}
		if h.bytes > tc.maxBytes && len(h.frames) > 1 {
			t.Errorf("%s: holds %d bytes in %d frames, bound %d", tc.name, h.bytes, len(h.frames), tc.maxBytes)
		}
	}
}

func TestTombstonesForgetOldest(t *testing.T) {
	t.Parallel()
	ts := newTombstones(2)
	ts.put("a", 1)
	ts.put("b", 1)
	ts.put("a", 3) // an update does not take a new slot
	if v, ok := ts.get("a"); !ok || v != 3 {
		t.Fatalf("a = %d, %v", v, ok)
	}
	ts.put("c", 1) // evicts a, the oldest
	if _, ok := ts.get("a"); ok {
		t.Error("a still remembered after eviction")
	}
	for _, id := range []string{"b", "c"} {
		if _, ok := ts.get(id); !ok {
			t.Errorf("%s forgotten", id)
		}
	}
	if len(ts.version) != 2 {
		t.Errorf("holds %d tombstones, want 2", len(ts.version))
	}
}

// Equal subscriptions have equal keys whatever order or spelling the client used, and
// callers who might see different things never share one.
func TestSubscriptionKeys(t *testing.T) {
	t.Parallel()
	req := func(q string) Request {
		v, err := url.ParseQuery(q)
		if err != nil {
			t.Fatal(err)
		}
		r, err := requestFromQuery(v)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return r
	}
	op := auth.Claims{Subject: "a", Role: auth.RoleOperator}
	key := func(f feed, c auth.Claims, q string) string {
		k, _ := subKey(f, c, req(q))
		return k
	}
	same := [][2]string{
		{"district=D2,D1", "district=D1&district=D2"},
		{"severity=red,red", "severity=red"},
		{"", "coordsys=wgs84"},
		{"map=1&kpi=1", ""}, // what else is sent does not change the stream
	}
	for _, p := range same {
		if key(feedCockpit, op, p[0]) != key(feedCockpit, op, p[1]) {
			t.Errorf("%q and %q have different keys", p[0], p[1])
		}
	}
	differ := []struct {
		a, b auth.Claims
		qa   string
		qb   string
	}{
		{op, auth.Claims{Subject: "b", Role: auth.RoleSupervisor}, "", ""}, // masking differs
		{op, auth.Claims{Subject: "a", Role: auth.RoleOperator, District: "D1"}, "", ""},
		{auth.Claims{Subject: "w", Role: auth.RoleWorker, Grids: []string{"G1"}}, auth.Claims{Subject: "w", Role: auth.RoleWorker, Grids: []string{"G2"}}, "", ""},
		{op, op, "", "coordsys=gcj02"},
		{op, op, "district=D1", "street=D1"},
	}
	for _, d := range differ {
		if key(feedCockpit, d.a, d.qa) == key(feedCockpit, d.b, d.qb) {
			t.Errorf("%+v %q and %+v %q share a key", d.a, d.qa, d.b, d.qb)
		}
	}
	w1 := auth.Claims{Subject: "w-1", Role: auth.RoleWorker, Grids: []string{"G1"}}
	w2 := auth.Claims{Subject: "w-2", Role: auth.RoleWorker, Grids: []string{"G1"}}
	if key(feedWorker, w1, "") == key(feedWorker, w2, "") {
		t.Error("two workers share a worker-feed subscription: their assigned tasks differ")
	}
	if key(feedWorker, w1, "") == key(feedCockpit, w1, "") {
		t.Error("the worker feed and the cockpit share a key")
	}
}
