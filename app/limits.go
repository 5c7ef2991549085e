package app

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/urbanbrain/urbanbrain/auth"
)

// The HTTP server's limits: timeouts, body size, per-token request rates, and the cockpit's
// connection and subscription limits (docs/operations.md, "Limits"). They exist so that one
// client — a slow one, an idle one, a greedy token — cannot hold the server's file
// descriptors, memory or subscription table against everyone else.

// HTTPLimits is the part of Config that bounds what clients may hold.
type HTTPLimits struct {
	HTTPReadHeaderTimeout time.Duration // request line and headers
	HTTPReadTimeout       time.Duration // the whole request, body included
	HTTPWriteTimeout      time.Duration // from the end of the request headers to the end of the answer; not websockets
	HTTPIdleTimeout       time.Duration // a keep-alive connection waiting for its next request
	HTTPMaxBody           int64         // bytes of any request body; routes have their own smaller limits

	RateLimit       float64 // requests per second per token subject (all roles but ingest)
	RateBurst       int
	RateLimitIngest float64 // requests per second per ingest token (producers post in bulk)
	RateBurstIngest int

	MetricsTokenRequired bool // /metrics needs a token that may read incidents

	CockpitMaxConnections     int
	CockpitMaxSubscriptions   int
	CockpitTokenConnections   int
	CockpitTokenSubscriptions int
	CockpitReservedShare      float64
	CockpitHistoryBudget      int
	CockpitSendBuffer         int
}

func (c *Config) registerLimitFlags(fs *flag.FlagSet) {
	l := &c.HTTPLimits
	fs.DurationVar(&l.HTTPReadHeaderTimeout, "http-read-header-timeout", 10*time.Second, "longest a client may take to send a request's line and headers")
	fs.DurationVar(&l.HTTPReadTimeout, "http-read-timeout", 30*time.Second, "longest a client may take to send a whole request, body included (a slow body is cut off)")
	fs.DurationVar(&l.HTTPWriteTimeout, "http-write-timeout", time.Minute, "longest an answer may take, from the end of the request headers; must exceed --command-timeout; websockets are exempt")
	fs.DurationVar(&l.HTTPIdleTimeout, "http-idle-timeout", time.Minute, "how long a keep-alive connection may wait for its next request")
	fs.Int64Var(&l.HTTPMaxBody, "http-max-body", 8<<20, "bytes of any request body, at most (each route also has its own, smaller limit)")
	fs.Float64Var(&l.RateLimit, "rate-limit", 20, "API requests per second per token subject (every role but ingest); 0 turns rate limiting off")
	fs.IntVar(&l.RateBurst, "rate-burst", 40, "requests a token subject may make at once above --rate-limit")
	fs.Float64Var(&l.RateLimitIngest, "rate-limit-ingest", 200, "requests per second per ingest token (producers); 0 turns it off")
	fs.IntVar(&l.RateBurstIngest, "rate-burst-ingest", 400, "requests an ingest token may make at once above --rate-limit-ingest")
	fs.BoolVar(&l.MetricsTokenRequired, "metrics-token-required", false, "/metrics answers only requests with a token that may read incidents")
	fs.IntVar(&l.CockpitMaxConnections, "cockpit-max-connections", 8192, "open cockpit and worker websockets, at most")
	fs.IntVar(&l.CockpitMaxSubscriptions, "cockpit-max-subscriptions", 4096, "distinct cockpit subscriptions (scope, filter, view) held at once, idle ones included")
	fs.IntVar(&l.CockpitTokenConnections, "cockpit-token-connections", 16, "websockets one token subject may hold at once")
	fs.IntVar(&l.CockpitTokenSubscriptions, "cockpit-token-subscriptions", 8, "distinct subscriptions one token subject may have made and the hub still holds")
	fs.Float64Var(&l.CockpitReservedShare, "cockpit-reserved-share", 0.25, "share of the cockpit's connections and subscriptions only admin, supervisor and operator may use")
	fs.IntVar(&l.CockpitHistoryBudget, "cockpit-history-budget", 256<<20, "bytes of delta frames all cockpit subscriptions together keep for resuming")
	fs.IntVar(&l.CockpitSendBuffer, "cockpit-send-buffer", 256<<10, "kernel send buffer of each websocket, bytes (-1: the kernel's autotuning)")
}

func (c *Config) validateLimits() []error {
	l := c.HTTPLimits
	var errs []error
	if l.HTTPReadHeaderTimeout <= 0 || l.HTTPReadTimeout <= 0 || l.HTTPWriteTimeout <= 0 || l.HTTPIdleTimeout <= 0 {
		errs = append(errs, errors.New("--http-read-header-timeout, --http-read-timeout, --http-write-timeout and --http-idle-timeout must be positive"))
	}
	if l.HTTPWriteTimeout > 0 && l.HTTPWriteTimeout <= c.CommandTimeout {
		errs = append(errs, fmt.Errorf("--http-write-timeout %v must exceed --command-timeout %v, or commands' answers would be cut off", l.HTTPWriteTimeout, c.CommandTimeout))
	}
	if l.HTTPMaxBody < 1<<20 {
		errs = append(errs, fmt.Errorf("--http-max-body %d: want at least 1 MiB (ingest batches and rule dry runs need it)", l.HTTPMaxBody))
	}
	if l.RateLimit < 0 || l.RateLimitIngest < 0 || (l.RateLimit > 0 && l.RateBurst < 1) || (l.RateLimitIngest > 0 && l.RateBurstIngest < 1) {
		errs = append(errs, errors.New("--rate-limit and --rate-limit-ingest must not be negative, and their bursts must be at least 1"))
	}
	if l.CockpitMaxConnections < 1 || l.CockpitMaxSubscriptions < 1 || l.CockpitTokenConnections < 1 || l.CockpitTokenSubscriptions < 1 || l.CockpitHistoryBudget < 1 {
		errs = append(errs, errors.New("--cockpit-max-connections, --cockpit-max-subscriptions, --cockpit-token-connections, --cockpit-token-subscriptions and --cockpit-history-budget must be positive"))
	}
	if l.CockpitReservedShare < 0 || l.CockpitReservedShare >= 1 {
		errs = append(errs, fmt.Errorf("--cockpit-reserved-share %v: want 0 ≤ share < 1", l.CockpitReservedShare))
	}
	return errs
}

// newHTTPServer is the API's server: every timeout set, every body bounded, every
// authenticated request charged to its token's rate. Websockets clear the read and write
// deadlines for themselves once upgraded (cockpit-ws), since they live for hours.
func (a *App) newHTTPServer() *http.Server {
	l := a.cfg.HTTPLimits
	limiter := newRateLimiter(l)
	a.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "urbanbrain_http_rate_limited_total", Help: "API requests answered 429 because their token's subject was over its rate.",
	}, func() float64 { return float64(limiter.refused()) }))
	return &http.Server{
		Handler:           auth.WithSessions(a.accounts.sessions, auth.WithLimiter(limiter, a.guardHTTP(a.httpHandler()))),
		ReadHeaderTimeout: l.HTTPReadHeaderTimeout,
		ReadTimeout:       l.HTTPReadTimeout,
		WriteTimeout:      l.HTTPWriteTimeout,
		IdleTimeout:       l.HTTPIdleTimeout,
		MaxHeaderBytes:    64 << 10, // a token is a few hundred bytes; nothing legitimate needs Go's 1 MiB
	}
}

// guardHTTP bounds every request body (a backstop: each route has its own, smaller limit).
// With --metrics-token-required, /metrics is declared behind a token in httpRoutes.
func (a *App) guardHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, a.cfg.HTTPMaxBody)
		}
		next.ServeHTTP(w, r)
	})
}

// rateLimiter is a token bucket per token subject (auth.Claims.Key: role and subject), the
// ingest role with its own, larger budget. Buckets not used for idleForget are forgotten:
// by then they are full again, so forgetting changes nothing.
type rateLimiter struct {
	every, everyIngest rate.Limit
	burst, burstIngest int
	now                func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
	denied    uint64
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

const idleForget = 10 * time.Minute

func newRateLimiter(l HTTPLimits) *rateLimiter {
	return &rateLimiter{
		every: rate.Limit(l.RateLimit), burst: l.RateBurst,
		everyIngest: rate.Limit(l.RateLimitIngest), burstIngest: l.RateBurstIngest,
		now: time.Now, buckets: make(map[string]*bucket),
	}
}

// Allow charges one request to c's bucket (auth.Limiter).
func (l *rateLimiter) Allow(c auth.Claims) (bool, time.Duration) {
	every, burst := l.every, l.burst
	if c.Role == auth.RoleIngest {
		every, burst = l.everyIngest, l.burstIngest
	}
	if every == 0 {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > time.Minute {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > idleForget {
				delete(l.buckets, k)
			}
		}
		l.lastSweep = now
	}
	b := l.buckets[c.Key()]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(every, burst)}
		l.buckets[c.Key()] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if wait := r.DelayFrom(now); !r.OK() || wait > 0 {
		r.CancelAt(now)
		l.denied++
		return false, max(wait, time.Second)
	}
	return true, 0
}

func (l *rateLimiter) refused() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.denied
}
