package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/urbanbrain/urbanbrain/api"
	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/authoring"
)

// sendText sends a raw body (a rule's YAML) and decodes the JSON answer.
func (r *running) sendText(method, path, token, body string, out any) int {
	r.t.Helper()
	req, err := http.NewRequest(method, r.base+path, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			r.t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

// postEvents posts CloudEvents as an ingest producer.
func (r *running) postEvents(token string, evs ...map[string]any) {
	r.t.Helper()
	b, _ := json.Marshal(evs)
	req, _ := http.NewRequest("POST", r.base+"/api/v1/events", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/cloudevents-batch+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		r.t.Fatalf("POST events: %d %s", resp.StatusCode, body)
	}
}

func noiseReading(id, device string, db float64, p event.Point) map[string]any {
	return map[string]any{
		"specversion": "1.0", "id": id, "source": "sensors/test", "type": event.TypeSensorReading,
		"time": time.Now().UTC().Format(time.RFC3339Nano), "datacontenttype": "application/json",
		"data": map[string]any{"device_id": device, "kind": "noise", "metrics": map[string]float64{"db": db},
			"lat": p.Lat, "lon": p.Lon, "status": "ok"},
	}
}

const burstV1 = `# 同一噪声监测点一小时内三次超过 40 dB
id: noise-burst
name: 噪声频繁超标
types: [city.sensor.reading]
when: sensor.kind == "noise" && sensor.metrics.db > 40
window: {size: 1h, having: count >= 3}
raise:
  category: "0401"
  severity: blue
  title: "v1 {{sensor.device_id}} 一小时 {{window.count}} 次"
  correlation_key: "burst:{{sensor.device_id}}"
`

type ruleAnswer struct {
	Version authoring.RuleVersion `json:"version"`
	Applied bool                  `json:"applied"`
	Code    string                `json:"code"`
	Errors  []api.RuleError       `json:"errors"`
}

// A rule created and then changed through the API takes effect on the running pipeline with
// no restart, and the new version keeps the old version's window: two readings counted under
// version 1 and one under version 2 make three, which fires with version 2's title. After a
// restart the rules come back from city.rules, and the rules directory seeds nothing twice.
func TestRuleHotReloadKeepsWindowState(t *testing.T) {
	dir, broker := t.TempDir(), freeAddr(t)
	r := start(t, dir, broker)
	author := r.token(auth.Claims{Subject: "alice", Role: auth.RoleRuleAuthor})
	producer := r.token(auth.Claims{Subject: "p", Role: auth.RoleIngest})
	operator := r.token(auth.Claims{Subject: "op", Role: auth.RoleOperator})
	grid := r.app.City().Grids()[11]

	if code := r.sendText("POST", "/api/v1/rules", operator, burstV1, nil); code != http.StatusForbidden {
		t.Errorf("an operator creating a rule: %d, want 403", code)
	}
	var created ruleAnswer
	if code := r.sendText("POST", "/api/v1/rules?comment=first", author, burstV1, &created); code != http.StatusCreated || !created.Applied {
		t.Fatalf("create: %d %+v", code, created)
	}
	if created.Version.Version != 1 || created.Version.Author != "alice" || created.Version.Action != authoring.ActionCreate {
		t.Errorf("created %+v", created.Version)
	}

	evaluated := func() uint64 {
		var v api.RuleView
		if r.do("GET", "/api/v1/rules/noise-burst", author, nil, &v) != http.StatusOK || v.Stats == nil {
			return 0
		}
		return v.Stats.Evaluated
	}
	r.postEvents(producer, noiseReading("nb-1", "NS-HOT", 55, grid.Centroid), noiseReading("nb-2", "NS-HOT", 60, grid.Centroid))
	eventually(t, 60*time.Second, "version 1 to evaluate both readings", func() bool { return evaluated() == 2 })

	v2 := strings.Replace(burstV1, `title: "v1 `, `title: "v2 `, 1)
	var updated ruleAnswer
	saved := time.Now()
	if code := r.sendText("PUT", "/api/v1/rules/noise-burst?base_version=1", author, v2, &updated); code != http.StatusOK || !updated.Applied {
		t.Fatalf("update: %d %+v", code, updated)
	}
	t.Logf("update published, read back from %s and loaded in %v", event.TopicRules, time.Since(saved))
	if code := r.sendText("PUT", "/api/v1/rules/noise-burst?base_version=1", author, v2, nil); code != http.StatusConflict {
		t.Errorf("a stale update: %d, want 409", code)
	}

	r.postEvents(producer, noiseReading("nb-3", "NS-HOT", 65, grid.Centroid))
	var inc event.Incident
	eventually(t, 60*time.Second, "the third reading to raise an incident", func() bool {
		var l incidentList
		r.do("GET", "/api/v1/incidents?category=0401&grid="+grid.Code, operator, nil, &l)
		for _, i := range l.Incidents {
			if i.CorrelationKey == "burst:NS-HOT" {
				inc = i
				return true
			}
		}
		return false
	})
	if inc.Title != "v2 NS-HOT 一小时 3 次" {
		t.Errorf("incident title %q: want version 2's title over a window counted across both versions", inc.Title)
	}
	if len(inc.Reports) != 1 || inc.Reports[0].EventID != "nb-3" || inc.Reports[0].RuleID != "noise-burst" {
		t.Errorf("reports %+v", inc.Reports)
	}

	// A backtest over the stored readings: a candidate that fires on the first reading, keyed
	// by event, against version 2, which fired on the third under the device's key.
	eventually(t, 60*time.Second, "the three readings to be stored", func() bool {
		var l struct {
			Count int `json:"count"`
		}
		r.do("GET", "/api/v1/events?device=NS-HOT", operator, nil, &l)
		return l.Count == 3
	})
	cand := strings.NewReplacer("count >= 3", "count >= 1", `"burst:{{sensor.device_id}}"`, `"burst:{{id}}"`).Replace(v2)
	var bt authoring.BacktestReport
	if code := r.do("POST", "/api/v1/rules/backtest", author, map[string]any{"source": cand,
		"since": saved.Add(-time.Hour), "until": time.Now().Add(time.Minute)}, &bt); code != http.StatusOK {
		t.Fatalf("backtest: %d", code)
	}
	if bt.Events != 3 || bt.Current == nil || bt.Current.Version != 2 || bt.Compare == nil ||
		len(bt.Compare.OnlyCandidate) != 1 || bt.Compare.OnlyCandidate[0].CorrelationKey != "burst:nb-1" ||
		len(bt.Compare.OnlyCurrent) != 1 || bt.Compare.OnlyCurrent[0].CorrelationKey != "burst:NS-HOT" {
		t.Errorf("backtest %+v compare %+v", bt, bt.Compare)
	}

	var diff authoring.VersionDiff
	if code := r.do("GET", "/api/v1/rules/noise-burst/diff", author, nil, &diff); code != http.StatusOK || len(diff.Changes) != 2 ||
		diff.Changes[1].Field != "raise.title" {
		t.Errorf("diff: %d %+v", code, diff)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	r2 := start(t, dir, broker)
	var got api.RuleView
	if code := r2.do("GET", "/api/v1/rules/noise-burst", author, nil, &got); code != http.StatusOK || got.Version != 2 ||
		!strings.Contains(got.Raise.Title, "v2") || got.Author != "alice" {
		t.Errorf("after restart: %d %+v", code, got)
	}
	var hist struct {
		Versions []struct {
			Version int    `json:"version"`
			Action  string `json:"action"`
			Author  string `json:"author"`
		} `json:"versions"`
	}
	r2.do("GET", "/api/v1/rules/water-level-high/versions", author, nil, &hist)
	if len(hist.Versions) != 1 || hist.Versions[0].Action != authoring.ActionSeed || hist.Versions[0].Author != authoring.SeedAuthor {
		t.Errorf("demo rule history after a restart %+v: want one seeded version", hist.Versions)
	}
	r2.do("GET", "/api/v1/rules/noise-burst/versions", author, nil, &hist)
	if len(hist.Versions) != 2 || hist.Versions[1].Author != "alice" || hist.Versions[1].Action != authoring.ActionUpdate {
		t.Errorf("noise-burst history %+v", hist.Versions)
	}

	// city.rules is compacted, so versions are never aged out.
	c := &kafka.Client{Addr: kafka.TCP(r2.app.BrokerAddrs()...)}
	if policy, err := topicConfig(context.Background(), c, event.TopicRules, "cleanup.policy"); err != nil || policy != "compact" {
		t.Errorf("city.rules cleanup.policy = %q, %v", policy, err)
	}
}

// The authoring API refuses bad rules with positioned errors and answers dry runs and
// validation without saving anything.
func TestRuleAuthoringAPI(t *testing.T) {
	r := start(t, t.TempDir(), freeAddr(t))
	author := r.token(auth.Claims{Subject: "bob", Role: auth.RoleRuleAuthor})

	bad := "id: water-level-high\nname: 水位\ntypes: [city.sensor.reading]\nwhen: |\n  sensor.kind == \"water_level\" &&\n    sensor.metrics[\"level_cm\"] > 80 && sensor.levle > 0\nraise: {category: \"0104\", severity: orange}\n"
	var ans ruleAnswer
	if code := r.sendText("POST", "/api/v1/rules/validate", author, bad, &ans); code != http.StatusUnprocessableEntity || ans.Code != api.CodeInvalidRule {
		t.Fatalf("validate: %d %+v", code, ans)
	}
	if e := ans.Errors[0]; e.Field != "when" || e.Line != 2 || e.Column != 45 || e.FileLine != 6 || e.FileColumn != 47 || !strings.Contains(e.Snippet, "^") {
		t.Errorf("positioned error %+v", e)
	}
	if code := r.sendText("POST", "/api/v1/rules", author, bad, nil); code != http.StatusUnprocessableEntity {
		t.Errorf("create of a bad rule: %d", code)
	}
	if code := r.sendText("POST", "/api/v1/rules", author, strings.Repeat("x", 1<<20), &ans); code != http.StatusRequestEntityTooLarge || ans.Code != api.CodeInvalidRule {
		t.Errorf("1 MB of rule text: %d %+v", code, ans)
	}
	huge := "id: huge\nname: n\ntypes: [city.sensor.reading]\nwhen: '" + strings.Repeat("(", 10_000) + "true" + strings.Repeat(")", 10_000) + "'\nraise: {category: \"0104\", severity: red}\n"
	if code := r.sendText("POST", "/api/v1/rules/validate", author, huge, nil); code != http.StatusOK {
		t.Errorf("10,000 nested parentheses: %d (it compiles: parentheses are not nodes)", code)
	}
	if code := r.sendText("POST", "/api/v1/rules/validate", author, strings.Replace(bad, "sensor.levle > 0", `exec("ls") == ""`, 1), &ans); code != http.StatusUnprocessableEntity ||
		!strings.Contains(ans.Errors[0].Message, "unknown name exec") {
		t.Errorf("unknown function: %d %+v", code, ans)
	}
	if code := r.sendText("POST", "/api/v1/rules", author, strings.Replace(bad, " && sensor.levle > 0", "", 1), &ans); code != http.StatusConflict || ans.Code != api.CodeRuleExists {
		t.Errorf("create over a demo rule: %d %+v", code, ans)
	}

	grid := r.app.City().Grids()[3]
	ev := event.Event{ID: "s1", Type: event.TypeSensorReading, Source: "t", Time: time.Now().UTC(),
		Area:   event.Area{Street: grid.Street, Grid: grid.Code},
		Sensor: &event.SensorReading{DeviceID: "WL-9", Kind: "water_level", Metrics: map[string]float64{"level_cm": 120}}}
	var dry authoring.DryRunReport
	if code := r.do("POST", "/api/v1/rules/dry-run", author, map[string]any{"rule_id": "water-level-high", "events": []event.Event{ev}}, &dry); code != http.StatusOK {
		t.Fatalf("dry run: %d", code)
	}
	if dry.Fired != 1 || len(dry.Steps) != 1 || !dry.Steps[0].Matched || len(dry.Steps[0].Condition.Parts) != 2 {
		t.Errorf("dry run %+v", dry)
	}
	if code := r.do("POST", "/api/v1/rules/dry-run", author, map[string]any{"source": "id: x", "events": []event.Event{ev}}, &ans); code != http.StatusUnprocessableEntity {
		t.Errorf("dry run of a bad source: %d", code)
	}
	// A rule that runs away is stopped by the sandbox and reported, not a stall or a crash.
	hostile := "id: hostile\nname: n\ntypes: [city.sensor.reading]\nwhen: 'len(map(1..int(sensor.metrics.level_cm) * 1000000, #)) > 0'\nraise: {category: \"0104\", severity: red}\n"
	dry = authoring.DryRunReport{}
	if code := r.do("POST", "/api/v1/rules/dry-run", author, map[string]any{"source": hostile, "events": []event.Event{ev}}, &dry); code != http.StatusOK ||
		len(dry.Steps) != 1 || len(dry.Steps[0].Errors) != 1 || !strings.Contains(dry.Steps[0].Errors[0], "memory budget exceeded") {
		t.Errorf("dry run of a runaway rule: %d %+v", code, dry)
	}
	resp, err := http.Get(r.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`urbanbrain_rules_quarantined{rule="water-level-high"} 0`, "urbanbrain_rules_loaded", "urbanbrain_rules_late_events_total"} {
		if !strings.Contains(string(metrics), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	// The default --broker-sync acknowledged the rule's versions after shared flushes (Linux).
	if runtime.GOOS == "linux" {
		if m := regexp.MustCompile(`(?m)^urbanbrain_broker_flushed_writes_total (\d+)`).FindSubmatch(metrics); m == nil || string(m[1]) == "0" {
			t.Errorf("/metrics: no write acknowledged after a flush (%q)", m)
		}
	}

	// Disable, enable: each a version; the second disable changes nothing.
	for i, step := range []struct{ path, want string }{{"disable", "false"}, {"disable", "false"}, {"enable", "true"}} {
		var res map[string]any
		if code := r.do("POST", "/api/v1/rules/water-level-high/"+step.path, author, nil, &res); code != http.StatusOK {
			t.Fatalf("%s: %d %v", step.path, code, res)
		}
		var v api.RuleView
		r.do("GET", "/api/v1/rules/water-level-high", author, nil, &v)
		if fmt.Sprint(v.Enabled) != step.want || (i == 1) != (res["unchanged"] == true) {
			t.Errorf("after %s: enabled %v, answer %v", step.path, v.Enabled, res)
		}
	}
	var deleted ruleAnswer
	if code := r.do("DELETE", "/api/v1/rules/water-level-high?base_version=3", author, nil, &deleted); code != http.StatusOK || !deleted.Version.Deleted {
		t.Fatalf("delete: %d %+v", code, deleted)
	}
	if code := r.do("GET", "/api/v1/rules/water-level-high", author, nil, nil); code != http.StatusNotFound {
		t.Errorf("get after delete: %d", code)
	}
}

// A district-scoped rule author (docs/rules.md, "What a rule author sees"): their backtest of
// a rule copying whole tickets into titles and keys replays only their district's tickets,
// with no caller's phone or ID number anywhere in the answer; they cannot create, disable or
// see the rules of another scope (403 forbidden for city rules they can read, 404 for other
// districts'); a dry run over more than 1,000 events is refused, and an async one is a job
// only its owner can follow.
func TestRuleAuthorDistrictScopeAndMasking(t *testing.T) {
	r := start(t, t.TempDir(), freeAddr(t))
	byDistrict := map[string]event.Point{}
	var districts []string
	for _, g := range r.app.City().Grids() {
		if _, ok := byDistrict[g.District]; !ok {
			byDistrict[g.District] = g.Centroid
			districts = append(districts, g.District)
		}
	}
	if len(districts) < 2 {
		t.Fatalf("the demo city has %d districts", len(districts))
	}
	own, other := districts[0], districts[1]
	author := r.token(auth.Claims{Subject: "dana", Role: auth.RoleRuleAuthor, District: own})
	admin := r.token(auth.Claims{Subject: "root", Role: auth.RoleAdmin})
	producer := r.token(auth.Claims{Subject: "p", Role: auth.RoleIngest})

	const phone, idNumber = "13987654321", "330106198507151234"
	since := time.Now().Add(-time.Minute)
	var tickets []map[string]any
	for i, d := range districts {
		content := fmt.Sprintf("我叫王建国，电话%s，身份证号%s，%d号楼下燃气管道有煤气味", phone, idNumber, i)
		tickets = append(tickets, hotlineTicket(fmt.Sprintf("scope-%d", i), "投诉", "0103", content, phone, byDistrict[d]))
	}
	r.postEvents(producer, tickets...)
	eventually(t, 60*time.Second, "the tickets to be stored", func() bool {
		var l struct {
			Count int `json:"count"`
		}
		r.do("GET", "/api/v1/events?type=city.hotline.ticket", admin, nil, &l)
		return l.Count >= len(districts)
	})

	copying := "id: copy-tickets\nname: 复制工单\ntypes: [city.hotline.ticket]\nwhen: hotline.content != \"\"\n" +
		"raise:\n  category: \"0103\"\n  severity: red\n  title: \"{{hotline.content}} {{hotline.address}}\"\n" +
		"  correlation_key: '{{ split(hotline.content, \"\") }}'\n"
	var raw json.RawMessage
	if code := r.do("POST", "/api/v1/rules/backtest", author, map[string]any{"source": copying,
		"since": since, "until": time.Now().Add(time.Minute)}, &raw); code != http.StatusOK {
		t.Fatalf("backtest: %d %s", code, raw)
	}
	var bt authoring.BacktestReport
	_ = json.Unmarshal(raw, &bt)
	if bt.Events != 1 || len(bt.Candidate.Incidents) != 1 || !strings.HasPrefix(bt.Candidate.Incidents[0].Street, own) {
		t.Errorf("backtest of a district author: %d events, incidents %+v; want only district %s's one ticket", bt.Events, bt.Candidate.Incidents, own)
	}
	digits := strings.Map(func(c rune) rune {
		if c >= '0' && c <= '9' {
			return c
		}
		return -1
	}, string(raw))
	if strings.Contains(digits, phone) || strings.Contains(digits, idNumber) || strings.Contains(digits, phone[2:10]) || strings.Contains(digits, idNumber[6:14]) {
		t.Errorf("the backtest's answer carries a caller's number: %s", raw)
	}

	// Scope of writes.
	cityRule := strings.Replace(copying, "id: copy-tickets", "id: city-copy", 1)
	var refusal struct {
		Code string `json:"code"`
	}
	if code := r.sendText("POST", "/api/v1/rules", author, cityRule, &refusal); code != http.StatusForbidden || refusal.Code != api.CodeForbidden {
		t.Errorf("a district author creating a city rule: %d %+v, want 403 forbidden", code, refusal)
	}
	otherRule := strings.Replace(cityRule, "types:", "district: \""+other+"\"\ntypes:", 1)
	if code := r.sendText("POST", "/api/v1/rules", author, otherRule, &refusal); code != http.StatusForbidden || refusal.Code != api.CodeForbidden {
		t.Errorf("a district author creating another district's rule: %d %+v, want 403 forbidden", code, refusal)
	}
	refusal.Code = ""
	if code := r.do("POST", "/api/v1/rules/water-level-high/disable", author, nil, &refusal); code != http.StatusForbidden || refusal.Code != api.CodeForbidden {
		t.Errorf("a district author disabling a city rule: %d %+v, want 403 forbidden", code, refusal)
	}
	var v api.RuleView
	if code := r.do("GET", "/api/v1/rules/water-level-high", author, nil, &v); code != http.StatusOK || !v.Enabled || v.Editable {
		t.Errorf("a city rule for a district author: %d enabled %v editable %v; want readable, enabled, not editable", code, v.Enabled, v.Editable)
	}
	ownRule := strings.Replace(cityRule, "types:", "district: \""+own+"\"\ntypes:", 1)
	if code := r.sendText("POST", "/api/v1/rules", author, ownRule, nil); code != http.StatusCreated {
		t.Errorf("a district author creating their district's rule: %d", code)
	}
	if code := r.sendText("POST", "/api/v1/rules", admin, strings.Replace(otherRule, "city-copy", "other-copy", 1), nil); code != http.StatusCreated {
		t.Errorf("an admin creating a district rule: %d", code)
	}
	if code := r.do("GET", "/api/v1/rules/other-copy", author, nil, nil); code != http.StatusNotFound {
		t.Errorf("another district's rule for a district author: %d, want 404", code)
	}

	// Dry runs: capped, and async as a job of its owner.
	ev := event.Event{ID: "d1", Type: event.TypeSensorReading, Source: "t", Time: time.Now().UTC(),
		Sensor: &event.SensorReading{DeviceID: "WL-9", Kind: "water_level", Metrics: map[string]float64{"level_cm": 120}}}
	many := make([]event.Event, authoring.MaxDryRunEvents+1)
	for i := range many {
		many[i] = ev
	}
	if code := r.do("POST", "/api/v1/rules/dry-run", author, map[string]any{"rule_id": "water-level-high", "events": many}, nil); code != http.StatusBadRequest {
		t.Errorf("a dry run over %d events: %d, want 400", len(many), code)
	}
	var job api.RuleJob
	if code := r.do("POST", "/api/v1/rules/dry-run?async=true", author, map[string]any{"rule_id": "water-level-high", "events": many[:500]}, &job); code != http.StatusAccepted || job.ID == "" {
		t.Fatalf("async dry run: %d %+v", code, job)
	}
	eventually(t, 30*time.Second, "the dry-run job to finish", func() bool {
		r.do("GET", "/api/v1/rule-jobs/"+job.ID, author, nil, &job)
		return job.State != api.JobRunning
	})
	if job.State != api.JobDone || job.Done < 499 || job.Events != 500 || job.Result == nil {
		t.Errorf("finished job %+v", job)
	}
	stranger := r.token(auth.Claims{Subject: "eve", Role: auth.RoleRuleAuthor})
	if code := r.do("GET", "/api/v1/rule-jobs/"+job.ID, stranger, nil, nil); code != http.StatusNotFound {
		t.Errorf("another author's job: %d, want 404", code)
	}
	if code := r.do("DELETE", "/api/v1/rule-jobs/"+job.ID, stranger, nil, nil); code != http.StatusNotFound {
		t.Errorf("cancelling another author's job: %d, want 404", code)
	}
}
