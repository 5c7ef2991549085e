package auth

// MaskText masks the personal numbers inside free text — the content and address of a 12345
// work order, a worker's progress note, a return reason — and leaves everything else as it
// is: "我的电话13812345678" → "我的电话138****5678".
//
// It finds numbers written the ways callers and workers write them: ASCII or full-width digits
// ("１３８１２３４５６７８"), in groups separated by up to three spaces, dashes or dots (ASCII or
// full-width: "138 1234 5678", "138.1234.5678", "138 - 1234 - 5678"). Within such a run it
// masks, in this order of preference and without overlap:
//
//   - ID numbers (居民身份证号) of 17 digits and a digit or X: the first 6 and last 4 stay;
//   - mobile numbers, 11 digits starting with 1, also after 86 or 0086: the first 3 (after the
//     country code) and last 4 stay;
//   - old 15-digit ID numbers: the first 6 and last 3 stay;
//   - landline numbers, 10 to 12 digits starting with 0: the area code and last 4 stay.
//
// A number must end at a group boundary, so a mobile number is not found inside a longer
// number such as a 21-digit ticket id. Text cut short ("…" or "..." at its very end, as report
// summaries are) may have cut a number: the digits of a run of 4 or more that the cut ends
// and that is not already masked are masked after the first 3, since 10 digits of a phone are
// as good as 11. Masking twice is harmless. Text without any digit is returned as it is,
// without allocating.
func MaskText(s string) string {
	if !hasDigit(s) {
		return s
	}
	var sc textScanner
	return sc.mask(s)
}

// hasDigit reports whether s holds an ASCII or a full-width digit (U+FF10..U+FF19, encoded
// EF BC 90..99), without decoding it.
func hasDigit(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' {
			return true
		}
		if c == 0xEF && i+2 < len(s) && s[i+1] == 0xBC && s[i+2] >= 0x90 && s[i+2] <= 0x99 {
			return true
		}
	}
	return false
}

// digitOf is the value of an ASCII or full-width digit.
func digitOf(r rune) (byte, bool) {
	switch {
	case r >= '0' && r <= '9':
		return byte(r - '0'), true
	case r >= '０' && r <= '９':
		return byte(r - '０'), true
	}
	return 0, false
}

func isDigitRune(r rune) bool { _, ok := digitOf(r); return ok }

// isSep is a character people put between the groups of a number.
func isSep(r rune) bool {
	switch r {
	case ' ', '-', '.', '\u00a0', '\u3000', '－', '．', '–', '—', '·', '・':
		return true
	}
	return false
}

func isX(r rune) bool { return r == 'X' || r == 'x' || r == 'Ｘ' || r == 'ｘ' }

// maxSepRun is how many separator characters may stand between two groups of one number.
const maxSepRun = 3

// group is a maximal sequence of digits, r[start:end].
type group struct{ start, end int }

// Kinds of personal numbers, best first: where candidates overlap, the better one wins.
const (
	kindID18 = iota
	kindMobilePrefixed
	kindMobile
	kindID15
	kindLandline
)

// candidate is a personal number made of groups first..last of a run.
type candidate struct {
	kind        int
	first, last int
	prefix      int  // mobile: digits of the country code before the number
	x           bool // ID: ends with the X after the last group
}

// textScanner holds the buffers of one MaskText call.
type textScanner struct {
	r      []rune
	groups []group
	digits []byte // the digit values of the current run
	cum    []int  // cum[i] is the number of digits in groups[:i]
	pos    []int  // rune indices of the digits of one candidate
	cands  []candidate
	used   []bool // by group: part of a masked number
}

func (sc *textScanner) mask(s string) string {
	sc.r = []rune(s)
	r := sc.r
	changed := false
	for i := 0; i < len(r); {
		if !isDigitRune(r[i]) {
			i++
			continue
		}
		end := sc.readRun(i)
		if sc.maskRun(i, end) {
			changed = true
		}
		i = end
	}
	if !changed {
		return s
	}
	return string(r)
}

// readRun collects the groups of the run starting at r[i] and returns where the run ends.
func (sc *textScanner) readRun(i int) int {
	r := sc.r
	sc.groups, sc.digits, sc.cum = sc.groups[:0], sc.digits[:0], append(sc.cum[:0], 0)
	j := i
	for {
		k := j
		for k < len(r) {
			d, ok := digitOf(r[k])
			if !ok {
				break
			}
			sc.digits = append(sc.digits, d)
			k++
		}
		sc.groups = append(sc.groups, group{j, k})
		sc.cum = append(sc.cum, len(sc.digits))
		m := k
		for m < len(r) && m-k < maxSepRun && isSep(r[m]) {
			m++
		}
		if m == k || m >= len(r) || !isDigitRune(r[m]) {
			return k
		}
		j = m
	}
}

// maskRun masks the personal numbers of the run just read, r[start:end], and reports whether
// it changed anything.
func (sc *textScanner) maskRun(start, end int) bool {
	if len(sc.digits) < 4 {
		return false
	}
	n := len(sc.groups)
	sc.cands = sc.cands[:0]
	for first := 0; first < n; first++ {
		// No number has more than 18 digits: this keeps a run of many short groups linear.
		for last := first; last < n && sc.cum[last+1]-sc.cum[first] <= 18; last++ {
			if c, ok := sc.classify(first, last); ok {
				sc.cands = append(sc.cands, c)
			}
		}
	}
	sc.used = sc.used[:0]
	for range n {
		sc.used = append(sc.used, false)
	}
	changed := false
	// Best kind first, then leftmost: a handful of candidates, so a selection beats a sort.
	for kind := kindID18; kind <= kindLandline; kind++ {
		for _, c := range sc.cands {
			if c.kind != kind || sc.overlaps(c) {
				continue
			}
			sc.apply(c)
			changed = true
		}
	}
	// A run right after a mask character is the kept tail of a number masked before.
	if sc.cutAt(end) && (start == 0 || sc.r[start-1] != maskRune) {
		// The trailing groups that no number took: a number the cut left unfinished.
		k := n
		for k > 0 && !sc.used[k-1] {
			k--
		}
		if sc.cum[n]-sc.cum[k] >= 4 {
			sc.pos = sc.pos[:0]
			for g := k; g < n; g++ {
				for p := sc.groups[g].start; p < sc.groups[g].end; p++ {
					sc.pos = append(sc.pos, p)
				}
			}
			sc.maskPositions(3, 0)
			changed = true
		}
	}
	return changed
}

// classify says whether groups first..last form a personal number.
func (sc *textScanner) classify(first, last int) (candidate, bool) {
	d := sc.digits[sc.cum[first]:sc.cum[last+1]]
	c := candidate{first: first, last: last}
	mobileAt := func(off int) bool { return len(d) == off+11 && d[off] == 1 }
	switch {
	case len(d) == 18:
		c.kind = kindID18
	case len(d) == 17 && sc.groups[last].end < len(sc.r) && isX(sc.r[sc.groups[last].end]) && !sc.letterAfter(sc.groups[last].end+1):
		c.kind, c.x = kindID18, true
	case mobileAt(4) && d[0] == 0 && d[1] == 0 && d[2] == 8 && d[3] == 6:
		c.kind, c.prefix = kindMobilePrefixed, 4
	case mobileAt(2) && d[0] == 8 && d[1] == 6:
		c.kind, c.prefix = kindMobilePrefixed, 2
	case mobileAt(0):
		c.kind = kindMobile
	case len(d) == 15:
		c.kind = kindID15
	case len(d) >= 10 && len(d) <= 12 && d[0] == 0:
		c.kind = kindLandline
	default:
		return c, false
	}
	return c, true
}

// letterAfter reports whether r[i] is an ASCII letter or digit: an X followed by more of a
// word ("Xiamen") is no check character.
func (sc *textScanner) letterAfter(i int) bool {
	if i >= len(sc.r) {
		return false
	}
	ch := sc.r[i]
	return ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || isDigitRune(ch)
}

func (sc *textScanner) overlaps(c candidate) bool {
	for g := c.first; g <= c.last; g++ {
		if sc.used[g] {
			return true
		}
	}
	return false
}

// apply masks candidate c and marks its groups used.
func (sc *textScanner) apply(c candidate) {
	sc.pos = sc.pos[:0]
	for g := c.first; g <= c.last; g++ {
		sc.used[g] = true
		for p := sc.groups[g].start; p < sc.groups[g].end; p++ {
			sc.pos = append(sc.pos, p)
		}
	}
	if c.x {
		sc.pos = append(sc.pos, sc.groups[c.last].end)
	}
	switch c.kind {
	case kindID18:
		sc.maskPositions(6, 4)
	case kindMobilePrefixed, kindMobile:
		sc.maskPositions(c.prefix+3, 4)
	case kindID15:
		sc.maskPositions(6, 3)
	case kindLandline:
		area := 3
		if g := sc.groups[c.first]; c.last > c.first && g.end-g.start == 4 || c.last == c.first && len(sc.pos) == 12 {
			area = 4
		}
		sc.maskPositions(area, 4)
	}
}

// maskPositions masks sc.pos but the first head and the last tail.
func (sc *textScanner) maskPositions(head, tail int) {
	for _, p := range sc.pos[head : len(sc.pos)-tail] {
		sc.r[p] = maskRune
	}
}

// cutAt reports whether the text was cut right after r[end]: "…" or "..." ends it.
func (sc *textScanner) cutAt(end int) bool {
	rest := sc.r[end:]
	switch {
	case len(rest) == 1 && rest[0] == '…':
		return true
	case len(rest) == 3 && rest[0] == '.' && rest[1] == '.' && rest[2] == '.':
		return true
	}
	return false
}
