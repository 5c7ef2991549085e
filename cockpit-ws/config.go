package cockpit

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/urbanbrain/urbanbrain/city"
)

// CityMap is what the hub needs of the city: the grid layer for map frames and the category
// names for the wall screen's legend. *city.Map is one.
type CityMap interface {
	GridsGeoJSONIn(coordsys string) ([]byte, error)
	Categories() []city.Category
}

// Config tunes the hub. Zero values take the defaults.
type Config struct {
	// QueueSize is how many outgoing items may wait for one connection; when full the client
	// is dropped as too slow. With coalescing a connection gets a few frames a second, so
	// the default 256 is about a minute of frames. Default 256.
	QueueSize int
	// WriteTimeout bounds every write to a client; a client that stops reading is closed
	// when it expires. Default 5s.
	WriteTimeout time.Duration
	// PingInterval is how often the server pings; a client silent for two intervals is
	// considered gone. Default 20s.
	PingInterval time.Duration
	// ReadLimit is the largest message a client may send. Default 64 KiB.
	ReadLimit int64
	// SendBuffer is the kernel send buffer of each websocket (SO_SNDBUF). Left to itself
	// Linux grows it up to tcp_wmem's maximum (4 MiB), which a client that stops reading
	// fills at the pace of its frames before a write blocks and WriteTimeout can notice it:
	// half a minute at wall-screen rates, and 4 GiB of kernel memory for 1,000 stuck
	// screens. Default 256 KiB; -1 leaves the kernel's autotuning on.
	SendBuffer int
	// AllowedOrigins lists the browser origins ("https://wall.example.gov.cn") that may open
	// the websocket; "*" allows any. Empty means the same host as the request only. A
	// handshake without an Origin header (not a browser) is always allowed: the token is
	// what protects the feed.
	AllowedOrigins []string

	// FlushInterval is the coalescing tick: the changes of one tick reach a subscription as
	// one delta frame, the latest state of each incident winning. Default 250ms (4 frames a
	// second at most, however many changes arrive).
	FlushInterval time.Duration
	// KPIInterval is how often KPI frames are computed and sent. Default 1s.
	KPIInterval time.Duration
	// HistorySize and HistoryBytes bound the delta frames each subscription keeps for
	// clients that resume after a reconnect; the older frame goes first when either is
	// exceeded. Defaults 1024 frames (about 4 minutes at the default tick) and 4 MiB.
	HistorySize  int
	HistoryBytes int
	// IdleTTL is how long a subscription without clients keeps numbering and remembering
	// its frames, so a screen that lost its network can resume. Default 5m.
	IdleTTL time.Duration
	// MaxSubscriptions bounds the distinct subscriptions (filter and view) held at once;
	// beyond it the longest idle one is forgotten, or a new one refused. Default 4096.
	MaxSubscriptions int
	// MaxConnections bounds the open websockets of the hub. Default 8192.
	MaxConnections int
	// ReservedShare is the share of MaxConnections and MaxSubscriptions that only the
	// command-centre roles (admin, supervisor, operator) may use: viewers, rule authors and
	// workers together never hold more than the rest, so a flood of wall screens (or one
	// token opening thousands of sockets) cannot lock the supervisor out. Default 0.25;
	// -1 reserves nothing.
	ReservedShare float64
	// SubjectConnections bounds the websockets one token subject (its role and `sub`) holds
	// at once; past it the handshake is closed with 1008. Default 16.
	SubjectConnections int
	// SubjectSubscriptions bounds the distinct subscriptions one subject has made that the
	// hub still holds (in use, or idle for resuming); past it the subject's longest idle one
	// is forgotten, or the new one refused. Joining a subscription someone else made costs
	// nothing. Default 8.
	SubjectSubscriptions int
	// HistoryBudget bounds the bytes of delta frames all subscriptions together keep for
	// resuming (each also within HistoryBytes); over it, every subscription above an equal
	// share loses its oldest frames. Frames are held about twice (JSON and the prepared
	// websocket frame), so the memory is up to twice this. Default 256 MiB.
	HistoryBudget int
	// TombstoneSize is how many closed incidents are remembered so that a redelivered older
	// version cannot bring them back. Default 65536.
	TombstoneSize int

	// KPIWindow is the sliding window of the stage KPIs (on-time rate, mean durations).
	// Default 24h.
	KPIWindow time.Duration
	// StageRecords bounds the completed stages kept for those KPIs. Default 16384.
	StageRecords int
	// StageLimits are the time limits the on-time rate is measured against, per stage and
	// severity, where an incident carries no SLA clock for the stage (always for dispatch).
	// The application passes the work-order policy's (incidents.Policy.StageLimits), the
	// same the clocks and the store's KPIs use; nil: no on-time rate without a clock.
	StageLimits StageLimits
	// SensorOnlineWindow: a sensor is online if it reported within this window and its last
	// status is not offline or fault. Default 10m.
	SensorOnlineWindow time.Duration
	// HotSpots is how many grids the hot-spot KPI lists. Default 5.
	HotSpots int

	// City supplies the grid layer and category names; without it map frames are refused.
	City CityMap
	// Now is the clock of the KPIs; default time.Now.
	Now func() time.Time
}

// StageLimits maps stage → severity → limit.
type StageLimits map[string]map[string]time.Duration

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.QueueSize, 256)
	def(&c.SendBuffer, 256<<10)
	defDur(&c.WriteTimeout, 5*time.Second)
	defDur(&c.PingInterval, 20*time.Second)
	if c.ReadLimit == 0 {
		c.ReadLimit = 64 << 10
	}
	defDur(&c.FlushInterval, 250*time.Millisecond)
	defDur(&c.KPIInterval, time.Second)
	def(&c.HistorySize, 1024)
	def(&c.HistoryBytes, 4<<20)
	defDur(&c.IdleTTL, 5*time.Minute)
	def(&c.MaxSubscriptions, 4096)
	def(&c.MaxConnections, 8192)
	def(&c.SubjectConnections, 16)
	def(&c.SubjectSubscriptions, 8)
	def(&c.HistoryBudget, 256<<20)
	switch c.ReservedShare {
	case 0:
		c.ReservedShare = 0.25
	case -1:
		c.ReservedShare = 0
	}
	def(&c.TombstoneSize, 65536)
	defDur(&c.KPIWindow, 24*time.Hour)
	def(&c.StageRecords, 16384)
	defDur(&c.SensorOnlineWindow, 10*time.Minute)
	def(&c.HotSpots, 5)
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	positive := func(name string, v int) {
		if v < 1 {
			errs = append(errs, fmt.Errorf("%s %d must be at least 1", name, v))
		}
	}
	positiveDur := func(name string, v time.Duration) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s %v must be positive", name, v))
		}
	}
	positive("queue size", c.QueueSize)
	positiveDur("write timeout", c.WriteTimeout)
	positiveDur("ping interval", c.PingInterval)
	if c.SendBuffer < -1 || c.SendBuffer == 0 {
		errs = append(errs, fmt.Errorf("send buffer %d must be positive, or -1 for the kernel's default", c.SendBuffer))
	}
	if c.ReadLimit < 1 {
		errs = append(errs, fmt.Errorf("read limit %d must be positive", c.ReadLimit))
	}
	positiveDur("flush interval", c.FlushInterval)
	positiveDur("KPI interval", c.KPIInterval)
	positive("history size", c.HistorySize)
	positive("history bytes", c.HistoryBytes)
	positiveDur("idle TTL", c.IdleTTL)
	positive("max subscriptions", c.MaxSubscriptions)
	positive("max connections", c.MaxConnections)
	positive("connections per subject", c.SubjectConnections)
	positive("subscriptions per subject", c.SubjectSubscriptions)
	positive("history budget", c.HistoryBudget)
	if c.ReservedShare < 0 || c.ReservedShare >= 1 {
		errs = append(errs, fmt.Errorf("reserved share %v must be in [0, 1), or -1 for none", c.ReservedShare))
	}
	positive("tombstone size", c.TombstoneSize)
	positiveDur("KPI window", c.KPIWindow)
	positive("stage records", c.StageRecords)
	positiveDur("sensor online window", c.SensorOnlineWindow)
	positive("hot spots", c.HotSpots)
	for stage, bySev := range c.StageLimits {
		for sev, d := range bySev {
			if d <= 0 {
				errs = append(errs, fmt.Errorf("stage limit %s/%s %v must be positive", stage, sev, d))
			}
		}
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

// shareOf is the part of limit the roles without a reservation may use: at least one, so a
// tiny test table still lets a viewer in.
func (c Config) shareOf(limit int) int {
	return max(1, int(float64(limit)*(1-c.ReservedShare)))
}
