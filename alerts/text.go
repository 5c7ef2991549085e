package alerts

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/urbanbrain/urbanbrain/event"
)

// statusNames say where the work on an incident stands, for the public.
var statusNames = map[event.Status]string{
	event.StatusNew:        "已立案，待派遣",
	event.StatusDispatched: "已派遣",
	event.StatusAccepted:   "已签收，处置人员正在赶往现场",
	event.StatusInProgress: "正在现场处置",
	event.StatusResolved:   "已处置，待核查",
	event.StatusVerified:   "已核查",
	event.StatusClosed:     "已结案",
	event.StatusReturned:   "重新派遣中",
	event.StatusCancelled:  "经核实为误报",
}

func description(inc event.Incident, catName string, sent Time, zone *time.Location) string {
	var b strings.Builder
	at := inc.CreatedAt
	if at.IsZero() {
		at = sent.Time
	}
	at = at.In(zone)
	fmt.Fprintf(&b, "%d月%d日%d时%02d分，", at.Month(), at.Day(), at.Hour(), at.Minute())
	a := inc.Area
	if p := placeName(a.DistrictName, a.StreetName, a.CommunityName, a.GridName); p != "" {
		b.WriteString(p)
	} else {
		b.WriteString("本市")
	}
	b.WriteString("发生" + catName)
	if t := clean(inc.Title, 200); t != "" {
		b.WriteString("：" + t)
	}
	b.WriteString("。")
	if n := max(inc.ReportCount, len(inc.Reports)); n > 1 {
		fmt.Fprintf(&b, "共收到%d条相关报告，已合并处理。", n)
	}
	if s, ok := statusNames[inc.Status]; ok {
		b.WriteString("当前状态：" + s)
		if ag := clean(inc.Assignment.AgencyName, 50); ag != "" && inc.Status != event.StatusCancelled {
			b.WriteString("，责任单位：" + ag)
		}
		b.WriteString("。")
	}
	return b.String()
}

// hints are what the public should do about some categories of the demo catalogue, added to
// the level's own instruction.
var hints = map[string]string{
	"0101": "注意脚下，勿靠近破损井盖。",
	"0103": "附近严禁明火，勿开关电器，请开窗通风并迅速撤离。",
	"0104": "请远离河道及排水口，勿涉水通行。",
	"0202": "请绕行积水路段，切勿涉水通行或驾车强行通过。",
	"0203": "请绕行相关桥梁或隧道。",
	"0501": "请远离火场及烟雾区域，如遇险情请拨打119。",
	"0502": "请勿前往聚集区域，听从现场指挥，防范踩踏。",
}

func instruction(lvl Level, category, urg string) string {
	if urg == "Past" {
		return "险情已处置，请留意后续通报。"
	}
	var s string
	switch lvl.CAP {
	case "Extreme":
		s = "请立即远离相关区域，听从现场工作人员指挥。"
	case "Severe":
		s = "请避开相关区域，注意安全，关注后续通报。"
	case "Moderate":
		s = "请注意防范，途经相关区域时小心通行。"
	default:
		s = "请留意相关信息，合理安排出行。"
	}
	return s + hints[category]
}

// clean makes free text fit for a public document: control characters (a hostile or
// garbled title's NULs, escapes, bidi overrides) become spaces, runs of space collapse,
// invalid UTF-8 is dropped, and it is cut to limit runes. Markup needs no treatment here:
// encoding/xml escapes <, > and &.
func clean(s string, limit int) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError || (r >= 0xFDD0 && r <= 0xFDEF) || r&0xFFFE == 0xFFFE {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > limit {
		s = string([]rune(s)[:limit]) + "…"
	}
	return s
}
