package city

import (
	"cmp"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// TicketCategory is the category decided for a 12345 ticket (工单) from its words, and the
// words that decided it: the alias its producer's category text matched, or the keywords
// found in its text, in the order the city lists them.
type TicketCategory struct {
	Code  string
	Match []string
}

// keyword is one keyword of a category: as the city wrote it and normalised, with its
// category's index.
type keyword struct {
	word, text string
	cat        int // index into Map.categories
}

// CategoryFor returns the category a producer's category text names (道路积水, 路面积水, …):
// the category whose name or one of whose aliases in categories.yaml is the text. Case,
// width (全角/半角) and spaces do not matter. A path of classes ("城市管理/道路积水",
// "市容环境-垃圾满溢") is tried whole, then part by part from the last: the producer's minor
// class is the most precise.
func (m *Map) CategoryFor(text string) (TicketCategory, bool) {
	t := normalise(text)
	if t == "" {
		return TicketCategory{}, false
	}
	if code, ok := m.aliases[t]; ok {
		return TicketCategory{Code: code, Match: []string{t}}, true
	}
	parts := strings.FieldsFunc(t, isClassSeparator)
	for i := len(parts) - 1; i >= 0 && len(parts) > 1; i-- {
		if code, ok := m.aliases[parts[i]]; ok {
			return TicketCategory{Code: code, Match: []string{parts[i]}}, true
		}
	}
	return TicketCategory{}, false
}

// isClassSeparator separates the levels of a producer's category path (normalised: the
// full-width ／ － ＞ are / - > by then).
func isClassSeparator(r rune) bool {
	switch r {
	case '/', '\\', '-', '>', '|', '、', '—', '·', '》':
		return true
	}
	return false
}

// Classify returns the category whose keywords (categories.yaml) the text holds: the one with
// the most distinct keywords found; on a tie the one whose longest keyword found is longer
// (the more specific word wins: 下水道 over 冒烟); then the smaller code. ok is false when no
// keyword is found: the ticket keeps the generic category. Case, width and spaces do not
// matter.
func (m *Map) Classify(text string) (TicketCategory, bool) {
	if len(m.keywords) == 0 {
		return TicketCategory{}, false
	}
	t := normalise(text)
	// One pass over the text: at each rune, only the keywords that start with it are
	// compared. found and the scores live on the stack for a city of up to 256 keywords and
	// 64 categories.
	var foundSmall [4]uint64
	found := foundSmall[:]
	if n := (len(m.keywords) + 63) / 64; n > len(found) {
		found = make([]uint64, n)
	}
	type tally struct{ n, longest int }
	var scoreSmall [64]tally
	score := scoreSmall[:]
	if len(m.categories) > len(score) {
		score = make([]tally, len(m.categories))
	}
	best := -1
	for i, r := range t {
		for _, ki := range m.keywordsByRune[r] {
			if found[ki/64]&(1<<(ki%64)) != 0 || !strings.HasPrefix(t[i:], m.keywords[ki].text) {
				continue
			}
			found[ki/64] |= 1 << (ki % 64)
			k := &m.keywords[ki]
			s := &score[k.cat]
			s.n++
			s.longest = max(s.longest, utf8.RuneCountInString(k.text))
			if best < 0 || better(s.n, s.longest, k.cat, score[best].n, score[best].longest, best) {
				best = k.cat
			}
		}
	}
	if best < 0 {
		return TicketCategory{}, false
	}
	match := make([]string, 0, score[best].n)
	for ki, k := range m.keywords { // in category order, and in each as the city lists them
		if k.cat == best && found[ki/64]&(1<<(ki%64)) != 0 {
			match = append(match, k.word)
		}
	}
	return TicketCategory{Code: m.categories[best].Code, Match: match}, true
}

// better reports whether category a (n keywords found, the longest of them l runes) beats
// category b. Categories are indexed in code order, so the smaller index is the smaller code.
func better(an, al, a, bn, bl, b int) bool {
	if c := cmp.Compare(an, bn); c != 0 {
		return c > 0
	}
	if c := cmp.Compare(al, bl); c != 0 {
		return c > 0
	}
	return a < b
}

// normalise is the form aliases, keywords and texts are compared in: full-width ASCII (ＰＭ２．５)
// and the ideographic space folded to their ASCII forms, letters in lower case, white space
// removed. A text that needs none of it is returned as it is, without allocating.
func normalise(s string) string {
	clean := true
	for _, r := range s {
		if r >= 0xFF01 && r <= 0xFF5E || unicode.IsSpace(r) || unicode.IsUpper(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r >= 0xFF01 && r <= 0xFF5E {
			r -= 0xFEE0
		}
		if unicode.IsSpace(r) {
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// buildVocabulary indexes the categories' names, aliases and keywords (loadCategories has
// read them). A word that would name two categories is refused: the city must say which.
func (m *Map) buildVocabulary() []error {
	var errs []error
	m.aliases = map[string]string{}
	owner := map[string]string{} // normalised keyword → category code
	addAlias := func(word, code string, explicit bool) {
		w := normalise(word)
		switch other, dup := m.aliases[w]; {
		case w == "":
			if explicit {
				errs = append(errs, fmt.Errorf("%s: category %s: empty alias", FileCategories, code))
			}
		case dup && other != code:
			errs = append(errs, fmt.Errorf("%s: %q names both category %s and %s", FileCategories, word, other, code))
		default:
			m.aliases[w] = code
		}
	}
	for _, c := range m.categories {
		addAlias(c.Name, c.Code, false)
	}
	for _, c := range m.categories {
		for _, a := range c.Aliases {
			addAlias(a, c.Code, true)
		}
	}
	for i, c := range m.categories {
		for _, k := range c.Keywords {
			w := normalise(k)
			if w == "" {
				errs = append(errs, fmt.Errorf("%s: category %s: empty keyword", FileCategories, c.Code))
				continue
			}
			if other, dup := owner[w]; dup {
				errs = append(errs, fmt.Errorf("%s: keyword %q is listed for both category %s and %s", FileCategories, k, other, c.Code))
				continue
			}
			owner[w] = c.Code
			m.keywords = append(m.keywords, keyword{word: k, text: w, cat: i})
		}
	}
	m.keywordsByRune = map[rune][]int{}
	for ki, k := range m.keywords {
		r, _ := utf8.DecodeRuneInString(k.text)
		m.keywordsByRune[r] = append(m.keywordsByRune[r], ki)
	}
	return errs
}
