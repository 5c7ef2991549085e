package app

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/transport"
)

// EnvKafkaSASLPassword is where the Kafka SASL password comes from when no
// --kafka-sasl-password-file is given. There is deliberately no flag for the password itself:
// a flag's value shows in ps and in /proc/<pid>/cmdline to every user of the host.
const EnvKafkaSASLPassword = "URBANBRAIN_KAFKA_SASL_PASSWORD"

// NetSecConfig is how urbanbrain's connections to Kafka and ClickHouse are secured, and
// whether the embedded broker asks for credentials (docs/deploy.md, "Kafka and ClickHouse
// security").
type NetSecConfig struct {
	KafkaTLS                bool
	KafkaTLSCA              string
	KafkaTLSCert            string
	KafkaTLSKey             string
	KafkaTLSSkipVerify      bool
	KafkaSASLMechanism      string
	KafkaSASLUser           string
	KafkaSASLPasswordFile   string
	BrokerSASL              bool   // the embedded broker requires SASL on loopback too
	BrokerTLSCert           string // the embedded broker speaks TLS with this certificate
	BrokerTLSKey            string
	ClickHouseTLS           bool
	ClickHouseTLSCA         string
	ClickHouseTLSSkipVerify bool
	ClickHousePasswordFile  string
}

func (c *Config) registerNetSecFlags(fs *flag.FlagSet) {
	c.RegisterKafkaClientFlags(fs)
	fs.BoolVar(&c.BrokerSASL, "broker-sasl", false, "the embedded broker requires SASL (SCRAM-SHA-512) also on loopback; always on for a non-loopback --broker-listen")
	fs.StringVar(&c.BrokerTLSCert, "broker-tls-cert", "", "PEM certificate for the embedded broker's listener (TLS only, with --broker-tls-key); must name --broker-listen's host")
	fs.StringVar(&c.BrokerTLSKey, "broker-tls-key", "", "PEM key of --broker-tls-cert")
	fs.BoolVar(&c.ClickHouseTLS, "clickhouse-tls", false, "connect to --clickhouse-addr over TLS (the secure native port, 9440)")
	fs.StringVar(&c.ClickHouseTLSCA, "clickhouse-tls-ca", "", "PEM CA bundle that signs ClickHouse's certificate (default: the system roots)")
	fs.BoolVar(&c.ClickHouseTLSSkipVerify, "clickhouse-tls-insecure-skip-verify", false, "accept any ClickHouse certificate (discouraged)")
	fs.StringVar(&c.ClickHousePasswordFile, "clickhouse-password-file", "", "file holding the ClickHouse password (wins over --clickhouse-password)")
}

// RegisterKafkaClientFlags registers the flags that secure a Kafka client's connections
// (--kafka-tls*, --kafka-sasl-*): serve's, and those of the commands that produce to a cluster
// (simulate, bench), so every client is configured alike.
func (c *Config) RegisterKafkaClientFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.KafkaTLS, "kafka-tls", false, "connect to --kafka-brokers over TLS")
	fs.StringVar(&c.KafkaTLSCA, "kafka-tls-ca", "", "PEM CA bundle that signs the brokers' certificates (default: the system roots)")
	fs.StringVar(&c.KafkaTLSCert, "kafka-tls-cert", "", "PEM client certificate, for brokers that authenticate clients by TLS (with --kafka-tls-key)")
	fs.StringVar(&c.KafkaTLSKey, "kafka-tls-key", "", "PEM key of --kafka-tls-cert")
	fs.BoolVar(&c.KafkaTLSSkipVerify, "kafka-tls-insecure-skip-verify", false, "accept any broker certificate (discouraged: anyone on the path can impersonate the broker)")
	fs.StringVar(&c.KafkaSASLMechanism, "kafka-sasl-mechanism", "", "SASL mechanism for --kafka-brokers: plain (TLS only), scram-sha-256 or scram-sha-512; empty: none")
	fs.StringVar(&c.KafkaSASLUser, "kafka-sasl-user", "", "SASL user (the principal docs/deploy.md grants ACLs to)")
	fs.StringVar(&c.KafkaSASLPasswordFile, "kafka-sasl-password-file", "", "file holding the SASL password (default: the "+EnvKafkaSASLPassword+" environment variable; never a flag)")
}

func (c *Config) validateNetSec() []error {
	var errs []error
	if c.Embedded() {
		if c.KafkaTLS || c.KafkaSASLMechanism != "" {
			errs = append(errs, errors.New("--kafka-tls and --kafka-sasl-* apply to --kafka-brokers; the embedded broker is secured with --broker-sasl and --broker-tls-cert"))
		}
		if (c.BrokerTLSCert == "") != (c.BrokerTLSKey == "") {
			errs = append(errs, errors.New("--broker-tls-cert and --broker-tls-key go together"))
		}
	} else {
		// The password is read when serve connects, not here, so that a configuration can be
		// checked where its secrets are not mounted (deploy tests, CI).
		pass := ""
		if c.KafkaSASLPasswordFile != "" || os.Getenv(EnvKafkaSASLPassword) != "" {
			pass = "(set)"
		}
		if err := c.kafkaSecurityConfig(pass).Validate(c.KafkaBrokers); err != nil {
			errs = append(errs, err)
		}
		if c.BrokerSASL || c.BrokerTLSCert != "" || c.BrokerTLSKey != "" {
			errs = append(errs, errors.New("--broker-sasl and --broker-tls-* apply to the embedded broker, which does not run with --kafka-brokers"))
		}
	}
	if !c.ClickHouseTLS && (c.ClickHouseTLSCA != "" || c.ClickHouseTLSSkipVerify) {
		errs = append(errs, errors.New("--clickhouse-tls-ca and --clickhouse-tls-insecure-skip-verify need --clickhouse-tls"))
	}
	return errs
}

func (c *Config) kafkaSecurityConfig(password string) transport.SecurityConfig {
	return transport.SecurityConfig{
		TLS: c.KafkaTLS, CAFile: c.KafkaTLSCA, CertFile: c.KafkaTLSCert, KeyFile: c.KafkaTLSKey,
		InsecureSkipVerify: c.KafkaTLSSkipVerify,
		SASLMechanism:      c.KafkaSASLMechanism, SASLUser: c.KafkaSASLUser, SASLPassword: password,
	}
}

// KafkaSecurity builds the security of the connections to --kafka-brokers.
func (c *Config) KafkaSecurity() (*transport.Security, error) {
	pass := ""
	if c.KafkaSASLMechanism != "" {
		var err error
		if pass, err = secret(c.KafkaSASLPasswordFile, os.Getenv(EnvKafkaSASLPassword)); err != nil {
			return nil, fmt.Errorf("--kafka-sasl-password-file: %w", err)
		}
	}
	return c.kafkaSecurityConfig(pass).Build(c.KafkaBrokers)
}

// embeddedTLS is the embedded broker's server TLS configuration (nil: plaintext).
func (c *Config) embeddedTLS() (*tls.Config, error) {
	if c.BrokerTLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.BrokerTLSCert, c.BrokerTLSKey)
	if err != nil {
		return nil, fmt.Errorf("--broker-tls-cert: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}

// clickHouseSecrets are the parts of the ClickHouse connection read from files.
type clickHouseSecrets struct {
	password string
	tls      *tls.Config
}

// clickHouseConn loads the ClickHouse password (file over flag or environment) and TLS.
func (c *Config) clickHouseConn() (clickHouseSecrets, error) {
	var s clickHouseSecrets
	pass, err := secret(c.ClickHousePasswordFile, c.ClickHousePassword)
	if err != nil {
		return s, fmt.Errorf("--clickhouse-password-file: %w", err)
	}
	s.password = pass
	if c.ClickHouseTLS {
		if s.tls, err = transport.LoadTLS(c.ClickHouseTLSCA, "", "", c.ClickHouseTLSSkipVerify); err != nil {
			return s, fmt.Errorf("--clickhouse-tls: %w", err)
		}
	}
	return s, nil
}

// secret is the first line of file if it is set, else fallback.
func secret(file, fallback string) (string, error) {
	if file == "" {
		return fallback, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", file)
	}
	return s, nil
}

// useKafkaSecurity makes the connections to --kafka-brokers use the configured security;
// startBroker calls it before the first client is built.
func (a *App) useKafkaSecurity() error {
	sec, err := a.cfg.KafkaSecurity()
	if err != nil {
		return err
	}
	transport.UseSecurity(sec)
	a.log.Info("kafka connection security", zap.Stringer("security", sec))
	return nil
}
