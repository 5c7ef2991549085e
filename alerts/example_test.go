package alerts_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/urbanbrain/urbanbrain/alerts"
	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
)

func Example() {
	m, err := city.LoadDemo()
	if err != nil {
		panic(err)
	}
	g := m.Grids()[0]
	inc := event.Incident{
		ID: "INC-" + g.Street + "-0001", Version: 1, Status: event.StatusDispatched,
		Category: "0202", Severity: event.SeverityOrange, Title: "下穿隧道积水约 40 cm",
		Area: g.Area(), Location: &g.Centroid, ReportCount: 2,
	}
	o := alerts.Options{
		Sender:     "cmc.yunchuan.example.cn",
		SenderName: "云川市城市运行管理中心",
		Sent:       time.Date(2026, 7, 14, 18, 30, 0, 0, alerts.Beijing),
	}
	a, err := alerts.FromIncident(inc, m, o)
	if err != nil {
		panic(err)
	}
	in := a.Info[0]
	fmt.Println(a.MsgType, a.Identifier)
	fmt.Println(in.Headline)
	fmt.Println(in.Severity, in.Urgency, in.Certainty, in.Category)
	fmt.Println(strings.Fields(in.Area[0].Polygon[0])[0], "…")

	o.Sent = o.Sent.Add(2 * time.Hour)
	c, err := alerts.Cancel(a, "积水已排除", o)
	if err != nil {
		panic(err)
	}
	refs, _ := c.References.MarshalText()
	fmt.Println(c.MsgType, string(refs))
	// Output:
	// Alert INC-990101001-0001.20260714T183000.0
	// 青山区松涛街道道路积水橙色预警
	// Severe Immediate Observed [Transport Met]
	// 30.381071,120.05 …
	// Cancel cmc.yunchuan.example.cn,INC-990101001-0001.20260714T183000.0,2026-07-14T18:30:00+08:00
}
