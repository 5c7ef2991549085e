package authoring_test

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/authoring"
	"github.com/urbanbrain/urbanbrain/rules/engine"
	"github.com/urbanbrain/urbanbrain/rules/lang"
	"github.com/urbanbrain/urbanbrain/rules/rulestest"
)

// What a rule author sees (docs/rules.md): rules see a ticket's content and address with the
// caller's phone and ID numbers masked, so nothing a rule renders, tests or fails on carries
// them; a district rule sees only its district; a rule over its cost budget is refused or
// quarantined with its reason.

const (
	callerPhone = "13987654321"
	callerID    = "330106198507151234"
)

// personalTicket is a 12345 ticket whose text holds the caller's phone and ID number, as
// callers dictate them to the hotline, in district d.
func personalTicket(id, d string) event.Event {
	ev := rulestest.Hotline(id, "投诉", "0103", "urgent",
		"我叫王建国，电话"+callerPhone+"，身份证号"+callerID+"，小区门口燃气管道有煤气味，请尽快派人处理")
	ev.Hotline.Address = "望江区柳岸路12号3栋 联系人电话 " + callerPhone
	ev.Area.District = d
	ev.Area.Street = d + "001"
	return ev
}

// leaks reports a phone or ID number of the caller in s, also spread out by split() or any
// other separator between the digits.
func leaks(s string) bool {
	digits := regexp.MustCompile(`[^0-9Xx]`).ReplaceAllString(s, "")
	return strings.Contains(digits, callerPhone) || strings.Contains(digits, callerID) ||
		strings.Contains(digits, callerPhone[2:10]) || strings.Contains(digits, callerID[6:14])
}

const copyRule = `
id: copy-personal
name: 复制工单
types: [city.hotline.ticket]
when: hotline.content != ""
raise:
  category: "0103"
  severity: red
  title: "{{hotline.content}} {{hotline.address}}"
  correlation_key: '{{ split(hotline.content, "") }}'
  agency: '=string(split(hotline.address, ""))'
`

// A title, a correlation key and an agency copying the ticket — straight, or split into
// characters to slip past a title mask — never carry the phone or ID number: the rule
// never had them.
func TestRulesNeverSeeCallersNumbersSplitBypass(t *testing.T) {
	eng := newEngine(t, rulestest.Parse(t, copyRule), nil)
	rec := &rulestest.Recorder{}
	ev := personalTicket("p1", "990101")
	if err := rec.Keep(eng.HandleEvent(context.Background(), ev)); err != nil {
		t.Fatal(err)
	}
	sigs := rec.Signals(t)
	if len(sigs) != 1 {
		t.Fatalf("%d signals, want 1", len(sigs))
	}
	s := sigs[0]
	for name, v := range map[string]string{"title": s.Title, "correlation_key": s.CorrelationKey, "agency": s.Agency} {
		if leaks(v) {
			t.Errorf("%s carries the caller's number: %q", name, v)
		}
	}
	if !strings.Contains(s.Title, "燃气管道有煤气味") || !strings.Contains(s.Title, "139****4321") {
		t.Errorf("title %q: want the ticket's text with the phone masked", s.Title)
	}
	// The incident service still gets the whole ticket, for those who may see it.
	if s.Event.Hotline.CallerPhone != rulestest.Hotline("x", "", "", "", "").Hotline.CallerPhone ||
		!strings.Contains(s.Event.Hotline.Content, callerPhone) {
		t.Errorf("the signal's event lost the ticket: %+v", s.Event.Hotline)
	}
}

// A condition cannot be used as an oracle for a caller's number: it is compared against
// the masked text.
func TestRuleConditionCannotTestForANumber(t *testing.T) {
	src := strings.Replace(copyRule, `when: hotline.content != ""`, `when: hotline.content contains "`+callerPhone+`" || hotline.content contains "`+callerID[:10]+`"`, 1)
	rep, err := authoring.DryRun(context.Background(), engine.Config{}, rulestest.Parse(t, src)[0],
		[]event.Event{personalTicket("p1", "990101")}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Fired != 0 || rep.Steps[0].Matched {
		t.Errorf("a condition matched on the caller's number: %+v", rep.Steps[0])
	}
}

// A district author's dry run over tickets of several districts: the district rule matches
// only its district's, and nothing the answer carries — titles, keys, the explained
// condition's values — holds a phone or ID number.
func TestDistrictRuleDryRunSeesOnlyItsDistrictMasked(t *testing.T) {
	src := strings.Replace(copyRule, "types:", "district: \"990102\"\ntypes:", 1)
	src = strings.Replace(src, `when: hotline.content != ""`, `when: hotline.content != "" && hotline.address != ""`, 1)
	r := rulestest.Parse(t, src)[0]
	if r.District != "990102" {
		t.Fatalf("district %q", r.District)
	}
	var evs []event.Event
	for i, d := range []string{"990101", "990102", "990103", "990102", "990104"} {
		evs = append(evs, personalTicket("p"+string(rune('0'+i)), d))
	}
	rep, err := authoring.DryRun(context.Background(), engine.Config{}, r, evs, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Fired != 2 {
		t.Errorf("fired %d, want 2: the two tickets of district 990102", rep.Fired)
	}
	for _, st := range rep.Steps {
		for _, sig := range st.Signals {
			if sig.EventID != "p1" && sig.EventID != "p3" {
				t.Errorf("signal on %s, a ticket of another district", sig.EventID)
			}
		}
	}
	if b := mustJSON(t, rep); leaks(b) {
		t.Errorf("the dry run's answer carries a caller's number: %.600s", b)
	}

	// The same in a backtest, through the candidate and the current version.
	bt, err := authoring.Backtest(context.Background(), engine.Config{}, r, &r, evs, rulestest.At.Add(-time.Hour), rulestest.At.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// The two tickets of 990102 have one text, so one key: one incident of two signals.
	if bt.Candidate.Signals != 2 || len(bt.Candidate.Incidents) != 1 || bt.Current == nil || bt.Current.Signals != 2 {
		t.Errorf("backtest %+v / %+v, want the 2 signals of district 990102", bt.Candidate, bt.Current)
	}
	for _, inc := range bt.Candidate.Incidents {
		if inc.FirstEventID != "p1" && inc.FirstEventID != "p3" {
			t.Errorf("backtest incident of %s, another district", inc.FirstEventID)
		}
	}
	if b := mustJSON(t, bt); leaks(b) {
		t.Errorf("the backtest's answer carries a caller's number: %.600s", b)
	}
}

// A run-time error says its kind, field and position, never the value it failed on: the
// ticket's text is not in the stats, the log or a dry run's step.
func TestRuleErrorsCarryNoTicketText(t *testing.T) {
	for _, tt := range []struct{ name, when, severity, want string }{
		{"conversion", `int(hotline.content) > 0`, "red", "when: invalid operation for the operands' types (1:1)"},
		{"severity from the text", `true`, "=hotline.content", "raise.severity: the severity is not one of"},
		{"index", `split(hotline.address, "")[100000] == ""`, "red", "when: index out of range"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.NewReplacer(`when: hotline.content != ""`, "when: '"+tt.when+"'", "severity: red", "severity: '"+tt.severity+"'").Replace(copyRule)
			rs := rulestest.Parse(t, src)
			eng := newEngine(t, rs, nil)
			ev := personalTicket("p1", "990101")
			if _, err := eng.HandleEvent(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
			st := eng.StatsOf("copy-personal")
			if st.Failed != 1 || !strings.Contains(st.LastError, tt.want) {
				t.Errorf("last_error %q (failed %d), want one with %q", st.LastError, st.Failed, tt.want)
			}
			if leaks(st.LastError) || strings.Contains(st.LastError, "煤气味") || strings.Contains(st.LastError, "王建国") ||
				strings.Contains(st.LastError, "柳岸路") {
				t.Errorf("last_error carries the ticket: %q", st.LastError)
			}
			rep, err := authoring.DryRun(context.Background(), engine.Config{}, rs[0], []event.Event{ev}, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if b := mustJSON(t, rep.Steps[0].Errors); strings.Contains(b, "煤气味") || leaks(b) || !strings.Contains(b, tt.want) {
				t.Errorf("dry run errors %s", b)
			}
		})
	}
}

// The costly expression of the security review — `any(1..99000, {# < 0}) == false`, 13 ms on
// every event, never an error — is refused when saved, at its position; the same loop with
// bounds read from the event is stopped by the cost budget on the first event and quarantined,
// with a reason its author reads in the stats, a dry run and a backtest; the other rules go on.
func TestCostlyRuleRefusedOrQuarantinedWithReason(t *testing.T) {
	_, err := lang.Parse("costly.yaml", []byte(rulestest.SensorRule(`any(1..99000, {# < 0}) == false`)))
	var ce *lang.CompileError
	if !errors.As(err, &ce) || ce.Field != "when" || !strings.Contains(ce.Msg, "range 1..99000 has 99000 elements") || ce.Line != 1 {
		t.Fatalf("want a positioned compile error for the range, got %v", err)
	}

	for _, when := range []string{
		`any(1..int(sensor.metrics.level_cm) * 1000, {# < 0}) == false`,        // 90,000 elements: memory
		`any(1..int(sensor.metrics.level_cm) * 50, {# < 0}) == false`,          // 4,500 steps, under memory
		`any(1..90, {any(1..int(sensor.metrics.level_cm), {# < 0})}) == false`, // nested: 8,100 steps
		`len(filter(1..int(sensor.metrics.level_cm) * 60, {# < 0})) == 0`,      // 5,400 steps
	} {
		t.Run(when, func(t *testing.T) {
			costly := rulestest.Parse(t, rulestest.SensorRule(when))
			fine := rulestest.Parse(t, "id: fine\nname: 好规则\ntypes: [city.sensor.reading]\nwhen: sensor.metrics.level_cm > 80\nraise: {category: \"0104\", severity: orange}\n")
			eng := newEngine(t, append(costly, fine...), nil)
			budgetHit := false
			for i := range 5 {
				ev := rulestest.Sensor("e"+string(rune('0'+i)), "WL-1", "water_level", map[string]float64{"level_cm": 90})
				start := time.Now()
				if _, err := eng.HandleEvent(context.Background(), ev); err != nil {
					t.Fatal(err)
				}
				_ = start
				st := eng.StatsOf("hostile")
				if st.Quarantined {
					budgetHit = true
					if st.Failed != 1 {
						t.Errorf("failed %d times before quarantine, want 1: the first event over the budget quarantines", st.Failed)
					}
				}
			}
			st := eng.StatsOf
			if when == `any(1..int(sensor.metrics.level_cm) * 50, {# < 0}) == false` {
				// Within the budget: it runs (and costs at most the budget) on every event.
				if budgetHit || st("hostile").Evaluated != 5 {
					t.Errorf("a rule within its budget was stopped: %+v", st("hostile"))
				}
				return
			}
			h := st("hostile")
			if !budgetHit || !strings.Contains(h.QuarantineReason, "over its cost budget") || h.Evaluated != 1 {
				t.Errorf("stats %+v: want quarantined on the first event, over its cost budget", h)
			}
			if st("fine").Matched != 5 {
				t.Errorf("the other rule matched %d of 5", st("fine").Matched)
			}
			evs := make([]event.Event, 20)
			for i := range evs {
				evs[i] = rulestest.Sensor("d"+string(rune('a'+i)), "WL-1", "water_level", map[string]float64{"level_cm": 90})
			}
			rep, err := authoring.DryRun(context.Background(), engine.Config{}, costly[0], evs, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if last := rep.Steps[len(rep.Steps)-1]; len(last.Errors) != 1 || !strings.Contains(last.Errors[0], "quarantined: over its cost budget") || last.Condition != nil {
				t.Errorf("dry run's last step %+v: want it not run, quarantined with the reason", last)
			}
			bt, err := authoring.Backtest(context.Background(), engine.Config{}, costly[0], nil, evs, rulestest.At.Add(-time.Hour), rulestest.At.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if !bt.Candidate.Quarantined || bt.Candidate.Failures != 1 || !strings.Contains(bt.Candidate.QuarantineReason, "cost budget") &&
				!strings.Contains(bt.Candidate.QuarantineReason, "memory budget") {
				t.Errorf("backtest outcome %+v", bt.Candidate)
			}
		})
	}
}

// Dry runs and backtests stop when their context is cancelled (a client gone, a job
// cancelled, a deadline), and report their progress on the way.
func TestDryRunAndBacktestCancelAndReportProgress(t *testing.T) {
	r := rulestest.Parse(t, rulestest.SensorRule(`sensor.metrics.level_cm > 80`))[0]
	evs := make([]event.Event, 1000)
	for i := range evs {
		evs[i] = rulestest.Sensor("c"+string(rune(0x4e00+i)), "WL-1", "water_level", map[string]float64{"level_cm": 90})
		evs[i].Time = rulestest.At.Add(time.Duration(i) * time.Second)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := 0
	cfg := engine.Config{Progress: func(n int) {
		seen = n
		if n >= 128 {
			cancel()
		}
	}}
	if _, err := authoring.Backtest(ctx, cfg, r, &r, evs, evs[0].Time, evs[len(evs)-1].Time); !errors.Is(err, context.Canceled) {
		t.Errorf("backtest: %v, want context.Canceled", err)
	}
	if seen < 128 || seen >= len(evs) {
		t.Errorf("backtest progress stopped at %d: want it to stop soon after 128 of %d", seen, len(evs))
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	cancel = cancel2 // the progress callback cancels the dry run now
	rep, err := authoring.DryRun(ctx2, cfg, r, evs, time.Time{})
	if !errors.Is(err, context.Canceled) || len(rep.Steps) > 200 {
		t.Errorf("dry run: %v after %d steps, want context.Canceled soon after 128", err, len(rep.Steps))
	}
	if _, err := authoring.DryRun(context.Background(), engine.Config{}, r, append(evs, evs[0]), time.Time{}); err == nil {
		t.Errorf("a dry run over %d events: want refused (at most %d)", len(evs)+1, authoring.MaxDryRunEvents)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The price of masking a ticket's text before rules see it, on the hot path: a 12345 ticket
// holding a phone and an ID number through a keyword rule (燃气/煤气 + 味).
func BenchmarkHotlineTicketMasked(b *testing.B) {
	eng := newEngine(b, rulestest.Parse(b, `
id: gas-smell
name: 燃气异味
types: [city.hotline.ticket]
when: contains_any(hotline.content, "燃气", "煤气") && contains_any(hotline.content, "味", "泄漏")
raise: {category: "0103", severity: red, title: "{{hotline.address}} 燃气异味"}
`), nil)
	ev := personalTicket("b1", "990101")
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(ev.Hotline.Content) + len(ev.Hotline.Address)))
	for b.Loop() {
		if _, err := eng.HandleEvent(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
}
