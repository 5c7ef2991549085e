package main

import (
	"context"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/app"
	"github.com/urbanbrain/urbanbrain/simulate/people"
)

// demoPeople runs the demo's simulated people (simulate/people) against this server's own API
// once it is ready: they reach it over HTTP like any client, with their own tokens. It
// returns when ctx is done; a failure to start them is logged, not fatal — the server is the
// product, the people only the demo.
func demoPeople(ctx context.Context, a *app.App, cfg people.Config, log *zap.Logger) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !a.Ready() {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
	cfg.BaseURL = "http://" + loopbackAddr(a.HTTPAddr())
	sim, err := people.New(cfg, a.City(), a.Issuer(), log)
	if err != nil {
		log.Error("simulated people not started", zap.Error(err))
		return nil
	}
	if err := sim.Run(ctx); err != nil {
		log.Error("simulated people stopped", zap.Error(err))
	}
	return nil
}

// loopbackAddr is how this process reaches its own listener: an unspecified host (":8080",
// "0.0.0.0:8080", "[::]:8080") is reached on 127.0.0.1.
func loopbackAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
