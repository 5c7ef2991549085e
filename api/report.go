package api

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
)

// reportZone is Asia/Shanghai, whose days a report's periods are: no daylight saving since
// 1991, so a fixed zone needs no tzdata.
var reportZone = time.FixedZone("CST", 8*3600)

// Thresholds of the report: how long the grid lists are, and what recurs.
const (
	reportTopGrids   = 10
	reportMinRepeat  = 3 // incidents of one category in one grid
	reportMinReports = 3 // reports of one incident (一事多报)
	reportMaxListed  = 20
)

// ReportResponse is the body of GET /api/v1/reports: the leadership's daily (日报) or weekly
// (周报) report of the incidents created in the period, in the caller's scope.
type ReportResponse struct {
	Period   string    `json:"period"` // day or week
	Date     string    `json:"date"`   // the period's first day, YYYY-MM-DD in Asia/Shanghai
	Since    time.Time `json:"since"`
	Until    time.Time `json:"until"`
	District string    `json:"district,omitempty"`
	Grids    []string  `json:"grids,omitempty"`

	Total      int                 `json:"total"`
	BySource   []NamedCount        `json:"by_source"`
	ByCategory []NamedCount        `json:"by_category"`
	ByDistrict []NamedCount        `json:"by_district"`
	Stages     []storage.StageStat `json:"stages"`
	// WorstGrids are the grids with the most incidents, OverdueGrids those with the most
	// overdue ones (late over a stage's limit), at most 10 each.
	WorstGrids   []ReportGrid `json:"worst_grids"`
	OverdueGrids []ReportGrid `json:"overdue_grids"`
	// Repeats are the grid × category pairs with at least MinRepeat incidents; Reported the
	// incidents with at least MinReports reports.
	Repeats    []ReportRepeat             `json:"repeats"`
	Reported   []storage.ReportedIncident `json:"reported"`
	Rules      []storage.RuleHits         `json:"rules"`
	MinRepeat  int                        `json:"min_repeat"`
	MinReports int                        `json:"min_reports"`
}

// NamedCount is a count with the name people read for its key.
type NamedCount struct {
	Key   string `json:"key"`
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// ReportGrid is one grid's line in a report.
type ReportGrid struct {
	storage.GridCount
	Name         string `json:"name"`
	DistrictName string `json:"district_name"`
}

// ReportRepeat is a repeat problem with the names of its grid and category.
type ReportRepeat struct {
	storage.RepeatCount
	GridName     string `json:"grid_name"`
	CategoryName string `json:"category_name"`
}

// sourceNames are the report's names of where incidents come from (storage.IncidentSource).
var sourceNames = map[string]string{
	event.TypeHotlineTicket:  "12345热线",
	event.TypeSensorReading:  "物联感知",
	event.TypeVideoDetection: "视频识别",
	"":                       "其他",
}

// stageNames are the report's names of the stages of storage.Stages.
var stageNames = map[string]string{
	event.StageDispatch: "派遣",
	event.StageSignFor:  "签收",
	event.StageHandle:   "处置",
	event.StageVerify:   "核查结案",
	event.StageResolve:  "办结(全程)",
}

// reportPeriod reads period (day or week) and date (YYYY-MM-DD, Asia/Shanghai). Without a
// date a day report is yesterday's and a week report last ISO week's (Monday to Sunday); a
// week report's date may be any day of its week.
func reportPeriod(period, date string, now time.Time) (start, end time.Time, err error) {
	today := now.In(reportZone)
	today = time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, reportZone)
	day := today.AddDate(0, 0, -1)
	if date != "" {
		if day, err = time.ParseInLocation(time.DateOnly, date, reportZone); err != nil {
			return start, end, badParam("date %q: want YYYY-MM-DD", date)
		}
	}
	switch period {
	case "", "day":
		return day, day.AddDate(0, 0, 1), nil
	case "week":
		if date == "" {
			day = today.AddDate(0, 0, -7)
		}
		monday := day.AddDate(0, 0, -(int(day.Weekday())+6)%7)
		return monday, monday.AddDate(0, 0, 7), nil
	default:
		return start, end, badParam("period %q: want day or week", period)
	}
}

// report answers GET /api/v1/reports (JSON, or CSV with format=csv).
func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	q := r.URL.Query()
	period := q.Get("period")
	if period == "" {
		period = "day"
	}
	var f storage.KPIFilter
	format := q.Get("format")
	start, end, err := reportPeriod(period, q.Get("date"), time.Now())
	if err == nil && format != "" && format != "json" && format != "csv" {
		err = badParam("format %q: want json or csv", format)
	}
	if err == nil {
		f.District, f.Grids, err = scope(claims, q.Get("district"), "")
	}
	if s.queryError(w, err) {
		return
	}
	f.Since, f.Until = start.UTC(), end.UTC()
	ctx := r.Context()
	stages, err := s.store.StageTimes(ctx, f, s.stageLimits)
	if s.queryError(w, err) {
		return
	}
	b, err := s.store.IncidentBreakdown(ctx, f, storage.BreakdownOptions{Limits: s.stageLimits,
		MinRepeat: reportMinRepeat, MinReports: reportMinReports, MaxReported: reportMaxListed})
	if s.queryError(w, err) {
		return
	}
	resp := s.reportResponse(b)
	resp.Period, resp.Date, resp.Since, resp.Until = period, start.Format(time.DateOnly), f.Since, f.Until
	resp.District, resp.Grids, resp.Stages = f.District, f.Grids, stages
	if format == "csv" {
		name := fmt.Sprintf("urbanbrain-%s-%s.csv", period, resp.Date)
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		_ = writeReportCSV(w, resp)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// reportResponse names what the store counted, and picks the grid lists.
func (s *Server) reportResponse(b storage.Breakdown) ReportResponse {
	// A report is printed and passed on, so it never carries personal data, whoever asks:
	// the titles of much-reported incidents are masked as for a role that may not see it.
	for i := range b.Reported {
		b.Reported[i].Title = auth.MaskText(b.Reported[i].Title)
	}
	resp := ReportResponse{Total: b.Total, Reported: b.Reported, Rules: b.Rules,
		MinRepeat: reportMinRepeat, MinReports: reportMinReports,
		WorstGrids: []ReportGrid{}, OverdueGrids: []ReportGrid{}, Repeats: []ReportRepeat{}}
	names := s.reportNames()
	named := func(cs []storage.Count, of map[string]string) []NamedCount {
		out := make([]NamedCount, len(cs))
		for i, c := range cs {
			out[i] = NamedCount{Key: c.Key, Name: nameOr(of, c.Key), Count: c.Count}
		}
		return out
	}
	resp.BySource = named(b.BySource, sourceNames)
	resp.ByCategory = named(b.ByCategory, names.categories)
	resp.ByDistrict = named(b.ByDistrict, names.districts)
	grid := func(g storage.GridCount) ReportGrid {
		return ReportGrid{GridCount: g, Name: nameOr(names.grids, g.Grid), DistrictName: nameOr(names.districts, g.District)}
	}
	for _, g := range b.Grids { // most incidents first
		if len(resp.WorstGrids) < reportTopGrids {
			resp.WorstGrids = append(resp.WorstGrids, grid(g))
		}
	}
	overdue := make([]storage.GridCount, 0, len(b.Grids))
	for _, g := range b.Grids {
		if g.Overdue > 0 {
			overdue = append(overdue, g)
		}
	}
	// Stable, so grids with as many overdue keep the order of most incidents.
	slices.SortStableFunc(overdue, func(x, y storage.GridCount) int { return cmp.Compare(y.Overdue, x.Overdue) })
	for _, g := range overdue[:min(len(overdue), reportTopGrids)] {
		resp.OverdueGrids = append(resp.OverdueGrids, grid(g))
	}
	for _, rp := range b.Repeats {
		resp.Repeats = append(resp.Repeats, ReportRepeat{RepeatCount: rp,
			GridName: nameOr(names.grids, rp.Grid), CategoryName: nameOr(names.categories, rp.Category)})
	}
	return resp
}

type reportNames struct{ categories, districts, grids map[string]string }

func (s *Server) reportNames() reportNames {
	n := reportNames{categories: map[string]string{}, districts: map[string]string{}, grids: map[string]string{"": "网格外"}}
	if s.city == nil {
		return n
	}
	for _, c := range s.city.Categories() {
		n.categories[c.Code] = c.Name
	}
	for _, d := range s.city.Districts() {
		n.districts[d.Code] = d.Name
	}
	for _, g := range s.city.Grids() {
		n.grids[g.Code] = g.Name
	}
	return n
}

// nameOr is the name of key, or the key itself when it has none.
func nameOr(names map[string]string, key string) string {
	if n, ok := names[key]; ok {
		return n
	}
	return key
}

// writeReportCSV writes the report as one CSV a spreadsheet opens: UTF-8 with a byte order
// mark (Excel needs it to read Chinese), one section per table. A section is a row
// "section,<id>,<title>", a header row and its data rows, with an empty row between
// sections (docs/api.md). Text cells that a spreadsheet would take for a formula are quoted
// with a leading apostrophe.
func writeReportCSV(w http.ResponseWriter, r ReportResponse) error {
	if _, err := w.Write([]byte("\ufeff")); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	n := strconv.Itoa
	ms := func(v int64) string { return strconv.FormatFloat(float64(v)/60000, 'f', 1, 64) }
	scope := "全市"
	if r.District != "" {
		scope = r.District
	} else if r.Grids != nil {
		scope = strings.Join(r.Grids, " ")
	}
	title := map[string]string{"day": "日报", "week": "周报"}[r.Period]
	var stageRows, repeatRows, reportedRows, ruleRows [][]string
	for _, st := range r.Stages {
		rate := ""
		if st.OnTimeRate != nil {
			rate = strconv.FormatFloat(*st.OnTimeRate*100, 'f', 1, 64) + "%"
		}
		stageRows = append(stageRows, []string{st.Stage, stageNames[st.Stage], n(st.Completed), ms(st.MeanMs),
			n(st.Limited), n(st.OnTime), rate})
	}
	for _, rp := range r.Repeats {
		repeatRows = append(repeatRows, []string{text(rp.Grid), text(rp.GridName), text(rp.Category), text(rp.CategoryName), n(rp.Incidents)})
	}
	for _, inc := range r.Reported {
		reportedRows = append(reportedRows, []string{text(inc.ID), text(inc.Title), text(inc.Category), text(inc.Grid), n(inc.Reports)})
	}
	for _, h := range r.Rules {
		ruleRows = append(ruleRows, []string{text(h.Rule), n(h.Incidents), n(h.Reports)})
	}
	grids := []string{"网格代码", "网格", "区", "事件数", "超时数"}
	sections := []struct {
		id, title string
		header    []string
		rows      [][]string
	}{
		{"summary", "总览", []string{"指标", "数值"}, [][]string{
			{"报告", title}, {"起", r.Since.In(reportZone).Format(time.DateTime)},
			{"止", r.Until.In(reportZone).Format(time.DateTime)}, {"范围", text(scope)}, {"新增事件", n(r.Total)},
		}},
		{"by_source", "按来源", []string{"来源代码", "来源", "事件数"}, countRows(r.BySource)},
		{"by_category", "按类别", []string{"类别代码", "类别", "事件数"}, countRows(r.ByCategory)},
		{"by_district", "按区", []string{"区代码", "区", "事件数"}, countRows(r.ByDistrict)},
		{"stages", "各环节", []string{"环节", "名称", "完成数", "平均用时(分钟)", "考核数", "按时数", "按时率"}, stageRows},
		{"worst_grids", "事件最多的网格", grids, gridRows(r.WorstGrids)},
		{"overdue_grids", "超时最多的网格", grids, gridRows(r.OverdueGrids)},
		{"repeats", "重复问题(网格×类别)", []string{"网格代码", "网格", "类别代码", "类别", "事件数"}, repeatRows},
		{"reported", "多次上报的事件", []string{"事件编号", "标题", "类别", "网格", "报告数"}, reportedRows},
		{"rules", "规则命中", []string{"规则", "事件数", "报告数"}, ruleRows},
	}
	for _, sec := range sections {
		_ = cw.Write([]string{"section", sec.id, sec.title})
		_ = cw.Write(sec.header)
		_ = cw.WriteAll(append(sec.rows, []string{}))
	}
	cw.Flush()
	return cw.Error()
}

func countRows(cs []NamedCount) [][]string {
	out := make([][]string, len(cs))
	for i, c := range cs {
		out[i] = []string{text(c.Key), text(c.Name), strconv.Itoa(c.Count)}
	}
	return out
}

func gridRows(gs []ReportGrid) [][]string {
	out := make([][]string, len(gs))
	for i, g := range gs {
		out[i] = []string{text(g.Grid), text(g.Name), text(g.DistrictName), strconv.Itoa(g.Incidents), strconv.Itoa(g.Overdue)}
	}
	return out
}

// text is a CSV cell of text: one a spreadsheet would run as a formula (=, +, -, @, tab or
// carriage return first) gets a leading apostrophe (OWASP's advice against CSV injection).
func text(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
