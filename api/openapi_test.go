package api

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/api/apitest"
)

// fullServer is a server with every part: the API, ingest and the cockpit.
func fullServer() *Server {
	return New(Deps{Config: Config{API: true}, Log: zap.NewNop(), Registry: prometheus.NewRegistry(), Ingest: http.NotFoundHandler(),
		Cockpit: fakeCockpit{http.NotFoundHandler()}})
}

type fakeCockpit struct{ http.Handler }

func (c fakeCockpit) WorkerHandler() http.Handler { return c.Handler }

// The document is valid OpenAPI 3.1, and its operations are exactly the routing table's.
func TestOpenAPIDocumentIsValidAndListsEveryRoute(t *testing.T) {
	routes := fullServer().Routes()
	doc, err := OpenAPI(routes)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := apitest.OpenAPIValidator(t, doc)
	m, err := d.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for path, item := range m.Model.Paths.PathItems.FromOldest() {
		for method := range item.GetOperations().FromOldest() {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	var registered []string
	for _, r := range routes {
		method, path := splitPattern(r.Pattern)
		registered = append(registered, method+" "+path)
	}
	slices.Sort(documented)
	slices.Sort(registered)
	if !slices.Equal(documented, registered) {
		t.Errorf("the document's operations differ from the routes:\n documented %q\n registered %q", documented, registered)
	}
	if !slices.Contains(registered, "GET /api/openapi.json") {
		t.Error("the document does not list itself")
	}
	t.Logf("%d operations, %d bytes", len(documented), len(doc))
}

// A route without an entry in routeDocs is an error: a new route must be documented.
func TestOpenAPIRefusesAnUndocumentedRoute(t *testing.T) {
	routes := append(fullServer().Routes(), Route{Pattern: "GET /api/v1/undocumented"})
	if _, err := OpenAPI(routes); err == nil || !strings.Contains(err.Error(), "GET /api/v1/undocumented") {
		t.Fatalf("an undocumented route: %v, want an error naming it", err)
	}
}

// Every documented entry is a route some configuration registers (no stale entries).
func TestOpenAPIHasNoEntryWithoutARoute(t *testing.T) {
	registered := map[string]bool{}
	for _, r := range fullServer().Routes() {
		registered[r.Pattern] = true
	}
	for pattern := range routeDocs() {
		if !registered[pattern] {
			t.Errorf("routeDocs has %q, which is not a route", pattern)
		}
	}
}

// GET /api/openapi.json serves the document.
func TestOpenAPIServed(t *testing.T) {
	srv := fullServer()
	rec := httptest.NewRecorder()
	req, _ := http.NewRequest(http.MethodGet, "/api/openapi.json", nil)
	srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"openapi": "3.1.0"`) {
		t.Fatalf("GET /api/openapi.json: %d %.200s", rec.Code, rec.Body.String())
	}
}
