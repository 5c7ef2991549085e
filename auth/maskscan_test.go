package auth_test

import (
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
)

// rawPhone is planted in every string field; it must not survive masking anywhere but in
// the identifier fields listed per test.
const rawPhone = "13812345678"

// fillStrings sets every string (and every element of a string slice) reachable from v to
// rawPhone, allocating pointers and one-element slices on the way.
func fillStrings(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("见 " + rawPhone)
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fillStrings(v.Elem())
	case reflect.Slice:
		if v.Len() == 0 {
			v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		}
		for i := range v.Len() {
			fillStrings(v.Index(i))
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillStrings(v.Field(i))
			}
		}
	}
}

// leaks lists the paths of the strings under v that still hold rawPhone.
func leaks(v reflect.Value, path string, out *[]string) {
	switch v.Kind() {
	case reflect.String:
		if strings.Contains(v.String(), rawPhone) {
			*out = append(*out, path)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			leaks(v.Elem(), path, out)
		}
	case reflect.Slice:
		for i := range v.Len() {
			leaks(v.Index(i), path, out)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if f.IsExported() {
				leaks(v.Field(i), strings.TrimPrefix(path+"."+f.Name, "."), out)
			}
		}
	}
}

// Issue 11 item 4: evidence notes, return and extension reasons and the correlation key went
// out unmasked. Every string of an Incident is masked but the identifiers and codes below,
// which come from the system, not from a caller; a new free-text field fails this test until
// MaskIncident covers it (or it is added here, with a reason).
func TestMaskIncidentCoversEveryString(t *testing.T) {
	t.Parallel()
	var inc event.Incident
	fillStrings(reflect.ValueOf(&inc))
	masked := auth.MaskIncident(inc, auth.Claims{Subject: "op", Role: auth.RoleOperator})
	var got []string
	leaks(reflect.ValueOf(masked), "", &got)
	identifiers := []string{
		"ID", "Status", "Category", "Severity", // codes
		"Alerts.MsgType", "Alerts.Severity", "Alerts.By", "Alerts.Status", "Alerts.AgencyName", // CAP message: type, level, publisher, state then
		"Area.District", "Area.DistrictName", "Area.Street", "Area.StreetName", "Area.Community",
		"Area.CommunityName", "Area.Grid", "Area.GridName", // the city's map
		"Assignment.WorkerID", "Assignment.WorkerName", "Assignment.Grid", "Assignment.Agency",
		"Assignment.AgencyName", // staff, not callers
		"Reports.EventID", "Reports.EventType", "Reports.SignalID", "Reports.RuleID", "Reports.TicketID",
		"Reports.Category", "Reports.Device", "Reports.LastEventID", // ids
		"Evidence.By", "VerifiedBy", "Returns.WorkerID", "Lapsed", "Extension.By", "Extension.State",
		"Extension.DecidedBy", "Escalation", "Callback", "MergedInto", "Clock.Stage", // staff ids and codes
		// Issue 12: why a rule matched. The condition and its sides as written are the rule's
		// text, durations and window shapes are the rule's too; only the values quote an event.
		"RuleID", "Reports.Class", "Reports.Joined.By", "Reports.Joined.Category",
		"Reports.Rules.RuleID", "Reports.Rules.SignalID", "Reports.Rules.EventID", "Reports.Rules.Severity",
	}
	for _, x := range []string{"Reports.Explanation.", "Reports.Rules.Explanation."} {
		for _, f := range []string{"Condition", "For", "Held", "Silent", "Terms.Expr", "Terms.Left.Expr", "Terms.Right.Expr",
			"Window.Having", "Window.Size"} {
			identifiers = append(identifiers, x+f)
		}
	}
	slices.Sort(identifiers)
	slices.Sort(got)
	if !slices.Equal(got, identifiers) {
		t.Errorf("strings left unmasked for an operator:\n got %v\nwant %v", got, identifiers)
	}
	if fs := auth.PersonalFields(inc); !slices.Equal(fs, []string{"title", "correlation_key", "reports.summary",
		"reports.caller.name", "reports.caller.phone",
		"reports.explanation.terms.text", "reports.explanation.terms.left.value", "reports.explanation.terms.right.value",
		"reports.joined.key", "reports.rules.explanation.terms.text", "reports.rules.explanation.terms.left.value",
		"reports.rules.explanation.terms.right.value", "evidence.note", "evidence.photos", "returns.reason", "alerts.note", "extension.reason"}) {
		t.Errorf("PersonalFields = %v", fs)
	}
	if sup := auth.MaskIncident(inc, auth.Claims{Subject: "s", Role: auth.RoleSupervisor}); !reflect.DeepEqual(sup, inc) {
		t.Error("a supervisor's copy differs from the original")
	}
}

// Issue 11 item 4: hotline.address went out unmasked (49 phones, 48 ID numbers).
func TestMaskEventCoversEveryString(t *testing.T) {
	t.Parallel()
	var ev event.Event
	fillStrings(reflect.ValueOf(&ev))
	masked := auth.MaskEvent(ev, auth.Claims{Subject: "v", Role: auth.RoleViewer})
	var got []string
	leaks(reflect.ValueOf(masked), "", &got)
	for _, p := range got {
		if strings.HasPrefix(p, "Hotline.") && p != "Hotline.TicketID" && p != "Hotline.Channel" && p != "Hotline.RequestType" &&
			p != "Hotline.CategoryCode" && p != "Hotline.CoordSys" && p != "Hotline.DistrictCode" && p != "Hotline.Urgency" &&
			// ingest's: a code, and words of the city's categories.yaml
			p != "Hotline.CategoryBy" && p != "Hotline.CategoryMatch" {
			t.Errorf("%s left unmasked for a viewer", p)
		}
	}
	if fs := auth.PersonalEventFields(ev); !slices.Contains(fs, "hotline.address") || !slices.Contains(fs, "hotline.content") {
		t.Errorf("PersonalEventFields = %v; want the address and content among them", fs)
	}
}

func TestMaskChangeAndAudit(t *testing.T) {
	t.Parallel()
	op := auth.Claims{Subject: "op", Role: auth.RoleOperator}
	ch := auth.MaskChange(event.Change{Action: event.ActionProgress, Note: "已联系业主13812345678", Reason: "业主电话138.1234.5678"}, op)
	if ch.Note != "已联系业主138****5678" || ch.Reason != "业主电话138.****.5678" {
		t.Errorf("MaskChange: %+v", ch)
	}
	rec := auth.MaskAudit(event.AuditRecord{Reason: "退单：业主13812345678不在家", Error: "x 13812345678", Fields: []string{"a"}}, op)
	if strings.Contains(rec.Reason+rec.Error, rawPhone) || rec.Fields != nil {
		t.Errorf("MaskAudit: %+v", rec)
	}
	d := auth.MaskDispatch(event.Dispatch{Reason: "按来电人13812345678要求"}, op)
	if strings.Contains(d.Reason, rawPhone) {
		t.Errorf("MaskDispatch: %+v", d)
	}
	sup := auth.Claims{Subject: "s", Role: auth.RoleSupervisor}
	if got := auth.MaskChange(event.Change{Note: rawPhone}, sup); got.Note != rawPhone {
		t.Errorf("supervisor's change note %q; want it whole", got.Note)
	}
}

// rawPhoneRE is an unmasked mobile number as the scan of issue 11 looks for it, in text whose
// full-width digits and separators were made ASCII: 11 digits starting with 1, single
// separators allowed, not inside a longer number.
var rawPhoneRE = regexp.MustCompile(`(?:^|[^0-9])1(?:[ .\-]?[0-9]){10}(?:[^0-9]|$)`)

var asciiDigits = strings.NewReplacer("０", "0", "１", "1", "２", "2", "３", "3", "４", "4", "５", "5", "６", "6",
	"７", "7", "８", "8", "９", "9", "－", "-", "．", ".", "\u3000", " ")

// MaskText keeps the text's shape (one rune for one rune) and leaves no mobile number whole.
// (It is not idempotent on every input: masking can cut a run into groups that form another
// number, which is then masked too; the tests above hold it to idempotence on real masks.)
func FuzzMaskText(f *testing.F) {
	for _, s := range []string{"电话13812345678", "１３８．１２３４．５６７８", "身份证11010119900307123X", "1381234567…",
		"0086 138 1234 5678", "2026-03-01 13812345678", "a1b2c3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		m := auth.MaskText(s)
		if utf8.RuneCountInString(m) != utf8.RuneCountInString(s) {
			t.Fatalf("MaskText(%q) = %q: length changed", s, m)
		}
		if loc := rawPhoneRE.FindStringIndex(asciiDigits.Replace(m)); loc != nil {
			t.Fatalf("MaskText(%q) = %q: a mobile number is left", s, m)
		}
	})
}

var benchTexts = map[string]string{
	"no-digits": strings.Repeat("楼下广场舞噪音太大，晚上十点还在放音乐。", 4),
	"phone":     "楼下广场舞噪音太大，晚上十点还在放音乐，请回电13812345678，地址：西湖区文三路 138 号 2 单元",
	"numbers":   "水位 120cm，持续 30 分钟；身份证 110101199003071234；座机 0571-88886666；备用 １３９．１２３４．５６７８",
}

func BenchmarkMaskText(b *testing.B) {
	for name, s := range benchTexts {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				_ = auth.MaskText(s)
			}
		})
	}
}

func BenchmarkMaskIncident(b *testing.B) {
	var inc event.Incident
	fillStrings(reflect.ValueOf(&inc))
	c := auth.Claims{Subject: "op", Role: auth.RoleOperator}
	b.ReportAllocs()
	for b.Loop() {
		_ = auth.MaskIncident(inc, c)
	}
}

// Issue 12: an explanation quotes the values a condition compared, which for a 12345 rule may
// be the ticket's text: masked on the timeline for an operator, whole for a supervisor, and the
// original untouched.
func TestMaskChangeExplanation(t *testing.T) {
	t.Parallel()
	x := &event.Explanation{Condition: `hotline.content contains "燃气"`, Terms: []event.Term{{
		Expr: `hotline.content contains "燃气"`, Text: `hotline.content "燃气味很重 13812345678" contains "燃气"`, Holds: true,
		Left: event.Operand{Expr: "hotline.content", Value: `"燃气味很重 13812345678"`}, Right: event.Operand{Expr: `"燃气"`, Value: `"燃气"`}}}}
	ch := event.Change{Action: "signal", Explanation: x}
	op := auth.MaskChange(ch, auth.Claims{Subject: "op", Role: auth.RoleOperator})
	if got := op.Explanation.Terms[0]; strings.Contains(got.Text+got.Left.Value, rawPhone) || got.Expr != x.Terms[0].Expr {
		t.Errorf("operator's explanation %+v, want the values masked and the rule text kept", got)
	}
	if strings.Contains(x.Terms[0].Left.Value, "*") {
		t.Error("MaskChange wrote into the original explanation")
	}
	sup := auth.MaskChange(ch, auth.Claims{Subject: "s", Role: auth.RoleSupervisor})
	if !reflect.DeepEqual(sup.Explanation, x) {
		t.Errorf("supervisor's explanation %+v, want it whole", sup.Explanation)
	}
}
