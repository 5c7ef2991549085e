package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
)

// Media types of POST /api/v1/events.
const (
	MediaCloudEvent = "application/cloudevents+json"       // one structured event
	MediaBatch      = "application/cloudevents-batch+json" // a JSON array of structured events
	MediaJSON       = "application/json"                   // one structured event, or binary mode with ce-* headers
)

// OriginHTTP is the dead letter's Topic for input that came over HTTP.
const OriginHTTP = "http"

// ServeHTTP is POST /api/v1/events (the caller wraps it with authentication).
//
// One event (application/cloudevents+json or application/json, or binary mode: ce-* headers
// and the data as the body): 202 {"id","status"} with status "accepted" or "duplicate"; a
// rejected event gets {"code","error"} with 400 (malformed), 413 (too large), 415 (media
// type) or 422 (invalid).
//
// A batch (application/cloudevents-batch+json): every item is handled on its own, and the
// answer is {"accepted","duplicates","rejected","results":[{"index","id","status","code",
// "reason"}]} with 200 when nothing was rejected (the results are the answer; a single
// event's 202 says only that it is queued), 422 when everything was, 207 when mixed.
//
// Every rejection is also dead-lettered (Topic "http"), so nothing is lost when a caller
// ignores its answer. The answer comes once the broker has acknowledged the request's events
// and dead letters, all written together. If that write fails the answer is 503 and the
// caller should retry the whole request: none of it is remembered as seen, and whatever did
// reach the broker is dropped downstream by its id.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Code: "method_not_allowed", Error: "use POST"})
		return
	}
	headers := keptHeaders(r.Header)
	in := input{origin: OriginHTTP, headers: headers}
	attrs, binary := binaryAttributes(headers, '-')
	mt, _, mtErr := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case mtErr == nil && mt == MediaBatch:
		s.serveBatch(w, r, in)
		return
	case binary:
		in.attrs = &attrs // the data's content type is checked with the event
	case mtErr == nil && (mt == MediaCloudEvent || mt == MediaJSON):
	default:
		in.value, _ = s.readBody(w, r, s.cfg.MaxEventBytes)
		s.refuse(r.Context(), w, in, unsupportedContentType(r.Header.Get("Content-Type")))
		return
	}

	var rej *RejectError
	if in.value, rej = s.readBody(w, r, s.cfg.MaxEventBytes); rej != nil {
		s.refuse(r.Context(), w, in, rej)
		return
	}
	res, out := s.ingest(in)
	if out.Data != nil {
		if err := s.write(r.Context(), event.Outputs{out}); err != nil {
			s.unavailable(w, err)
			return
		}
	}
	s.count(res)
	switch {
	case res.rej != nil:
		writeJSON(w, res.rej.Class.HTTPStatus(), errorBody{Code: res.Code, Error: res.Reason})
	default:
		writeJSON(w, http.StatusAccepted, struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}{res.ID, res.Status})
	}
}

// unsupportedContentType is the 415 of a request whose Content-Type ingest does not read: it
// names every type that is accepted and what each carries, so the producer can pick one.
func unsupportedContentType(ct string) *RejectError {
	got := "no Content-Type"
	if ct != "" {
		got = fmt.Sprintf("unsupported Content-Type %q", clip(ct))
	}
	return reject(ClassMediaType, "%s: send one event as %s or %s (a structured CloudEvent; or binary mode: "+
		"ce-* headers with the data as the body), or a batch as %s (a JSON array of structured CloudEvents)",
		got, MediaCloudEvent, MediaJSON, MediaBatch)
}

// batchBody is the answer to a batch.
type batchBody struct {
	Accepted   int      `json:"accepted"`
	Duplicates int      `json:"duplicates"`
	Rejected   int      `json:"rejected"`
	Results    []result `json:"results"`
}

func (s *Service) serveBatch(w http.ResponseWriter, r *http.Request, in input) {
	var rej *RejectError
	if in.value, rej = s.readBody(w, r, s.cfg.MaxBatchBytes); rej != nil {
		s.refuse(r.Context(), w, in, rej)
		return
	}
	// Syntax is checked for the whole body; UTF-8, nesting and everything else per item, so
	// one bad item does not sink the others. encoding/json keeps the raw bytes of each item.
	var items []json.RawMessage
	if err := json.Unmarshal(in.value, &items); err != nil {
		s.refuse(r.Context(), w, in, jsonReject(err, "array"))
		return
	}
	switch {
	case len(items) == 0:
		s.refuse(r.Context(), w, in, reject(ClassMalformed, "empty batch: want a JSON array of CloudEvents"))
		return
	case len(items) > s.cfg.MaxBatchItems:
		s.refuse(r.Context(), w, in, reject(ClassTooLarge, "batch of %d events, limit %d", len(items), s.cfg.MaxBatchItems))
		return
	}
	// One write for the whole batch: the answer waits for one acknowledgement, not one per
	// item, and a failure leaves none of it counted or remembered.
	body := batchBody{Results: make([]result, 0, len(items))}
	outs := make(event.Outputs, 0, len(items))
	for i, raw := range items {
		item := in
		item.value = raw
		res, out := s.ingest(item)
		if out.Data != nil {
			outs = append(outs, out)
		}
		res.Index = i
		body.Results = append(body.Results, res)
	}
	if len(outs) > 0 {
		if err := s.write(r.Context(), outs); err != nil {
			s.unavailable(w, err)
			return
		}
	}
	for _, res := range body.Results {
		s.count(res)
		switch res.Status {
		case OutcomeAccepted:
			body.Accepted++
		case OutcomeDuplicate:
			body.Duplicates++
		default:
			body.Rejected++
		}
	}
	status := http.StatusOK
	switch {
	case body.Rejected == len(items):
		status = http.StatusUnprocessableEntity
	case body.Rejected > 0:
		status = http.StatusMultiStatus
	}
	writeJSON(w, status, body)
}

// readBody reads at most limit bytes. On a body over the limit it returns what it read, for
// the dead letter.
func (s *Service) readBody(w http.ResponseWriter, r *http.Request, limit int) ([]byte, *RejectError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return body, reject(ClassTooLarge, "payload too large: body over the %d-byte limit", limit)
	case err != nil:
		return body, reject(ClassMalformed, "cannot read body: %v", err)
	}
	return body, nil
}

// refuse dead-letters a request rejected as a whole and answers it.
func (s *Service) refuse(ctx context.Context, w http.ResponseWriter, in input, rej *RejectError) {
	if err := s.write(ctx, event.Outputs{s.deadLetter(in, rej, s.cfg.Now())}); err != nil {
		s.unavailable(w, err)
		return
	}
	s.counts.reject(TypeUnknown, rej.Class)
	writeJSON(w, rej.Class.HTTPStatus(), errorBody{Code: rej.Class.String(), Error: rej.Reason})
}

// write hands outputs to the sink and waits for the broker. On failure the events among
// them are forgotten as seen, so the caller's retry is not dropped as a replay.
func (s *Service) write(ctx context.Context, outs event.Outputs) error {
	if err := s.sink.Write(ctx, outs); err != nil {
		s.forget(outs)
		return fmt.Errorf("ingest: write %d records: %w", len(outs), err)
	}
	return nil
}

func (s *Service) unavailable(w http.ResponseWriter, err error) {
	s.log.Warn("ingest: write to the broker failed", zap.Error(err))
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusServiceUnavailable, errorBody{Code: "unavailable", Error: "cannot publish now, retry the request"})
}

// keptHeaders are the request headers a dead letter keeps: what says what the body is and
// who sent it, never credentials (Authorization, cookies).
func keptHeaders(h http.Header) map[string]string {
	kept := make(map[string]string)
	for k, v := range h {
		if len(v) == 0 {
			continue
		}
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "ce-") || lk == "content-type" || lk == "user-agent" || lk == "x-request-id" {
			kept[lk] = v[0]
		}
	}
	return kept
}

type errorBody struct {
	Code  string `json:"code"`
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body) // the client went away; nothing left to tell it
}
