package web_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/web/webtest"
)

// bridgeWatchV1 is the rule the author edits: a bridge strain far above anything the test
// sends, so that only the edited version (strain over 300) matches its readings.
const bridgeWatchV1 = `# 桥梁应变关注（测试）
id: bridge-watch
name: 桥梁应变关注
description: 桥梁应变超过关注值
types: [city.sensor.reading]
when: sensor.kind == "bridge" && sensor.metrics["strain"] > 2000
raise:
  category: "0203"
  severity: yellow
  title: "桥梁 {{sensor.device_id}} 应变 {{sensor.metrics.strain}}"
  correlation_key: "bridge-watch:{{sensor.device_id}}"
`

// sendRule sends a rule's text (YAML) with a bearer token and decodes the JSON answer.
func sendRule(t *testing.T, city *webtest.City, method, path, token, text string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, city.Base+path, strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

// postReadings posts sensor readings as an ingest producer, in one batch.
func postReadings(t *testing.T, city *webtest.City, token string, evs ...map[string]any) {
	t.Helper()
	b, _ := json.Marshal(evs)
	req, _ := http.NewRequest(http.MethodPost, city.Base+"/api/v1/events", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/cloudevents-batch+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST events: %d %s", resp.StatusCode, body)
	}
}

func bridgeReading(id, device string, strain float64, p event.Point, at time.Time) map[string]any {
	return map[string]any{
		"specversion": "1.0", "id": id, "source": "sensor-gw/studio", "type": event.TypeSensorReading,
		"time": at.UTC().Format(time.RFC3339), "datacontenttype": "application/json",
		"data": map[string]any{"device_id": device, "kind": "bridge", "metrics": map[string]float64{"strain": strain},
			"lat": p.Lat, "lon": p.Lon, "status": "ok"},
	}
}

type validateAnswer struct {
	Valid  bool `json:"valid"`
	Errors []struct {
		Field      string `json:"field"`
		Message    string `json:"message"`
		FileLine   int    `json:"file_line"`
		FileColumn int    `json:"file_column"`
	} `json:"errors"`
}

// selectText puts the editor's selection on the first occurrence of what (after after, if
// given) and returns whether it found it; the next keys replace the selection.
func selectText(b *webtest.Browser, what, after string) {
	b.Do("select "+what, 10*time.Second, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
		const t = document.getElementById('source');
		const from = t.value.indexOf(%q);
		const i = t.value.indexOf(%q, from < 0 ? 0 : from);
		if (i < 0) throw new Error('not in the editor: ' + %q);
		t.focus();
		t.setSelectionRange(i, i + %q.length);
	})()`, after, what, what, what)))
}

// A rule author opens a rule, types a condition with a misspelt field and sees the error at
// the line and column the validate API gives; fixes it and the error clears; dry runs a sample
// event and sees why it matched; backtests the last hour and sees the incidents the edit adds;
// saves a new version, which the engine then runs: a reading only the new version matches
// raises an incident of that rule and version.
func TestRuleStudioAuthorLoop(t *testing.T) {
	city := webtest.Start(t)
	admin := city.Admin()
	if code := sendRule(t, city, http.MethodPost, "/api/v1/rules", admin, bridgeWatchV1, nil); code != http.StatusCreated {
		t.Fatalf("create bridge-watch: %d", code)
	}
	producer := city.Token(auth.Claims{Subject: "gw", Role: auth.RoleIngest})
	grid := city.App.City().Grids()[7]
	now := time.Now()
	for i := range 3 {
		dev := fmt.Sprintf("BR-%d", i+1)
		postReadings(t, city, producer, bridgeReading("studio-bt-"+dev, dev, 400, grid.Centroid, now.Add(-10*time.Minute)))
	}
	webtest.Eventually(t, 60*time.Second, "the readings in the store", func() bool {
		var l struct {
			Count int `json:"count"`
		}
		city.Do(http.MethodGet, "/api/v1/events?type=city.sensor.reading&device=BR-3", admin, nil, &l)
		return l.Count > 0
	})

	acct := city.User("rule.zhang", auth.RoleRuleAuthor, nil)
	authorToken := city.Token(auth.Claims{Subject: "rule.zhang", Role: auth.RoleRuleAuthor})
	b := webtest.NewBrowser(t, webtest.Wall)
	b.SignIn(city.Base, acct, "/rules/")
	b.WaitFor("the rule list", `document.body.dataset.ready === 'true' && !!document.querySelector('.rule-open[data-id="bridge-watch"]')`, 30*time.Second)
	if got := webtest.Eval[string](b, `document.getElementById('who').textContent`); !strings.Contains(got, "rule.zhang") || !strings.Contains(got, "规则作者") {
		t.Errorf("header: %q, want the signed-in author", got)
	}
	b.Do("open bridge-watch", 10*time.Second, chromedp.Click(chromedp.CSS(`.rule-open[data-id="bridge-watch"]`)))
	b.WaitFor("bridge-watch in the editor", `document.getElementById('source').value.includes('id: bridge-watch') &&
		document.getElementById('check-state').textContent.includes('校验通过')`, 20*time.Second)

	// A misspelt field: the threshold lowered, and a clause on sensor.levle.
	selectText(b, "2000", "when:")
	b.Do("type an invalid condition", 20*time.Second, chromedp.KeyEvent(`300 && sensor.levle > 0`))
	b.WaitFor("the error marker", `document.getElementById('editor').dataset.check === 'done' && !!document.querySelector('#mirror .err-marker')`, 20*time.Second)
	text := webtest.Eval[string](b, `document.getElementById('source').value`)
	var va validateAnswer
	if code := sendRule(t, city, http.MethodPost, "/api/v1/rules/validate", authorToken, text, &va); code != http.StatusUnprocessableEntity || len(va.Errors) != 1 {
		t.Fatalf("validate the typed text: %d %+v", code, va)
	}
	want := va.Errors[0]
	whenLine := 0
	for i, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "when:") {
			whenLine = i + 1
		}
	}
	if want.FileLine != whenLine || !strings.Contains(want.Message, "levle") {
		t.Errorf("the API placed the error at %d:%d %q, want line %d (when) about levle", want.FileLine, want.FileColumn, want.Message, whenLine)
	}
	type marker struct {
		Line, Column   int
		Char           string
		Top, GutterTop float64
		GutterError    bool
		Message, Item  string
		Live           string
	}
	m := webtest.Eval[marker](b, `(() => {
		const m = document.querySelector('#mirror .err-marker');
		const line = +m.dataset.line;
		const g = document.querySelector('#gutter .ln[data-line="' + line + '"]');
		return { line, column: +m.dataset.column, char: m.textContent,
			top: m.getBoundingClientRect().top, gutterTop: g.getBoundingClientRect().top, gutterError: g.classList.contains('ln-error'),
			message: m.parentElement.querySelector('.err-msg').textContent,
			item: document.querySelector('#errors li').textContent,
			live: document.getElementById('errors').getAttribute('aria-live') };
	})()`)
	if m.Line != want.FileLine || m.Column != want.FileColumn {
		t.Errorf("marker at %d:%d, the API says %d:%d", m.Line, m.Column, want.FileLine, want.FileColumn)
	}
	if lineText := strings.Split(text, "\n")[want.FileLine-1]; want.FileColumn < 1 || want.FileColumn > len(lineText) || m.Char != lineText[want.FileColumn-1:want.FileColumn] {
		t.Errorf("marker on %q, want the character at column %d of %q", m.Char, want.FileColumn, lineText)
	}
	if d := m.Top - m.GutterTop; d < -3 || d > 3 || !m.GutterError {
		t.Errorf("marker %.1f px from its line number (error line marked: %v)", d, m.GutterError)
	}
	if !strings.Contains(m.Message, want.Message) || !strings.Contains(m.Item, want.Message) ||
		!strings.Contains(m.Item, fmt.Sprintf("第 %d 行第 %d 列", want.FileLine, want.FileColumn)) || m.Live != "polite" {
		t.Errorf("message beside the line %q, in the live list %q (aria-live %q); want %q", m.Message, m.Item, m.Live, want.Message)
	}
	b.Screenshot("../test-artifacts/rules-editor.png")
	if over := webtest.Eval[float64](b, `document.querySelector('#mirror .err-msg').getBoundingClientRect().right -
		document.getElementById('editor-wrap').getBoundingClientRect().right`); over > 0 {
		t.Errorf("the error message runs %.0f px past the editor's edge", over)
	}

	// Field completion, when the server offers the typed environment; else none, quietly.
	var fields struct {
		Fields []struct{ Path string } `json:"fields"`
	}
	if code := city.Do(http.MethodGet, "/api/v1/rules/fields", authorToken, nil, &fields); code == http.StatusOK && len(fields.Fields) > 0 {
		selectText(b, "sensor.levle > 0", "when:")
		b.Do("ask for completion after a dot", 10*time.Second, chromedp.KeyEvent("sensor."))
		b.WaitFor("the completion list", `!document.getElementById('complete').hidden && document.querySelectorAll('#complete [role=option]').length > 1`, 10*time.Second)
		opts := webtest.Eval[[]string](b, `[...document.querySelectorAll('#complete [role=option] .opt-label')].map(o => o.textContent)`)
		if !strings.Contains(strings.Join(opts, " "), "sensor.metrics") || strings.Contains(strings.Join(opts, " "), "hotline.") {
			t.Errorf("completion after sensor.: %v, want the sensor's fields", opts)
		}
		b.Do("move in the list", 10*time.Second, chromedp.KeyEvent(kb.ArrowDown))
		if got := webtest.Eval[string](b, `document.getElementById('source').getAttribute('aria-activedescendant') + ' ' + document.querySelector('#complete [aria-selected=true]').id`); got != "cmp-1 cmp-1" {
			t.Errorf("active option %q, want the textarea's aria-activedescendant on the second option, selected", got)
		}
		b.Do("close the list", 10*time.Second, chromedp.KeyEvent(kb.Escape))
		b.WaitFor("the list closed", `document.getElementById('complete').hidden && !document.getElementById('source').hasAttribute('aria-activedescendant')`, 5*time.Second)
		b.Do("finish the field by hand", 10*time.Second, chromedp.KeyEvent("levle > 0"))
	} else {
		selectText(b, "levle", "when:")
		b.Do("Ctrl+Space without a field list", 10*time.Second, chromedp.KeyEvent(" ", chromedp.KeyModifiers(chromedp.ModifierCtrl)))
		if webtest.Eval[bool](b, `!document.getElementById('complete').hidden`) {
			t.Errorf("a completion list opened with no field list from the server")
		}
		t.Logf("GET /api/v1/rules/fields: %d: completion not offered", code)
	}

	// The fix: the error clears.
	selectText(b, "levle > 0", "when:")
	b.Do("fix the field", 20*time.Second, chromedp.KeyEvent(`status != "fault"`))
	b.WaitFor("the error cleared", `document.getElementById('editor').dataset.check === 'done' && !document.querySelector('#mirror .err-marker') && !document.querySelector('#errors li') &&
		document.getElementById('check-state').textContent.includes('校验通过')`, 20*time.Second)

	// Dry run on a sample event: the per-event why.
	sample := fmt.Sprintf(`[{"id": "dry-1", "type": "city.sensor.reading", "source": "studio", "time": %q,
		"area": {"district": %q, "street": %q, "grid": %q}, "sensor": {"device_id": "BR-9", "kind": "bridge", "metrics": {"strain": 420}, "status": "ok"}}]`,
		now.UTC().Format(time.RFC3339), grid.District, grid.Street, grid.Code)
	b.Do("dry run a sample event", 20*time.Second,
		chromedp.SetValue(chromedp.ID("samples"), sample),
		chromedp.Click(chromedp.ID("dry-samples")))
	b.WaitFor("the dry run's why", `!!document.querySelector('#dry-result .step[data-event="dry-1"].matched')`, 30*time.Second)
	why := webtest.Eval[string](b, `document.querySelector('#dry-result .step[data-event="dry-1"]').textContent`)
	for _, w := range []string{"条件成立", "> 300", "420", "触发", "bridge-watch:BR-9"} {
		if !strings.Contains(why, w) {
			t.Errorf("the dry run's why lacks %q: %s", w, why)
		}
	}

	// Backtest over the last hour: the three readings raise incidents only the edit raises.
	b.Do("backtest the last hour", 10*time.Second, chromedp.Click(chromedp.ID("bt-run")))
	b.WaitFor("the backtest's diff", `!!document.querySelector('#bt-result table.bt-added')`, 90*time.Second)
	added := webtest.Eval[[]string](b, `[...document.querySelectorAll('#bt-result table.bt-added tbody tr td:first-child')].map(td => td.textContent).sort()`)
	if strings.Join(added, ",") != "bridge-watch:BR-1,bridge-watch:BR-2,bridge-watch:BR-3" {
		t.Errorf("incidents added by the edit: %v, want the three bridges", added)
	}
	if got := webtest.Eval[string](b, `document.querySelector('#bt-result .bt-counts').textContent`); !strings.Contains(got, "新增 3") || !strings.Contains(got, "减少 0") {
		t.Errorf("backtest counts: %q", got)
	}
	b.Do("show the backtest", 10*time.Second, chromedp.Evaluate[chromedp.Void](`document.getElementById('backtest').scrollIntoView()`))
	b.Screenshot("../test-artifacts/rules-backtest.png")

	// Dry run on stored events: the readings posted above, with their why.
	b.Do("dry run stored events", 10*time.Second, chromedp.Click(chromedp.ID("dry-stored")))
	b.WaitFor("the stored readings' why", `!!document.querySelector('#dry-result .step[data-event="studio-bt-BR-2"].matched')`, 30*time.Second)

	// Accessibility of the list and the editor with every result shown, at full size and at 200 %.
	if p := b.Accessibility(); len(p) > 0 {
		t.Errorf("rule studio accessibility at 1920×1080: %v", p)
	}

	// Save a new version.
	b.Do("save", 10*time.Second, chromedp.SendKeys(chromedp.ID("comment"), "阈值降到 300"), chromedp.Click(chromedp.ID("save")))
	b.WaitFor("saved as version 2", `document.getElementById('save-result').textContent.includes('已保存为第 2 版') &&
		document.getElementById('editor-title').textContent.includes('第 2 版')`, 30*time.Second)
	var saved struct {
		Version int    `json:"version"`
		When    string `json:"when"`
		Author  string `json:"author"`
	}
	if code := city.Do(http.MethodGet, "/api/v1/rules/bridge-watch", authorToken, nil, &saved); code != http.StatusOK ||
		saved.Version != 2 || saved.Author != "rule.zhang" || !strings.Contains(saved.When, `> 300 && sensor.status != "fault"`) {
		t.Fatalf("the rule after saving: %d %+v", code, saved)
	}
	b.WaitFor("version 2 in the history", `!!document.querySelector('#versions .version[data-version="2"]')`, 10*time.Second)
	b.Do("diff version 2", 10*time.Second, chromedp.Click(chromedp.CSS(`#versions .version[data-version="2"] button`)))
	b.WaitFor("the diff", `[...document.querySelectorAll('#diff .unified .add')].some(s => s.textContent.includes('> 300'))`, 10*time.Second)

	// The engine runs it: a reading only version 2 matches raises an incident of that version.
	postReadings(t, city, producer, bridgeReading("studio-live-1", "BR-LIVE", 350, grid.Centroid, time.Now()))
	webtest.Eventually(t, 60*time.Second, "an incident raised by bridge-watch v2", func() bool {
		var l struct {
			Incidents []event.Incident `json:"incidents"`
		}
		city.Do(http.MethodGet, "/api/v1/incidents?limit=200", admin, nil, &l)
		for _, inc := range l.Incidents {
			for _, r := range inc.Reports {
				if r.RuleID == "bridge-watch" && r.RuleVersion == 2 && r.EventID == "studio-live-1" {
					return true
				}
			}
		}
		return false
	})

	// The list's counters are the engine's: bridge-watch has matched.
	b.Do("refresh the list", 10*time.Second, chromedp.Click(chromedp.ID("refresh")))
	b.WaitFor("bridge-watch's counters", `/命中 [1-9]/.test(document.querySelector('.rule-open[data-id="bridge-watch"]').closest('li').querySelector('.counters').textContent)`, 20*time.Second)

	// Someone else saves meanwhile: the author's save is refused in place as a version conflict.
	if code := sendRule(t, city, http.MethodPut, "/api/v1/rules/bridge-watch?base_version=2", admin,
		strings.Replace(webtest.Eval[string](b, `document.getElementById('source').value`), "severity: yellow", "severity: orange", 1), nil); code != http.StatusOK {
		t.Fatalf("a second author's save: %d", code)
	}
	selectText(b, "category", "raise:")
	b.Do("edit and save on version 2", 10*time.Second, chromedp.KeyEvent("category"), chromedp.Click(chromedp.ID("save")))
	b.WaitFor("the version conflict in place", `document.getElementById('save-result').textContent.includes('版本冲突') &&
		document.getElementById('save-result').textContent.includes('第 2 版')`, 20*time.Second)
	b.Do("load the newest version", 10*time.Second, chromedp.Click(chromedp.CSS(`#save-result button`)))
	b.WaitFor("version 3 in the editor", `document.getElementById('editor-title').textContent.includes('第 3 版') &&
		document.getElementById('source').value.includes('severity: orange')`, 20*time.Second)

	// Disable, then enable again: each a version.
	b.Do("disable", 10*time.Second, chromedp.Click(chromedp.ID("toggle-enabled")))
	b.WaitFor("disabled", `document.getElementById('editor-title').textContent.includes('第 4 版') &&
		document.getElementById('toggle-enabled').textContent.includes('启用规则')`, 20*time.Second)
	var after struct {
		Version int  `json:"version"`
		Enabled bool `json:"enabled"`
	}
	if code := city.Do(http.MethodGet, "/api/v1/rules/bridge-watch", authorToken, nil, &after); code != http.StatusOK || after.Version != 4 || after.Enabled {
		t.Errorf("after disabling on the page: %d %+v", code, after)
	}
	b.Do("enable", 10*time.Second, chromedp.Click(chromedp.ID("toggle-enabled")))
	b.WaitFor("enabled", `document.getElementById('editor-title').textContent.includes('第 5 版') &&
		document.getElementById('toggle-enabled').textContent.includes('停用规则')`, 20*time.Second)

	// Shadow mode is raise.shadow in the text: the box writes it, the check passes, saving keeps it.
	b.Do("shadow mode", 10*time.Second, chromedp.Click(chromedp.ID("shadow")))
	b.WaitFor("shadow in the text, still valid", `/\n  shadow: true\n/.test(document.getElementById('source').value) &&
		document.getElementById('check-state').textContent.includes('校验通过')`, 20*time.Second)
	b.Do("save the shadow version", 10*time.Second, chromedp.Click(chromedp.ID("save")))
	b.WaitFor("saved as version 6, shadow", `document.getElementById('editor-title').textContent.includes('第 6 版') &&
		document.getElementById('rule-state').textContent.includes('影子')`, 20*time.Second)

	// Any two versions compared: 1 against 6 has the new threshold and shadow mode.
	b.Do("compare versions 1 and 6", 10*time.Second, chromedp.SetValue(chromedp.ID("diff-from"), "1"),
		chromedp.SetValue(chromedp.ID("diff-to"), "6"), chromedp.Click(chromedp.ID("diff-run")))
	b.WaitFor("the diff of 1 and 6", `document.querySelector('#diff h3').textContent.includes('第 1 版 → 第 6 版') &&
		[...document.querySelectorAll('#diff .unified .add')].some(s => s.textContent.includes('shadow: true'))`, 10*time.Second)

	b.Zoom200(webtest.Laptop)
	if p := b.Accessibility(); len(p) > 0 {
		t.Errorf("rule studio at 200 %% zoom: %v", p)
	}
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("page problems: %v", p)
	}
}

// An author scoped to a district sees the city's rules read-only: no save, no enable or
// disable, a read-only editor; and the API refuses the change the page does not offer.
func TestRuleStudioDistrictAuthorReadsCityRulesOnly(t *testing.T) {
	city := webtest.Start(t)
	district := city.App.City().Grids()[0].District
	acct := city.User("rule.wang", auth.RoleRuleAuthor, map[string]any{"district": district})
	token := city.Token(auth.Claims{Subject: "rule.wang", Role: auth.RoleRuleAuthor, District: district})

	b := webtest.NewBrowser(t, webtest.Wall)
	b.SignIn(city.Base, acct, "/rules/")
	b.WaitFor("the rule list", `document.body.dataset.ready === 'true' && !!document.querySelector('.rule-open[data-id="water-level-high"]')`, 30*time.Second)
	b.Do("open a city rule", 10*time.Second, chromedp.Click(chromedp.CSS(`.rule-open[data-id="water-level-high"]`)))
	b.WaitFor("the city rule in the editor", `document.getElementById('source').value.includes('id: water-level-high')`, 20*time.Second)
	type view struct {
		ReadOnly, SaveShown, ToggleShown, ShadowEnabled bool
		Note, Badges                                    string
	}
	v := webtest.Eval[view](b, `(() => {
		const shown = (id) => { const e = document.getElementById(id); return !!e && e.getClientRects().length > 0 && !e.disabled; };
		return { readOnly: document.getElementById('source').readOnly, saveShown: shown('save') || document.getElementById('save-row').getClientRects().length > 0,
			toggleShown: shown('toggle-enabled'),
			shadowEnabled: !document.getElementById('shadow').disabled,
			note: document.getElementById('readonly-note').hidden ? '' : document.getElementById('readonly-note').textContent,
			badges: document.getElementById('rule-state').textContent };
	})()`)
	if !v.ReadOnly || v.SaveShown || v.ToggleShown || v.ShadowEnabled || !strings.Contains(v.Note, "只能查看") || !strings.Contains(v.Badges, "只读") {
		t.Errorf("a district author on a city rule: %+v, want a read-only editor without save, enable/disable or shadow", v)
	}
	var rule struct {
		Version  int  `json:"version"`
		Editable bool `json:"editable"`
	}
	if code := city.Do(http.MethodGet, "/api/v1/rules/water-level-high", token, nil, &rule); code != http.StatusOK || rule.Editable {
		t.Fatalf("GET the city rule as the district author: %d editable=%v", code, rule.Editable)
	}
	src := webtest.Eval[string](b, `document.getElementById('source').value`)
	if code := sendRule(t, city, http.MethodPut, fmt.Sprintf("/api/v1/rules/water-level-high?base_version=%d", rule.Version), token, src, nil); code != http.StatusForbidden {
		t.Errorf("the API let a district author update a city rule: %d", code)
	}
	if code := city.Do(http.MethodPost, "/api/v1/rules/water-level-high/disable", token, nil, nil); code != http.StatusForbidden {
		t.Errorf("the API let a district author disable a city rule: %d", code)
	}

	// Their own district's rules they may write: a new rule starts in their district.
	b.Do("start a new rule", 10*time.Second, chromedp.Click(chromedp.ID("new-rule")))
	b.WaitFor("a district template, valid", `document.getElementById('source').value.includes('district: "`+district+`"') &&
		document.getElementById('check-state').textContent.includes('校验通过') && !document.getElementById('save').disabled`, 20*time.Second)

	// A viewer has no rule API at all: the page says so instead of failing.
	viewer := city.User("viewer.zhao", auth.RoleViewer, nil)
	v2 := webtest.NewBrowser(t, webtest.Laptop)
	v2.SignIn(city.Base, viewer, "/rules/")
	v2.WaitFor("the refusal", `document.body.dataset.ready === 'true' && document.body.innerText.includes('无权使用规则工作室') &&
		document.getElementById('source').offsetParent === null`, 20*time.Second)
	if p := v2.Problems(); len(p) > 0 {
		t.Errorf("viewer page problems: %v", p)
	}
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("page problems: %v", p)
	}
}

// Hostile text in a rule's name and description, and in an event a dry run shows, renders as
// text; the page passes the accessibility basics at full size and at 200 % zoom.
func TestRuleStudioHostileTextIsInert(t *testing.T) {
	city := webtest.Start(t)
	hostile := "id: hostile-text\nname: '<script>window.__pwned = 1</script>噪声'\n" +
		"description: '<img src=x onerror=\"window.__pwned = 2\">夜间噪声'\ntypes: [city.hotline.ticket]\n" +
		"when: contains_any(hotline.content, \"噪声\")\nraise:\n  category: \"0401\"\n  severity: blue\n" +
		"  title: \"{{hotline.content}}\"\n  correlation_key: \"hostile:{{hotline.ticket_id}}\"\n"
	if code := sendRule(t, city, http.MethodPost, "/api/v1/rules", city.Admin(), hostile, nil); code != http.StatusCreated {
		t.Fatalf("create the hostile rule: %d", code)
	}
	acct := city.User("rule.li", auth.RoleRuleAuthor, nil)
	b := webtest.NewBrowser(t, webtest.Wall)
	b.SignIn(city.Base, acct, "/rules/")
	b.WaitFor("the rule list", `document.body.dataset.ready === 'true' && !!document.querySelector('.rule-open[data-id="hostile-text"]')`, 30*time.Second)
	b.Do("open the hostile rule", 10*time.Second, chromedp.Click(chromedp.CSS(`.rule-open[data-id="hostile-text"]`)))
	b.WaitFor("the hostile rule in the editor", `document.getElementById('source').value.includes('id: hostile-text')`, 20*time.Second)
	sample := `[{"id": "evil-1", "type": "city.hotline.ticket", "source": "studio", "time": "` + time.Now().UTC().Format(time.RFC3339) + `",
		"area": {"district": "", "street": ""}, "hotline": {"ticket_id": "evil-1", "channel": "phone", "request_type": "投诉",
		"content": "<img src=x onerror=\"window.__pwned = 3\">楼下噪声"}}]`
	b.Do("dry run a hostile event", 20*time.Second, chromedp.SetValue(chromedp.ID("samples"), sample), chromedp.Click(chromedp.ID("dry-samples")))
	b.WaitFor("the dry run", `!!document.querySelector('#dry-result .step[data-event="evil-1"] .signal')`, 30*time.Second)
	type inert struct {
		Pwned             bool
		Imgs, Scripts     int
		ListText, DryText string
	}
	got := webtest.Eval[inert](b, `({ pwned: window.__pwned !== undefined,
		imgs: document.querySelectorAll('img').length, scripts: document.querySelectorAll('body script:not([src])').length,
		listText: document.getElementById('rules').textContent, dryText: document.getElementById('dry-result').textContent })`)
	if got.Pwned || got.Imgs != 0 || got.Scripts != 0 {
		t.Errorf("hostile text ran or became markup: %+v", got)
	}
	if !strings.Contains(got.ListText, "<script>window.__pwned = 1</script>") || !strings.Contains(got.ListText, `<img src=x onerror="window.__pwned = 2">`) ||
		!strings.Contains(got.DryText, `<img src=x onerror="window.__pwned = 3">`) {
		t.Errorf("hostile text not shown as text: list %q, dry run %q", got.ListText, got.DryText)
	}

	// An error after Chinese text on its line is marked on the character the API names
	// (columns count characters, not bytes).
	selectText(b, `"噪声")`, "when:")
	b.Do("misspell a field after Chinese text", 20*time.Second, chromedp.KeyEvent(`"噪声") && hotline.contnet != ""`))
	b.WaitFor("the error marker", `document.getElementById('editor').dataset.check === 'done' && !!document.querySelector('#mirror .err-marker')`, 20*time.Second)
	text := webtest.Eval[string](b, `document.getElementById('source').value`)
	var va validateAnswer
	if code := sendRule(t, city, http.MethodPost, "/api/v1/rules/validate", city.Token(auth.Claims{Subject: "rule.li", Role: auth.RoleRuleAuthor}), text, &va); code != http.StatusUnprocessableEntity || len(va.Errors) != 1 {
		t.Fatalf("validate: %d %+v", code, va)
	}
	at := webtest.Eval[[]string](b, `[document.querySelector('#mirror .err-marker').dataset.line, document.querySelector('#mirror .err-marker').textContent]`)
	line := []rune(strings.Split(text, "\n")[va.Errors[0].FileLine-1])
	if col := va.Errors[0].FileColumn; at[0] != fmt.Sprint(va.Errors[0].FileLine) || col < 1 || col > len(line) || at[1] != string(line[col-1]) {
		t.Errorf("marker on line %s at %q; the API says %d:%d of %q", at[0], at[1], va.Errors[0].FileLine, col, string(line))
	}

	if p := b.Accessibility(); len(p) > 0 {
		t.Errorf("accessibility at 1920×1080: %v", p)
	}
	b.Zoom200(webtest.Laptop)
	if p := b.Accessibility(); len(p) > 0 {
		t.Errorf("accessibility at 200 %% zoom: %v", p)
	}
	b.Do("show the editor", 10*time.Second, chromedp.Evaluate[chromedp.Void](`document.getElementById('editor-title').scrollIntoView()`))
	b.Screenshot("../test-artifacts/rules-zoom200.png")
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("page problems: %v", p)
	}
}
