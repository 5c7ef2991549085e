package ingest

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults. The event limit sits well under Kafka's default 1 MB message size even after a
// dead letter base64-encodes the original (4/3) and wraps it.
const (
	DefaultMaxEventBytes = 256 << 10
	DefaultMaxBatchBytes = 5 << 20
	DefaultMaxBatchItems = 1000
	DefaultDedupSize     = 100_000
	DefaultMaxFutureSkew = 10 * time.Minute
	DefaultMaxAge        = 30 * 24 * time.Hour
)

// maxDepth bounds JSON nesting. Payloads are flat (envelope → data → metrics is three
// levels); the bound stops hostile nesting before any decoder recurses into it.
const maxDepth = 32

// Config tunes the ingest stage. Zero values take the defaults.
type Config struct {
	// MaxEventBytes caps one event: a Kafka record's value, an HTTP single-event body, one
	// item of a batch.
	MaxEventBytes int
	// MaxBatchBytes caps an HTTP batch body; MaxBatchItems its number of events.
	MaxBatchBytes int
	MaxBatchItems int
	// MaxDeadLetterBytes caps the original bytes kept in a dead letter, so that a dead letter
	// for a huge HTTP body still fits in one Kafka message. Defaults to MaxEventBytes.
	MaxDeadLetterBytes int
	// DedupSize is how many recent (type, id) pairs are remembered to drop replays.
	DedupSize int
	// MaxFutureSkew is how far ahead of Now an event's time may be (producer clock drift);
	// MaxAge how far behind.
	MaxFutureSkew time.Duration
	MaxAge        time.Duration
	// Now is the clock; tests inject a fixed one.
	Now func() time.Time
	// Registerer, if set, gets urbanbrain_ingest_events_total{type,outcome},
	// urbanbrain_ingest_rejected_total{reason}, urbanbrain_ingest_ticket_categories_total{by}
	// and urbanbrain_ingest_ticket_category_unmatched_total{field}.
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.MaxEventBytes == 0 {
		c.MaxEventBytes = DefaultMaxEventBytes
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.MaxBatchItems == 0 {
		c.MaxBatchItems = DefaultMaxBatchItems
	}
	if c.MaxDeadLetterBytes == 0 {
		c.MaxDeadLetterBytes = c.MaxEventBytes
	}
	if c.DedupSize == 0 {
		c.DedupSize = DefaultDedupSize
	}
	if c.MaxFutureSkew == 0 {
		c.MaxFutureSkew = DefaultMaxFutureSkew
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.MaxEventBytes < 0 {
		errs = append(errs, errors.New("ingest: MaxEventBytes must not be negative"))
	}
	if c.MaxBatchBytes < 0 {
		errs = append(errs, errors.New("ingest: MaxBatchBytes must not be negative"))
	}
	if c.MaxBatchBytes > 0 && c.MaxEventBytes > 0 && c.MaxBatchBytes < c.MaxEventBytes {
		errs = append(errs, errors.New("ingest: MaxBatchBytes must be at least MaxEventBytes"))
	}
	if c.MaxBatchItems < 0 {
		errs = append(errs, errors.New("ingest: MaxBatchItems must not be negative"))
	}
	if c.MaxDeadLetterBytes < 0 {
		errs = append(errs, errors.New("ingest: MaxDeadLetterBytes must not be negative"))
	}
	if c.DedupSize < 0 {
		errs = append(errs, errors.New("ingest: DedupSize must not be negative"))
	}
	if c.MaxFutureSkew < 0 {
		errs = append(errs, errors.New("ingest: MaxFutureSkew must not be negative"))
	}
	if c.MaxAge < 0 {
		errs = append(errs, errors.New("ingest: MaxAge must not be negative"))
	}
	return errors.Join(errs...)
}
