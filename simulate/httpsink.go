package simulate

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ContentTypeBatch is the CloudEvents JSON batch format (a JSON array of structured events).
const ContentTypeBatch = "application/cloudevents-batch+json"

// HTTPSink posts events in batches to urbanbrain's ingest API, URL + "/api/v1/events", with
// the token as a bearer token. Send buffers; a batch goes out when MaxBatch events are
// waiting or on Flush (the simulator flushes after every burst). A failed batch is dropped and
// its error returned: a load generator reports loss, it does not queue without bound. The
// topic and key are not sent: the API derives both from each event. Use it as a pointer.
//
// With Concurrency ≤ 1 a batch is posted synchronously: Send or Flush returns its outcome.
// With Concurrency > 1 up to that many POSTs are in flight; Send and Flush wait only when
// all of them are (backpressure, counted in Delivery.Blocked), a failure is returned by the
// next Send or Flush, and Wait waits for the POSTs in flight.
type HTTPSink struct {
	URL         string       // base URL of the API, e.g. http://127.0.0.1:8080
	Token       string       // bearer token with the ingest role
	Client      *http.Client // default http.DefaultClient
	MaxBatch    int          // default 100
	Concurrency int          // POSTs in flight; default 1 (synchronous)

	mu      sync.Mutex
	buf     [][]byte
	sem     chan struct{}
	posts   sync.WaitGroup
	unseen  error // an asynchronous failure not yet returned
	lastErr string

	acked, failed, inflight, blocked atomic.Int64
}

var _ interface {
	Sink
	Flusher
	Waiter
	DeliveryReporter
} = (*HTTPSink)(nil)

// Send queues one event and posts the batch when it is full.
func (h *HTTPSink) Send(ctx context.Context, _ string, _ string, value []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf = append(h.buf, value)
	if len(h.buf) >= h.maxBatch() {
		return h.flushLocked(ctx)
	}
	return h.takeUnseenLocked()
}

// Flush posts whatever is queued.
func (h *HTTPSink) Flush(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.flushLocked(ctx)
}

// Wait returns once no POST is in flight, or ctx is done.
func (h *HTTPSink) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { h.posts.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%d events still in flight: %w", h.inflight.Load(), ctx.Err())
	}
}

// Delivery counts the events the API accepted and those in failed batches.
func (h *HTTPSink) Delivery() Delivery {
	h.mu.Lock()
	last := h.lastErr
	h.mu.Unlock()
	return Delivery{Acked: h.acked.Load(), Failed: h.failed.Load(), InFlight: h.inflight.Load(),
		Blocked: time.Duration(h.blocked.Load()), LastErr: last}
}

func (h *HTTPSink) maxBatch() int {
	if h.MaxBatch > 0 {
		return h.MaxBatch
	}
	return 100
}

func (h *HTTPSink) takeUnseenLocked() error {
	err := h.unseen
	h.unseen = nil
	return err
}

func (h *HTTPSink) flushLocked(ctx context.Context) error {
	for len(h.buf) > h.maxBatch() { // a backlog left when a wait was cut short
		if err := h.flushOneLocked(ctx); err != nil || ctx.Err() != nil {
			return err
		}
	}
	return h.flushOneLocked(ctx)
}

// flushOneLocked posts up to MaxBatch queued events.
func (h *HTTPSink) flushOneLocked(ctx context.Context) error {
	if len(h.buf) == 0 {
		return h.takeUnseenLocked()
	}
	if h.Concurrency <= 1 {
		n := min(len(h.buf), h.maxBatch())
		h.inflight.Add(int64(n))
		return h.post(ctx, h.takeBatchLocked(n), n)
	}
	if h.sem == nil {
		h.sem = make(chan struct{}, h.Concurrency)
	}
	select {
	case h.sem <- struct{}{}:
	default:
		start := time.Now()
		select {
		case h.sem <- struct{}{}:
			h.blocked.Add(int64(time.Since(start)))
		case <-ctx.Done():
			// The batch stays queued; the next Flush (the simulator's last, on a context of
			// its own) posts it.
			h.blocked.Add(int64(time.Since(start)))
			return nil
		}
	}
	n := min(len(h.buf), h.maxBatch())
	h.inflight.Add(int64(n))
	body := h.takeBatchLocked(n)
	h.posts.Add(1)
	// The POST outlives the burst that filled it: it ends with its own timeout (the
	// client's), not with the caller's context.
	go func() {
		defer h.posts.Done()
		defer func() { <-h.sem }()
		if err := h.post(context.WithoutCancel(ctx), body, n); err != nil {
			h.mu.Lock()
			h.unseen = err
			h.mu.Unlock()
		}
	}()
	return h.takeUnseenLocked()
}

// takeBatchLocked takes the first n queued events as a JSON batch.
func (h *HTTPSink) takeBatchLocked(n int) []byte {
	body := make([]byte, 0, n*512)
	body = append(body, '[')
	for i, v := range h.buf[:n] {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, v...)
	}
	body = append(body, ']')
	rest := copy(h.buf, h.buf[n:])
	clear(h.buf[rest:])
	h.buf = h.buf[:rest]
	return body
}

// post sends one batch and counts its outcome.
func (h *HTTPSink) post(ctx context.Context, body []byte, n int) (err error) {
	defer func() {
		h.inflight.Add(-int64(n))
		if err != nil {
			h.failed.Add(int64(n))
			if h.Concurrency > 1 {
				h.mu.Lock()
				h.lastErr = err.Error()
				h.mu.Unlock()
			} else {
				h.lastErr = err.Error() // the caller holds h.mu
			}
			return
		}
		h.acked.Add(int64(n))
	}()
	url := strings.TrimRight(h.URL, "/") + "/api/v1/events"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("post %d events: %w", n, err)
	}
	req.Header.Set("Content-Type", ContentTypeBatch)
	if h.Token != "" {
		req.Header.Set("Authorization", "Bearer "+h.Token)
	}
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("post %d events: %w", n, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post %d events to %s: %s: %s", n, url, resp.Status, bytes.TrimSpace(snippet))
	}
	return nil
}
