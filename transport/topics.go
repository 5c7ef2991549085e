package transport

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// dialAny connects to the first broker that answers.
func dialAny(ctx context.Context, sec *Security, brokers []string) (*kafka.Conn, error) {
	if len(brokers) == 0 {
		return nil, errors.New("no brokers")
	}
	dialer := sec.Dialer()
	var errs []error
	for _, b := range brokers {
		conn, err := dialer.DialContext(ctx, "tcp", b)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("dial brokers %v: %w", brokers, errors.Join(errs...))
}

// withDeadline applies ctx's deadline (or a default) to conn's next operations.
func withDeadline(ctx context.Context, conn *kafka.Conn, def time.Duration) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(def)
	}
	return conn.SetDeadline(deadline)
}

// EnsureTopics creates the topics that do not exist yet, each with the given number of
// partitions and a replication factor of min(3, brokers in the cluster). Topics that exist
// are left as they are, whatever their partition count. The request goes to the controller,
// the only broker allowed to create topics.
func EnsureTopics(ctx context.Context, brokers []string, partitions int, topics ...string) error {
	return ensureTopics(ctx, nil, brokers, partitions, topics...)
}

func ensureTopics(ctx context.Context, sec *Security, brokers []string, partitions int, topics ...string) error {
	if len(topics) == 0 {
		return nil
	}
	if partitions < 1 {
		return fmt.Errorf("ensure topics: partitions %d < 1", partitions)
	}
	conn, err := dialAny(ctx, sec, brokers)
	if err != nil {
		return fmt.Errorf("ensure topics: %w", err)
	}
	defer conn.Close()
	if err := withDeadline(ctx, conn, 10*time.Second); err != nil {
		return fmt.Errorf("ensure topics: %w", err)
	}
	controller, err := conn.Controller()
	if err != nil {
		return fmt.Errorf("ensure topics: find controller: %w", err)
	}
	cluster, err := conn.Brokers()
	if err != nil {
		return fmt.Errorf("ensure topics: list brokers: %w", err)
	}
	rf := min(3, len(cluster))

	cconn, err := sec.Dialer().DialContext(ctx, "tcp", net.JoinHostPort(controller.Host, strconv.Itoa(controller.Port)))
	if err != nil {
		return fmt.Errorf("ensure topics: dial controller: %w", err)
	}
	defer cconn.Close()
	if err := withDeadline(ctx, cconn, 10*time.Second); err != nil {
		return fmt.Errorf("ensure topics: %w", err)
	}
	cfgs := make([]kafka.TopicConfig, len(topics))
	for i, t := range topics {
		cfgs[i] = kafka.TopicConfig{Topic: t, NumPartitions: partitions, ReplicationFactor: rf}
	}
	// kafka-go already drops TopicAlreadyExists from the response; the check stays in case
	// a version of it stops doing so.
	if err := cconn.CreateTopics(cfgs...); err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("ensure topics %v: %w", topics, err)
	}
	return nil
}

// partitionIDs lists a topic's partitions in ascending order.
func partitionIDs(ctx context.Context, sec *Security, brokers []string, topic string) ([]int, error) {
	conn, err := dialAny(ctx, sec, brokers)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := withDeadline(ctx, conn, 10*time.Second); err != nil {
		return nil, err
	}
	parts, err := conn.ReadPartitions(topic)
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	ids := make([]int, 0, len(parts))
	for _, p := range parts {
		if p.Topic == topic {
			ids = append(ids, p.ID)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// ReadAll calls fn for every record of topic, partition by partition, from the first offset
// up to the high-water marks the partitions had when ReadAll was called, then returns.
// Records with the same key are seen in the order they were written. An error from fn
// stops the read and is returned as is. The incident service rebuilds its state from the
// changelog this way on start.
func ReadAll(ctx context.Context, brokers []string, topic string, fn func(key string, value []byte) error) error {
	return ReadRecords(ctx, brokers, topic, func(m kafka.Message) error { return fn(string(m.Key), m.Value) })
}

// ReadRecords is ReadAll handing fn whole records, headers included (a reader that checks
// records' signatures needs them).
func ReadRecords(ctx context.Context, brokers []string, topic string, fn func(kafka.Message) error) error {
	ids, err := partitionIDs(ctx, nil, brokers, topic)
	if err != nil {
		return fmt.Errorf("read all %s: %w", topic, err)
	}
	// Take every partition's bounds before reading any, so records written while we read
	// are left for the caller's subscription, on all partitions alike.
	parts := make([]partitionRange, 0, len(ids))
	defer func() {
		for _, p := range parts {
			p.conn.Close()
		}
	}()
	for _, id := range ids {
		p, err := openPartition(ctx, brokers, topic, id)
		if err != nil {
			return err
		}
		parts = append(parts, p)
	}
	for _, p := range parts {
		if err := p.read(ctx, topic, fn); err != nil {
			return err
		}
	}
	return nil
}

// ReadPartition is ReadRecords for one partition of topic: every record from the first offset up
// to the partition's high-water mark at the call. A stage loads the state of a partition it
// was just assigned this way, from the changelog partition with the same number.
func ReadPartition(ctx context.Context, brokers []string, topic string, id int, fn func(kafka.Message) error) error {
	p, err := openPartition(ctx, brokers, topic, id)
	if err != nil {
		return err
	}
	defer p.conn.Close()
	return p.read(ctx, topic, fn)
}

// ReadPartitionSince is ReadPartition over the records written at or after since (by the
// records' timestamps) and before offset until (all of them up to the high-water mark if until
// is negative). A stage rebuilds state that looks back in time this way: the last hour of a
// partition's events, up to where its handling resumes.
func ReadPartitionSince(ctx context.Context, brokers []string, topic string, id int, since time.Time, until int64, fn func(kafka.Message) error) error {
	p, err := openPartition(ctx, brokers, topic, id)
	if err != nil {
		return err
	}
	defer p.conn.Close()
	from, err := p.conn.ReadOffset(since)
	if err != nil {
		return fmt.Errorf("read %s/%d since %s: %w", topic, id, since.Format(time.RFC3339), err)
	}
	p.first = max(p.first, from)
	if until >= 0 {
		p.end = min(p.end, until)
	}
	return p.read(ctx, topic, fn)
}

// PartitionCount is how many partitions topic has.
func PartitionCount(ctx context.Context, brokers []string, topic string) (int, error) {
	ids, err := partitionIDs(ctx, nil, brokers, topic)
	if err != nil {
		return 0, err
	}
	return len(ids), nil
}

// PartitionOf is the partition a record keyed key lands on among n partitions: the hash
// balancer every urbanbrain producer uses (FNV-1a, as Sarama and kafka-go's Hash), so a stage
// can tell which streets a partition holds.
func PartitionOf(key string, n int) int {
	if n <= 0 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	p := int32(h.Sum32()) % int32(n)
	if p < 0 {
		p = -p
	}
	return int(p)
}

type partitionRange struct {
	conn       *kafka.Conn
	brokers    []string
	id         int
	first, end int64
}

// Reading a partition: each request may take readTimeout; a request that fails (the broker
// restarted, or was too busy to answer in time — a node's start reads every changelog at
// once) is tried again on a new connection from where reading stopped, up to readAttempts
// times in a row.
var (
	readTimeout  = 10 * time.Second
	readAttempts = 5
)

func openPartition(ctx context.Context, brokers []string, topic string, id int) (partitionRange, error) {
	conn, err := dialPartition(ctx, brokers, topic, id)
	if err != nil {
		return partitionRange{}, err
	}
	first, end, err := conn.ReadOffsets()
	if err != nil {
		conn.Close()
		return partitionRange{}, fmt.Errorf("read all %s/%d: offsets: %w", topic, id, err)
	}
	return partitionRange{conn: conn, brokers: brokers, id: id, first: first, end: end}, nil
}

// dialPartition connects to the leader of topic's partition id.
func dialPartition(ctx context.Context, brokers []string, topic string, id int) (*kafka.Conn, error) {
	dialer := Dialer()
	var errs []error
	for _, b := range brokers {
		conn, err := dialer.DialLeader(ctx, "tcp", b, topic, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := withDeadline(ctx, conn, readTimeout); err != nil {
			conn.Close()
			return nil, err
		}
		return conn, nil
	}
	return nil, fmt.Errorf("read all %s/%d: dial leader: %w", topic, id, errors.Join(errs...))
}

// errFn marks an error returned by the caller's callback, so it is passed through unwrapped.
type errFn struct{ err error }

func (e errFn) Error() string { return e.err.Error() }

// read hands fn the records of the range in order. It closes the connection it ends with when
// that is not p.conn (the caller closes p.conn).
func (p partitionRange) read(ctx context.Context, topic string, fn func(kafka.Message) error) error {
	conn, next, end := p.conn, p.first, p.end
	defer func() {
		if conn != p.conn {
			conn.Close()
		}
	}()
	failed := 0
	for next < end {
		if err := ctx.Err(); err != nil {
			return err
		}
		before := next
		err := p.readBatch(ctx, conn, topic, &next, end, fn)
		var fe errFn
		switch {
		case errors.As(err, &fe):
			return fe.err
		case err == nil && next == before:
			return fmt.Errorf("read all %s/%d: no progress at offset %d (end %d)", topic, p.id, next, end)
		case err == nil:
			failed = 0
			continue
		}
		if next > before {
			failed = 0
		}
		for { // a new connection, from where reading stopped
			if failed++; failed >= readAttempts {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(failed) * 200 * time.Millisecond):
			}
			c, derr := dialPartition(ctx, p.brokers, topic, p.id)
			if derr == nil {
				if conn != p.conn {
					conn.Close()
				}
				conn = c
				break
			}
			err = derr
		}
	}
	return nil
}

// readBatch reads one fetch's records from *next on, handing fn those before end and moving
// *next past each. An error from fn comes back as errFn.
func (p partitionRange) readBatch(ctx context.Context, conn *kafka.Conn, topic string, next *int64, end int64, fn func(kafka.Message) error) error {
	// The deadline covers this request and the seek's own (Seek asks the broker for the
	// partition's offsets): one set when the connection was opened may be long past, as
	// ReadRecords opens every partition before reading any.
	if err := withDeadline(ctx, conn, readTimeout); err != nil {
		return err
	}
	if _, err := conn.Seek(*next, kafka.SeekAbsolute); err != nil {
		return fmt.Errorf("read all %s/%d: seek %d: %w", topic, p.id, *next, err)
	}
	before := *next
	batch := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: 10 << 20})
	err := func() error {
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				return err
			}
			if m.Offset < *next {
				continue
			}
			if m.Offset >= end {
				return io.EOF
			}
			*next = m.Offset + 1
			if err := fn(m); err != nil {
				return errFn{err}
			}
		}
	}()
	closeErr := batch.Close()
	var fe errFn
	switch {
	case errors.As(err, &fe):
		return fe
	case err != nil && !errors.Is(err, io.EOF):
		return fmt.Errorf("read all %s/%d at %d: %w", topic, p.id, *next, err)
	case closeErr != nil:
		return fmt.Errorf("read all %s/%d at %d: %w", topic, p.id, *next, closeErr)
	}
	if *next == before {
		// Only control records (transaction markers) or a compacted gap lay ahead: take the
		// batch's own idea of the next offset (read gives up if there is none).
		*next = max(*next, batch.Offset())
	}
	return nil
}
