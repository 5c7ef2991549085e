package alerts

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
)

// Value names this package writes in eventCode, parameter and geocode.
//
// GB/T 35965.1-2018 defines value rules for the Chinese profile, but its text was not at hand
// when this was written. What was: an excerpt, on a public document-sharing page, of a
// normative annex "取值规则及说明" for 突发事件预警信息 — not confirmed to be GB/T 35965.1's own
// rather than a provincial standard's that follows it — giving Beijing time with a +08:00
// offset, an identifier built from an issuer code (a GB/T 2260 administrative code, a GB/T
// 4657 organisation code, two internal parts), the entry time and a sequence number, and the
// CAP status words kept in English; and GB/T 35965.2's list of normative references (GB/T 2260
// administrative division codes, GB/T 35561 classification of emergencies). So the district
// geocode is named after GB/T 2260, whose six-digit code the district code is; every other
// name is this project's own, under an "urbanbrain:" prefix, rather than a guess at the
// standard's: in particular the event code is the city's category code (GB/T 30428 style),
// not a GB/T 35561 event code. Change these names, not the builder, once the standard's text
// is checked.
const (
	EventCodeCategory = "urbanbrain:category" // the city's category code, e.g. 0202

	ParamColour   = "urbanbrain:colour"   // 预警颜色: 红色, 橙色, 黄色, 蓝色
	ParamGrade    = "urbanbrain:grade"    // 预警级别: Ⅰ级 … Ⅳ级
	ParamIncident = "urbanbrain:incident" // the incident id
	ParamVersion  = "urbanbrain:version"  // the incident version the message was built from
	ParamReports  = "urbanbrain:reports"  // how many reports the incident has (一事多报)
	ParamStatus   = "urbanbrain:status"   // the incident's lifecycle state, e.g. dispatched

	GeocodeDistrict  = "GB/T 2260" // the district's administrative division code
	GeocodeStreet    = "urbanbrain:street"
	GeocodeCommunity = "urbanbrain:community"
	GeocodeGrid      = "urbanbrain:grid"
)

// Level is how an incident severity reads in CAP and in the Chinese early-warning system.
//
// The colours and grades are those of the Emergency Response Law of the PRC
// (中华人民共和国突发事件应对法, 2007, art. 42): warnings of natural disasters, accidents and
// public-health events have four grades, 一级 (most serious) to 四级, shown in red, orange,
// yellow and blue. The CAP severity of each colour (red Extreme, orange Severe, yellow
// Moderate, blue Minor) is the correspondence used by CAP feeds of Chinese warnings; it could
// not be checked against the text of GB/T 35965.1 here, and is the one place to change if that
// text says otherwise.
type Level struct {
	Severity string // event.SeverityRed …
	CAP      string // CAP <severity>
	Colour   string // 红色, 橙色, 黄色, 蓝色
	Grade    string // Ⅰ级 (most severe) … Ⅳ级
}

var levels = []Level{
	{event.SeverityRed, "Extreme", "红色", "Ⅰ级"},
	{event.SeverityOrange, "Severe", "橙色", "Ⅱ级"},
	{event.SeverityYellow, "Moderate", "黄色", "Ⅲ级"},
	{event.SeverityBlue, "Minor", "蓝色", "Ⅳ级"},
}

// LevelOf returns the level of an incident severity (red, orange, yellow, blue).
func LevelOf(severity string) (Level, bool) {
	for _, l := range levels {
		if l.Severity == severity {
			return l, true
		}
	}
	return Level{}, false
}

// Beijing is the zone alerts are written in by default: Beijing time, +08:00, as the Chinese
// profile writes times. A fixed zone, so a static binary without tzdata has it.
var Beijing = time.FixedZone("CST", 8*60*60)

// Options are what an alert needs beyond the incident: who sends it and when.
type Options struct {
	// Sender identifies the issuing system in CAP (<sender>), e.g. "cmc.yunchuan.gov.cn": no
	// spaces, commas, < or &. Required for FromIncident; Update and Cancel default to the
	// sender of the message they follow.
	Sender string
	// SenderName is the issuing body as people read it (发布单位), e.g. 云川市城市运行管理中心.
	SenderName string
	// Status is the CAP status: Actual (the default), Exercise, System, Test or Draft. Update
	// and Cancel keep the status of the message they follow.
	Status string
	// Sent is when the message is sent (default: now). It is written in Zone to the second.
	Sent time.Time
	// Zone is the time zone times are written in (default Beijing).
	Zone *time.Location
	// ValidFor sets <expires> to Sent+ValidFor; zero leaves it out (valid until updated or
	// cancelled).
	ValidFor time.Duration
	// Web is the base URL of the public incident page: <web> is Web followed by the escaped
	// incident id. Empty leaves <web> out.
	Web string
	// RadiusKm is the radius of the circle around an incident that has no grid (default 0.5).
	RadiusKm float64
	// Instruction replaces the default instruction (what the public should do).
	Instruction string
	// Contact is the public contact for the alert (<contact>), e.g. 12345.
	Contact string
}

func (o *Options) setDefaults() {
	if o.Status == "" {
		o.Status = "Actual"
	}
	if o.Sent.IsZero() {
		o.Sent = time.Now()
	}
	if o.Zone == nil {
		o.Zone = Beijing
	}
	if o.RadiusKm == 0 {
		o.RadiusKm = 0.5
	}
}

// Validate reports every problem with the options at once.
func (o Options) Validate() error {
	var errs []error
	if o.Sender != "" {
		if err := validToken(o.Sender); err != nil {
			errs = append(errs, fmt.Errorf("sender: %w", err))
		}
	}
	switch o.Status {
	case "", "Actual", "Exercise", "System", "Test", "Draft":
	default:
		errs = append(errs, fmt.Errorf("status %q: want Actual, Exercise, System, Test or Draft", o.Status))
	}
	if o.ValidFor < 0 {
		errs = append(errs, fmt.Errorf("valid for %v: negative", o.ValidFor))
	}
	if o.RadiusKm < 0 {
		errs = append(errs, fmt.Errorf("radius %v km: negative", o.RadiusKm))
	}
	if o.Web != "" {
		if u, err := url.Parse(o.Web); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("web %q: want an absolute http(s) URL", o.Web))
		}
	}
	return errors.Join(errs...)
}

// Errors of the builders.
var (
	ErrNoArea   = errors.New("incident has neither a known grid nor a location")
	ErrSeverity = errors.New("incident severity is not red, orange, yellow or blue")
	ErrFollow   = errors.New("cannot follow that message")
)

// FromIncident builds the alert (msgType Alert) that announces an incident:
//
//   - severity: the incident's colour through LevelOf (CAP severity, 红色 … 蓝色, Ⅰ级 … Ⅳ级);
//   - urgency and certainty: from the incident's state (urgency, certainty);
//   - category and event: the CAP category of the incident's category (capCategories) and its
//     Chinese name;
//   - headline, description, instruction: Chinese text from the category, the place and the
//     state; the incident's own title is included, cleaned of control characters;
//   - area: the incident's grid polygon as a closed "lat,lon" ring, or a circle around its
//     location when it has no grid, with the district, street, community and grid codes as
//     geocodes;
//   - eventCode and parameters: see the value names above.
//
// Nothing about the people involved (callers, workers) is written.
func FromIncident(inc event.Incident, m *city.Map, opts Options) (Alert, error) {
	if err := opts.Validate(); err != nil {
		return Alert{}, fmt.Errorf("alert for %s: %w", inc.ID, err)
	}
	if opts.Sender == "" {
		return Alert{}, fmt.Errorf("alert for %s: sender: empty", inc.ID)
	}
	opts.setDefaults()
	return build(inc, m, opts, MsgAlert, nil)
}

// Update builds the message (msgType Update) that replaces prev — an Alert or an earlier
// Update of the same incident — with the incident's current state. Its references are prev's
// and prev itself, so the original and every earlier update are named.
func Update(prev Alert, inc event.Incident, m *city.Map, opts Options) (Alert, error) {
	if err := follows(prev, opts); err != nil {
		return Alert{}, fmt.Errorf("update of %s: %w", prev.Identifier, err)
	}
	if prev.Incidents != inc.ID {
		return Alert{}, fmt.Errorf("update of %s: %w: it is about incident %q, not %q", prev.Identifier, ErrFollow, prev.Incidents, inc.ID)
	}
	if opts.Sender == "" {
		opts.Sender = prev.Sender
	}
	opts.Status = prev.Status
	opts.setDefaults()
	if err := notBefore(prev, opts.Sent); err != nil {
		return Alert{}, fmt.Errorf("update of %s: %w", prev.Identifier, err)
	}
	return build(inc, m, opts, MsgUpdate, chain(prev))
}

// Cancel builds the message (msgType Cancel) that withdraws prev and every message it
// references, saying why (reason, required: 误报, 已处置完毕 …; published as written, with
// phone and ID numbers masked by auth.MaskText). Its info repeats prev's event
// with urgency Past and response AllClear, so a receiver that shows only info still reads it.
func Cancel(prev Alert, reason string, opts Options) (Alert, error) {
	if err := follows(prev, opts); err != nil {
		return Alert{}, fmt.Errorf("cancel of %s: %w", prev.Identifier, err)
	}
	reason = clean(auth.MaskText(reason), 500)
	if reason == "" {
		return Alert{}, fmt.Errorf("cancel of %s: reason: empty", prev.Identifier)
	}
	if opts.Sender == "" {
		opts.Sender = prev.Sender
	}
	opts.Status = prev.Status
	opts.setDefaults()
	if err := notBefore(prev, opts.Sent); err != nil {
		return Alert{}, fmt.Errorf("cancel of %s: %w", prev.Identifier, err)
	}
	refs := chain(prev)
	sent := Time{opts.Sent.In(opts.Zone).Truncate(time.Second)}
	id, err := identifier(prev.Incidents, sent, len(refs))
	if err != nil {
		return Alert{}, fmt.Errorf("cancel of %s: %w", prev.Identifier, err)
	}
	a := Alert{
		Identifier: id,
		Sender:     opts.Sender,
		Sent:       sent,
		Status:     opts.Status,
		MsgType:    MsgCancel,
		Scope:      prev.Scope,
		Note:       reason,
		References: refs,
		Incidents:  prev.Incidents,
	}
	for _, in := range prev.Info {
		in.ResponseType = []string{"AllClear"}
		in.Urgency = "Past"
		in.Effective = &sent
		in.Expires = nil
		if opts.SenderName != "" {
			in.SenderName = opts.SenderName
		}
		in.Headline = strings.TrimSuffix(in.Headline, "（已处置）") + "（已取消）"
		in.Description = "此前发布的预警已取消。原因：" + reason
		in.Instruction = "无需再采取相应防范措施。"
		in.Category = slices.Clone(in.Category)
		in.EventCode = slices.Clone(in.EventCode)
		in.Parameter = slices.Clone(in.Parameter)
		in.Area = slices.Clone(in.Area)
		a.Info = append(a.Info, in)
	}
	return a, nil
}

// follows checks that a message may follow prev.
func follows(prev Alert, opts Options) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	switch prev.MsgType {
	case MsgAlert, MsgUpdate:
	case MsgCancel:
		return fmt.Errorf("%w: it is a cancellation", ErrFollow)
	default:
		return fmt.Errorf("%w: msgType %q", ErrFollow, prev.MsgType)
	}
	if prev.Identifier == "" || prev.Sender == "" || prev.Sent.IsZero() || prev.Incidents == "" {
		return fmt.Errorf("%w: it lacks an identifier, sender, sent time or incident", ErrFollow)
	}
	return nil
}

func notBefore(prev Alert, sent time.Time) error {
	if sent.Truncate(time.Second).Before(prev.Sent.Time) {
		return fmt.Errorf("%w: sent %s, before it (%s)", ErrFollow, sent.Format(time.RFC3339), prev.Sent.Format(time.RFC3339))
	}
	return nil
}

// chain is what a message following prev references: everything prev did, then prev.
func chain(prev Alert) References {
	return append(slices.Clone(prev.References), prev.Ref())
}

// identifier is a message's identifier: the incident, the sent time and the message's place
// in its chain (0 for the Alert, n for the nth message after it). Unique for the sender as
// long as incident ids are; readable in a log.
//
// The identifier of the value rules quoted above (issuer code, entry time, a 0–9 sequence per
// issuer and second) needs an issuer code and a counter shared by everything the issuer
// sends, which this package does not own, so it is not used here.
func identifier(incident string, sent Time, n int) (string, error) {
	id := incident + "." + sent.Format("20060102T150405") + "." + strconv.Itoa(n)
	if err := validToken(id); err != nil {
		return "", fmt.Errorf("identifier from incident id: %w", err)
	}
	return id, nil
}

func build(inc event.Incident, m *city.Map, opts Options, msgType string, refs References) (Alert, error) {
	if inc.ID == "" {
		return Alert{}, errors.New("alert for an incident without an id")
	}
	if m == nil {
		return Alert{}, fmt.Errorf("alert for %s: no city map", inc.ID)
	}
	if inc.Status == event.StatusMerged {
		return Alert{}, fmt.Errorf("alert for %s: it was merged into %s; alert on that one", inc.ID, inc.MergedInto)
	}
	inc = public(inc)
	lvl, ok := LevelOf(inc.Severity)
	if !ok {
		return Alert{}, fmt.Errorf("alert for %s: %w: %q", inc.ID, ErrSeverity, inc.Severity)
	}
	area, err := areaOf(inc, m, opts.RadiusKm)
	if err != nil {
		return Alert{}, fmt.Errorf("alert for %s: %w", inc.ID, err)
	}
	sent := Time{opts.Sent.In(opts.Zone).Truncate(time.Second)}
	id, err := identifier(inc.ID, sent, len(refs))
	if err != nil {
		return Alert{}, fmt.Errorf("alert for %s: %w", inc.ID, err)
	}

	catName := inc.Category
	cat, known := m.Category(inc.Category)
	if known {
		catName = cat.Name
	}
	urg := urgency(inc)
	place := inc.Area.DistrictName + inc.Area.StreetName
	headline := place + catName + lvl.Colour + "预警"
	if urg == "Past" {
		headline += "（已处置）"
	}
	in := Info{
		Language:     "zh-CN",
		Category:     capCategories(cat, known),
		Event:        catName,
		ResponseType: []string{responseType(lvl, urg)},
		Urgency:      urg,
		Severity:     lvl.CAP,
		Certainty:    certainty(inc),
		EventCode:    []NamedValue{{EventCodeCategory, inc.Category}},
		Effective:    &sent,
		SenderName:   opts.SenderName,
		Headline:     headline,
		Description:  description(inc, catName, sent, opts.Zone),
		Instruction:  opts.Instruction,
		Contact:      opts.Contact,
		Parameter: []NamedValue{
			{ParamColour, lvl.Colour},
			{ParamGrade, lvl.Grade},
			{ParamIncident, inc.ID},
			{ParamVersion, strconv.FormatInt(inc.Version, 10)},
			{ParamReports, strconv.Itoa(max(inc.ReportCount, len(inc.Reports)))},
			{ParamStatus, string(inc.Status)},
		},
		Area: []Area{area},
	}
	if in.Instruction == "" {
		in.Instruction = instruction(lvl, inc.Category, urg)
	}
	if !inc.CreatedAt.IsZero() {
		onset := Time{inc.CreatedAt.In(opts.Zone).Truncate(time.Second)}
		in.Onset = &onset
	}
	if opts.ValidFor > 0 {
		exp := Time{sent.Add(opts.ValidFor)}
		in.Expires = &exp
	}
	if opts.Web != "" {
		in.Web = strings.TrimSuffix(opts.Web, "/") + "/" + url.PathEscape(inc.ID)
	}
	return Alert{
		Identifier: id,
		Sender:     opts.Sender,
		Sent:       sent,
		Status:     opts.Status,
		MsgType:    msgType,
		Scope:      "Public",
		References: refs,
		Incidents:  inc.ID,
		Info:       []Info{in},
	}, nil
}

// public is the incident as anyone may see it — alerts are public — through the project's one
// masking policy (auth.MaskIncident for a holder with no right to personal data: phone and ID
// numbers in the title masked), and with the callers' names masked where a title quotes them.
func public(inc event.Incident) event.Incident {
	masked := auth.MaskIncident(inc, auth.Claims{})
	for _, r := range inc.Reports { // the names as they were, before masking
		if r.Caller != nil && utf8.RuneCountInString(r.Caller.Name) >= 2 {
			masked.Title = strings.ReplaceAll(masked.Title, r.Caller.Name, auth.MaskName(r.Caller.Name))
		}
	}
	return masked
}

// urgency: an open incident is happening now — Immediate when red or orange, Expected
// (act soon) when yellow or blue; once resolved, verified, closed or cancelled it is Past.
func urgency(inc event.Incident) string {
	switch inc.Status {
	case event.StatusResolved, event.StatusVerified, event.StatusClosed, event.StatusCancelled:
		return "Past"
	}
	if inc.Severity == event.SeverityRed || inc.Severity == event.SeverityOrange {
		return "Immediate"
	}
	return "Expected"
}

// certainty: Observed once someone has seen it — a worker is on it or has resolved it, a
// sensor measured it, or independent reports agree (一事多报); Likely for a single report of
// a camera or a citizen; Unlikely once it was cancelled as a false alarm (误报).
func certainty(inc event.Incident) string {
	switch inc.Status {
	case event.StatusCancelled:
		return "Unlikely"
	case event.StatusInProgress, event.StatusResolved, event.StatusVerified, event.StatusClosed:
		return "Observed"
	}
	if max(inc.ReportCount, len(inc.Reports)) >= 2 {
		return "Observed"
	}
	for _, r := range inc.Reports {
		if r.EventType == event.TypeSensorReading {
			return "Observed"
		}
	}
	return "Likely"
}

func responseType(lvl Level, urg string) string {
	switch {
	case urg == "Past":
		return "AllClear"
	case lvl.CAP == "Extreme" || lvl.CAP == "Severe":
		return "Avoid"
	}
	return "Monitor"
}

// capCategories is the CAP category of a city category: by its major class in the GB/T 30428
// style catalogue (01 公用设施 Infra, 02 道路交通 Transport, 03 市容环境 and 04 环境保护 Env,
// 05 公共安全 Safety, 06 民生诉求 Other), with the minor classes whose hazard says more
// (燃气泄漏 Safety, 火情 Fire, flooding also Met).
func capCategories(cat city.Category, known bool) []string {
	if !known {
		return []string{"Other"}
	}
	switch cat.Code {
	case "0103": // 燃气泄漏
		return []string{"Safety", "Infra"}
	case "0104": // 排水设施/水位超警
		return []string{"Infra", "Met"}
	case "0202": // 道路积水
		return []string{"Transport", "Met"}
	case "0203": // 桥梁隧道异常
		return []string{"Transport", "Infra"}
	case "0501": // 火情烟雾
		return []string{"Fire"}
	}
	switch cat.Major {
	case "01":
		return []string{"Infra"}
	case "02":
		return []string{"Transport"}
	case "03", "04":
		return []string{"Env"}
	case "05":
		return []string{"Safety"}
	}
	return []string{"Other"}
}
