// Package deploy_test checks the deployment files without Docker: the compose file parses and
// wires urbanbrain to Kafka in KRaft mode and to ClickHouse with settings the binary knows, and
// the Dockerfile builds a static, CGO-free, multi-arch image.
package deploy_test

import (
	"flag"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/urbanbrain/urbanbrain/app"
)

type compose struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       map[string]string `yaml:"build"`
		Environment map[string]string `yaml:"environment"`
		Command     []string          `yaml:"command"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Healthcheck map[string]any `yaml:"healthcheck"`
		Ports       []string       `yaml:"ports"`
	} `yaml:"services"`
}

func readCompose(t *testing.T) compose {
	t.Helper()
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("compose.yaml does not parse: %v", err)
	}
	return c
}

// Kafka and ClickHouse speak plaintext without credentials in compose, so neither may be
// reachable from the host's network: anyone who reaches Kafka can put an admin command on
// city.commands (issue 11 did it with kcat on the published 29092) or read every caller.
// They may be published only on loopback and only for a listener that is not plaintext.
func TestComposePublishesNoPlaintextKafkaOrClickHouse(t *testing.T) {
	c := readCompose(t)
	kafka := c.Services["kafka"]
	protocols := map[string]string{} // listener name → security protocol
	for _, kv := range strings.Split(kafka.Environment["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"], ",") {
		if name, proto, ok := strings.Cut(strings.TrimSpace(kv), ":"); ok {
			protocols[name] = proto
		}
	}
	listenerOfPort := map[string]string{} // container port → listener name
	for _, l := range strings.Split(kafka.Environment["KAFKA_LISTENERS"], ",") {
		name, addr, _ := strings.Cut(strings.TrimSpace(l), "://")
		listenerOfPort[addr[strings.LastIndex(addr, ":")+1:]] = name
	}
	for _, adv := range strings.Split(kafka.Environment["KAFKA_ADVERTISED_LISTENERS"], ",") {
		name, addr, _ := strings.Cut(strings.TrimSpace(adv), "://")
		if strings.HasPrefix(protocols[name], "PLAINTEXT") || protocols[name] == "SASL_PLAINTEXT" {
			if host := addr[:strings.LastIndex(addr, ":")]; host != "kafka" {
				t.Errorf("Kafka advertises plaintext listener %s as %s, outside the compose network", name, addr)
			}
		}
	}
	for _, p := range kafka.Ports {
		hostIP, container := publishedOn(p)
		if hostIP != "127.0.0.1" {
			t.Errorf("kafka publishes %q on every interface of the host", p)
		}
		if proto := protocols[listenerOfPort[container]]; proto != "SSL" && proto != "SASL_SSL" {
			t.Errorf("kafka publishes %q, its %s listener (%s): only TLS listeners may be published", p, listenerOfPort[container], proto)
		}
	}
	for _, p := range c.Services["clickhouse"].Ports {
		hostIP, container := publishedOn(p)
		if hostIP != "127.0.0.1" || (container != "9440" && container != "8443") {
			t.Errorf("clickhouse publishes %q: only its TLS ports (9440, 8443), and only on 127.0.0.1", p)
		}
	}
}

// publishedOn splits a compose short port syntax ("[ip:]host:container[/proto]") into the
// host address it binds ("" for every interface) and the container port.
func publishedOn(p string) (hostIP, container string) {
	p, _, _ = strings.Cut(p, "/")
	parts := strings.Split(p, ":")
	container = parts[len(parts)-1]
	if len(parts) == 3 {
		hostIP = parts[0]
	}
	return hostIP, container
}

func TestComposeFile(t *testing.T) {
	c := readCompose(t)
	kafka, ok := c.Services["kafka"]
	if !ok || !strings.HasPrefix(kafka.Image, "apache/kafka:4.") {
		t.Errorf("kafka service image %q, want apache/kafka:4.x", kafka.Image)
	}
	if roles := kafka.Environment["KAFKA_PROCESS_ROLES"]; roles != "broker,controller" {
		t.Errorf("KAFKA_PROCESS_ROLES = %q, want broker,controller (KRaft, no ZooKeeper)", roles)
	}
	if id := kafka.Environment["CLUSTER_ID"]; len(strings.Fields(id)) == 0 || len(strings.Fields(id)[0]) != 22 {
		t.Errorf("CLUSTER_ID %q: want a 22-character base64 UUID", id)
	}
	chs, ok := c.Services["clickhouse"]
	if !ok || !strings.HasPrefix(chs.Image, "clickhouse/clickhouse-server:") || strings.HasSuffix(chs.Image, ":latest") {
		t.Errorf("clickhouse service image %q, want a pinned clickhouse/clickhouse-server", chs.Image)
	}
	for name, s := range c.Services {
		if name != "urbanbrain" && s.Healthcheck == nil {
			t.Errorf("service %s has no healthcheck, so depends_on cannot wait for it", name)
		}
	}

	ub, ok := c.Services["urbanbrain"]
	if !ok {
		t.Fatal("no urbanbrain service")
	}
	if ub.Build["dockerfile"] != "deploy/Dockerfile" {
		t.Errorf("urbanbrain builds from %q, want deploy/Dockerfile", ub.Build["dockerfile"])
	}
	for _, dep := range []string{"kafka", "clickhouse", "minio"} {
		if ub.DependsOn[dep].Condition != "service_healthy" {
			t.Errorf("urbanbrain does not wait for %s to be healthy", dep)
		}
	}
	var cfg app.Config
	fs := serveFlags(&cfg)
	for k, v := range ub.Environment {
		setEnv(t, fs, k, v)
	}
	cfg.DataDir = "/var/lib/urbanbrain"
	if err := cfg.Validate(); err != nil {
		t.Errorf("the compose configuration does not validate: %v", err)
	}
	if cfg.Store != app.StoreClickHouse || len(cfg.KafkaBrokers) == 0 || cfg.KafkaBrokers[0] != "kafka:9092" ||
		len(cfg.ClickHouseAddrs) == 0 || cfg.ClickHouseAddrs[0] != "clickhouse:9000" {
		t.Errorf("urbanbrain is not configured for the compose services: store %q, brokers %v, clickhouse %v",
			cfg.Store, cfg.KafkaBrokers, cfg.ClickHouseAddrs)
	}
}

// serveFlags binds cfg to the flags of `urbanbrain serve`.
func serveFlags(cfg *app.Config) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	return fs
}

// setEnv applies one URBANBRAIN_* variable to fs the way the binary does. Every such variable
// must be a flag the binary has (the env name of --x-y is URBANBRAIN_X_Y), so a typo cannot
// silently fall back to a default.
func setEnv(t *testing.T, fs *flag.FlagSet, k, v string) {
	t.Helper()
	if !strings.HasPrefix(k, "URBANBRAIN_") {
		return
	}
	if k == app.EnvS3SecretKey || k == app.EnvKafkaSASLPassword {
		return // secrets come from the environment only, never a flag
	}
	setFlag(t, fs, strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, "URBANBRAIN_"), "_", "-")), v, k)
}

// setFlag sets --name to v; what names the setting in messages (an env variable, a file key).
func setFlag(t *testing.T, fs *flag.FlagSet, name, v, what string) {
	t.Helper()
	f := fs.Lookup(name)
	if f == nil {
		t.Errorf("%s is not a setting of urbanbrain serve (no --%s)", what, name)
		return
	}
	if err := f.Value.Set(v); err != nil {
		t.Errorf("%s=%q: %v", what, v, err)
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	d := string(b)
	for _, want := range []string{
		"FROM --platform=$BUILDPLATFORM", // the build stage runs natively and cross-compiles
		"ARG TARGETARCH", "GOARCH=$TARGETARCH",
		"CGO_ENABLED=0", // static
		"./cmd/urbanbrain",
		"USER nonroot",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if !strings.HasPrefix(d, "# syntax=") {
		t.Error("the syntax directive must be the Dockerfile's first line")
	}
}
