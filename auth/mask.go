package auth

import (
	"maps"
	"slices"
	"strings"

	"github.com/urbanbrain/urbanbrain/event"
)

// The mask character. Anything that already contains it is taken as masked and left alone, so
// masking twice is harmless.
const maskRune = '*'

// MaskPhone masks a phone number: an 11-digit mobile keeps its first 3 and last 4 digits
// ("13812345678" → "138****5678", also with a +86/0086 prefix or separators); a landline with
// an area code keeps the area code and the last 4 digits ("0571-88886666" → "0571-****6666");
// anything else keeps about a quarter at each end and masks the middle. Separators stay
// where they are, so the shape of the number is preserved.
func MaskPhone(s string) string {
	if s == "" || strings.ContainsRune(s, maskRune) {
		return s
	}
	r := []rune(s)
	var pos []int // indices in r of the digits
	var digits []byte
	for i, ch := range r {
		if d, ok := digitOf(ch); ok {
			pos = append(pos, i)
			digits = append(digits, '0'+d)
		}
	}
	if off, ok := mobileOffset(digits); ok {
		maskAt(r, pos[off+3:off+7])
		return string(r)
	}
	if k := slices.IndexFunc(r, isSep); k >= 3 && k <= 4 && r[0] == '0' &&
		len(pos) > k && pos[k-1] == k-1 {
		local := pos[k:]
		if len(local) > 4 {
			maskAt(r, local[:len(local)-4])
			return string(r)
		}
	}
	if len(pos) == 0 { // not a number at all: mask the runes themselves
		pos = make([]int, len(r))
		for i := range pos {
			pos[i] = i
		}
	}
	head, tail := keepEnds(len(pos))
	maskAt(r, pos[head:len(pos)-tail])
	return string(r)
}

// mobileOffset reports whether digits are a mainland mobile number, and where its 11 digits
// start after an optional 86 or 0086 country code.
func mobileOffset(d []byte) (int, bool) {
	for _, prefix := range []string{"", "86", "0086"} {
		if len(d) == len(prefix)+11 && string(d[:len(prefix)]) == prefix &&
			d[len(prefix)] == '1' && d[len(prefix)+1] >= '3' && d[len(prefix)+1] <= '9' {
			return len(prefix), true
		}
	}
	return 0, false
}

// keepEnds is how many characters of a value of length n stay visible at each end.
func keepEnds(n int) (head, tail int) {
	if n >= 11 {
		return 3, 4
	}
	return n / 4, n / 4
}

func maskAt(r []rune, at []int) {
	for _, i := range at {
		r[i] = maskRune
	}
}

// MaskName masks a person's name, keeping the first rune: "张三丰" → "张**", "张三" → "张*".
// A one-rune name is masked entirely.
func MaskName(s string) string {
	if s == "" || strings.ContainsRune(s, maskRune) {
		return s
	}
	r := []rune(s)
	if len(r) == 1 {
		return string(maskRune)
	}
	return string(r[0]) + strings.Repeat(string(maskRune), len(r)-1)
}

// MaskIDNumber masks a resident ID number (居民身份证号): an 18-character number keeps its
// first 6 (the region) and last 4 ("110101199003071234" → "110101********1234"); an old
// 15-digit number keeps its first 6 and last 3; anything else is masked in the middle.
func MaskIDNumber(s string) string {
	if s == "" || strings.ContainsRune(s, maskRune) {
		return s
	}
	switch {
	case isID18(s):
		return s[:6] + strings.Repeat(string(maskRune), 8) + s[14:]
	case len(s) == 15 && allDigits(s):
		return s[:6] + strings.Repeat(string(maskRune), 6) + s[12:]
	}
	r := []rune(s)
	head, tail := keepEnds(len(r))
	for i := head; i < len(r)-tail; i++ {
		r[i] = maskRune
	}
	return string(r)
}

func isID18(s string) bool {
	if len(s) != 18 || !allDigits(s[:17]) {
		return false
	}
	last := s[17]
	return isDigit(last) || last == 'X' || last == 'x'
}

func allDigits(s string) bool {
	for i := range len(s) {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// MaskIncident returns a deep copy of inc for the holder of c. Unless c's role may see personal
// data, callers' names and phones are masked, and MaskText masks every free-text field: the
// title, the correlation key, report summaries, the resolver's evidence note and photo URLs,
// return and extension reasons. inc itself is never modified and shares no memory with the
// result.
func MaskIncident(inc event.Incident, c Claims) event.Incident {
	out := cloneIncident(inc)
	if !Can(c.Role, PermSeePersonalData) {
		maskIncident(&out, nil)
	}
	return out
}

// MaskEvent returns a deep copy of ev for the holder of c: unless c's role may see personal
// data, a 12345 ticket's caller name and phone are masked and MaskText masks its content and
// address (and a camera's snapshot URL). ev itself is never modified and shares no memory
// with the result.
func MaskEvent(ev event.Event, c Claims) event.Event {
	out := cloneEvent(ev)
	if !Can(c.Role, PermSeePersonalData) {
		maskEvent(&out, nil)
	}
	return out
}

// MaskChange returns a timeline change for the holder of c: its reason, note and the values
// its explanation quotes masked (MaskText) unless c's role may see personal data. The result
// shares only the actor's grids with ch.
func MaskChange(ch event.Change, c Claims) event.Change {
	ch.Explanation = cloneExplanation(ch.Explanation)
	if !Can(c.Role, PermSeePersonalData) {
		ch.Reason, ch.Note = MaskText(ch.Reason), MaskText(ch.Note)
		maskExplanation(ch.Explanation, "explanation", nil)
	}
	return ch
}

// MaskAudit returns an audit record for the holder of c: its reason and error masked unless
// c's role may see personal data (a refusal may quote what was sent).
func MaskAudit(rec event.AuditRecord, c Claims) event.AuditRecord {
	if !Can(c.Role, PermSeePersonalData) {
		rec.Reason, rec.Error = MaskText(rec.Reason), MaskText(rec.Error)
		rec.Fields = nil
	}
	return rec
}

// MaskDispatch returns a dispatch record for the holder of c: its reason masked unless c's
// role may see personal data.
func MaskDispatch(d event.Dispatch, c Claims) event.Dispatch {
	if !Can(c.Role, PermSeePersonalData) {
		d.Reason = MaskText(d.Reason)
	}
	return d
}

// PersonalFields lists the fields of inc that hold personal data — those MaskIncident changes
// for a role that may not see it — as JSON paths ("reports.caller.phone",
// "evidence.note"), each once, in a fixed order. Empty when there is none: the read audit
// records who was shown which of them.
func PersonalFields(inc event.Incident) []string {
	var fs fieldSet
	cp := cloneIncident(inc)
	maskIncident(&cp, &fs)
	return fs.list
}

// PersonalEventFields is PersonalFields for an event.
func PersonalEventFields(ev event.Event) []string {
	var fs fieldSet
	cp := cloneEvent(ev)
	maskEvent(&cp, &fs)
	return fs.list
}

// fieldSet collects the names of the fields a masking pass changed.
type fieldSet struct{ list []string }

// mask sets *p to f(*p) and, when that changed it, notes field.
func (fs *fieldSet) mask(field string, p *string, f func(string) string) {
	if *p == "" {
		return
	}
	m := f(*p)
	if fs != nil && m != *p && !slices.Contains(fs.list, field) {
		fs.list = append(fs.list, field)
	}
	*p = m
}

// maskIncident masks every string of inc that may hold personal data, in place (inc is a
// copy), noting the changed fields in fs if it is not nil. Every free-text field of
// event.Incident is here: a field added there must be added here too (TestMaskIncidentCoversEveryString).
func maskIncident(inc *event.Incident, fs *fieldSet) {
	fs.mask("title", &inc.Title, MaskText)
	fs.mask("correlation_key", &inc.CorrelationKey, MaskText)
	for i := range inc.Reports {
		r := &inc.Reports[i]
		fs.mask("reports.summary", &r.Summary, MaskText)
		if r.Caller != nil {
			fs.mask("reports.caller.name", &r.Caller.Name, MaskName)
			fs.mask("reports.caller.phone", &r.Caller.Phone, MaskPhone)
		}
		maskExplanation(r.Explanation, "reports.explanation", fs)
		if r.Joined != nil {
			fs.mask("reports.joined.key", &r.Joined.Key, MaskText)
		}
		for j := range r.Rules {
			maskExplanation(r.Rules[j].Explanation, "reports.rules.explanation", fs)
		}
	}
	if e := inc.Evidence; e != nil {
		fs.mask("evidence.note", &e.Note, MaskText)
		for i := range e.Photos {
			fs.mask("evidence.photos", &e.Photos[i], maskPhoto)
		}
	}
	for i := range inc.Returns {
		fs.mask("returns.reason", &inc.Returns[i].Reason, MaskText)
	}
	for i := range inc.Alerts {
		fs.mask("alerts.note", &inc.Alerts[i].Note, MaskText)
	}
	if x := inc.Extension; x != nil {
		fs.mask("extension.reason", &x.Reason, MaskText)
	}
}

// maskPhoto leaves an uploaded photo's name as it is — the hash of its bytes, made by the
// system, whose hex digits MaskText would take for a phone or ID number and break the link —
// and masks anything else (a URL of another system may carry a number).
func maskPhoto(s string) string {
	if event.IsPhotoName(s) {
		return s
	}
	return MaskText(s)
}

// maskExplanation masks what an explanation quotes of an event: the values of its
// comparisons, which may be a 12345 ticket's text. The condition itself is the rule's.
func maskExplanation(x *event.Explanation, field string, fs *fieldSet) {
	if x == nil {
		return
	}
	for i := range x.Terms {
		t := &x.Terms[i]
		fs.mask(field+".terms.text", &t.Text, MaskText)
		fs.mask(field+".terms.left.value", &t.Left.Value, MaskText)
		fs.mask(field+".terms.right.value", &t.Right.Value, MaskText)
	}
}

func cloneExplanation(x *event.Explanation) *event.Explanation {
	if x == nil {
		return nil
	}
	c := *x
	c.Terms = slices.Clone(x.Terms)
	c.Window = clonePtr(x.Window)
	return &c
}

// maskEvent is maskIncident for an event.
func maskEvent(ev *event.Event, fs *fieldSet) {
	if h := ev.Hotline; h != nil {
		fs.mask("hotline.caller_name", &h.CallerName, MaskName)
		fs.mask("hotline.caller_phone", &h.CallerPhone, MaskPhone)
		fs.mask("hotline.content", &h.Content, MaskText)
		fs.mask("hotline.address", &h.Address, MaskText)
		fs.mask("hotline.category", &h.Category, MaskText) // the producer's free text
	}
	if v := ev.Video; v != nil {
		fs.mask("video.snapshot_url", &v.SnapshotURL, MaskText)
	}
}
func cloneIncident(inc event.Incident) event.Incident {
	out := inc
	out.Location = clonePtr(inc.Location)
	if e := inc.Evidence; e != nil {
		c := *e
		c.Photos = slices.Clone(e.Photos)
		c.Location = clonePtr(e.Location)
		out.Evidence = &c
	}
	out.Returns = slices.Clone(inc.Returns)
	out.Alerts = slices.Clone(inc.Alerts)
	out.Lapsed = slices.Clone(inc.Lapsed)
	out.Extension = clonePtr(inc.Extension)
	out.Clock = clonePtr(inc.Clock)
	if inc.Reports != nil {
		out.Reports = make([]event.Report, len(inc.Reports))
		for i, r := range inc.Reports {
			r.Location = clonePtr(r.Location)
			r.Caller = clonePtr(r.Caller)
			r.Peak = maps.Clone(r.Peak)
			r.Explanation = cloneExplanation(r.Explanation)
			r.Joined = clonePtr(r.Joined)
			if r.Rules != nil {
				rules := make([]event.RuleMatch, len(r.Rules))
				for j, m := range r.Rules {
					m.Explanation = cloneExplanation(m.Explanation)
					rules[j] = m
				}
				r.Rules = rules
			}
			out.Reports[i] = r
		}
	}
	return out
}

func cloneEvent(ev event.Event) event.Event {
	out := ev
	out.Location = clonePtr(ev.Location)
	if s := ev.Sensor; s != nil {
		c := *s
		c.Metrics = maps.Clone(s.Metrics)
		c.Lat, c.Lon, c.Battery = clonePtr(s.Lat), clonePtr(s.Lon), clonePtr(s.Battery)
		out.Sensor = &c
	}
	if h := ev.Hotline; h != nil {
		c := *h
		c.Lat, c.Lon = clonePtr(h.Lat), clonePtr(h.Lon)
		out.Hotline = &c
	}
	if v := ev.Video; v != nil {
		c := *v
		c.BBox = slices.Clone(v.BBox)
		c.Lat, c.Lon = clonePtr(v.Lat), clonePtr(v.Lon)
		out.Video = &c
	}
	return out
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}
