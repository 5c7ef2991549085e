package api

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/urbanbrain/urbanbrain/auth"
)

// The HTTP server's limits: timeouts, body size and per-token request rates (docs/operations.md,
// "Limits"; the cockpit's connection and subscription limits are the hub's). They exist so
// that one client — a slow one, an idle one, a greedy token — cannot hold the server's file
// descriptors or memory against everyone else.

// HTTPServer is the API's server: every timeout set, every body bounded, every
// authenticated request charged to its token's rate. Websockets clear the read and write
// deadlines for themselves once upgraded (cockpit-ws), since they live for hours.
func (s *Server) HTTPServer() *http.Server {
	l := s.cfg
	limiter := newRateLimiter(l)
	s.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "urbanbrain_http_rate_limited_total", Help: "API requests answered 429 because their token's subject was over its rate.",
	}, func() float64 { return float64(limiter.refused()) }))
	return &http.Server{
		Handler:           auth.WithSessions(s.sessions, auth.WithLimiter(limiter, s.guardHTTP(s.Handler()))),
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    64 << 10, // a token is a few hundred bytes; nothing legitimate needs Go's 1 MiB
	}
}

// guardHTTP bounds every request body (a backstop: each route has its own, smaller limit).
// With --metrics-token-required, /metrics is declared behind a token in Routes.
func (s *Server) guardHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
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

func newRateLimiter(l Config) *rateLimiter {
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
