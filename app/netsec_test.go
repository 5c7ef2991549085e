package app

import (
	"context"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/transport"
)

func TestKafkaAndClickHouseSecurityConfig(t *testing.T) {
	t.Parallel()
	passFile := filepath.Join(t.TempDir(), "kafka.pass")
	if err := os.WriteFile(passFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		set     func(*Config)
		wantErr string // empty: valid
	}{
		{"plain without tls to a remote cluster", func(c *Config) {
			c.KafkaBrokers = []string{"kafka-1.city.internal:9092"}
			c.KafkaSASLMechanism, c.KafkaSASLUser, c.KafkaSASLPasswordFile = "plain", "urbanbrain", passFile
		}, "SASL PLAIN sends the password in clear; refused without --kafka-tls for broker kafka-1.city.internal:9092"},
		{"plain over tls", func(c *Config) {
			c.KafkaBrokers = []string{"kafka-1.city.internal:9093"}
			c.KafkaTLS = true
			c.KafkaSASLMechanism, c.KafkaSASLUser, c.KafkaSASLPasswordFile = "plain", "urbanbrain", passFile
		}, ""},
		{"scram without a password", func(c *Config) {
			c.KafkaBrokers = []string{"kafka-1.city.internal:9093"}
			c.KafkaSASLMechanism, c.KafkaSASLUser = "scram-sha-512", "urbanbrain"
		}, "needs --kafka-sasl-user and a password"},
		{"kafka tls with the embedded broker", func(c *Config) { c.KafkaTLS = true }, "apply to --kafka-brokers"},
		{"broker sasl with a cluster", func(c *Config) {
			c.KafkaBrokers = []string{"kafka:9092"}
			c.BrokerSASL = true
		}, "apply to the embedded broker"},
		{"clickhouse ca without tls", func(c *Config) { c.ClickHouseTLSCA = "ca.pem" }, "need --clickhouse-tls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.set(&c)
			err := c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("want an error containing %q, got %v", tc.wantErr, err)
			}
		})
	}
}

// A password given as a flag shows in ps to every user of the host: the Kafka password comes
// from a file or the environment only, and the ClickHouse one can come from a file.
func TestKafkaPasswordIsNeverAFlag(t *testing.T) {
	t.Parallel()
	var c Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if fs.Lookup("kafka-sasl-password") != nil {
		t.Error("--kafka-sasl-password exists")
	}
	for _, name := range []string{"kafka-sasl-password-file", "clickhouse-password-file", "kafka-tls", "kafka-tls-ca",
		"kafka-sasl-mechanism", "clickhouse-tls", "clickhouse-tls-ca", "broker-sasl"} {
		if fs.Lookup(name) == nil {
			t.Errorf("--%s missing", name)
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ch.pass"), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--clickhouse-password", "from-flag", "--clickhouse-password-file", filepath.Join(dir, "ch.pass")}); err != nil {
		t.Fatal(err)
	}
	conn, err := c.clickHouseConn()
	if err != nil || conn.password != "from-file" {
		t.Fatalf("clickhouse password %q (%v), want the file's", conn.password, err)
	}
}

// serve with --broker-sasl: the embedded broker refuses a client without credentials, and the
// process's own stages, producer, storage sinks and rule loader authenticate with the
// generated password (readiness needs every stage joined and the topics read).
func TestServeWithBrokerSASLAuthenticatesItsOwnClients(t *testing.T) { // not parallel: sets the process's Kafka security
	t.Cleanup(func() { transport.UseSecurity(nil) })
	dir := t.TempDir()
	r := start(t, dir, freeAddr(t), func(c *Config) { c.BrokerSASL = true })
	addrs := r.app.BrokerAddrs()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := (&transport.Security{}).Client(addrs).Metadata(ctx, &kafka.MetadataRequest{}); err == nil {
		t.Fatal("a client without credentials was answered")
	}
	if st, err := os.Stat(filepath.Join(dir, "kafka", "client.secret")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v, %v", st, err)
	}
	// A command goes through HTTP → city.commands → the incidents stage → city.command-results.
	tok := r.token(auth.Claims{Subject: "sup", Role: auth.RoleSupervisor})
	if code := r.do("GET", "/api/v1/incidents", tok, nil, nil); code != http.StatusOK {
		t.Fatalf("GET /api/v1/incidents: %d", code)
	}
}
