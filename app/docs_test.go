package app

import (
	"flag"
	"os"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/api"
	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/incidents"
)

// docs/api.md is the API's documentation: every route the server registers and every error
// code it can answer must appear there, so the page cannot silently fall behind the code.
func TestAPIDocsListEveryRouteAndErrorCode(t *testing.T) {
	doc, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	a, err := New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	routes := a.newAPI().Routes()
	if len(routes) < 8 {
		t.Fatalf("only %d routes registered; the table is incomplete", len(routes))
	}
	for _, r := range routes {
		if !strings.Contains(string(doc), "`"+r.Pattern+"`") {
			t.Errorf("docs/api.md does not list the route `%s`", r.Pattern)
		}
	}
	codes := []string{
		auth.CodeUnauthenticated, auth.CodeForbidden, auth.CodeRateLimited,
		api.CodeInvalidRequest, api.CodeNotFound, api.CodeForbidden, api.CodeIllegalTransition, api.CodeInvalidCommand,
		api.CodeTimeout, api.CodeUnavailable, api.CodeInternal,
		api.CodeInvalidRule, api.CodeRuleExists, api.CodeVersionConflict, api.CodeTooManyJobs, api.CodeLocked, api.CodeAccountExists,
		incidents.CodeIllegalTransition, incidents.CodeNotFound, incidents.CodeForbidden, incidents.CodeInvalidCommand,
	}
	for _, c := range codes {
		if !strings.Contains(string(doc), "| `"+c+"` |") {
			t.Errorf("docs/api.md error table does not list the code `%s`", c)
		}
	}
}

// docs/operations.md documents the configuration: every flag of `serve` must be in its table.
func TestOperationsDocsListEveryFlag(t *testing.T) {
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var cfg Config
	cfg.RegisterFlags(fs)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		if !strings.Contains(string(doc), "| `--"+f.Name+"` |") {
			t.Errorf("docs/operations.md does not document --%s", f.Name)
		}
	})
	if n < 20 {
		t.Fatalf("only %d flags registered; RegisterFlags lost some", n)
	}
}
