// Package webhook notifies agencies (水务, 燃气, 城管, ...) of the incidents dispatched to them:
// every city.dispatch record whose agency has a webhook is POSTed to it as a CloudEvent,
// signed with HMAC-SHA256 under the agency's own secret, retried with exponential backoff,
// and every attempt is written to the audit log (city.audit).
//
// It must never become a way into the city's own network (SSRF): the address a request
// actually dials is checked when the connection is made — after DNS, so a name that
// re-resolves to an inner address (DNS rebinding) is refused too — against a table of the
// IANA special-purpose address registries (specialPurpose): loopback and private ranges are
// refused unless explicitly allowed, everything else in the registries (link-local and cloud
// metadata, benchmarking, documentation, reserved, NAT64, 6to4, Teredo, site-local, ...)
// always; redirects dial through the same check.
//
// One agency's failures must never delay another's notifications: each agency has its own
// queue and workers, every attempt its own timeout, and a full queue is recorded as a failed
// delivery of that agency rather than held against the shared city.dispatch stream. It never imports the transport and never
// chooses a topic: deliveries run in the background, after the city.dispatch record that
// caused them is handled and committed, so their audit records go out through an Emitter as
// typed outputs (event.AuditRecord), which the composition root routes.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
)

// Headers of a notification. The signature is "sha256=" and the lower-case hex HMAC-SHA256
// of the raw request body under the agency's secret; receivers must compare it in constant
// time and may drop a delivery id they have seen (retries repeat it).
const (
	HeaderSignature = "X-Urbanbrain-Signature"
	HeaderDelivery  = "X-Urbanbrain-Delivery"
	HeaderAttempt   = "X-Urbanbrain-Attempt"
)

// Sign is the signature header value of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether sig is body's signature under secret (constant time).
func Verify(secret, body []byte, sig string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(sig))
}

// Target is where one agency is notified.
type Target struct {
	URL    string
	Secret string
}

// Emitter writes outputs produced outside a handler call — the audit record of each delivery
// attempt — wherever the composition root routes their payload type.
type Emitter interface {
	Emit(ctx context.Context, outs event.Outputs) error
}

// Config configures a Notifier.
type Config struct {
	Targets map[string]Target // by agency code; agencies without one are not notified

	Timeout     time.Duration // per attempt, default 10s
	MaxAttempts int           // default 6
	Backoff     time.Duration // before the second attempt, doubling each time; default 1s
	MaxBackoff  time.Duration // default 5m
	MaxRedirect int           // default 3; each hop is checked like the first
	Queue       int           // notifications waiting for delivery, per agency, default 1000
	Workers     int           // concurrent deliveries per agency, default 2

	// AllowLoopback and AllowPrivate open the SSRF guard for 127.0.0.0/8 and ::1, and for the
	// private and carrier-grade NAT ranges, for deployments whose agencies sit on an inner
	// network (and for tests against a local receiver). Link-local and metadata addresses are
	// never allowed.
	AllowLoopback bool
	AllowPrivate  bool

	Now   func() time.Time                                 // default time.Now
	Sleep func(ctx context.Context, d time.Duration) error // default a timer; tests shorten it

	// Tracer makes the span of each delivery, a child of the trace of the dispatch record
	// that caused it; nil makes none. Either way every request carries the trace in its
	// traceparent header (W3C Trace Context), so the agency can continue it.
	Tracer trace.Tracer
}

func (c *Config) setDefaults() {
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 6
	}
	if c.Backoff == 0 {
		c.Backoff = time.Second
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 5 * time.Minute
	}
	if c.MaxRedirect == 0 {
		c.MaxRedirect = 3
	}
	if c.Queue == 0 {
		c.Queue = 1000
	}
	if c.Workers == 0 {
		c.Workers = 2
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Sleep == nil {
		c.Sleep = sleep
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	for agency, t := range c.Targets {
		u, err := url.Parse(t.URL)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("webhook %s: %w", agency, err))
		case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
			errs = append(errs, fmt.Errorf("webhook %s: %q: want an http(s) URL", agency, t.URL))
		case u.User != nil:
			errs = append(errs, fmt.Errorf("webhook %s: credentials in the URL are not allowed; the signature authenticates", agency))
		}
		if len(t.Secret) < 16 {
			errs = append(errs, fmt.Errorf("webhook %s: secret must be at least 16 characters", agency))
		}
	}
	if c.MaxAttempts < 1 || c.Workers < 1 || c.Queue < 1 || c.Timeout <= 0 || c.Backoff <= 0 {
		errs = append(errs, errors.New("webhook: attempts, workers, queue, timeout and backoff must be positive"))
	}
	return errors.Join(errs...)
}

// Notifier delivers agency notifications.
type Notifier struct {
	cfg    Config
	emit   Emitter
	log    *zap.Logger
	client *http.Client
	queues map[string]chan delivery // by agency: a slow agency fills only its own

	stats struct {
		queued, delivered, failed, attempts, refused atomic.Uint64
	}
}

type delivery struct {
	id       string // the dispatch id: the same for every attempt
	agency   string // the target: an agency code, or another receiver's name (Push)
	ctype    string // the body's media type; empty: a CloudEvent
	incident string
	key      string
	body     []byte
	trace    trace.SpanContext // of the dispatch record's handling, which the delivery continues
}

// New returns a Notifier that records its attempts through emit; Run must be running for
// queued notifications to go out.
func New(cfg Config, emit Emitter, log *zap.Logger) (*Notifier, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if emit == nil {
		return nil, errors.New("webhook: nil Emitter")
	}
	if log == nil {
		log = zap.NewNop()
	}
	n := &Notifier{cfg: cfg, emit: emit, log: log, queues: make(map[string]chan delivery, len(cfg.Targets))}
	for agency := range cfg.Targets {
		n.queues[agency] = make(chan delivery, cfg.Queue)
	}
	n.client = n.newClient()
	return n, nil
}

// ErrRefusedAddress is a target that resolves to an address the SSRF guard refuses.
var ErrRefusedAddress = errors.New("webhook: target address refused")

func (n *Notifier) newClient() *http.Client {
	dialer := &net.Dialer{Timeout: n.cfg.Timeout, Control: n.control}
	tr := &http.Transport{
		Proxy:                 nil, // a proxy would dial for us, past the guard
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   n.cfg.Timeout,
		ResponseHeaderTimeout: n.cfg.Timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   n.cfg.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > n.cfg.MaxRedirect {
				return fmt.Errorf("webhook: more than %d redirects", n.cfg.MaxRedirect)
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("%w: redirect to scheme %q", ErrRefusedAddress, req.URL.Scheme)
			}
			// The new host is dialled through control like the first one.
			return nil
		},
	}
}

// control runs for every connection the client makes, with the address about to be dialled:
// DNS has been resolved, so this is the address that matters.
func (n *Notifier) control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrRefusedAddress, address)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrRefusedAddress, address)
	}
	if why := n.refuse(ip.Unmap()); why != "" {
		n.stats.refused.Add(1)
		return fmt.Errorf("%w: %s is %s", ErrRefusedAddress, ip, why)
	}
	return nil
}

// guardClass is what may open a refused range.
type guardClass int

const (
	never    guardClass = iota // no configuration opens it
	loopback                   // Config.AllowLoopback
	private                    // Config.AllowPrivate
)

// specialPurpose is the SSRF guard's table: the IANA IPv4 and IPv6 Special-Purpose Address
// Registries (RFC 6890 and its updates), plus multicast and the deprecated ranges that
// still route somewhere unexpected. An address in any row is refused unless its class is
// opened. Rows that the registries call globally reachable (AS112, AMT, anycast relays) are
// refused too: no agency's webhook lives there. IPv4-mapped IPv6 addresses are unmapped
// before the check; NAT64, 6to4 and Teredo carry an IPv4 address inside and are refused
// whole, since the embedded address could be an inner one.
var specialPurpose = []struct {
	prefix netip.Prefix
	why    string
	class  guardClass
}{
	// Loopback first, so that ::1 is not taken for the IPv4-compatible row below.
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback", loopback},
	{netip.MustParsePrefix("::1/128"), "loopback", loopback},
	// Private networks.
	{netip.MustParsePrefix("10.0.0.0/8"), "private", private},
	{netip.MustParsePrefix("172.16.0.0/12"), "private", private},
	{netip.MustParsePrefix("192.168.0.0/16"), "private", private},
	{netip.MustParsePrefix("100.64.0.0/10"), "private (carrier-grade NAT; Alibaba Cloud's metadata is 100.100.100.200)", private},
	{netip.MustParsePrefix("fc00::/7"), "private (unique local)", private},
	// IPv4 special purpose.
	{netip.MustParsePrefix("0.0.0.0/8"), "not a host address (this network)", never},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (cloud metadata lives here)", never},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments", never},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation (TEST-NET-1)", never},
	{netip.MustParsePrefix("192.31.196.0/24"), "AS112", never},
	{netip.MustParsePrefix("192.52.193.0/24"), "AMT", never},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay anycast (deprecated)", never},
	{netip.MustParsePrefix("192.175.48.0/24"), "AS112 direct delegation", never},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking", never},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation (TEST-NET-2)", never},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation (TEST-NET-3)", never},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast", never},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (and broadcast)", never},
	// IPv6 special purpose.
	{netip.MustParsePrefix("::/128"), "not a host address (unspecified)", never},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible (deprecated)", never},
	{netip.MustParsePrefix("::ffff:0:0/96"), "IPv4-mapped", never},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64 (IPv4 inside)", never},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64, local use (IPv4 inside)", never},
	{netip.MustParsePrefix("100::/64"), "discard-only", never},
	{netip.MustParsePrefix("100:0:0:1::/64"), "dummy prefix", never},
	{netip.MustParsePrefix("2001::/23"), "IETF protocol assignments (Teredo, benchmarking, ORCHID, ...)", never},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation", never},
	{netip.MustParsePrefix("2002::/16"), "6to4 (IPv4 inside)", never},
	{netip.MustParsePrefix("2620:4f:8000::/48"), "AS112 direct delegation", never},
	{netip.MustParsePrefix("3fff::/20"), "documentation", never},
	{netip.MustParsePrefix("5f00::/16"), "segment routing (SRv6) SIDs", never},
	{netip.MustParsePrefix("fe80::/10"), "link-local (cloud metadata lives here)", never},
	{netip.MustParsePrefix("fec0::/10"), "site-local (deprecated)", never},
	{netip.MustParsePrefix("ff00::/8"), "multicast", never},
}

// refuse says why ip may not be dialled, or "" if it may. ip must be unmapped.
func (n *Notifier) refuse(ip netip.Addr) string {
	for _, r := range specialPurpose {
		if !r.prefix.Contains(ip) {
			continue
		}
		if r.class == loopback && n.cfg.AllowLoopback || r.class == private && n.cfg.AllowPrivate {
			return ""
		}
		return r.why
	}
	return ""
}

// HandleDispatch is the city.dispatch handler: it queues a notification for the dispatch's
// agency, if the agency has a webhook. It produces nothing itself: the attempts are made and
// recorded (through the Emitter) by Run's workers. When the agency's own queue is full (it has
// been failing for long), the notification is recorded as failed — audited, counted — rather
// than returned as an error: an error would hold the city.dispatch stream, and with it every
// other agency's notifications, behind the one that fails.
func (n *Notifier) HandleDispatch(ctx context.Context, d event.Dispatch) error {
	agency := d.Assignment.Agency
	if _, ok := n.cfg.Targets[agency]; !ok || agency == "" {
		return nil
	}
	body, err := event.EncodeTraced(event.TypeDispatch, d.ID, d.At, traceParent(ctx), d)
	if err != nil {
		return err
	}
	return n.enqueue(ctx, delivery{id: d.ID, agency: agency, incident: d.IncidentID, key: streetKey(d.IncidentID), body: body,
		trace: trace.SpanContextFromContext(ctx)})
}

// Push queues body (of media type ctype) for target, a receiver of Config.Targets other than an
// agency's dispatches — a CAP alert for a subscriber — delivered like a dispatch: signed,
// retried, audited, its id (the same on every attempt and every redelivery) in HeaderDelivery.
func (n *Notifier) Push(ctx context.Context, target, id, incident string, body []byte, ctype string) error {
	if _, ok := n.cfg.Targets[target]; !ok {
		return fmt.Errorf("webhook: no target %q", target)
	}
	return n.enqueue(ctx, delivery{id: id, agency: target, ctype: ctype, incident: incident, key: streetKey(incident), body: body,
		trace: trace.SpanContextFromContext(ctx)})
}

// enqueue puts dl on its target's queue; a full queue records the delivery as failed.
func (n *Notifier) enqueue(ctx context.Context, dl delivery) error {
	agency := dl.agency
	q := n.queues[agency]
	select {
	case q <- dl:
		n.stats.queued.Add(1)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	default:
		err := fmt.Errorf("webhook %s: queue of %d notifications is full; not delivered", agency, cap(q))
		n.stats.failed.Add(1)
		n.record(ctx, dl, 0, 0, err)
		n.log.Warn("agency notification dropped", zap.String("agency", agency), zap.String("delivery", dl.id), zap.Error(err), zap.String("trace_id", event.TraceID(ctx)))
		return nil
	}
}

func streetKey(incidentID string) string {
	if s := event.IncidentStreet(incidentID); s != "" {
		return s
	}
	return event.UnknownStreet
}

// Run delivers queued notifications with cfg.Workers workers per agency until ctx ends.
func (n *Notifier) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, q := range n.queues {
		for range n.cfg.Workers {
			wg.Go(func() {
				for {
					select {
					case <-ctx.Done():
						return
					case dl := <-q:
						_ = n.deliver(ctx, dl)
					}
				}
			})
		}
	}
	wg.Wait()
	return nil
}

// Notify delivers one dispatch to its agency now, retrying as configured, and returns the
// last error if every attempt failed.
func (n *Notifier) Notify(ctx context.Context, d event.Dispatch) error {
	if _, ok := n.cfg.Targets[d.Assignment.Agency]; !ok {
		return fmt.Errorf("webhook: agency %q has no webhook", d.Assignment.Agency)
	}
	body, err := event.EncodeTraced(event.TypeDispatch, d.ID, d.At, traceParent(ctx), d)
	if err != nil {
		return err
	}
	return n.deliver(ctx, delivery{id: d.ID, agency: d.Assignment.Agency, incident: d.IncidentID, key: streetKey(d.IncidentID), body: body,
		trace: trace.SpanContextFromContext(ctx)})
}

// permanent marks an outcome retrying cannot change.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

func (n *Notifier) deliver(ctx context.Context, dl delivery) (err error) {
	t := n.cfg.Targets[dl.agency]
	// The delivery runs on a worker, after the record that caused it was handled: its
	// context is the worker's, and the record's trace comes with the delivery.
	ctx = trace.ContextWithSpanContext(ctx, dl.trace)
	if n.cfg.Tracer != nil {
		var span trace.Span
		ctx, span = n.cfg.Tracer.Start(ctx, "notify "+dl.agency, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("urbanbrain.agency", dl.agency), attribute.String("urbanbrain.delivery", dl.id)))
		defer func() {
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}()
	}
	var last error
	for attempt := 1; attempt <= n.cfg.MaxAttempts; attempt++ {
		if attempt > 1 {
			if err := n.cfg.Sleep(ctx, n.backoff(attempt)); err != nil {
				return err
			}
		}
		status, err := n.attempt(ctx, t, dl, attempt)
		n.stats.attempts.Add(1)
		n.record(ctx, dl, attempt, status, err)
		if err == nil {
			n.stats.delivered.Add(1)
			return nil
		}
		last = err
		var p permanent
		if errors.As(err, &p) || ctx.Err() != nil {
			break
		}
	}
	n.stats.failed.Add(1)
	n.log.Warn("agency notification failed", zap.String("agency", dl.agency), zap.String("delivery", dl.id), zap.Error(last),
		zap.String("trace_id", event.TraceID(ctx)))
	return last
}

// backoff before attempt (2, 3, ...): Backoff doubling, capped, with up to 20 % jitter so
// retries of many notifications do not arrive together.
func (n *Notifier) backoff(attempt int) time.Duration {
	d := n.cfg.Backoff << (attempt - 2)
	if d > n.cfg.MaxBackoff || d <= 0 {
		d = n.cfg.MaxBackoff
	}
	return d + time.Duration(rand.Int64N(int64(d)/5+1))
}

func (n *Notifier) attempt(ctx context.Context, t Target, dl delivery, attempt int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout) // the whole attempt, body included
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(dl.body))
	if err != nil {
		return 0, permanent{err}
	}
	ctype := dl.ctype
	if ctype == "" {
		ctype = "application/cloudevents+json"
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("User-Agent", "urbanbrain-webhook/1")
	req.Header.Set(HeaderSignature, Sign([]byte(t.Secret), dl.body))
	req.Header.Set(HeaderDelivery, dl.id)
	req.Header.Set(HeaderAttempt, strconv.Itoa(attempt))
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := n.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrRefusedAddress) {
			return 0, permanent{err}
		}
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return resp.StatusCode, nil
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout:
		return resp.StatusCode, fmt.Errorf("webhook %s: %s", dl.agency, resp.Status)
	default:
		return resp.StatusCode, permanent{fmt.Errorf("webhook %s: %s", dl.agency, resp.Status)}
	}
}

// record writes one attempt to the audit log (an event.AuditRecord keyed by the incident's
// street); a failure to record is logged, not retried, so a broker hiccup never causes a
// second notification.
func (n *Notifier) record(ctx context.Context, dl delivery, attempt, status int, err error) {
	rec := event.AuditRecord{
		ID: fmt.Sprintf("notify:%s:%s:%d", dl.id, dl.agency, attempt), Kind: event.AuditNotify,
		IncidentID: dl.incident, Action: "notify", Actor: event.SystemActor, OK: err == nil,
		Attempt: attempt, Target: dl.agency, At: n.cfg.Now().UTC(),
	}
	if status != 0 {
		rec.Code = strconv.Itoa(status)
	}
	if err != nil {
		rec.Error = err.Error()
	}
	if eerr := n.emit.Emit(ctx, event.Outputs{{Key: dl.key, ID: rec.ID, Time: rec.At, Data: rec}}); eerr != nil {
		n.log.Warn("webhook attempt not recorded", zap.String("record", rec.ID), zap.Error(eerr), zap.String("trace_id", event.TraceID(ctx)))
	}
}

// Stats counts what the notifier has done.
type Stats struct {
	Queued, Delivered, Failed, Attempts, Refused uint64
}

// Stats returns a snapshot of the counters.
func (n *Notifier) Stats() Stats {
	return Stats{
		Queued: n.stats.queued.Load(), Delivered: n.stats.delivered.Load(), Failed: n.stats.failed.Load(),
		Attempts: n.stats.attempts.Load(), Refused: n.stats.refused.Load(),
	}
}

// traceParent is ctx's W3C traceparent, for the CloudEvents extension of the body.
func traceParent(ctx context.Context) string {
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"]
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
