package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// SASL mechanisms of SecurityConfig.SASLMechanism, as the flags spell them.
const (
	SASLPlain       = "plain"
	SASLScramSHA256 = "scram-sha-256"
	SASLScramSHA512 = "scram-sha-512"
)

// Security is how this process's Kafka connections are secured: TLS (nil: plaintext) and a
// SASL mechanism (nil: none). It is the one place every kafka-go Dialer, Transport and Client
// of the process is built from (Dialer, Transport, Client), so no connection can be opened
// with other settings than the ones the operator configured.
type Security struct {
	TLS  *tls.Config
	SASL sasl.Mechanism
	// Dial, if set, opens the connections in place of the network's dialer: the embedded
	// broker's own process reaches it in memory (Embedded.ClientSecurity).
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
}

// dialTimeout bounds opening a connection to a broker.
const dialTimeout = 5 * time.Second

// process is the security every client uses unless its config names another one. The
// composition root sets it once (UseSecurity) before it builds any client.
var process atomic.Pointer[Security]

// UseSecurity makes sec the security of every Kafka client built afterwards whose config
// does not carry its own (nil: plaintext, no SASL). The composition root calls it once,
// before the first client: the helpers that take only broker addresses (EnsureTopics, ReadAll,
// ReadPartition…) and the clients built outside this package (Dialer, Client) use it.
func UseSecurity(sec *Security) { process.Store(sec) }

// ProcessSecurity is what UseSecurity set (nil: plaintext, no SASL).
func ProcessSecurity() *Security { return process.Load() }

// orProcess is s, or the process's security when s is nil.
func (s *Security) orProcess() *Security {
	if s != nil {
		return s
	}
	if p := process.Load(); p != nil {
		return p
	}
	return &Security{}
}

// String says what the connections use, for the start-up log (never the password).
func (s *Security) String() string {
	s = s.orProcess()
	parts := []string{"plaintext"}
	if s.TLS != nil {
		parts[0] = "tls"
		if s.TLS.InsecureSkipVerify {
			parts[0] = "tls (certificate NOT verified)"
		}
	}
	if s.SASL != nil {
		parts = append(parts, "sasl "+s.SASL.Name())
	}
	if s.Dial != nil {
		parts = append(parts, "in memory to the embedded broker")
	}
	return strings.Join(parts, ", ")
}

// Dialer returns a new kafka-go Dialer with s's TLS and SASL (the process's if s is nil),
// for Readers and consumer groups.
func (s *Security) Dialer() *kafka.Dialer {
	s = s.orProcess()
	return &kafka.Dialer{Timeout: dialTimeout, DualStack: true, TLS: s.TLS, SASLMechanism: s.SASL, DialFunc: s.Dial}
}

// Transport returns a new kafka-go Transport with s's TLS and SASL (the process's if s is
// nil), for Writers and Clients. Each caller gets its own, so closing one drops only its
// connections.
func (s *Security) Transport() *kafka.Transport {
	s = s.orProcess()
	return &kafka.Transport{DialTimeout: dialTimeout, MetadataTTL: 5 * time.Second, TLS: s.TLS, SASL: s.SASL, Dial: s.Dial}
}

// Client returns a kafka-go Client for brokers with s's TLS and SASL (the process's if s is
// nil), for admin requests (metadata, topic configuration, offsets).
func (s *Security) Client(brokers []string) *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: s.Transport()}
}

// Dialer is a new Dialer with the process's security: what code outside this package puts in
// a kafka.ReaderConfig.
func Dialer() *kafka.Dialer { return (*Security)(nil).Dialer() }

// Client is a kafka-go Client for brokers with the process's security.
func Client(brokers []string) *kafka.Client { return (*Security)(nil).Client(brokers) }

// SecurityConfig is the operator's description of the Kafka connection (the --kafka-tls* and
// --kafka-sasl-* flags); Build turns it into a Security.
type SecurityConfig struct {
	// TLS encrypts every connection and checks the brokers' certificates against CAFile (the
	// system roots if empty). CertFile and KeyFile, both or neither, are a client certificate
	// for brokers that authenticate clients by TLS (mTLS). InsecureSkipVerify accepts any
	// certificate: it keeps the traffic private from a passive listener, not from a broker
	// impersonator; for tests only.
	TLS                bool
	CAFile             string
	CertFile, KeyFile  string
	InsecureSkipVerify bool

	// SASLMechanism is SASLPlain, SASLScramSHA256, SASLScramSHA512 or empty (none). PLAIN
	// sends the password as it is, so it is refused without TLS unless every broker is on
	// loopback.
	SASLMechanism string
	SASLUser      string
	SASLPassword  string
}

// Validate reports every problem at once. brokers are the bootstrap addresses the
// configuration is for: PLAIN without TLS is refused for any of them that is not loopback.
func (c SecurityConfig) Validate(brokers []string) error {
	var errs []error
	tlsFiles := c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" || c.InsecureSkipVerify
	if tlsFiles && !c.TLS {
		errs = append(errs, errors.New("kafka: --kafka-tls-ca, --kafka-tls-cert, --kafka-tls-key and --kafka-tls-insecure-skip-verify need --kafka-tls"))
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("kafka: --kafka-tls-cert and --kafka-tls-key go together"))
	}
	switch c.SASLMechanism {
	case "":
		if c.SASLUser != "" || c.SASLPassword != "" {
			errs = append(errs, errors.New("kafka: a SASL user or password without --kafka-sasl-mechanism"))
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if c.SASLUser == "" || c.SASLPassword == "" {
			errs = append(errs, fmt.Errorf("kafka: --kafka-sasl-mechanism %s needs --kafka-sasl-user and a password (--kafka-sasl-password-file or URBANBRAIN_KAFKA_SASL_PASSWORD)", c.SASLMechanism))
		}
		if c.SASLMechanism == SASLPlain && !c.TLS {
			for _, b := range brokers {
				if !IsLoopback(b) {
					errs = append(errs, fmt.Errorf("kafka: SASL PLAIN sends the password in clear; refused without --kafka-tls for broker %s, which is not on loopback (use --kafka-tls, or scram-sha-512)", b))
				}
			}
		}
	default:
		errs = append(errs, fmt.Errorf("kafka: --kafka-sasl-mechanism %q: want %s, %s or %s", c.SASLMechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512))
	}
	return errors.Join(errs...)
}

// Build validates c for brokers and loads its files.
func (c SecurityConfig) Build(brokers []string) (*Security, error) {
	if err := c.Validate(brokers); err != nil {
		return nil, err
	}
	sec := &Security{}
	if c.TLS {
		t, err := LoadTLS(c.CAFile, c.CertFile, c.KeyFile, c.InsecureSkipVerify)
		if err != nil {
			return nil, fmt.Errorf("kafka: %w", err)
		}
		sec.TLS = t
	}
	var err error
	switch c.SASLMechanism {
	case SASLPlain:
		sec.SASL = plain.Mechanism{Username: c.SASLUser, Password: c.SASLPassword}
	case SASLScramSHA256:
		sec.SASL, err = scram.Mechanism(scram.SHA256, c.SASLUser, c.SASLPassword)
	case SASLScramSHA512:
		sec.SASL, err = scram.Mechanism(scram.SHA512, c.SASLUser, c.SASLPassword)
	}
	if err != nil {
		return nil, fmt.Errorf("kafka: sasl %s: %w", c.SASLMechanism, err)
	}
	return sec, nil
}

// LoadTLS is a client TLS configuration (TLS 1.2 or later) that trusts the PEM certificates
// in caFile (the system roots if empty) and presents certFile/keyFile if given. ClickHouse's
// connection is built with it too.
func LoadTLS(caFile, certFile, keyFile string, insecureSkipVerify bool) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecureSkipVerify} //nolint:gosec // the operator's explicit choice, logged at start
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca %s: no PEM certificate in it", caFile)
		}
		t.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("tls client certificate: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// IsLoopback reports whether host:port (or a bare host) names the loopback interface:
// "localhost" or a loopback IP. Any other name may resolve anywhere and counts as remote.
func IsLoopback(addr string) bool {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
