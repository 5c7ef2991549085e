package transport_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap/zaptest"

	"github.com/urbanbrain/urbanbrain/transport"
)

// The embedded broker's own process reaches it in memory, with the same TLS and SASL as a
// client over TCP: what either writes, the other reads; without credentials the in-memory
// connection is refused like a TCP one; anything but the broker's address is dialled over the
// network; and once the broker is closed its address is the network's again.
func TestOwnProcessReachesTheEmbeddedBrokerInMemory(t *testing.T) { // not parallel: sets the process's security
	t.Run("plaintext", func(t *testing.T) {
		e, err := transport.StartEmbedded(transport.EmbeddedConfig{Listen: "127.0.0.1:0", Partitions: 2, Topics: []string{"in"}}, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		inMemoryAndOverTCP(t, e, &transport.Security{}, nil)
	})
	t.Run("sasl over tls", func(t *testing.T) {
		pki := transport.NewTestPKI(t)
		e, dir := startSecureBroker(t, pki)
		pass, err := os.ReadFile(filepath.Join(dir, "client.secret"))
		if err != nil {
			t.Fatal(err)
		}
		overTCP, err := transport.SecurityConfig{TLS: true, CAFile: pki.CAFile, SASLMechanism: transport.SASLScramSHA512,
			SASLUser: transport.EmbeddedUser, SASLPassword: strings.TrimSpace(string(pass))}.Build(e.Addrs())
		if err != nil {
			t.Fatal(err)
		}
		own := e.ClientSecurity()
		inMemoryAndOverTCP(t, e, overTCP, &transport.Security{TLS: own.TLS, Dial: own.Dial})
	})
}

// inMemoryAndOverTCP checks e's own clients against a client over TCP with overTCP's security;
// anonymous, if set, is an in-memory client without the credentials e requires.
func inMemoryAndOverTCP(t *testing.T, e *transport.Embedded, overTCP, anonymous *transport.Security) {
	addrs := e.Addrs()
	own := e.ClientSecurity()
	if own.Dial == nil {
		t.Fatal("the embedded broker's client security dials over the network")
	}
	if overTCP.Dial != nil {
		t.Fatal("a client security built from flags dials in memory")
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	// Every connection of the process's own clients is counted by where it went.
	var inMemory, network atomic.Int32
	counted := *own
	counted.Dial = func(ctx context.Context, n, address string) (net.Conn, error) {
		c, err := own.Dial(ctx, n, address)
		if err == nil {
			if c.LocalAddr().Network() == "memory" && c.RemoteAddr().String() == address {
				inMemory.Add(1)
			} else {
				network.Add(1)
			}
		}
		return c, err
	}

	// Another address is the network's: a port nobody listens on refuses.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := free.Addr().String()
	free.Close()
	if c, err := own.Dial(ctx, "tcp", elsewhere); err == nil {
		c.Close()
		t.Errorf("dialled %s, where nothing listens", elsewhere)
	} else if !strings.Contains(err.Error(), "refused") {
		t.Errorf("dialling %s: %v, want the network's refusal", elsewhere, err)
	}

	write := func(sec *transport.Security, value string) error {
		p, err := transport.NewProducer(transport.ProducerConfig{Brokers: addrs, Security: sec, MaxAttempts: 2}, zaptest.NewLogger(t))
		if err != nil {
			return err
		}
		defer p.Close(time.Second)
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return p.Write(wctx, kafka.Message{Topic: "in", Key: []byte("k"), Value: []byte(value)})
	}
	if err := write(&counted, "in memory"); err != nil {
		t.Fatalf("writing in memory: %v", err)
	}
	if err := write(overTCP, "over tcp"); err != nil {
		t.Fatalf("writing over TCP: %v", err)
	}
	if anonymous != nil {
		if err := write(anonymous, "no credentials"); err == nil {
			t.Error("an in-memory connection without credentials wrote to the broker that requires them")
		}
	}
	for _, sec := range []*transport.Security{&counted, overTCP} {
		transport.UseSecurity(sec)
		var got []string
		err := transport.ReadAll(ctx, addrs, "in", func(_ string, v []byte) error {
			got = append(got, string(v))
			return nil
		})
		transport.UseSecurity(nil)
		if err != nil {
			t.Fatalf("reading (%s): %v", sec, err)
		}
		if want := []string{"in memory", "over tcp"}; !slices.Equal(got, want) {
			t.Errorf("read (%s) %q, want %q", sec, got, want)
		}
	}
	if inMemory.Load() == 0 || network.Load() != 0 {
		t.Errorf("the process's own clients made %d connections in memory and %d over the network, want all in memory",
			inMemory.Load(), network.Load())
	}

	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	// Closed, the broker's address is the network's: another broker may serve it now.
	if c, err := own.Dial(ctx, "tcp", addrs[0]); err == nil {
		c.Close()
		t.Error("dialled the closed broker")
	} else if !strings.Contains(err.Error(), "refused") {
		t.Errorf("dialling the closed broker: %v, want the network's refusal", err)
	}
}

// A producer of the broker's own process that outlives it — the broker restarted on the same
// address and data — goes on producing: the closed in-memory connection fails with an error
// kafka-go retries, on a new connection, and the address is the network's once the broker that
// listened in memory is closed.
func TestInProcessProducerOutlivesABrokerRestart(t *testing.T) { // not parallel: sets the process's security
	dir := t.TempDir()
	e, err := transport.StartEmbedded(transport.EmbeddedConfig{DataDir: dir, Listen: "127.0.0.1:0", Partitions: 1, Topics: []string{"t"}}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	addr := e.Addrs()[0]
	p, err := transport.NewProducer(transport.ProducerConfig{Brokers: []string{addr}, Security: e.ClientSecurity(), MaxAttempts: 10}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(time.Second)
	write := func(value string) error {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		return p.Write(ctx, kafka.Message{Topic: "t", Value: []byte(value)})
	}
	if err := write("before"); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e2, err := transport.StartEmbedded(transport.EmbeddedConfig{DataDir: dir, Listen: addr, Partitions: 1, Topics: []string{"t"}}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if err := write("after"); err != nil {
		t.Fatalf("writing after the broker's restart: %v", err)
	}
	transport.UseSecurity(e2.ClientSecurity())
	defer transport.UseSecurity(nil)
	var got []string
	if err := transport.ReadAll(t.Context(), e2.Addrs(), "t", func(_ string, v []byte) error {
		got = append(got, string(v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"before", "after"}; !slices.Equal(got, want) {
		t.Fatalf("the topic holds %q, want %q", got, want)
	}
}
