package transport_test

import (
	"strings"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/transport"
)

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	brokers := []string{"127.0.0.1:9092"}
	tests := []struct {
		name    string
		build   func() error
		wantErr []string // substrings; empty: no error
	}{
		{"publisher ok", func() error {
			_, err := transport.NewPublisher(transport.PublisherConfig{Brokers: brokers}, nil)
			return err
		}, nil},
		{"publisher without brokers", func() error {
			_, err := transport.NewPublisher(transport.PublisherConfig{}, nil)
			return err
		}, []string{"no brokers"}},
		{"publisher backoff order and negative timeout", func() error {
			_, err := transport.NewPublisher(transport.PublisherConfig{
				Brokers: brokers, WriteBackoffMin: time.Second, WriteBackoffMax: time.Millisecond,
				WriteTimeout: -1,
			}, nil)
			return err
		}, []string{"WriteBackoffMax", "negative"}},
		{"subscriber ok without group", func() error {
			_, err := transport.NewSubscriber(transport.SubscriberConfig{Brokers: brokers}, nil)
			return err
		}, nil},
		{"subscriber: every problem at once", func() error {
			_, err := transport.NewSubscriber(transport.SubscriberConfig{
				GroupID: "g", Partitions: -1, NackBackoff: -time.Second,
				HeartbeatInterval: 20 * time.Second, SessionTimeout: 10 * time.Second,
			}, nil)
			return err
		}, []string{"no brokers", "Partitions", "NackBackoff", "HeartbeatInterval"}},
		{"embedded: wildcard host", func() error {
			_, err := transport.StartEmbedded(transport.EmbeddedConfig{Listen: "0.0.0.0:0"}, nil)
			return err
		}, []string{"specific address"}},
		{"embedded: empty host and bad partitions", func() error {
			_, err := transport.StartEmbedded(transport.EmbeddedConfig{Listen: ":9092", Partitions: -2}, nil)
			return err
		}, []string{"specific address", "Partitions"}},
		{"embedded: no port", func() error {
			_, err := transport.StartEmbedded(transport.EmbeddedConfig{Listen: "127.0.0.1"}, nil)
			return err
		}, []string{"listen"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.build()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want one mentioning %q", tt.wantErr)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

// TestEmbeddedPicksFreePort starts the broker on port 0 and checks Addrs reports the real
// address, and that a second broker cannot take the same one.
func TestEmbeddedPicksFreePort(t *testing.T) {
	t.Parallel()
	e, err := transport.StartEmbedded(transport.EmbeddedConfig{Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	addrs := e.Addrs()
	if len(addrs) != 1 || !strings.HasPrefix(addrs[0], "127.0.0.1:") || strings.HasSuffix(addrs[0], ":0") {
		t.Fatalf("Addrs %v, want one 127.0.0.1 address with a real port", addrs)
	}
	if e2, err := transport.StartEmbedded(transport.EmbeddedConfig{Listen: addrs[0]}, nil); err == nil {
		e2.Close()
		t.Fatalf("second broker on %s started, want address-in-use error", addrs[0])
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
