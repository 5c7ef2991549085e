package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/urbanbrain/urbanbrain/api/apitest"
	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
)

// Every answer of a real run — the permission fixture's set-up and every row of the permission
// table, each role on its own and the other object — is checked against the OpenAPI document
// the server serves (recordOpenAPI).
func TestOpenAPIRecordedResponses(t *testing.T) {
	rec := recordOpenAPI(t)
	f := newPermFixture(t)
	rows := append(append(permRows(), rulePermRows()...), accountPermRows()...)
	rows = append(rows, pageRows()...)
	for _, row := range rows {
		for _, own := range []bool{true, false} {
			if !own && !row.scoped {
				continue
			}
			for _, role := range permRoles {
				method, path, body := row.req(f, own)
				if !row.ws {
					f.call(method, path, f.tokens[role], body)
					continue
				}
				// The websocket's handshake does not go through the client: record its answer.
				status, answer := f.dial(path, f.tokens[role])
				req, _ := http.NewRequest(method, f.r.base+path, nil)
				resp := &http.Response{StatusCode: status, Header: http.Header{}}
				if status >= 300 {
					resp.Header.Set("Content-Type", "application/json; charset=utf-8")
				} else {
					answer = nil // the first frame, not the handshake's body
				}
				rec.add(apitest.Exchange{Request: req, Response: resp, Body: answer})
			}
		}
	}
	// The work-order loop on the own incident, to closing and past it (a refused command), so
	// the recorded answers hold every state and the timeline's every kind.
	for _, st := range []struct {
		role string
		body map[string]any
		want int
	}{
		{auth.RoleWorker, map[string]any{"action": event.ActionAccept}, http.StatusOK},
		{auth.RoleWorker, map[string]any{"action": event.ActionStart}, http.StatusOK},
		{auth.RoleWorker, map[string]any{"action": event.ActionResolve, "evidence": map[string]any{"note": "已清运"}}, http.StatusOK},
		{auth.RoleOperator, map[string]any{"action": event.ActionVerify}, http.StatusOK},
		{auth.RoleSupervisor, map[string]any{"action": event.ActionClose}, http.StatusOK},
		{auth.RoleSupervisor, map[string]any{"action": event.ActionClose}, http.StatusConflict},
	} {
		if code, b := f.call(http.MethodPost, "/api/v1/incidents/"+f.own.ID+"/actions", f.tokens[st.role], st.body); code != st.want {
			t.Errorf("%s as %s: %d, want %d: %.300s", st.body["action"], st.role, code, st.want, b)
		}
	}
	for _, path := range []string{"/api/v1/incidents/" + f.own.ID, "/api/v1/incidents/" + f.own.ID + "/timeline",
		"/api/v1/kpis", "/api/v1/reports?period=day", "/api/v1/incidents?open=false"} {
		f.call(http.MethodGet, path, f.tokens[auth.RoleSupervisor], nil)
	}
	if n := rec.check(t, f.r); n < 500 {
		t.Errorf("only %d answers checked; the recorder missed the run", n)
	}
}

// recordOpenAPI records every request the test sends with http.DefaultClient (as running.do
// and permFixture.call do) and its answer; check validates them. The test must not be
// parallel: the default client is swapped for its duration.
func recordOpenAPI(t *testing.T) *exchangeRecorder {
	rec := &exchangeRecorder{next: http.DefaultTransport}
	saved := http.DefaultClient.Transport
	http.DefaultClient.Transport = rec
	t.Cleanup(func() { http.DefaultClient.Transport = saved })
	return rec
}

// check validates every answer of r recorded so far against the OpenAPI document r serves
// (GET /api/openapi.json): its status must be documented for the route the request took, and
// its body must match that status's schema (libopenapi-validator). It returns how many it
// checked.
func (rec *exchangeRecorder) check(t *testing.T, r *running) int {
	t.Helper()
	exchanges := rec.taken()
	var doc json.RawMessage
	if code := r.do(http.MethodGet, "/api/openapi.json", "", nil, &doc); code != http.StatusOK {
		t.Fatalf("GET /api/openapi.json: %d %.300s", code, doc)
	}
	d, v := apitest.OpenAPIValidator(t, doc)
	model, err := d.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	// The route each request took, by the server's own table.
	mux := http.NewServeMux()
	for _, rt := range r.app.newAPI().Routes() {
		mux.Handle(rt.Pattern, http.NotFoundHandler())
	}
	checked, statuses := 0, map[string]bool{}
	var (
		wrong    *http.Response // a control: a recorded answer made wrong
		wrongReq *http.Request
	)
	for _, x := range exchanges {
		if !strings.HasPrefix(x.Request.URL.String(), r.base) {
			continue // a webhook or another peer, not this API
		}
		_, pattern := mux.Handler(x.Request)
		if pattern == "" {
			t.Errorf("%s: no route", x.Describe())
			continue
		}
		method, path, _ := strings.Cut(pattern, " ")
		path = strings.ReplaceAll(path, "{$}", "")
		item := model.Model.Paths.PathItems.GetOrZero(path)
		if item == nil {
			t.Errorf("%s: the document has no path %s", x.Describe(), path)
			continue
		}
		op := item.GetOperations().GetOrZero(strings.ToLower(method))
		var documented *v3.Response
		if op != nil && op.Responses != nil {
			documented = op.Responses.Codes.GetOrZero(strconv.Itoa(x.Response.StatusCode))
		}
		if documented == nil {
			t.Errorf("%s: the status is not documented for %s", x.Describe(), pattern)
			continue
		}
		statuses[pattern+" "+strconv.Itoa(x.Response.StatusCode)] = true
		checked++
		if documented.Content == nil || documented.Content.Len() == 0 {
			continue // no body (a redirect, 101, 204): the status is all there is to check
		}
		req := x.Request.Clone(x.Request.Context())
		if strings.HasSuffix(path, "/") && req.URL.Path != path {
			req.URL = &url.URL{Scheme: req.URL.Scheme, Host: req.URL.Host, Path: path} // a file under a subtree route
		}
		resp := *x.Response
		resp.Body = io.NopCloser(bytes.NewReader(x.Body))
		if ok, errs := v.ValidateHttpResponse(req, &resp); !ok {
			t.Errorf("%s does not match the document:\n%s%.400s", x.Describe(), apitest.Explain(errs), x.Body)
		}
		if wrong == nil && pattern == "GET /api/v1/incidents" && x.Response.StatusCode == http.StatusOK {
			wrong, wrongReq = &resp, req
		}
	}
	// A control that the validator does read bodies: a list whose incidents are a number.
	if wrong != nil {
		wrong.Body = io.NopCloser(strings.NewReader(`{"incidents": 5, "count": 0, "total": 0}`))
		if ok, _ := v.ValidateHttpResponse(wrongReq, wrong); ok {
			t.Error("a wrong body of GET /api/v1/incidents passed the validator")
		}
	}
	t.Logf("%d recorded answers validated against the OpenAPI document (%d routes × statuses)", checked, len(statuses))
	return checked
}

// exchangeRecorder is a transport that keeps every request and its answer.
type exchangeRecorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	xs   []apitest.Exchange
}

func (r *exchangeRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("record %s %s: %w", req.Method, req.URL, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	r.add(apitest.Exchange{Request: req, Response: resp, Body: body})
	return resp, nil
}

func (r *exchangeRecorder) add(x apitest.Exchange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.xs = append(r.xs, x)
}

func (r *exchangeRecorder) taken() []apitest.Exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.xs
}
