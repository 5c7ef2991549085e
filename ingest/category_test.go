package ingest_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/ingest"
	"github.com/urbanbrain/urbanbrain/ingest/ingesttest"
)

// ingestCodes are the codes of ingest's dead letters: its rejection classes, the words an
// HTTP caller gets as its code.
var ingestCodes = []string{"payload_too_large", "unsupported_media_type", "malformed", "invalid_envelope",
	"invalid_time", "invalid_payload", "invalid_location"}

// ticketWith is a 12345 complaint at the i-th grid with the given category code, producer
// category text and content.
func ticketWith(tb testing.TB, i int, code, category, content string) event.HotlineTicket {
	tb.Helper()
	t := ingesttest.Hotline("T-cat", grid(tb, i).Centroid, "")
	t.CategoryCode, t.Category, t.Content = code, category, content
	return t
}

// Issue 12 item 3: a ticket's `category` text was an unknown field, silently lost, and a
// flooded-underpass call with only text landed in the generic complaint category. The
// producer's text is kept and mapped through the city's aliases, an uncategorised ticket is
// classified by the city's keywords, an explicit valid code still wins, and the ticket says
// how its category was decided.
func TestTicketCategoryIsDecided(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                    string
		code, category, content string
		producerBy              string // what a producer claims in category_by: never kept
		wantCode, wantBy        string
		wantMatch               []string
	}{
		{"a valid code wins over text and keywords", "0101", "道路积水", "闻到很浓的煤气味", "",
			"0101", event.CategoryByGiven, nil},
		{"producer text mapped", "", "道路积水", "请尽快处理", "",
			"0202", event.CategoryByMapped, []string{"道路积水"}},
		{"producer alias mapped", "", "下穿通道积水", "请尽快处理", "",
			"0202", event.CategoryByMapped, []string{"下穿通道积水"}},
		{"producer class path mapped by its minor class", "", "城市管理/路面积水", "请尽快处理", "",
			"0202", event.CategoryByMapped, []string{"路面积水"}},
		{"flooded underpass by keyword", "", "", "下穿隧道积水很深，车辆熄火", "",
			"0202", event.CategoryByKeyword, []string{"积水", "熄火"}},
		{"gas smell by keyword", "", "", "闻到很浓的煤气味", "",
			"0103", event.CategoryByKeyword, []string{"煤气", "煤气味"}},
		{"square dancing by keyword", "", "", "楼下广场舞噪音太大", "",
			"0401", event.CategoryByKeyword, []string{"噪音", "广场舞"}},
		{"an unmapped producer text is read for keywords too", "", "路面严重积水", "请尽快派人处理", "",
			"0202", event.CategoryByKeyword, []string{"积水"}},
		{"an unknown code is replaced by the keywords' category", "9999", "", "闻到很浓的煤气味", "",
			"0103", event.CategoryByKeyword, []string{"煤气", "煤气味"}},
		{"no match keeps the generic category", "", "", "请问社保卡丢了怎么补办？", "",
			"", event.CategoryByDefault, nil},
		{"no match keeps an unknown code as sent", "9999", "其他", "请问社保卡丢了怎么补办？", "",
			"9999", event.CategoryByDefault, nil},
		{"a producer's category_by is not kept", "", "", "请问社保卡丢了怎么补办？", event.CategoryByGiven,
			"", event.CategoryByDefault, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, rec := newService(t, ingest.Config{})
			ticket := ticketWith(t, i, tt.code, tt.category, tt.content)
			ticket.CategoryBy, ticket.CategoryMatch = tt.producerBy, []string{"forged"}
			r := ingest.Record{Topic: event.TopicIngestHotline, Key: "k",
				Value: ingesttest.Structured(t, event.TypeHotlineTicket, "cat-1", now, ticket)}
			if err := handle(context.Background(), s, rec, r); err != nil {
				t.Fatal(err)
			}
			evs := rec.Topic(event.TopicEvents)
			if len(evs) != 1 {
				t.Fatalf("published %+v, want one event", rec.Records())
			}
			h := decodeEvent(t, evs[0], event.TypeHotlineTicket).Hotline
			if h.CategoryCode != tt.wantCode || h.CategoryBy != tt.wantBy || !slices.Equal(h.CategoryMatch, tt.wantMatch) {
				t.Errorf("category_code %q, category_by %q, category_match %q; want %q, %q, %q",
					h.CategoryCode, h.CategoryBy, h.CategoryMatch, tt.wantCode, tt.wantBy, tt.wantMatch)
			}
			if h.Category != tt.category {
				t.Errorf("category = %q, want the producer's %q kept", h.Category, tt.category)
			}
		})
	}
}

// Issue 12 item 3: the metrics say what was mapped and what was not.
func TestTicketCategoryMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	s, rec := newService(t, ingest.Config{Registerer: reg})
	tickets := []event.HotlineTicket{
		ticketWith(t, 1, "0401", "", "楼下广场舞噪音太大"),  // given
		ticketWith(t, 2, "", "路面积水", "请尽快处理"),      // mapped
		ticketWith(t, 3, "", "", "下穿隧道积水很深，车辆熄火"),  // keyword
		ticketWith(t, 4, "", "其他", "闻到很浓的煤气味"),     // keyword; the text unmatched
		ticketWith(t, 5, "77", "", "请问社保卡丢了怎么补办？"), // default; the code unmatched
		ticketWith(t, 6, "", "", "请问社保卡丢了怎么补办？"),   // default
		ticketWith(t, 7, "", "", "请问社保卡丢了怎么补办？"),   // default
	}
	ctx := context.Background()
	for i, tk := range tickets {
		tk.TicketID = "T-m-" + string(rune('a'+i))
		r := ingest.Record{Topic: event.TopicIngestHotline, Value: ingesttest.Structured(t, event.TypeHotlineTicket, tk.TicketID, now, tk)}
		if err := handle(ctx, s, rec, r); err != nil {
			t.Fatal(err)
		}
		if i == 0 { // a replay is no second ticket
			if err := handle(ctx, s, rec, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A sensor reading is no ticket.
	if err := handle(ctx, s, rec, sensorRecord(t, "not-a-ticket", 0)); err != nil {
		t.Fatal(err)
	}
	got := gather(t, reg)
	for key, want := range map[string]float64{
		"urbanbrain_ingest_ticket_categories_total,by=given":                    1,
		"urbanbrain_ingest_ticket_categories_total,by=mapped":                   1,
		"urbanbrain_ingest_ticket_categories_total,by=keyword":                  2,
		"urbanbrain_ingest_ticket_categories_total,by=default":                  3,
		"urbanbrain_ingest_ticket_category_unmatched_total,field=category":      1,
		"urbanbrain_ingest_ticket_category_unmatched_total,field=category_code": 1,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
	st := s.Stats()
	if st.Categories[event.CategoryByDefault] != 3 || st.Unmatched[ingest.UnmatchedCategory] != 1 {
		t.Errorf("Stats = %+v %+v", st.Categories, st.Unmatched)
	}
}

func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue()
		}
	}
	return got
}

// areasOnly resolves areas and knows no categories.
type areasOnly struct{ ingest.AreaResolver }

// Without a category list ingest decides nothing, and still keeps no producer's claim of how
// the category was decided.
func TestTicketCategoryWithoutCategoryList(t *testing.T) {
	t.Parallel()
	rec := &ingesttest.Recorder{}
	s, err := ingest.New(ingest.Config{Now: func() time.Time { return now }}, areasOnly{demoMap(t)}, rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	ticket := ticketWith(t, 0, "", "道路积水", "下穿隧道积水很深，车辆熄火")
	ticket.CategoryBy, ticket.CategoryMatch = event.CategoryByGiven, []string{"forged"}
	r := ingest.Record{Topic: event.TopicIngestHotline, Value: ingesttest.Structured(t, event.TypeHotlineTicket, "no-list", now, ticket)}
	if err := handle(context.Background(), s, rec, r); err != nil {
		t.Fatal(err)
	}
	evs := rec.Topic(event.TopicEvents)
	if len(evs) != 1 {
		t.Fatalf("published %+v", rec.Records())
	}
	if h := decodeEvent(t, evs[0], event.TypeHotlineTicket).Hotline; h.CategoryCode != "" || h.CategoryBy != "" || h.CategoryMatch != nil || h.Category != "道路积水" {
		t.Errorf("ticket = %+v; want no decision and the producer's text kept", h)
	}
}
