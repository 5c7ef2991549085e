package auth

import (
	"maps"
	"regexp"
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
		if ch >= '0' && ch <= '9' {
			pos = append(pos, i)
			digits = append(digits, byte(ch))
		}
	}
	if off, ok := mobileOffset(digits); ok {
		maskAt(r, pos[off+3:off+7])
		return string(r)
	}
	if k := slices.IndexFunc(r, func(ch rune) bool { return ch == '-' || ch == ' ' }); k >= 3 && k <= 4 && r[0] == '0' &&
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

// textMatchers find personal numbers at the start of a string; MaskText tries them in order
// at every position where a number starts. Each must end where the digits end: a mobile
// number is not masked inside a longer number such as a ticket id.
var textMatchers = []struct {
	re   *regexp.Regexp
	mask func(string) string
}{
	{regexp.MustCompile(`^[0-9]{17}[0-9Xx]`), MaskIDNumber},
	{regexp.MustCompile(`^(?:(?:\+|00)?86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}){2}`), MaskPhone},
	{regexp.MustCompile(`^[0-9]{15}`), MaskIDNumber},
	{regexp.MustCompile(`^0[0-9]{2,3}-[0-9]{7,8}`), MaskPhone},
}

// MaskText masks the mobile numbers (1[3-9] and 9 more digits, optionally +86 and spaced or
// dashed), landline numbers with an area code and ID numbers found inside free text, such as
// the content of a 12345 work order ("我的电话13812345678" → "我的电话138****5678").
// Everything else is left as it is.
func MaskText(s string) string {
	var b strings.Builder
	copied, changed := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isDigit(c) && c != '+' || i > 0 && isDigit(s[i-1]) {
			continue
		}
		rest := s[i:]
		for _, m := range textMatchers {
			loc := m.re.FindStringIndex(rest)
			if loc == nil || loc[1] < len(rest) && isDigit(rest[loc[1]]) {
				continue
			}
			if !changed {
				b.Grow(len(s))
				changed = true
			}
			b.WriteString(s[copied:i])
			b.WriteString(m.mask(rest[:loc[1]]))
			copied = i + loc[1]
			i = copied - 1
			break
		}
	}
	if !changed {
		return s
	}
	b.WriteString(s[copied:])
	return b.String()
}

// MaskIncident returns a deep copy of inc for the holder of c: callers' names and phones in
// the reports, and numbers inside report summaries and the title, are masked unless c's role
// may see personal data. inc itself is never modified and shares no memory with the result.
func MaskIncident(inc event.Incident, c Claims) event.Incident {
	out := cloneIncident(inc)
	if Can(c.Role, PermSeePersonalData) {
		return out
	}
	out.Title = MaskText(out.Title)
	for i := range out.Reports {
		r := &out.Reports[i]
		r.Summary = MaskText(r.Summary)
		if r.Caller != nil {
			r.Caller.Name = MaskName(r.Caller.Name)
			r.Caller.Phone = MaskPhone(r.Caller.Phone)
		}
	}
	return out
}

// MaskEvent returns a deep copy of ev for the holder of c: a 12345 ticket's caller name and
// phone, and numbers inside its content, are masked unless c's role may see personal data.
// ev itself is never modified and shares no memory with the result.
func MaskEvent(ev event.Event, c Claims) event.Event {
	out := cloneEvent(ev)
	if Can(c.Role, PermSeePersonalData) || out.Hotline == nil {
		return out
	}
	out.Hotline.CallerName = MaskName(out.Hotline.CallerName)
	out.Hotline.CallerPhone = MaskPhone(out.Hotline.CallerPhone)
	out.Hotline.Content = MaskText(out.Hotline.Content)
	return out
}

func cloneIncident(inc event.Incident) event.Incident {
	out := inc
	out.Location = clonePtr(inc.Location)
	if inc.Reports != nil {
		out.Reports = make([]event.Report, len(inc.Reports))
		for i, r := range inc.Reports {
			r.Location = clonePtr(r.Location)
			r.Caller = clonePtr(r.Caller)
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
