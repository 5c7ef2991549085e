package transport_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap/zaptest"

	"github.com/urbanbrain/urbanbrain/transport"
	"github.com/urbanbrain/urbanbrain/transport/transporttest"
)

// stageInput writes n records to topic, keyed by 20 keys, each value "<key>:<seq within key>".
func stageInput(t *testing.T, addrs []string, topic string, n int) {
	t.Helper()
	w := rawWriter(t, addrs)
	msgs := make([]kafka.Message, n)
	for i := range n {
		k := "k" + strconv.Itoa(i%20)
		msgs[i] = kafka.Message{Topic: topic, Key: []byte(k), Value: []byte(k + ":" + strconv.Itoa(i/20))}
	}
	if err := w.WriteMessages(t.Context(), msgs...); err != nil {
		t.Fatal(err)
	}
}

// echo is a stage handler that writes each input to out twice (two outputs per input, so a
// record is done only when both are acknowledged).
func echo(out string) transport.StageHandler {
	return func(_ context.Context, rec kafka.Message) ([]kafka.Message, error) {
		return []kafka.Message{
			{Topic: out, Key: rec.Key, Value: append([]byte("a/"), rec.Value...)},
			{Topic: out, Key: rec.Key, Value: append([]byte("b/"), rec.Value...)},
		}, nil
	}
}

// checkOutputs reads out until every input's two outputs were seen, and checks that within a
// key the first copies come in input order (at-least-once allows repeats, never gaps or
// reordering).
func checkOutputs(t *testing.T, addrs []string, out string, n int) (dups int) {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: addrs, Topic: out, GroupID: "check-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		MaxWait: 100 * time.Millisecond, StartOffset: kafka.FirstOffset, ReadLagInterval: -1})
	defer r.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*waitFor)
	defer cancel()
	seen := map[string]bool{}
	last := map[string]int{} // key → last first-seen sequence of "a/" outputs
	for len(seen) < 2*n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("read %s: %d of %d outputs: %v", out, len(seen), 2*n, err)
		}
		v := string(m.Value)
		if seen[v] {
			dups++
			continue
		}
		seen[v] = true
		if strings.HasPrefix(v, "a/") {
			k, seq, _ := strings.Cut(strings.TrimPrefix(v, "a/"), ":")
			s, _ := strconv.Atoi(seq)
			if prev, ok := last[k]; ok && s != prev+1 {
				t.Fatalf("key %s: output for seq %d follows seq %d", k, s, prev)
			} else if !ok && s != 0 {
				t.Fatalf("key %s: first output is seq %d", k, s)
			}
			last[k] = s
		}
	}
	return dups
}

func committedSum(t *testing.T, addrs []string, group, topic string, parts int) (sum int64) {
	t.Helper()
	c := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 5 * time.Second}
	ids := make([]int, parts)
	for i := range ids {
		ids[i] = i
	}
	res, err := c.OffsetFetch(t.Context(), &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ids}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Topics[topic] {
		if p.CommittedOffset > 0 {
			sum += p.CommittedOffset
		}
	}
	return sum
}

func newProducer(t *testing.T, addrs []string) *transport.Producer {
	t.Helper()
	p, err := transport.NewProducer(transport.ProducerConfig{Brokers: addrs, MaxInFlightBytes: 64 << 10}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(5 * time.Second) })
	return p
}

// A handler that fails, and one that panics, on some records: each such record is handed over
// again, nothing behind it overtakes it, nothing is skipped, and at the end every input offset
// is committed. A small in-flight budget (64 KiB) makes the stage wait on the producer often.
func TestStageRetriesFailedRecordsInOrder(t *testing.T) {
	t.Parallel()
	const n, parts = 3000, 3
	b := transporttest.NewBroker(t, transport.EmbeddedConfig{Partitions: parts, Topics: []string{"st.in", "st.out"}})
	stageInput(t, b.Addrs(), "st.in", n)

	var failed sync.Map
	var failures atomic.Int64
	inner := echo("st.out")
	h := func(ctx context.Context, rec kafka.Message) ([]kafka.Message, error) {
		if rec.Offset%97 == 5 {
			if _, again := failed.LoadOrStore(fmt.Sprint(rec.Partition, "/", rec.Offset), true); !again {
				failures.Add(1)
				if rec.Offset%2 == 0 {
					panic("boom")
				}
				return nil, fmt.Errorf("transient failure at %d", rec.Offset)
			}
		}
		return inner(ctx, rec)
	}
	st, err := transport.NewStage(transport.StageConfig{Brokers: b.Addrs(), GroupID: "st", Topics: []string{"st.in"},
		RetryBackoff: 5 * time.Millisecond, MaxPending: 50}, h, newProducer(t, b.Addrs()), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()

	checkOutputs(t, b.Addrs(), "st.out", n)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	stats := st.Stats()
	if stats.Handled != n || stats.Retries != uint64(failures.Load()) || failures.Load() == 0 {
		t.Fatalf("handled %d (want %d), retries %d (want %d > 0)", stats.Handled, n, stats.Retries, failures.Load())
	}
	if got := committedSum(t, b.Addrs(), "st", "st.in", parts); got != n {
		t.Fatalf("committed offsets sum to %d, want %d: every handled record's outputs were acknowledged", got, n)
	}
}

// Two members of one group: the second joins mid-stream (a rebalance) and the first leaves
// before the end (another). Every input still reaches the output in key order; what moved
// between members may come twice, never not at all.
func TestStageRebalanceSkipsNothing(t *testing.T) {
	t.Parallel()
	const n, parts = 6000, 6
	b := transporttest.NewBroker(t, transport.EmbeddedConfig{Partitions: parts, Topics: []string{"rb.in", "rb.out"}})
	stageInput(t, b.Addrs(), "rb.in", n)

	slow := func(ctx context.Context, rec kafka.Message) ([]kafka.Message, error) {
		time.Sleep(2 * time.Millisecond) // so that the moves happen mid-stream
		return echo("rb.out")(ctx, rec)
	}
	member := func() (*transport.Stage, context.CancelFunc, chan error) {
		st, err := transport.NewStage(transport.StageConfig{Brokers: b.Addrs(), GroupID: "rb", Topics: []string{"rb.in"},
			SessionTimeout: 6 * time.Second, RebalanceTimeout: 6 * time.Second}, slow, newProducer(t, b.Addrs()), zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- st.Run(ctx) }()
		return st, cancel, done
	}
	a, stopA, doneA := member()
	waitHandled := func(st *transport.Stage, atLeast uint64) {
		deadline := time.Now().Add(2 * waitFor)
		for st.Stats().Handled < atLeast {
			if time.Now().After(deadline) {
				t.Fatalf("stage handled %d, want %d", st.Stats().Handled, atLeast)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitHandled(a, 500)
	bm, stopB, doneB := member()
	waitHandled(bm, 200)
	stopA()
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	dups := checkOutputs(t, b.Addrs(), "rb.out", n)
	stopB()
	if err := <-doneB; err != nil {
		t.Fatal(err)
	}
	t.Logf("handled: A %d, B %d; repeated outputs %d", a.Stats().Handled, bm.Stats().Handled, dups)
	if got := committedSum(t, b.Addrs(), "rb", "rb.in", parts); got != n {
		t.Fatalf("committed offsets sum to %d, want %d", got, n)
	}
}

// PartitionOf must agree with the producer's balancer, or a stage would load the wrong
// streets for a partition.
func TestPartitionOfMatchesTheProducer(t *testing.T) {
	parts := []int{0, 1, 2, 3, 4, 5}
	for i := range 2000 {
		key := fmt.Sprintf("%06d", 330100000+i*7)
		want := (&kafka.Hash{}).Balance(kafka.Message{Key: []byte(key)}, parts...)
		if got := transport.PartitionOf(key, len(parts)); got != want {
			t.Fatalf("PartitionOf(%q, 6) = %d, the producer's balancer says %d", key, got, want)
		}
	}
}

// Several co-partitioned topics in one group: whatever order the broker lists partitions in,
// every member gets the same partition numbers of every topic, so one member owns all the
// records of a key. (kafka-go's range assignor alone takes the metadata's order.)
func TestCoPartitionedAssignment(t *testing.T) {
	b := transport.CoPartitionedBalancer()
	members := []kafka.GroupMember{{ID: "m-c", Topics: []string{"a", "b"}}, {ID: "m-a", Topics: []string{"a", "b"}}, {ID: "m-b", Topics: []string{"a", "b"}}}
	var parts []kafka.Partition
	for _, id := range []int{2, 0, 1, 5, 3, 4} { // a map's order, as the embedded broker lists them
		parts = append(parts, kafka.Partition{Topic: "a", ID: id})
	}
	for _, id := range []int{4, 1, 5, 0, 3, 2} {
		parts = append(parts, kafka.Partition{Topic: "b", ID: id})
	}
	got := b.AssignGroups(members, parts)
	seen := map[int]string{}
	for member, topics := range got {
		a, bb := slices.Clone(topics["a"]), slices.Clone(topics["b"])
		slices.Sort(a)
		slices.Sort(bb)
		if !slices.Equal(a, bb) || len(a) != 2 {
			t.Errorf("member %s: a %v, b %v; want the same two partitions of both topics", member, a, bb)
		}
		for _, p := range a {
			if other, dup := seen[p]; dup {
				t.Errorf("partition %d assigned to %s and %s", p, other, member)
			}
			seen[p] = member
		}
	}
}

// A member that gets the same partitions back after a rebalance (kafka-go rebalances eagerly:
// everyone gives up everything) keeps their state: no second load, no give-up. A partition
// that moves to another member is given up by this one before its next generation handles
// anything.
func TestStageKeepsStateOfPartitionsItGetsBack(t *testing.T) {
	t.Parallel()
	const parts = 4
	b := transporttest.NewBroker(t, transport.EmbeddedConfig{Partitions: parts, Topics: []string{"kp.in", "kp.out"}})
	stageInput(t, b.Addrs(), "kp.in", 400)
	type counts struct {
		mu                sync.Mutex
		assigned, revoked map[int]int
	}
	member := func(c *counts) (*transport.Stage, context.CancelFunc, chan error) {
		st, err := transport.NewStage(transport.StageConfig{Brokers: b.Addrs(), GroupID: "kp", Topics: []string{"kp.in"},
			SessionTimeout: 6 * time.Second, RebalanceTimeout: 6 * time.Second,
			OnAssigned: func(_ context.Context, p int, _ map[string]int64) error {
				c.mu.Lock()
				defer c.mu.Unlock()
				c.assigned[p]++
				return nil
			},
			OnRevoked: func(p int) {
				c.mu.Lock()
				defer c.mu.Unlock()
				c.revoked[p]++
			}}, echo("kp.out"), newProducer(t, b.Addrs()), zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- st.Run(ctx) }()
		return st, cancel, done
	}
	ca := &counts{assigned: map[int]int{}, revoked: map[int]int{}}
	a, stopA, doneA := member(ca)
	waitLoaded := func(st *transport.Stage, n int) []int {
		deadline := time.Now().Add(2 * waitFor)
		for {
			ps, joined := st.Loaded()
			if joined && len(ps) == n {
				return ps
			}
			if time.Now().After(deadline) {
				t.Fatalf("stage loaded %v, want %d partitions", ps, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitLoaded(a, parts)
	checkOutputs(t, b.Addrs(), "kp.out", 400)
	// A second member joins: A gives up half and keeps half.
	cb := &counts{assigned: map[int]int{}, revoked: map[int]int{}}
	bm, stopB, doneB := member(cb)
	kept := waitLoaded(a, parts/2)
	waitLoaded(bm, parts/2)
	ca.mu.Lock()
	for p := range parts {
		wantAssigned, wantRevoked := 1, 1
		if slices.Contains(kept, p) {
			wantRevoked = 0 // it came back at the offsets A had handled to: state kept
		}
		if ca.assigned[p] != wantAssigned || ca.revoked[p] != wantRevoked {
			t.Errorf("partition %d on A: loaded %d, given up %d times; want %d and %d (A kept %v)",
				p, ca.assigned[p], ca.revoked[p], wantAssigned, wantRevoked, kept)
		}
	}
	ca.mu.Unlock()
	stopB()
	stopA()
	for _, d := range []chan error{doneA, doneB} {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	for _, p := range kept {
		if ca.revoked[p] != 1 {
			t.Errorf("partition %d given up %d times by A at shutdown, want 1", p, ca.revoked[p])
		}
	}
}

// A partition that keeps up with a trickle of records (one every 2 ms, each its own produce
// request) fetches at its pace, not once per record, and still hands every record over once
// and in order.
func TestStageFetchesACaughtUpPartitionAtItsPace(t *testing.T) {
	t.Parallel()
	const n, pace, maxWait = 400, 50 * time.Millisecond, 250 * time.Millisecond
	b := transporttest.NewBroker(t, transport.EmbeddedConfig{Partitions: 1, Topics: []string{"pace.in", "pace.out"}})
	var mu sync.Mutex
	var seen []string
	h := func(ctx context.Context, rec kafka.Message) ([]kafka.Message, error) {
		mu.Lock()
		seen = append(seen, string(rec.Value))
		mu.Unlock()
		return nil, nil
	}
	st, err := transport.NewStage(transport.StageConfig{Brokers: b.Addrs(), GroupID: "pace", Topics: []string{"pace.in"},
		FetchPace: pace, MaxWait: maxWait}, h, newProducer(t, b.Addrs()), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- st.Run(ctx) }()

	w := rawWriter(t, b.Addrs())
	for i := range n {
		if err := w.WriteMessages(t.Context(), kafka.Message{Topic: "pace.in", Value: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	for deadline := time.Now().Add(waitFor); st.Stats().Handled < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("handled %d of %d", st.Stats().Handled, n)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	for i, v := range seen {
		if v != strconv.Itoa(i) {
			t.Fatalf("record %d handed over as %q: %d handed over, want each of %d once and in order", i, v, len(seen), n)
		}
	}
	// After a fetch that brought records the next waits the pace; one that brought none
	// waited MaxWait on the broker. Unpaced, this partition would fetch about once a record.
	fetches := st.Stats().Fetches
	if most := uint64(elapsed/pace + elapsed/maxWait + 2); fetches > most || len(seen) != n {
		t.Errorf("%d fetches in %v for %d records, want at most %d (one per %v)", fetches, elapsed.Round(time.Millisecond), len(seen), most, pace)
	}
}
