package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/kafka-go"
)

// fetcher reads one partition for a stage with fetch requests of its own, so that it can pace
// them: a partition that has caught up asks again only after FetchPace, and its next fetch
// brings whatever came meanwhile, where a fetch the moment anything arrives brings one
// producer batch of a few records. With ~90 partitions of the stages in one process, that is
// most of what the Kafka protocol costs them at a steady rate (docs/performance.md). A
// partition with a backlog fetches back to back; an idle one waits on the broker (MaxWait)
// and gets its next record at once.
type fetcher struct {
	sec       *Security
	brokers   []string
	topic     string
	partition int
	maxBytes  int // of one fetch: what a partition holds in memory besides its pending outputs
	maxWait   time.Duration
	pace      time.Duration

	conn *kafka.Conn
	next int64 // the offset of the next record to read, or kafka.FirstOffset/LastOffset
	high int64 // the partition's end as of the last fetch, -1 before
	// caught is set when the last fetch brought the partition's end: the next one waits pace.
	caught time.Time
	clamp  bool // the offset was out of the partition's range: bring it into it on connecting
}

// fetchTimeout bounds a fetch beyond its MaxWait: a broker that answers nothing in that long
// is taken for gone, and the fetcher connects again.
const fetchTimeout = 10 * time.Second

func newFetcher(sec *Security, brokers []string, topic string, partition int, start int64, maxBytes int, maxWait, pace time.Duration) *fetcher {
	return &fetcher{sec: sec, brokers: brokers, topic: topic, partition: partition, next: start,
		maxBytes: maxBytes, maxWait: maxWait, pace: pace, high: -1}
}

// lag is how many records the partition held past the last fetch's records.
func (f *fetcher) lag() int64 {
	if f.high < 0 || f.next < 0 {
		return 0
	}
	return max(f.high-f.next, 0)
}

func (f *fetcher) close() {
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
}

// fetch returns the next records of the partition, in order; none when MaxWait passed without
// any. An error leaves the fetcher ready to be asked again (on a new connection).
func (f *fetcher) fetch(ctx context.Context) ([]kafka.Message, error) {
	if !f.caught.IsZero() {
		if wait := time.Until(f.caught.Add(f.pace)); wait > 0 && !sleepCtx(ctx, wait) {
			return nil, ctx.Err()
		}
		f.caught = time.Time{}
	}
	if f.conn == nil {
		if err := f.connect(ctx); err != nil {
			return nil, err
		}
	}
	from := f.next
	msgs, err := f.read(ctx)
	if err != nil {
		f.next = from
		f.close()
		// Retention removed records the stage had not read yet, or the log was truncated:
		// the next connection goes on from the nearest record there is, as kafka-go's
		// Reader does.
		f.clamp = errors.Is(err, kafka.OffsetOutOfRange)
		return nil, err
	}
	if len(msgs) > 0 && f.next >= f.high && f.pace > 0 {
		f.caught = time.Now()
	}
	return msgs, nil
}

// connect dials the partition's leader and resolves a symbolic start offset.
func (f *fetcher) connect(ctx context.Context) error {
	dialer := f.sec.Dialer()
	var errs []error
	for _, b := range f.brokers {
		conn, err := dialer.DialLeader(ctx, "tcp", b, f.topic, f.partition)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
		defer stop()
		if f.clamp && f.next >= 0 {
			if err := conn.SetDeadline(time.Now().Add(fetchTimeout)); err != nil {
				conn.Close()
				return err
			}
			first, last, err := conn.ReadOffsets()
			if err != nil {
				conn.Close()
				return fmt.Errorf("fetch %s/%d: offsets: %w", f.topic, f.partition, err)
			}
			f.next, f.clamp = min(max(f.next, first), last), false
		}
		if f.next == kafka.FirstOffset || f.next == kafka.LastOffset {
			whence := kafka.SeekStart
			if f.next == kafka.LastOffset {
				whence = kafka.SeekEnd
			}
			if err := conn.SetDeadline(time.Now().Add(fetchTimeout)); err == nil {
				f.next, err = conn.Seek(0, whence)
			}
			if err != nil {
				conn.Close()
				return fmt.Errorf("fetch %s/%d: start offset: %w", f.topic, f.partition, err)
			}
		}
		f.conn = conn
		return nil
	}
	return fmt.Errorf("fetch %s/%d: dial leader: %w", f.topic, f.partition, errors.Join(errs...))
}

// read sends one fetch request from f.next and reads its records.
func (f *fetcher) read(ctx context.Context) ([]kafka.Message, error) {
	deadline := time.Now().Add(f.maxWait + fetchTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := f.conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	if _, err := f.conn.Seek(f.next, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
		return nil, err
	}
	// A stage that is stopped mid-fetch ends the read at once.
	conn := f.conn
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	batch := f.conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: f.maxBytes, MaxWait: f.maxWait})
	var msgs []kafka.Message
	var err error
	for {
		var m kafka.Message
		if m, err = batch.ReadMessage(); err != nil {
			break
		}
		if m.Offset < f.next {
			continue // the start of a compressed or multi-record batch, read before
		}
		f.next = m.Offset + 1
		msgs = append(msgs, m)
	}
	closeErr := batch.Close()
	if hw := batch.HighWaterMark(); hw >= 0 {
		f.high = hw
	}
	switch {
	case errors.Is(err, kafka.RequestTimedOut) && len(msgs) == 0 && ctx.Err() == nil:
		// MaxWait passed with nothing new: kafka-go reports the empty answer so.
	case err != nil && !errors.Is(err, io.EOF):
		if len(msgs) > 0 && ctx.Err() == nil {
			return msgs, nil // what was read is good; the next fetch reports the error again
		}
		return nil, fmt.Errorf("fetch %s/%d at %d: %w", f.topic, f.partition, f.next, err)
	case closeErr != nil && len(msgs) == 0:
		return nil, fmt.Errorf("fetch %s/%d at %d: %w", f.topic, f.partition, f.next, closeErr)
	}
	if len(msgs) == 0 && batch.Offset() > f.next {
		// Only control records (transaction markers) or a compacted gap lay ahead.
		f.next = batch.Offset()
	}
	return msgs, nil
}
