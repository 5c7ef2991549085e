package cockpit

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config tunes the hub. Zero values take the defaults.
type Config struct {
	// QueueSize is how many frames may wait for one connection; when full the client is
	// dropped as too slow. Default 256.
	QueueSize int
	// WriteTimeout bounds every write to a client. Default 5s.
	WriteTimeout time.Duration
	// PingInterval is how often the server pings; a client silent for two intervals is
	// considered gone. Default 20s.
	PingInterval time.Duration
	// ReadLimit is the largest message a client may send. Default 64 KiB.
	ReadLimit int64
	// AllowedOrigins lists the browser origins ("https://wall.example.gov.cn") that may open
	// the websocket; "*" allows any. Empty means the same host as the request only. A
	// handshake without an Origin header (not a browser) is always allowed: the token is
	// what protects the feed.
	AllowedOrigins []string
	// HistorySize is how many recent deltas are kept for resuming clients. Default 1024.
	HistorySize int
	// TombstoneSize is how many closed incidents are remembered so that a redelivered older
	// version cannot bring them back. Default 65536.
	TombstoneSize int
}

func (c *Config) setDefaults() {
	if c.QueueSize == 0 {
		c.QueueSize = 256
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 5 * time.Second
	}
	if c.PingInterval == 0 {
		c.PingInterval = 20 * time.Second
	}
	if c.ReadLimit == 0 {
		c.ReadLimit = 64 << 10
	}
	if c.HistorySize == 0 {
		c.HistorySize = 1024
	}
	if c.TombstoneSize == 0 {
		c.TombstoneSize = 65536
	}
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.QueueSize < 1 {
		errs = append(errs, fmt.Errorf("queue size %d must be at least 1", c.QueueSize))
	}
	if c.WriteTimeout <= 0 {
		errs = append(errs, fmt.Errorf("write timeout %v must be positive", c.WriteTimeout))
	}
	if c.PingInterval <= 0 {
		errs = append(errs, fmt.Errorf("ping interval %v must be positive", c.PingInterval))
	}
	if c.ReadLimit < 1 {
		errs = append(errs, fmt.Errorf("read limit %d must be positive", c.ReadLimit))
	}
	if c.HistorySize < 1 {
		errs = append(errs, fmt.Errorf("history size %d must be positive", c.HistorySize))
	}
	if c.TombstoneSize < 1 {
		errs = append(errs, fmt.Errorf("tombstone size %d must be positive", c.TombstoneSize))
	}
	for _, o := range c.AllowedOrigins {
		if _, err := normalizeOrigin(o); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// normalizeOrigin turns an allowed origin into the form compared with the Origin header:
// lower-case scheme://host[:port].
func normalizeOrigin(o string) (string, error) {
	if o == "*" {
		return o, nil
	}
	u, err := url.Parse(strings.TrimSuffix(o, "/"))
	if err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("allowed origin %q: want scheme://host[:port] or *", o)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}
