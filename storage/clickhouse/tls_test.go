package clickhouse_test

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/storage/clickhouse"
)

// With Config.TLS the store's first bytes on the wire are a TLS handshake, not ClickHouse's
// plaintext Hello carrying the user and password.
func TestOpenWithTLSSpeaksTLSFirst(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		tls     *tls.Config
		wantTLS bool
	}{
		{"tls", &tls.Config{MinVersion: tls.VersionTLS12}, true},
		{"plaintext", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			first := make(chan byte, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				b := make([]byte, 1)
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Read(b); err == nil {
					first <- b[0]
				}
			}()
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			_, err = clickhouse.Open(ctx, clickhouse.Config{Addrs: []string{ln.Addr().String()}, Password: "secret",
				TLS: tc.tls, DialTimeout: time.Second, QueryTimeout: time.Second}, nil)
			if err == nil {
				t.Fatal("Open succeeded against a server that never answers")
			}
			select {
			case b := <-first:
				if isTLS := b == 0x16; isTLS != tc.wantTLS { // 0x16: a TLS handshake record
					t.Fatalf("first byte %#x: TLS %v, want %v", b, isTLS, tc.wantTLS)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the store never connected")
			}
		})
	}
}
