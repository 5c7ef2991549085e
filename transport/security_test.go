package transport_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap/zaptest"

	"github.com/urbanbrain/urbanbrain/transport"
	"github.com/urbanbrain/urbanbrain/transport/transporttest"
)

func TestSecurityConfigValidate(t *testing.T) {
	t.Parallel()
	remote := []string{"kafka-1.city.internal:9093", "127.0.0.1:9092"}
	local := []string{"127.0.0.1:9092", "localhost:9092", "[::1]:9092"}
	for _, tc := range []struct {
		name    string
		cfg     transport.SecurityConfig
		brokers []string
		wantErr string // empty: valid
	}{
		{"nothing", transport.SecurityConfig{}, remote, ""},
		{"plain without tls to a remote broker", transport.SecurityConfig{SASLMechanism: "plain", SASLUser: "u", SASLPassword: "p"}, remote,
			"SASL PLAIN sends the password in clear; refused without --kafka-tls for broker kafka-1.city.internal:9093"},
		{"plain without tls on loopback", transport.SecurityConfig{SASLMechanism: "plain", SASLUser: "u", SASLPassword: "p"}, local, ""},
		{"plain over tls", transport.SecurityConfig{TLS: true, SASLMechanism: "plain", SASLUser: "u", SASLPassword: "p"}, remote, ""},
		{"scram without tls", transport.SecurityConfig{SASLMechanism: "scram-sha-512", SASLUser: "u", SASLPassword: "p"}, remote, ""},
		{"scram without a password", transport.SecurityConfig{SASLMechanism: "scram-sha-512", SASLUser: "u"}, remote, "needs --kafka-sasl-user and a password"},
		{"unknown mechanism", transport.SecurityConfig{SASLMechanism: "gssapi", SASLUser: "u", SASLPassword: "p"}, remote, `"gssapi": want plain`},
		{"user without a mechanism", transport.SecurityConfig{SASLUser: "u"}, remote, "without --kafka-sasl-mechanism"},
		{"ca without tls", transport.SecurityConfig{CAFile: "ca.pem"}, remote, "need --kafka-tls"},
		{"cert without key", transport.SecurityConfig{TLS: true, CertFile: "c.pem"}, remote, "go together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate(tc.brokers)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("want an error containing %q, got %v", tc.wantErr, err)
			}
		})
	}
}

// Every kafka-go Dialer, Transport and Client of the process is built by transport.Security,
// so none can be opened without the configured TLS and SASL; a literal elsewhere, or a Reader
// or Writer left on kafka-go's defaults, would connect in plaintext without credentials.
func TestEveryKafkaConnectionIsBuiltBySecurity(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..")
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		kafkaName := ""
		for _, imp := range f.Imports {
			if imp.Path.Value == `"github.com/segmentio/kafka-go"` {
				kafkaName = "kafka"
				if imp.Name != nil {
					kafkaName = imp.Name.Name
				}
			}
		}
		if kafkaName == "" {
			return nil
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			sel, ok := lit.Type.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); !ok || x.Name != kafkaName {
				return true
			}
			pos := fset.Position(lit.Pos())
			switch sel.Sel.Name {
			case "Dialer", "Transport", "Client":
				if filepath.Base(path) != "security.go" || filepath.Base(filepath.Dir(path)) != "transport" {
					t.Errorf("%s: kafka.%s built outside transport.Security: use transport.Dialer(), Security.Transport() or transport.Client()", pos, sel.Sel.Name)
				}
			case "ReaderConfig", "ConsumerGroupConfig":
				if !hasField(lit, "Dialer") {
					t.Errorf("%s: kafka.%s without a Dialer connects with kafka-go's default (no TLS, no SASL)", pos, sel.Sel.Name)
				}
			case "Writer":
				if !hasField(lit, "Transport") {
					t.Errorf("%s: kafka.Writer without a Transport connects with kafka-go's default (no TLS, no SASL)", pos)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func hasField(lit *ast.CompositeLit, name string) bool {
	for _, e := range lit.Elts {
		if kv, ok := e.(*ast.KeyValueExpr); ok {
			if k, ok := kv.Key.(*ast.Ident); ok && k.Name == name {
				return true
			}
		}
	}
	return false
}

// startSecureBroker starts the embedded broker with SASL required and TLS, and returns it with
// its data directory.
func startSecureBroker(t *testing.T, pki transport.TestPKI) (*transport.Embedded, string) {
	t.Helper()
	dir := t.TempDir()
	e, err := transport.StartEmbedded(transport.EmbeddedConfig{
		DataDir: dir, Listen: "127.0.0.1:0", Partitions: 2, Topics: []string{"in", "out"},
		SyncWrites:  true, // its acknowledgements read the requests above TLS (syncedacks.go)
		RequireSASL: true, TLS: &tls.Config{Certificates: []tls.Certificate{pki.Server}, MinVersion: tls.VersionTLS12},
	}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e, dir
}

// The embedded broker with SCRAM-SHA-512 over TLS: our producer, stage and readers get through
// with the right credentials (from the operator's flags: CA file, user, password), and are
// refused with a wrong password, without credentials, and without TLS.
func TestSASLOverTLSBrokerAdmitsOnlyTheRightCredentials(t *testing.T) {
	pki := transport.NewTestPKI(t)
	e, dir := startSecureBroker(t, pki)
	addrs := e.Addrs()
	pass, err := os.ReadFile(filepath.Join(dir, "client.secret"))
	if err != nil {
		t.Fatal(err)
	}
	good, err := transport.SecurityConfig{TLS: true, CAFile: pki.CAFile,
		SASLMechanism: transport.SASLScramSHA512, SASLUser: transport.EmbeddedUser, SASLPassword: strings.TrimSpace(string(pass))}.Build(addrs)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("right credentials", func(t *testing.T) {
		p, err := transport.NewProducer(transport.ProducerConfig{Brokers: addrs, Security: good}, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(time.Second)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		if err := p.Write(ctx, kafka.Message{Topic: "in", Key: []byte("k"), Value: []byte("hello")}); err != nil {
			t.Fatalf("producer with the right credentials: %v", err)
		}
		// A stage reads it and writes an output through the same producer.
		var handled atomic.Int32
		st, err := transport.NewStage(transport.StageConfig{Brokers: addrs, Security: good, GroupID: "secure", Topics: []string{"in"}},
			func(_ context.Context, rec kafka.Message) ([]kafka.Message, error) {
				handled.Add(1)
				return []kafka.Message{{Topic: "out", Key: rec.Key, Value: append([]byte("seen "), rec.Value...)}}, nil
			}, p, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		sctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- st.Run(sctx) }()
		// ReadAll and the other broker-address helpers use the process's security.
		transport.UseSecurity(good)
		defer transport.UseSecurity(nil)
		var got []string
		for ctx.Err() == nil && len(got) == 0 {
			got = got[:0]
			if err := transport.ReadAll(ctx, addrs, "out", func(_ string, v []byte) error {
				got = append(got, string(v))
				return nil
			}); err != nil {
				t.Fatalf("ReadAll with the right credentials: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != "seen hello" || handled.Load() == 0 {
			t.Fatalf("stage output %q after %d handled, want [seen hello]", got, handled.Load())
		}
		// The broker's own client security (what serve hands to UseSecurity) works too.
		if _, err := e.ClientSecurity().Client(addrs).Metadata(ctx, &kafka.MetadataRequest{Topics: []string{"in"}}); err != nil {
			t.Fatalf("the broker's own client security: %v", err)
		}
	})

	wrongPass, _ := transport.SecurityConfig{TLS: true, CAFile: pki.CAFile,
		SASLMechanism: transport.SASLScramSHA512, SASLUser: transport.EmbeddedUser, SASLPassword: "guessed"}.Build(addrs)
	noSASL, _ := transport.SecurityConfig{TLS: true, CAFile: pki.CAFile}.Build(addrs)
	noTLS, _ := transport.SecurityConfig{SASLMechanism: transport.SASLScramSHA512, SASLUser: transport.EmbeddedUser,
		SASLPassword: strings.TrimSpace(string(pass))}.Build(addrs)
	otherCA := transport.NewTestPKI(t)
	wrongCA, _ := transport.SecurityConfig{TLS: true, CAFile: otherCA.CAFile,
		SASLMechanism: transport.SASLScramSHA512, SASLUser: transport.EmbeddedUser, SASLPassword: strings.TrimSpace(string(pass))}.Build(addrs)
	for _, tc := range []struct {
		name string
		sec  *transport.Security
	}{
		{"wrong password", wrongPass},
		{"no credentials", noSASL},
		{"no tls", noTLS},
		{"broker certificate from another CA", wrongCA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			p, err := transport.NewProducer(transport.ProducerConfig{Brokers: addrs, Security: tc.sec, MaxAttempts: 1, WriteTimeout: 2 * time.Second}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(time.Second)
			if err := p.Write(ctx, kafka.Message{Topic: "in", Key: []byte("k"), Value: []byte("forged")}); err == nil {
				t.Fatal("producer got a record in")
			}
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: addrs, Topic: "in", Partition: 0, Dialer: tc.sec.Dialer(), MaxWait: 100 * time.Millisecond})
			defer r.Close()
			rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
			defer rcancel()
			if m, err := r.FetchMessage(rctx); err == nil {
				t.Fatalf("reader read %q", m.Value)
			}
			if _, err := tc.sec.Client(addrs).Metadata(ctx, &kafka.MetadataRequest{}); err == nil {
				t.Fatal("metadata request answered")
			}
		})
	}

	t.Run("nothing forged got in", func(t *testing.T) {
		transport.UseSecurity(good)
		defer transport.UseSecurity(nil)
		if err := transport.ReadAll(t.Context(), addrs, "in", func(_ string, v []byte) error {
			if string(v) != "hello" {
				t.Errorf("record %q on the topic", v)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
}

// A broker that listens beyond loopback requires SASL even when not asked to, with a password
// generated into a 0600 file that survives restarts; and an earlier run without SASL on the
// same directory (kfake then persists no users) does not lock the process out.
func TestEmbeddedBrokerCredentialsPersistAndSurviveAnOpenRun(t *testing.T) {
	dir := t.TempDir()
	listen := "127.0.0.1:0"
	open, err := transport.StartEmbedded(transport.EmbeddedConfig{DataDir: dir, Listen: listen, Topics: []string{"t"}, Partitions: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if open.ClientSecurity().SASL != nil {
		t.Fatal("loopback without RequireSASL asks for credentials")
	}
	if err := open.Close(); err != nil {
		t.Fatal(err)
	}

	var first string
	for run := range 2 {
		e, err := transport.StartEmbedded(transport.EmbeddedConfig{DataDir: dir, Listen: listen, Topics: []string{"t"}, Partitions: 1, RequireSASL: true}, nil)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		file := filepath.Join(dir, "client.secret")
		st, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("password file mode %v, want 0600", st.Mode().Perm())
		}
		if dst, _ := os.Stat(dir); dst.Mode().Perm() != 0o700 {
			t.Errorf("data dir mode %v, want 0700", dst.Mode().Perm())
		}
		b, _ := os.ReadFile(file)
		if run == 0 {
			first = string(b)
		} else if string(b) != first {
			t.Error("the password changed across a restart")
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		if _, err := e.ClientSecurity().Client(e.Addrs()).Metadata(ctx, &kafka.MetadataRequest{}); err != nil {
			t.Errorf("run %d: own credentials refused: %v", run, err)
		}
		if _, err := (&transport.Security{}).Client(e.Addrs()).Metadata(ctx, &kafka.MetadataRequest{}); err == nil {
			t.Errorf("run %d: a client without credentials was answered", run)
		}
		cancel()
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEmbeddedBrokerBeyondLoopbackRequiresSASL(t *testing.T) {
	t.Parallel()
	ip := nonLoopbackIP(t)
	e, err := transport.StartEmbedded(transport.EmbeddedConfig{Listen: net.JoinHostPort(ip, "0"), Partitions: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.ClientSecurity().SASL == nil {
		t.Fatalf("broker on %s does not require SASL", ip)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := (&transport.Security{}).Client(e.Addrs()).Metadata(ctx, &kafka.MetadataRequest{}); err == nil {
		t.Fatal("a client without credentials was answered")
	}
	if _, err := e.ClientSecurity().Client(e.Addrs()).Metadata(ctx, &kafka.MetadataRequest{}); err != nil {
		t.Fatalf("own credentials refused: %v", err)
	}
}

func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("SKIP: no non-loopback IPv4 address on this machine to listen on")
	return ""
}

// kcat, as an attacker who can reach the port would use it: without credentials it cannot
// put a command on city.commands of an embedded broker that requires SASL. With the
// credentials it can, where its librdkafka speaks SaslHandshake v1 alone (kfake, like
// Kafka 4, offers no v0; librdkafka before confluentinc/librdkafka#4983 insists on v0 and
// gives up with "SASL Handshake not supported by broker"); the test says so when it meets
// such a kcat, and the credentials are then shown to work by the kafka-go clients above.
func TestKcatNeedsCredentialsForTheSASLBroker(t *testing.T) { // not parallel: sets the process's security
	kcat := transporttest.RequireTool(t, "kcat")
	dir := t.TempDir()
	e, err := transport.StartEmbedded(transport.EmbeddedConfig{DataDir: dir, Listen: "127.0.0.1:0", Partitions: 1,
		Topics: []string{"city.commands"}, RequireSASL: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	pass, err := os.ReadFile(filepath.Join(dir, "client.secret"))
	if err != nil {
		t.Fatal(err)
	}
	produce := func(value string, extra ...string) (string, error) {
		args := append([]string{"-b", e.Addrs()[0], "-t", "city.commands", "-P", "-X", "socket.timeout.ms=3000",
			"-X", "message.timeout.ms=5000"}, extra...)
		cmd := exec.CommandContext(t.Context(), kcat, args...)
		cmd.Stdin = strings.NewReader(value + "\n")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	if out, err := produce("cancel-without-credentials"); err == nil {
		t.Errorf("kcat without credentials produced:\n%s", out)
	}
	want := []string{}
	out, err := produce("with-credentials", "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=SCRAM-SHA-512",
		"-X", "sasl.username="+transport.EmbeddedUser, "-X", "sasl.password="+strings.TrimSpace(string(pass)))
	switch {
	case err == nil:
		want = append(want, "with-credentials")
	case strings.Contains(out, "SASL Handshake not supported by broker"):
		t.Logf("this kcat's librdkafka cannot authenticate to a broker without SaslHandshake v0 (confluentinc/librdkafka#4983); "+
			"only the refusal is shown with kcat:\n%s", out)
	default:
		t.Fatalf("kcat with the credentials: %v\n%s", err, out)
	}

	// What is on the topic: only what was produced with the credentials.
	transport.UseSecurity(e.ClientSecurity())
	defer transport.UseSecurity(nil)
	got := []string{}
	if err := transport.ReadAll(t.Context(), e.Addrs(), "city.commands", func(_ string, v []byte) error {
		got = append(got, string(v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("city.commands holds %q, want %q", got, want)
	}
}
