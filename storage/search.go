package storage

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"

	"github.com/urbanbrain/urbanbrain/event"
)

// Limits of the search parameters, so one request cannot ask for an unbounded scan plan.
const (
	MaxTextLen    = 200    // bytes of Text
	MaxGrids      = 500    // entries of Grids
	MaxRadiusM    = 50_000 // Circle.RadiusM: a city, not a province
	metresPerDegr = 111_195.08
)

// Circle is a search area: every point within RadiusM metres of (Lon, Lat), WGS-84.
//
// Distances use the equirectangular approximation (longitude scaled by the cosine of the
// centre's latitude). Within MaxRadiusM it differs from the great-circle distance by well under
// 0.1%, and it needs only arithmetic, so every backend evaluates the very same expression and
// draws the same boundary.
type Circle struct {
	Lon     float64 `json:"lon"`
	Lat     float64 `json:"lat"`
	RadiusM float64 `json:"radius_m"`
}

// Scales are the metres per degree of longitude and of latitude around the centre: a point
// (lon, lat) is inside when ((lon-c.Lon)*kx)² + ((lat-c.Lat)*ky)² <= RadiusM².
func (c Circle) Scales() (kx, ky float64) {
	return math.Cos(c.Lat*math.Pi/180) * metresPerDegr, metresPerDegr
}

// Contains reports whether p is inside the circle, by the same formula the backends use.
func (c Circle) Contains(p event.Point) bool {
	kx, ky := c.Scales()
	dx, dy := (p.Lon-c.Lon)*kx, (p.Lat-c.Lat)*ky
	return dx*dx+dy*dy <= c.RadiusM*c.RadiusM
}

func (c Circle) validate() []error {
	var errs []error
	if math.IsNaN(c.Lat) || c.Lat < -90 || c.Lat > 90 {
		errs = append(errs, fmt.Errorf("near: latitude %v outside -90..90", c.Lat))
	}
	if math.IsNaN(c.Lon) || c.Lon < -180 || c.Lon > 180 {
		errs = append(errs, fmt.Errorf("near: longitude %v outside -180..180", c.Lon))
	}
	if !(c.RadiusM > 0 && c.RadiusM <= MaxRadiusM) {
		errs = append(errs, fmt.Errorf("near: radius %v m outside (0, %d]", c.RadiusM, MaxRadiusM))
	}
	return errs
}

// LowerASCII lowers A-Z only. Text search ignores ASCII case and nothing else, because that is
// what SQLite's lower() and ClickHouse's lower() both do; lowering more here (strings.ToLower
// folds Ä and Σ too) would make a query miss what the stored, ASCII-lowered text holds.
func LowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// MatchText reports whether haystack contains needle ignoring ASCII case: the definition of
// every Text filter.
func MatchText(haystack, needle string) bool {
	return strings.Contains(LowerASCII(haystack), LowerASCII(needle))
}

func validateText(s string) []error {
	if len(s) > MaxTextLen {
		return []error{fmt.Errorf("text: %d bytes, at most %d", len(s), MaxTextLen)}
	}
	return nil
}

func validateGrids(grids []string) []error {
	var errs []error
	if len(grids) > MaxGrids {
		errs = append(errs, fmt.Errorf("grids: %d entries, at most %d", len(grids), MaxGrids))
	}
	for _, g := range grids {
		if g == "" {
			errs = append(errs, errors.New("grids: empty value"))
			break
		}
	}
	return errs
}

// Masked search (issue 11, item 5). A role that sees personal data masked must not be able
// to search inside it: three-digit searches rebuilt a masked phone ("145****0500" →
// 14590630500) in 40 queries, one answer "found / not found" at a time. A filter with
// TextMasked matches Text against each field as SearchMask leaves it: every run of 7 or more
// digits (ASCII or full-width, in groups separated by up to 3 spaces, dashes or dots, an ID
// number's X included) — everything auth.MaskText masks — and every run of 4 or more digits
// that a "…" or "..." cut ends, becomes one "*". A search then finds only digits that stand
// outside such runs, which the masked view shows anyway. The definition is one RE2 pattern,
// which SQLite runs through a Go function and ClickHouse (18.16 has replaceRegexpAll) itself,
// so both backends answer the same.

// searchDigit, searchSep and searchX are alternations of literals rather than character
// classes, so the pattern means the same bytes whether ClickHouse compiles it as UTF-8 or
// Latin-1.
const (
	searchDigit = `(?:[0-9]|０|１|２|３|４|５|６|７|８|９)`
	searchSep   = "(?:[ .-]|\u00a0|\u3000|－|．|–|—|·|・)"
	searchX     = `(?:[Xx]|Ｘ|ｘ)`
)

// SearchMaskPattern is the RE2 pattern of SearchMask: every match is replaced by "*".
const SearchMaskPattern = searchDigit + `(?:` + searchSep + `{0,3}` + searchDigit + `){6,}` + searchX + `?` +
	`|` + searchDigit + `(?:` + searchSep + `{0,3}` + searchDigit + `){3,}(?:…|[.][.][.])$`

var searchMaskRE = regexp.MustCompile(SearchMaskPattern)

// SearchMask is s as a masked search sees it (see TextMasked).
func SearchMask(s string) string {
	if !hasDigit(s) {
		return s
	}
	return searchMaskRE.ReplaceAllLiteralString(s, "*")
}

// MatchMaskedText is MatchText for a masked search: the definition of every Text filter with
// TextMasked.
func MatchMaskedText(haystack, needle string) bool {
	return MatchText(SearchMask(haystack), needle)
}

// hasDigit reports whether s holds an ASCII or a full-width digit (encoded EF BC 90..99).
func hasDigit(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= '0' && c <= '9' ||
			c == 0xEF && i+2 < len(s) && s[i+1] == 0xBC && s[i+2] >= 0x90 && s[i+2] <= 0x99 {
			return true
		}
	}
	return false
}
