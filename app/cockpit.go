package app

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	cockpit "github.com/urbanbrain/urbanbrain/cockpit-ws"
)

// newCockpit builds the cockpit hub (/ws/cockpit, /ws/worker and the wall-screen page) on
// the loaded city, and exposes its counters as metrics.
func (a *App) newCockpit() (*cockpit.Hub, error) {
	l := a.cfg.HTTPLimits
	reserved := l.CockpitReservedShare
	if reserved == 0 {
		reserved = -1 // the flag's 0 means none; the hub's zero value means its default
	}
	hub, err := cockpit.New(cockpit.Config{
		AllowedOrigins:       a.cfg.AllowedOrigins,
		City:                 a.city,
		MaxConnections:       l.CockpitMaxConnections,
		MaxSubscriptions:     l.CockpitMaxSubscriptions,
		SubjectConnections:   l.CockpitTokenConnections,
		SubjectSubscriptions: l.CockpitTokenSubscriptions,
		ReservedShare:        reserved,
		HistoryBudget:        l.CockpitHistoryBudget,
		SendBuffer:           l.CockpitSendBuffer,
		StageLimits:          a.stageLimits,
	}, a.issuer, a.log.Named("cockpit"))
	if err != nil {
		return nil, fmt.Errorf("cockpit: %w", err)
	}
	stat := func(f func(cockpit.Stats) float64) func() float64 { return func() float64 { return f(hub.Stats()) } }
	a.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "urbanbrain_cockpit_connections", Help: "Open cockpit and worker websockets."},
			stat(func(s cockpit.Stats) float64 { return float64(s.Connections) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "urbanbrain_cockpit_subscriptions", Help: "Distinct subscriptions (scope, filter, view), including idle ones kept for resuming."},
			stat(func(s cockpit.Stats) float64 { return float64(s.Subscriptions) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "urbanbrain_cockpit_frames_total", Help: "Delta frames encoded (once per subscription and tick)."},
			stat(func(s cockpit.Stats) float64 { return float64(s.Frames) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "urbanbrain_cockpit_slow_dropped_total", Help: "Clients disconnected because they did not read fast enough."},
			stat(func(s cockpit.Stats) float64 { return float64(s.SlowDropped) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "urbanbrain_cockpit_refused_total", Help: "Cockpit connections and subscriptions refused by a limit (per token, per role share, or the whole hub)."},
			stat(func(s cockpit.Stats) float64 { return float64(s.Refused) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "urbanbrain_cockpit_history_bytes", Help: "Bytes of delta frames kept for resuming, all subscriptions (bounded by --cockpit-history-budget)."},
			stat(func(s cockpit.Stats) float64 { return float64(s.HistoryBytes) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "urbanbrain_cockpit_write_timeouts_total", Help: "Clients disconnected because a write did not finish within the write timeout."},
			stat(func(s cockpit.Stats) float64 { return float64(s.WriteTimeouts) })),
	)
	return hub, nil
}
