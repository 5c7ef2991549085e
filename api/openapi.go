package api

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/invopop/jsonschema"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/alerts"
	"github.com/urbanbrain/urbanbrain/auth"
	cockpit "github.com/urbanbrain/urbanbrain/cockpit-ws"
	"github.com/urbanbrain/urbanbrain/incidents"
	"github.com/urbanbrain/urbanbrain/rules/authoring"
	"github.com/urbanbrain/urbanbrain/rules/lang"
	"github.com/urbanbrain/urbanbrain/storage"
)

// The OpenAPI 3.1 document of the HTTP API (GET /api/openapi.json). It is built from the
// routing table, so it cannot fall behind it: every route of Routes is an operation, its
// security follows the route's declared permission, and the schemas of its bodies are
// reflected from the Go types the handlers decode and answer (invopop/jsonschema emits JSON
// Schema 2020-12, the dialect of OpenAPI 3.1). What the table cannot say — a summary, the query
// parameters, which statuses a handler answers — is in routeDocs, one entry per pattern; a
// route without one is an error, so a new route must be documented (app/openapi_test.go also
// checks every recorded answer of the permission fixture against the document).

// OpenAPIVersion is the version of the document's format.
const OpenAPIVersion = "3.1.0"

// routeDoc is what the document says of one route beyond the routing table.
type routeDoc struct {
	summary string // English · 中文
	tag     string
	query   []param
	// body is the request body: a value of the Go type decoded as JSON, or a media.
	body any
	// answers are the statuses the handler itself answers, each with a value of its body's
	// type, a media, or nil for no body. A guarded route adds 401, 403 and 429 (auth).
	answers map[int]any
}

// param is a query parameter.
type param struct {
	name, typ, desc string
}

// media is a body that is not JSON, in any of these media types.
type media []string

var (
	htmlPage    = media{"text/html"}
	errorAnswer = ErrorAnswer{}
)

// errs adds an error answer for each status to answers.
func errs(answers map[int]any, statuses ...int) map[int]any {
	for _, st := range statuses {
		answers[st] = errorAnswer
	}
	return answers
}

// ok is a 200 with a body of v's type, and the error answers of statuses.
func ok(v any, statuses ...int) map[int]any {
	return errs(map[int]any{http.StatusOK: v}, statuses...)
}

// queryParams of the list queries (queries.go).
var (
	pageParams = []param{{"limit", "integer", "page size"}, {"offset", "integer", "rows to skip"}}
	timeParams = []param{{"since", "string", "RFC 3339, inclusive"}, {"until", "string", "RFC 3339, exclusive"}}
	geoParams  = []param{{"format", "string", "geojson: an RFC 7946 FeatureCollection"},
		{"coordsys", "string", "gcj02 or bd09 for Chinese base maps (with format=geojson)"}}
	scopeParams = []param{{"district", "string", "district code"}, {"grid", "string", "grid code"}}
)

func params(lists ...[]param) []param { return slices.Concat(lists...) }

// routeDocs is the entry of every route pattern this server can register.
func routeDocs() map[string]routeDoc {
	incidentQuery := params(scopeParams, timeParams, pageParams, geoParams, []param{{"status", "string", "incident status"},
		{"category", "string", "category code"}, {"severity", "string", "severity"}, {"street", "string", "street code"},
		{"assignee", "string", "assigned worker"}, {"open", "boolean", "open incidents only"}, {"q", "string", "full text"}})
	ruleSaved := map[int]any{http.StatusOK: RuleSaved{}, http.StatusAccepted: RuleSaved{}, http.StatusUnprocessableEntity: RuleInvalid{}}
	ruleText := media{"application/yaml", "text/plain"}
	// A dry run or backtest answers its report, or with ?async=true 202 and the job.
	ruleJob := func(report any) map[int]any {
		return errs(map[int]any{200: report, 202: RuleJob{}, 422: RuleInvalid{}}, 400, 403, 404, 413, 429, 500, 503)
	}
	docs := map[string]routeDoc{
		"GET /livez":  {summary: "Liveness · 存活探针", tag: "ops", answers: ok(LiveAnswer{})},
		"GET /readyz": {summary: "Readiness · 就绪探针", tag: "ops", answers: map[int]any{200: Readiness{}, 503: Readiness{}}},
		"GET /metrics": {summary: "Prometheus metrics · 监控指标", tag: "ops",
			answers: map[int]any{200: media{"text/plain", "application/openmetrics-text"}}},
		"GET /api/openapi.json": {summary: "This OpenAPI document · 接口说明文档", tag: "ops",
			answers: ok(map[string]any{}, 500)},
		"POST /api/v1/events": {summary: "Ingest CloudEvents (one, binary mode, or a batch) · 事件接入", tag: "ingest",
			body: media{"application/cloudevents+json", "application/json", "application/cloudevents-batch+json"},
			answers: map[int]any{200: ingestBatch{}, 202: ingestAccepted{}, 207: ingestBatch{}, 400: ingestError{},
				413: ingestError{}, 415: ingestError{}, 422: media{"application/json"}, 503: ingestError{}}},
		"GET /api/v1/incidents": {summary: "Incidents in scope · 事件列表", tag: "incidents", query: incidentQuery,
			answers: ok(IncidentList{}, 400, 403, 500, 503)},
		"GET /api/v1/search/incidents": {summary: "Search incidents · 事件检索", tag: "incidents", query: incidentQuery,
			answers: ok(IncidentList{}, 400, 403, 500, 503)},
		"GET /api/v1/incidents/{id}": {summary: "One incident with its timeline and events · 事件详情", tag: "incidents",
			answers: ok(storage.IncidentDetail{}, 404, 500, 503)},
		"POST /api/v1/incidents/{id}/actions": {summary: "Send a command to an incident · 处置操作", tag: "incidents",
			body: actionRequest{}, answers: errs(map[int]any{200: actionAnswer{}, 202: CommandPending{}}, 400, 404, 409, 422, 500, 503)},
		"POST /api/v1/incidents/{id}/photos": {summary: "Upload an evidence photo · 上传现场照片", tag: "incidents",
			body:    media{"image/jpeg", "image/png", "image/webp"},
			answers: errs(map[int]any{200: PhotoAnswer{}, 201: PhotoAnswer{}}, 400, 404, 413, 415, 503)},
		"GET /api/v1/incidents/{id}/photos/{name}": {summary: "An evidence photo · 现场照片", tag: "incidents",
			answers: errs(map[int]any{200: media{"image/jpeg", "image/png", "image/webp"}}, 404, 500, 503)},
		"GET /api/v1/incidents/{id}/timeline": {summary: "An incident's timeline · 处置时间线", tag: "incidents",
			answers: ok(Timeline{}, 404, 500, 503)},
		"POST /api/v1/incidents/{id}/merge": {summary: "Merge another incident into this one · 合并", tag: "incidents",
			body: mergeRequest{}, answers: errs(map[int]any{200: actionAnswer{}, 202: CommandPending{}}, 400, 404, 409, 422, 500, 503)},
		"POST /api/v1/incidents/{id}/split": {summary: "Split a report off into a new incident · 拆分", tag: "incidents",
			body: splitRequest{}, answers: errs(map[int]any{200: actionAnswer{}, 202: CommandPending{}}, 400, 404, 409, 422, 500, 503)},
		"GET /api/v1/me/tasks": {summary: "My open tasks, most urgent first · 我的任务", tag: "incidents",
			answers: ok(TaskList{}, 500, 503)},
		"GET /api/v1/events": {summary: "Event history · 事件流水", tag: "queries",
			query: params(scopeParams, timeParams, pageParams, geoParams, []param{{"device", "string", "device id"},
				{"type", "string", "event type"}, {"street", "string", "street code"}, {"q", "string", "full text"},
				{"near", "string", "lat,lon of a circle's centre"}, {"radius", "integer", "the circle's radius in metres"}}),
			answers: ok(EventList{}, 400, 403, 500, 503)},
		"GET /api/v1/kpis": {summary: "KPIs of the range and scope · 运行指标", tag: "queries",
			query: params(scopeParams, timeParams), answers: ok(KPIResponse{}, 400, 403, 500)},
		"GET /api/v1/reports": {summary: "Daily or weekly leadership report · 日报周报", tag: "queries",
			query: params(scopeParams, []param{{"period", "string", "day or week"}, {"date", "string", "a day of the period, YYYY-MM-DD"},
				{"format", "string", "csv for a spreadsheet"}}),
			answers: errs(map[int]any{200: ReportResponse{}}, 400, 403, 500)},
		"GET /api/v1/city": {summary: "Grids, roster, agencies and categories · 网格与名录", tag: "queries",
			answers: ok(CityAnswer{})},

		"GET /api/v1/rules":        {summary: "Rules in scope · 规则列表", tag: "rules", answers: ok(RuleList{})},
		"GET /api/v1/rules/fields": {summary: "What an expression may read and call · 规则字段", tag: "rules", query: []param{{"type", "string", "event type"}}, answers: ok(RuleFields{}, 400)},
		"POST /api/v1/rules": {summary: "Create a rule (YAML) · 新建规则", tag: "rules", body: ruleText,
			answers: errs(map[int]any{201: RuleSaved{}, 202: RuleSaved{}, 422: RuleInvalid{}}, 400, 403, 409, 413, 503)},
		"POST /api/v1/rules/validate": {summary: "Check a rule's text · 校验规则", tag: "rules", body: ruleText,
			answers: errs(map[int]any{200: RuleCheck{}, 422: RuleInvalid{}}, 400, 413)},
		"POST /api/v1/rules/dry-run": {summary: "Run a rule on sample events · 规则试跑", tag: "rules", body: dryRunRequest{},
			query: []param{{"async", "boolean", "true: answer 202 with a job"}}, answers: ruleJob(authoring.DryRunReport{})},
		"POST /api/v1/rules/backtest": {summary: "Replay stored events through a rule · 规则回测", tag: "rules", body: backtestRequest{},
			query: []param{{"async", "boolean", "true: answer 202 with a job"}}, answers: ruleJob(authoring.BacktestReport{})},
		"GET /api/v1/rules/{id}": {summary: "A rule · 规则详情", tag: "rules", answers: ok(RuleView{}, 403, 404)},
		"PUT /api/v1/rules/{id}": {summary: "Save a new version · 修改规则", tag: "rules", body: ruleText,
			query:   []param{{"base_version", "integer", "the version edited"}, {"comment", "string", "why"}},
			answers: errs(ruleSaved, 400, 403, 404, 409, 413, 503)},
		"DELETE /api/v1/rules/{id}": {summary: "Delete a rule · 删除规则", tag: "rules",
			query:   []param{{"base_version", "integer", "the version deleted"}, {"comment", "string", "why"}},
			answers: errs(ruleSaved, 400, 403, 404, 409, 503)},
		"POST /api/v1/rules/{id}/enable": {summary: "Enable a rule · 启用规则", tag: "rules",
			query:   []param{{"base_version", "integer", "the version enabled"}, {"comment", "string", "why"}},
			answers: errs(ruleSaved, 400, 403, 404, 409, 503)},
		"POST /api/v1/rules/{id}/disable": {summary: "Disable a rule · 停用规则", tag: "rules",
			query:   []param{{"base_version", "integer", "the version disabled"}, {"comment", "string", "why"}},
			answers: errs(ruleSaved, 400, 403, 404, 409, 503)},
		"GET /api/v1/rules/{id}/versions": {summary: "A rule's history · 规则版本", tag: "rules",
			answers: ok(RuleHistory{}, 403, 404)},
		"GET /api/v1/rules/{id}/versions/{version}": {summary: "One version with its source · 规则版本详情", tag: "rules",
			answers: ok(authoring.RuleVersion{}, 400, 403, 404)},
		"GET /api/v1/rules/{id}/diff": {summary: "What changed between two versions · 版本对比", tag: "rules",
			query:   []param{{"from", "integer", "older version"}, {"to", "integer", "newer version (default: current)"}},
			answers: ok(authoring.VersionDiff{}, 400, 403, 404)},
		"GET /api/v1/rule-jobs/{id}":    {summary: "A dry run or backtest job · 试跑任务", tag: "rules", answers: ok(RuleJob{}, 404)},
		"DELETE /api/v1/rule-jobs/{id}": {summary: "Cancel a job · 取消试跑任务", tag: "rules", answers: ok(RuleJob{}, 404)},

		"POST /api/v1/session": {summary: "Sign in · 登录", tag: "accounts", body: signInRequest{},
			answers: errs(map[int]any{200: SignInAnswer{}}, 400, 401, 429, 500, 503)},
		"GET /api/v1/session":    {summary: "Who I am · 当前会话", tag: "accounts", answers: ok(SessionAnswer{})},
		"DELETE /api/v1/session": {summary: "Sign out · 退出登录", tag: "accounts", answers: map[int]any{204: nil}},
		"GET /api/v1/users":      {summary: "Local accounts · 账号列表", tag: "accounts", answers: ok(UserList{})},
		"POST /api/v1/users": {summary: "Create an account · 新建账号", tag: "accounts", body: createUserRequest{},
			answers: errs(map[int]any{201: auth.Account{}}, 400, 409, 500, 503)},
		"POST /api/v1/users/{name}/disable": {summary: "Disable an account · 停用账号", tag: "accounts",
			answers: ok(auth.Account{}, 404, 503)},
		"POST /api/v1/users/{name}/enable": {summary: "Enable an account · 启用账号", tag: "accounts",
			answers: ok(auth.Account{}, 404, 503)},
		"POST /api/v1/users/{name}/reset": {summary: "Reset a password · 重置密码", tag: "accounts", body: resetRequest{},
			answers: ok(auth.Account{}, 400, 404, 500, 503)},

		"GET /api/v1/alerts": {summary: "CAP 1.2 alerts as an Atom feed · 预警信息订阅", tag: "alerts",
			answers: ok(media{alerts.AtomContentType}, 500)},
		"GET /api/v1/incidents/{id}/alerts/{n}": {summary: "One CAP 1.2 alert · 预警信息", tag: "alerts",
			answers: ok(media{alerts.ContentType}, 404, 500)},

		"GET /ws/cockpit": {summary: "Cockpit feed (websocket) · 大屏实时推送", tag: "cockpit",
			query: []param{{"access_token", "string", "the token, for browsers that cannot set headers"}}, answers: map[int]any{101: nil}},
		"GET /ws/worker": {summary: "A worker's task feed (websocket) · 网格员任务推送", tag: "cockpit",
			query: []param{{"access_token", "string", "the token, for browsers that cannot set headers"}}, answers: map[int]any{101: nil}},
		"GET /{$}":                  {summary: "The cockpit wall screen · 指挥大屏", tag: "pages", answers: ok(htmlPage)},
		"GET " + cockpit.PagePrefix: {summary: "The cockpit's assets · 大屏静态资源", tag: "pages", answers: ok(media{"*/*"}, 404)},
	}
	for p, d := range open311RouteDocs() { // Open311 GeoReport v2 (open311.go)
		docs[p] = d
	}
	// The people's screens (web): "/<name>/" and its assets, and "/<name>" sending on to it.
	for _, r := range pageRoutes() {
		if strings.HasSuffix(r.Pattern, "/") {
			docs[r.Pattern] = routeDoc{summary: "A page and its assets · 页面", tag: "pages", answers: ok(media{"*/*"}, 404)}
		} else {
			docs[r.Pattern] = routeDoc{summary: "Sends on to the page · 页面跳转", tag: "pages", answers: map[int]any{301: nil}}
		}
	}
	return docs
}

// The request and answer types the handlers declare inline, named here for their schemas.
type (
	ingestAccepted struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	ingestBatch struct {
		Accepted   int              `json:"accepted"`
		Duplicates int              `json:"duplicates"`
		Rejected   int              `json:"rejected"`
		Results    []map[string]any `json:"results"`
	}
	// ingestError is ingest's error body; its codes are the rejection classes (docs/events.md).
	ingestError struct {
		Code  string `json:"code"`
		Error string `json:"error"`
	}
)

// OpenAPI is the document of routes, as JSON. A route without an entry in routeDocs is an
// error (tests fail on it); the document of the others comes with it.
func OpenAPI(routes []Route) ([]byte, error) {
	docs := routeDocs()
	g := newSchemaGen()
	paths := map[string]map[string]any{}
	var missing []string
	for _, rt := range routes {
		d, ok := docs[rt.Pattern]
		if !ok {
			missing = append(missing, rt.Pattern)
			continue
		}
		method, path := splitPattern(rt.Pattern)
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][strings.ToLower(method)] = g.operation(rt, method, path, d)
	}
	doc := map[string]any{
		"openapi":           OpenAPIVersion,
		"jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
		"info": map[string]any{
			"title":   "urbanbrain HTTP API · 城市运行管理服务平台接口",
			"version": "1",
			"description": "Every route this instance serves (docs/api.md explains them). Error bodies are " +
				`{"code", "error"}; the codes are listed in the Error schema.`,
		},
		"servers": []any{map[string]any{"url": "/"}},
		"paths":   paths,
		"components": map[string]any{
			"schemas": g.defs,
			"securitySchemes": map[string]any{
				"bearerToken":   map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
				"sessionCookie": map[string]any{"type": "apiKey", "in": "cookie", "name": auth.SessionCookie},
				"csrfHeader": map[string]any{"type": "apiKey", "in": "header", "name": auth.CSRFHeader,
					"description": "the session's CSRF token, on every request made with the cookie that is not GET, HEAD or OPTIONS"},
				"queryToken": map[string]any{"type": "apiKey", "in": "query", "name": "access_token",
					"description": "websockets only"},
			},
		},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	out := bytes.ReplaceAll(buf.Bytes(), []byte(`"#/$defs/`), []byte(`"#/components/schemas/`))
	if len(missing) > 0 {
		return out, fmt.Errorf("openapi: routes without an entry in routeDocs: %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// splitPattern is the method and the document's path of a route pattern: "GET /{$}" is "/".
func splitPattern(pattern string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	return method, strings.ReplaceAll(path, "{$}", "")
}

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

func (g *schemaGen) operation(rt Route, method, path string, d routeDoc) map[string]any {
	op := map[string]any{"summary": d.summary, "tags": []string{d.tag}, "operationId": operationID(method, path)}
	var ps []any
	for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
		ps = append(ps, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
	}
	for _, p := range d.query {
		ps = append(ps, map[string]any{"name": p.name, "in": "query", "description": p.desc, "schema": map[string]any{"type": p.typ}})
	}
	if ps != nil {
		op["parameters"] = ps
	}
	if d.body != nil {
		op["requestBody"] = map[string]any{"required": true, "content": g.content(d.body)}
	}
	answers := d.answers
	if rt.Perm != "" {
		answers = maps.Clone(answers)
		for _, st := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests} {
			if _, own := answers[st]; !own { // a route with its own error format (Open311) keeps it
				answers[st] = errorAnswer
			}
		}
		security := []any{map[string]any{"bearerToken": []string{}}}
		switch {
		case rt.Self:
			security = append(security, map[string]any{"sessionCookie": []string{}}, map[string]any{"queryToken": []string{}})
		case method == http.MethodGet:
			security = append(security, map[string]any{"sessionCookie": []string{}})
		default:
			security = append(security, map[string]any{"sessionCookie": []string{}, "csrfHeader": []string{}})
		}
		op["security"] = security
		op["description"] = "Requires the permission `" + string(rt.Perm) + "`."
	} else {
		op["security"] = []any{} // public
	}
	responses := map[string]any{}
	for status, body := range answers {
		r := map[string]any{"description": http.StatusText(status)}
		if body != nil {
			r["content"] = g.content(body)
		}
		responses[strconv.Itoa(status)] = r
	}
	op["responses"] = responses
	return op
}

// operationID is getApiV1IncidentsById for GET /api/v1/incidents/{id}.
func operationID(method, path string) string {
	id := strings.ToLower(method)
	for _, part := range strings.FieldsFunc(path, func(r rune) bool { return r == '/' || r == '.' || r == '-' || r == '_' }) {
		if strings.HasPrefix(part, "{") {
			part = "By" + strings.ToUpper(part[1:2]) + strings.Trim(part[2:], "{}")
		}
		id += strings.ToUpper(part[:1]) + part[1:]
	}
	if id == strings.ToLower(method) {
		id += "Root"
	}
	return id
}

// content is the content map of a body: JSON with the schema of v's type, or a media.
func (g *schemaGen) content(v any) map[string]any {
	if m, ok := v.(media); ok {
		c := map[string]any{}
		for _, t := range m {
			c[t] = map[string]any{}
		}
		return c
	}
	return map[string]any{"application/json": map[string]any{"schema": g.schema(v)}}
}

// schemaGen reflects Go types into JSON Schema, with named types in defs.
type schemaGen struct {
	r    *jsonschema.Reflector
	defs map[string]any
}

var (
	durationType  = reflect.TypeFor[lang.Duration]()
	timeType      = reflect.TypeFor[time.Time]()
	marshalerType = reflect.TypeFor[json.Marshaler]()
	textType      = reflect.TypeFor[encoding.TextMarshaler]()
)

func newSchemaGen() *schemaGen {
	g := &schemaGen{defs: map[string]any{}}
	g.r = &jsonschema.Reflector{
		Namer: schemaName,
		Mapper: func(t reflect.Type) *jsonschema.Schema {
			switch {
			case t == durationType:
				return &jsonschema.Schema{Type: "string", Description: "a duration, as 1h30m"}
			case t == timeType:
				return nil
			case t.Implements(marshalerType) || reflect.PointerTo(t).Implements(marshalerType):
				return &jsonschema.Schema{} // its own encoding: any value
			case t.Implements(textType):
				return &jsonschema.Schema{Type: "string"}
			}
			return nil
		},
	}
	return g
}

// schemaName is a type's name in components/schemas: the package's own types by name, the
// others qualified by their package ("event.Incident").
func schemaName(t reflect.Type) string {
	pkg := t.PkgPath()
	if pkg == reflect.TypeFor[Route]().PkgPath() || pkg == "" {
		return t.Name()
	}
	return pkg[strings.LastIndex(pkg, "/")+1:] + "." + t.Name()
}

// schema is the schema of v's type, its named types added to defs.
func (g *schemaGen) schema(v any) any {
	if _, isErr := v.(ErrorAnswer); isErr {
		g.errorSchema()
		return map[string]any{"$ref": "#/$defs/ErrorAnswer"}
	}
	s := g.r.Reflect(v)
	b, err := json.Marshal(s)
	if err != nil {
		return map[string]any{}
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return map[string]any{}
	}
	if defs, ok := m["$defs"].(map[string]any); ok {
		for k, d := range defs {
			g.defs[k] = d
		}
	}
	delete(m, "$defs")
	delete(m, "$schema")
	delete(m, "$id")
	fixNullable(reflect.TypeOf(v), g.defs)
	return m
}

// errorSchema is ErrorAnswer with its codes: every code of this package and of auth.
func (g *schemaGen) errorSchema() {
	g.defs["ErrorAnswer"] = map[string]any{
		"type": "object", "required": []string{"code", "error"}, "additionalProperties": false,
		"properties": map[string]any{
			"code":  map[string]any{"type": "string", "enum": ErrorCodes()},
			"error": map[string]any{"type": "string"},
		},
	}
}

// ErrorCodes are every code an error body of the API can carry.
func ErrorCodes() []string {
	codes := []string{auth.CodeUnauthenticated, auth.CodeForbidden, auth.CodeRateLimited,
		CodeInvalidRequest, CodeNotFound, CodeForbidden, CodeIllegalTransition, CodeInvalidCommand,
		CodeTimeout, CodeUnavailable, CodeInternal,
		CodeInvalidRule, CodeRuleExists, CodeVersionConflict, CodeTooManyJobs, CodeLocked, CodeAccountExists,
		// A command's refusal carries the incident service's code (postAction).
		incidents.CodeIllegalTransition, incidents.CodeNotFound, incidents.CodeForbidden, incidents.CodeInvalidCommand}
	slices.Sort(codes)
	return slices.Compact(codes)
}

// fixNullable makes the reflected schemas say what encoding/json does and invopop does not
// model: a field with omitzero may be absent, and a nil slice, map, pointer or interface
// without omitempty is null.
func fixNullable(t reflect.Type, defs map[string]any) {
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] || t == timeType {
			return
		}
		seen[t] = true
		def, _ := defs[schemaName(t)].(map[string]any)
		var fields []reflect.StructField
		var collect func(t reflect.Type)
		collect = func(t reflect.Type) {
			for f := range t.Fields() {
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
					collect(ft)
					continue
				}
				fields = append(fields, f)
			}
		}
		collect(t)
		for _, f := range fields {
			walk(f.Type)
			if def == nil || !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			props, _ := def["properties"].(map[string]any)
			prop, ok := props[name]
			if !ok {
				continue
			}
			omit := strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
			if omit {
				if req, ok := def["required"].([]any); ok {
					def["required"] = slices.DeleteFunc(req, func(v any) bool { return v == name })
				}
				continue
			}
			switch f.Type.Kind() {
			case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
				if f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Uint8 {
					continue // []byte is a string
				}
				props[name] = map[string]any{"anyOf": []any{prop, map[string]any{"type": "null"}}}
			}
		}
	}
	walk(t)
}

// openAPI serves the document of routes, built on the first request. A route left out of
// routeDocs is logged and left out of the document rather than failing the whole of it.
func (s *Server) openAPI(routes func() []Route) http.Handler {
	build := sync.OnceValues(func() ([]byte, error) { return OpenAPI(routes()) })
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		doc, err := build()
		if doc == nil {
			s.internalError(w, "build the OpenAPI document", err)
			return
		}
		if err != nil {
			s.log.Warn("the OpenAPI document is incomplete", zap.Error(err))
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(doc)
	})
}
