package simulate

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// ContentTypeBatch is the CloudEvents JSON batch format (a JSON array of structured events).
const ContentTypeBatch = "application/cloudevents-batch+json"

// HTTPSink posts events in batches to urbanbrain's ingest API, URL + "/api/v1/events", with
// the token as a bearer token. Send buffers; a batch goes out when MaxBatch events are
// waiting or on Flush (the simulator flushes after every burst). A failed batch is dropped and
// its error returned: a load generator reports loss, it does not queue without bound. The
// topic and key are not sent: the API derives both from each event. Use it as a pointer.
type HTTPSink struct {
	URL      string       // base URL of the API, e.g. http://127.0.0.1:8080
	Token    string       // bearer token with the ingest role
	Client   *http.Client // default http.DefaultClient
	MaxBatch int          // default 100

	mu  sync.Mutex
	buf [][]byte
}

// Send queues one event and posts the batch when it is full.
func (h *HTTPSink) Send(ctx context.Context, _ string, _ string, value []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf = append(h.buf, value)
	if len(h.buf) >= h.maxBatch() {
		return h.flushLocked(ctx)
	}
	return nil
}

// Flush posts whatever is queued.
func (h *HTTPSink) Flush(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.flushLocked(ctx)
}

func (h *HTTPSink) maxBatch() int {
	if h.MaxBatch > 0 {
		return h.MaxBatch
	}
	return 100
}

func (h *HTTPSink) flushLocked(ctx context.Context) error {
	if len(h.buf) == 0 {
		return nil
	}
	n := len(h.buf)
	body := make([]byte, 0, n*512)
	body = append(body, '[')
	for i, v := range h.buf {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, v...)
	}
	body = append(body, ']')
	clear(h.buf)
	h.buf = h.buf[:0]

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
