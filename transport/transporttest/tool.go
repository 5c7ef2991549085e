package transporttest

import (
	"os"
	"os/exec"
	"testing"
)

// RequireTool finds an external test peer (kcat, chromium, clickhouse-server). Under `make
// test`, which installs the peers and sets URBANBRAIN_REQUIRE_TOOLS=1, a missing tool fails the
// test; a plain `go test` without it skips, saying why.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("URBANBRAIN_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s is required (make test installs it) but not found: %v", name, err)
	}
	t.Skipf("SKIP: %s not installed (run `make test`, which installs it from Debian)", name)
	return ""
}
