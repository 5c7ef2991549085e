// Package clickhousetest starts private ClickHouse servers for tests: the clickhouse-server
// installed on the machine (Debian's package), run as a plain child process with its own
// configuration, data directory and free loopback port, and stopped when the tests end. A
// test can also stop and restart a server to see what the code does while ClickHouse is down.
package clickhousetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// EnvRequire is the environment variable that turns "skip" into "fail" when the server cannot
// be started: `make test` sets it to 1 after installing clickhouse-server.
const EnvRequire = "URBANBRAIN_REQUIRE_TOOLS"

// Server is one private clickhouse-server.
type Server struct {
	dir   string
	port  int
	bin   []string // the command: clickhouse-server, or clickhouse server
	extra string   // more configuration, inside <yandex>: a cluster's remote_servers

	mu     sync.Mutex
	cmd    *exec.Cmd
	out    *os.File
	exited chan struct{} // closed when cmd has exited and been reaped
}

// Find returns the command that runs a server: Debian's clickhouse-server (18.16), or the
// single clickhouse binary of current releases.
func Find() ([]string, error) {
	if p, err := exec.LookPath("clickhouse-server"); err == nil {
		return []string{p}, nil
	}
	for _, p := range []string{"/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"} {
		if _, err := os.Stat(p); err == nil {
			return []string{p}, nil
		}
	}
	if p, err := exec.LookPath("clickhouse"); err == nil {
		return []string{p, "server"}, nil
	}
	return nil, errors.New("clickhouse-server is not installed (Debian: apt-get install clickhouse-server clickhouse-client)")
}

// Start starts a server whose configuration and data live in dir (created if needed), on a
// free loopback port, and waits until it answers.
func Start(dir string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return start(dir, port, "")
}

func start(dir string, port int, extra string) (*Server, error) {
	bin, err := Find()
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, port: port, bin: bin, extra: extra}
	if err := s.writeConfig(); err != nil {
		return nil, err
	}
	if err := s.Restart(); err != nil {
		return nil, err
	}
	return s, nil
}

// Cluster is private servers that form one ClickHouse cluster of unreplicated shards, one
// server each: every server's configuration names all of them in remote_servers, so a
// Distributed table on any of them reaches every shard. Unreplicated shards need no
// ZooKeeper.
type Cluster struct {
	// Name is the cluster's name in remote_servers.
	Name    string
	Servers []*Server
}

// StartCluster starts a cluster called name of n single-server shards, each server in a
// subdirectory of dir on its own free loopback port.
func StartCluster(dir, name string, n int) (*Cluster, error) {
	ports := make([]int, n)
	var shards strings.Builder
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
		fmt.Fprintf(&shards, "      <shard><replica><host>127.0.0.1</host><port>%d</port></replica></shard>\n", p)
	}
	extra := fmt.Sprintf("  <remote_servers>\n    <%[1]s>\n%[2]s    </%[1]s>\n  </remote_servers>\n", name, shards.String())
	c := &Cluster{Name: name}
	for i, p := range ports {
		sdir := filepath.Join(dir, fmt.Sprintf("shard%d", i+1))
		s, err := start(sdir, p, extra)
		if err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("shard %d: %w", i+1, err)
		}
		c.Servers = append(c.Servers, s)
	}
	return c, nil
}

// Addrs are the servers' native-protocol addresses, shard by shard.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		out[i] = s.Addr()
	}
	return out
}

// Close stops every server and removes its directory.
func (c *Cluster) Close() error {
	var errs []error
	for _, s := range c.Servers {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// NewCluster starts a private cluster of n single-server shards for one test, in the test's
// temporary directory, and stops it when the test ends; it skips or fails the test like New
// when no server can be started.
func NewCluster(tb testing.TB, name string, n int) *Cluster {
	tb.Helper()
	c, err := StartCluster(tb.TempDir(), name, n)
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			tb.Fatalf("ClickHouse is required (make test installs clickhouse-server) but could not start: %v", err)
		}
		tb.Skipf("SKIP: ClickHouse unavailable (run `make test`, which installs clickhouse-server from Debian): %v", err)
	}
	tb.Cleanup(func() {
		for _, s := range c.Servers {
			if err := s.Stop(); err != nil {
				tb.Errorf("stop clickhouse-server: %v", err)
			}
		}
	})
	return c
}

// Addr is the server's native-protocol address.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Dir is where the server keeps its configuration, data and logs.
func (s *Server) Dir() string { return s.dir }

// Restart starts the server again after Stop, on the same port with the same data, and waits
// until it answers. On a running server it does nothing.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	out, err := os.OpenFile(filepath.Join(s.dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := append(s.bin[1:], "--config-file="+filepath.Join(s.dir, "config.xml"))
	cmd := exec.Command(s.bin[0], args...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = out, out
	// The server must not outlive the test binary, whatever way it ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start %v: %w", s.bin, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	if err := s.waitReady(exited, &waitErr); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		out.Close()
		log, _ := os.ReadFile(filepath.Join(s.dir, "log", "err.log"))
		return fmt.Errorf("clickhouse-server did not come up: %w\n%s", err, tail(log, 2000))
	}
	s.cmd, s.out, s.exited = cmd, out, exited
	return nil
}

func (s *Server) waitReady(exited <-chan struct{}, waitErr *error) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			return fmt.Errorf("exited: %v", *waitErr)
		default:
		}
		if err := s.ping(); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *Server) ping() error {
	conn, err := ch.Open(&ch.Options{Addr: []string{s.Addr()}, DialTimeout: time.Second})
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return conn.Ping(ctx)
}

// Stop terminates the server and waits for it to exit; its data stays for Restart.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.out.Close()
	s.cmd, s.out, s.exited = nil, nil, nil
	return nil
}

// Close stops the server and removes its directory.
func (s *Server) Close() error {
	err := s.Stop()
	return errors.Join(err, os.RemoveAll(s.dir))
}

func (s *Server) writeConfig() error {
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o755); err != nil {
			return err
		}
	}
	// <yandex> is the root both 18.16 and current releases read. Only the native port is
	// opened; the server uses at most a few hundred MB.
	config := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>%[1]s/log/server.log</log>
    <errorlog>%[1]s/log/err.log</errorlog>
    <size>10M</size>
    <count>1</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>%[2]d</tcp_port>
  <path>%[1]s/data/</path>
  <tmp_path>%[1]s/tmp/</tmp_path>
  <user_files_path>%[1]s/user_files/</user_files_path>
  <format_schema_path>%[1]s/format_schemas/</format_schema_path>
  <users_config>%[1]s/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
%[3]s</yandex>
`, s.dir, s.port, s.extra)
	users := `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(s.dir, "config.xml"), []byte(config), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.dir, "users.xml"), []byte(users), 0o644)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// shared is the server of the test binary, started by Main.
var (
	shared    *Server
	sharedErr error
)

// Main is TestMain for a package that needs ClickHouse: it starts one private server for the
// package's tests, runs them, and stops it. When the server cannot be started the tests still
// run and Require skips them, saying why, unless EnvRequire is 1, in which case Require fails
// them.
func Main(m *testing.M) {
	os.Exit(mainCode(m))
}

func mainCode(m *testing.M) int {
	dir, err := os.MkdirTemp("", "urbanbrain-clickhouse-")
	if err != nil {
		sharedErr = err
		return m.Run()
	}
	shared, sharedErr = Start(dir)
	if sharedErr != nil {
		_ = os.RemoveAll(dir)
		fmt.Fprintf(os.Stderr, "clickhousetest: SKIP ClickHouse tests: %v\n", sharedErr)
		return m.Run()
	}
	defer func() {
		if err := shared.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "clickhousetest: stopping the server: %v\n", err)
		}
	}()
	return m.Run()
}

// Require returns the package's server, or skips the test (fails it when EnvRequire is 1)
// when there is none.
func Require(tb testing.TB) *Server {
	tb.Helper()
	if shared != nil {
		return shared
	}
	err := sharedErr
	if err == nil {
		err = errors.New("clickhousetest.Main was not called from TestMain")
	}
	if os.Getenv(EnvRequire) == "1" {
		tb.Fatalf("ClickHouse is required (make test installs clickhouse-server) but unavailable: %v", err)
	}
	tb.Skipf("SKIP: ClickHouse unavailable (run `make test`, which installs clickhouse-server from Debian): %v", err)
	return nil
}

var dbSeq struct {
	sync.Mutex
	n int
}

// Database returns a database name not used before in this test binary, for a test's own
// store.
func Database(prefix string) string {
	dbSeq.Lock()
	defer dbSeq.Unlock()
	dbSeq.n++
	return fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), dbSeq.n)
}

// New starts a private server for one test, in the test's temporary directory, and stops it
// when the test ends. Where no server can be started it skips the test, saying why, or fails
// it when EnvRequire is 1.
func New(tb testing.TB) *Server {
	tb.Helper()
	s, err := Start(tb.TempDir())
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			tb.Fatalf("ClickHouse is required (make test installs clickhouse-server) but could not start: %v", err)
		}
		tb.Skipf("SKIP: ClickHouse unavailable (run `make test`, which installs clickhouse-server from Debian): %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Errorf("stop clickhouse-server: %v", err)
		}
	})
	return s
}
