package api

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/storage"
)

// A report's period is whole Asia/Shanghai days: a day, or the ISO week (Monday to Sunday) that
// holds the date; without a date, yesterday or last week, as seen from Shanghai.
func TestReportPeriod(t *testing.T) {
	t.Parallel()
	cst := time.FixedZone("CST", 8*3600)
	day := func(s string) time.Time {
		d, err := time.ParseInLocation(time.DateOnly, s, cst)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	// Thursday 2026-12-03 07:30 in Shanghai is still Wednesday in UTC.
	now := time.Date(2026, 12, 2, 23, 30, 0, 0, time.UTC)
	tests := []struct {
		period, date string
		start        string
		days         int
	}{
		{"", "", "2026-12-02", 1},
		{"day", "", "2026-12-02", 1},
		{"day", "2026-02-28", "2026-02-28", 1},
		{"week", "", "2026-11-23", 7},
		{"week", "2026-12-03", "2026-11-30", 7},
		{"week", "2026-11-30", "2026-11-30", 7}, // a Monday
		{"week", "2026-12-06", "2026-11-30", 7}, // a Sunday
	}
	for _, tc := range tests {
		start, end, err := reportPeriod(tc.period, tc.date, now)
		if err != nil {
			t.Errorf("%s %s: %v", tc.period, tc.date, err)
			continue
		}
		if want := day(tc.start); !start.Equal(want) || !end.Equal(want.AddDate(0, 0, tc.days)) {
			t.Errorf("%q %q: %s .. %s, want %d days from %s", tc.period, tc.date, start, end, tc.days, tc.start)
		}
	}
	for _, bad := range [][2]string{{"month", ""}, {"day", "2026-13-01"}, {"week", "last"}, {"day", "2026-12-03T00:00:00+08:00"}} {
		if _, _, err := reportPeriod(bad[0], bad[1], now); !errors.Is(err, errBadParam) {
			t.Errorf("period %q date %q: error %v, want a bad parameter", bad[0], bad[1], err)
		}
	}
}

// A text cell a spreadsheet would run as a formula is kept as text.
func TestReportCSVTextIsNeverAFormula(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"=HYPERLINK(\"http://x\")": "'=HYPERLINK(\"http://x\")", "+1": "'+1", "-1+2": "'-1+2", "@SUM(A1)": "'@SUM(A1)",
		"\tx": "'\tx", "积水": "积水", "INC-s1-a": "INC-s1-a", "": "",
	} {
		if got := text(in); got != want {
			t.Errorf("text(%q) = %q, want %q", in, got, want)
		}
	}
}

// A report carries no personal data, whoever asks: a phone number in a much-reported
// incident's title is masked.
func TestReportMasksTitles(t *testing.T) {
	t.Parallel()
	b := storage.Breakdown{Reported: []storage.ReportedIncident{{ID: "INC-s1-a", Title: "13812345678 反映积水", Reports: 3}}}
	got := (&Server{}).reportResponse(b).Reported[0].Title
	if strings.Contains(got, "13812345678") {
		t.Errorf("title %q shows the phone number", got)
	}
}
