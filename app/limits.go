package app

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// The HTTP server's limits: timeouts, body size, per-token request rates, and the cockpit's
// connection and subscription limits (docs/operations.md, "Limits"). They exist so that one
// client — a slow one, an idle one, a greedy token — cannot hold the server's file
// descriptors, memory or subscription table against everyone else. Here are the flags; the
// server that applies the HTTP ones is package api's (api/limits.go), the cockpit's hub applies
// its own (cockpit.go).

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
