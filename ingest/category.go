package ingest

import (
	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
)

// Categorizer is the city's category list as ingest uses it to decide what a 12345 ticket is
// about: the codes, the aliases producers use for them, and the keywords of their text
// (categories.yaml). *city.Map is one.
type Categorizer interface {
	Category(code string) (city.Category, bool)
	CategoryFor(text string) (city.TicketCategory, bool)
	Classify(text string) (city.TicketCategory, bool)
}

// What a producer sent that named no category (urbanbrain_ingest_ticket_category_unmatched_total).
const (
	UnmatchedCategory     = "category"      // a category text no alias matched
	UnmatchedCategoryCode = "category_code" // a category_code not in the list
)

var (
	categoryBys     = [...]string{event.CategoryByGiven, event.CategoryByMapped, event.CategoryByKeyword, event.CategoryByDefault}
	unmatchedFields = [...]string{UnmatchedCategory, UnmatchedCategoryCode}
)

// keywordSeparator joins the content and an unmapped category text for the keywords: no
// keyword spans it.
const keywordSeparator = "。"

func categoryByIndex(by string) int {
	switch by {
	case event.CategoryByGiven:
		return 0
	case event.CategoryByMapped:
		return 1
	case event.CategoryByKeyword:
		return 2
	case event.CategoryByDefault:
		return 3
	}
	return -1
}

// categorized is how a ticket's category was decided, for the counters.
type categorized struct {
	by                       string // event.CategoryBy…; "" when ingest has no category list
	unknownText, unknownCode bool
}

// categorize decides a ticket's category and records how on the ticket: a category_code of
// the list stands (given); otherwise the producer's category text is looked up among the
// aliases (mapped), then the ticket's text among the keywords (keyword); when neither
// names a category the ticket keeps what it has and the rules give it the generic category
// by request type (default). A code not in the list is replaced by a category decided from
// the words, and kept (the rules ignore it) when none is. What the producer sent as
// category_by or category_match is never kept: those are ingest's to say.
func (s *Service) categorize(r *event.HotlineTicket) categorized {
	r.CategoryBy, r.CategoryMatch = "", nil
	if s.categories == nil {
		return categorized{}
	}
	var c categorized
	if r.CategoryCode != "" {
		if _, ok := s.categories.Category(r.CategoryCode); ok {
			r.CategoryBy = event.CategoryByGiven
			c.by = r.CategoryBy
			return c
		}
		c.unknownCode = true
	}
	text := r.Content
	if r.Category != "" {
		if tc, ok := s.categories.CategoryFor(r.Category); ok {
			r.CategoryCode, r.CategoryBy, r.CategoryMatch = tc.Code, event.CategoryByMapped, tc.Match
			c.by = r.CategoryBy
			return c
		}
		c.unknownText = true
		text = r.Content + keywordSeparator + r.Category
	}
	if tc, ok := s.categories.Classify(text); ok {
		r.CategoryCode, r.CategoryBy, r.CategoryMatch = tc.Code, event.CategoryByKeyword, tc.Match
	} else {
		r.CategoryBy = event.CategoryByDefault
	}
	c.by = r.CategoryBy
	return c
}

// categorized adds a ticket's category outcome to the counters.
func (c *counters) categorized(cat categorized) {
	if i := categoryByIndex(cat.by); i >= 0 {
		c.categories[i].Add(1)
	}
	if cat.unknownText {
		c.unmatched[0].Add(1)
	}
	if cat.unknownCode {
		c.unmatched[1].Add(1)
	}
}
