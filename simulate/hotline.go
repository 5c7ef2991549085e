package simulate

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
)

// ticketTemplate is one kind of 12345 call. In texts, {addr} is a short address
// (community, road, number), {road} a road, {community} and {street} the names.
type ticketTemplate struct {
	category string
	urgency  string
	texts    []string
}

// Request types as a 12345 centre sees them: about a third questions, a third complaints.
var requestTypes = []weightedName{
	{event.RequestConsult, 0.30},
	{event.RequestComplaint, 0.30},
	{event.RequestHelp, 0.15},
	{event.RequestReport, 0.15},
	{event.RequestSuggest, 0.10},
}

var ticketTemplates = map[string][]ticketTemplate{
	event.RequestConsult: {
		{"0301", "normal", []string{"请问{community}的垃圾分类定时定点投放时间是几点到几点？", "咨询一下大件垃圾怎么预约上门清运？住在{addr}。"}},
		{"0102", "normal", []string{"想咨询一下{road}的路灯每天几点开，最近好像开得比较晚。"}},
		{"0104", "normal", []string{"请问{addr}一带今天是不是在检修管道，大概什么时候恢复？", "咨询一下小区雨水井堵了应该找哪个部门？地址{addr}。"}},
		{"0201", "normal", []string{"咨询一下{road}周边哪里有公共停车场，收费标准是多少？", "请问{road}晚上可以临时停车吗？"}},
		{"0401", "normal", []string{"咨询：夜间施工需要办理什么审批手续？{addr}旁边的工地晚上还在施工。"}},
		{"0601", "normal", []string{"请问老人申请居家养老服务补贴需要到{street}哪个窗口办理？", "咨询一下{community}的社区卫生服务站周末开不开门？"}},
		{"0602", "normal", []string{"咨询一下，投诉占道经营一般多久能有处理结果？", "请问之前反映的问题怎么查询办理进度？"}},
	},
	event.RequestComplaint: {
		{"0401", "normal", []string{
			"{addr}附近工地夜间施工，晚上十一点以后还在打桩，噪声很大，严重影响休息，要求处理。",
			"{addr}楼下广场舞音响声音太大，每天晚上持续到九点半以后，多次反映没有改善。",
			"{addr}一家KTV深夜噪音扰民，凌晨一点还能听到唱歌声。"}},
		{"0301", "normal", []string{
			"{addr}小区门口的垃圾桶已经满了好几天没人清运，气味很大，蚊蝇滋生。",
			"{addr}垃圾箱满溢，垃圾散落一地，请尽快清运。"}},
		{"0303", "normal", []string{"{addr}路边有人乱倒建筑垃圾和生活垃圾，堆了一大堆没人管。"}},
		{"0201", "normal", []string{
			"{addr}门口长期有车辆违停，占用消防通道，出入非常不便。",
			"{road}上车辆乱停乱放，公交车都开不过去。"}},
		{"0302", "normal", []string{"{addr}人行道上有流动摊贩占道经营，行人只能走机动车道，很危险。"}},
		{"0402", "normal", []string{"{addr}附近一家餐馆油烟直排，整栋楼都是油烟味。", "{addr}附近有工厂晚上排放废气，气味刺鼻。"}},
		{"0102", "normal", []string{"{road}一整段路灯都不亮，已经黑了好几个晚上了。"}},
		{"0602", "normal", []string{"{addr}的物业不作为，小区公共设施长期损坏没人修。"}},
	},
	event.RequestHelp: {
		{"0601", "urgent", []string{
			"{addr}停水已经一整天了，家里有老人小孩，请尽快安排恢复供水。",
			"家中独居老人摔倒后无法起身，住址{addr}，请求社区帮助。"}},
		{"0202", "urgent", []string{"{addr}路面积水很深，已经没过小腿，车辆熄火，请求帮助排水。", "{road}下穿通道积水严重，车辆无法通行。"}},
		{"0101", "urgent", []string{"{addr}人行道上的井盖不见了，晚上很容易掉下去，请赶紧处理！"}},
		{"0103", "emergency", []string{"{addr}楼道里有很浓的煤气味，怀疑燃气泄漏，请马上派人来！"}},
		{"0501", "emergency", []string{"{addr}附近冒出大量黑烟，好像有东西着火了！"}},
		{"0502", "urgent", []string{"{addr}人非常多，挤得走不动，担心发生踩踏，请派人疏导。"}},
	},
	event.RequestReport: {
		{"0302", "normal", []string{"举报{addr}长期有人占道摆摊卖水果，城管来了就跑，走了又回来。"}},
		{"0303", "normal", []string{"举报有渣土车在{addr}偷倒建筑垃圾。"}},
		{"0201", "normal", []string{"举报{addr}有多辆车长期停放在盲道上。"}},
		{"0402", "normal", []string{"举报{addr}有人露天焚烧垃圾，烟很大。"}},
		{"0602", "normal", []string{"举报{addr}有违章搭建，占用公共绿地。"}},
		{"0101", "normal", []string{"举报{addr}的井盖松动，车辆经过时响声很大，存在安全隐患。"}},
		{"0203", "urgent", []string{"{road}桥面出现明显裂缝，车辆经过时有晃动感，请相关部门检查。"}},
	},
	event.RequestSuggest: {
		{"0102", "normal", []string{"建议在{road}增设路灯，晚上太黑，行人不安全。"}},
		{"0301", "normal", []string{"建议{community}增加垃圾桶数量，高峰期经常满溢。"}},
		{"0201", "normal", []string{"建议在{addr}附近施划临时停车位，缓解停车难。"}},
		{"0602", "normal", []string{"建议{street}定期公开12345工单办理情况。"}},
	},
}

// followUps are the calls people make about a problem that already exists: whichever request
// type fits, the text is about that problem. A category without its own entry falls back to
// the generic text.
var followUps = map[string]struct {
	requestType, urgency string
	texts                []string
}{
	"0101": {event.RequestHelp, "urgent", []string{"{addr}的井盖翻了/不见了，刚才有电动车差点摔倒！", "{addr}路上井盖破损，请尽快处理。"}},
	"0102": {event.RequestComplaint, "normal", []string{"{road}这边路灯坏了，晚上漆黑一片。", "{addr}门口的路灯一直闪，好像坏了。"}},
	"0103": {event.RequestHelp, "emergency", []string{"{addr}闻到很重的煤气味，请马上来人！", "{addr}附近燃气味道很浓，大家都跑到楼下了。"}},
	"0202": {event.RequestHelp, "urgent", []string{"{addr}积水越来越深了，车都过不去。", "{road}积水严重，行人没法通行，请尽快排水。"}},
	"0203": {event.RequestReport, "urgent", []string{"{road}的桥刚才晃得厉害，有点吓人，请派人看看。"}},
	"0301": {event.RequestComplaint, "normal", []string{"{addr}垃圾桶又满了，垃圾都堆到路上了。"}},
	"0302": {event.RequestReport, "normal", []string{"{addr}又有摊贩占道了，堵得走不过去。"}},
	"0401": {event.RequestComplaint, "normal", []string{"{addr}噪音太大了，吵得根本睡不着！", "{addr}这边一直很吵，请管一管。"}},
	"0402": {event.RequestComplaint, "normal", []string{"{addr}空气里一股焦味，呛得人难受。"}},
	"0501": {event.RequestHelp, "emergency", []string{"{addr}着火了，烟很大！", "{addr}看到有浓烟冒出来，快派人来！"}},
	"0502": {event.RequestHelp, "urgent", []string{"{addr}人越来越多了，很危险，请派人维持秩序。"}},
}

var channels = []weightedName{{"phone", 0.55}, {"wechat", 0.20}, {"app", 0.15}, {"web", 0.10}}

var roads = []string{
	"松涛路", "云栖路", "明湖大道", "江滨路", "文昌路", "广济路", "桂花路", "望川路", "星河大道",
	"柳浪路", "翠屏路", "临波路", "学院路", "人民路", "解放路", "建设路", "青年路", "湖滨路",
	"环城北路", "环城南路", "秋涛路", "凤起路", "体育场路", "庆春路",
}

var (
	surnames   = []rune("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余于杜叶程魏苏吕丁沈任姚卢傅钟姜崔谭廖范汪陆金石戴贾韦夏邱方侯邹熊孟秦白江阎薛尹段雷黎史龙陶贺顾毛郝龚邵万钱严")
	givenNames = []string{
		"伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
		"超", "霞", "平", "刚", "秀英", "桂英", "建国", "志强", "晓东", "海燕", "丽华", "文博", "子涵",
		"思远", "佳怡", "俊杰", "欣怡", "浩然", "雨婷", "建华", "国强", "红梅", "玉兰", "秀兰", "春燕",
	}
)

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

type weightedName struct {
	name   string
	weight float64
}

// weighted picks a name with probability proportional to its weight.
func weighted(rng *rand.Rand, xs []weightedName) string {
	total := 0.0
	for _, x := range xs {
		total += x.weight
	}
	r := rng.Float64() * total
	for _, x := range xs {
		if r -= x.weight; r < 0 {
			return x.name
		}
	}
	return xs[len(xs)-1].name
}

// roadOf names the main road of a grid, so that callers from one grid talk about the same roads.
func roadOf(g city.Grid, n int) string {
	h := 0
	for _, c := range g.Code {
		h = h*31 + int(c)
	}
	if h < 0 {
		h = -h
	}
	return roads[(h+n)%len(roads)]
}

func fill(text string, g city.Grid, road, short string) string {
	return strings.NewReplacer(
		"{addr}", short, "{road}", road, "{community}", g.CommunityName, "{street}", g.StreetName,
	).Replace(text)
}

// ticket produces a 12345 work order, fresh or about an existing problem.
func (s *Simulator) ticket(now time.Time) event.HotlineTicket {
	rng := s.rng
	var (
		tmpl     ticketTemplate
		reqType  string
		g        city.Grid
		at       event.Point
		follower bool
	)
	if p := s.takeProblem(s.cfg.RepeatChance, func(p *problem) bool { return true }); p != nil {
		follower = true
		g, at = p.grid, near(rng, p.at, 60)
		f, ok := followUps[p.category]
		if !ok {
			f.requestType, f.urgency = event.RequestComplaint, "normal"
			f.texts = []string{"{addr}附近的问题还没解决，请尽快处理。"}
		}
		reqType, tmpl = f.requestType, ticketTemplate{category: p.category, urgency: f.urgency, texts: f.texts}
	} else {
		reqType = weighted(rng, requestTypes)
		tmpl = pick(rng, ticketTemplates[reqType])
		g = pick(rng, s.grids)
		at = pointIn(rng, g)
	}
	road := roadOf(g, rng.IntN(2))
	short := fmt.Sprintf("%s%s%d号", g.CommunityName, road, 1+rng.IntN(300))
	content := fill(pick(rng, tmpl.texts), g, road, short)
	t := event.HotlineTicket{
		TicketID:     s.nextTicketID(now),
		Channel:      weighted(rng, channels),
		CallerName:   string(pick(rng, surnames)) + pick(rng, givenNames),
		CallerPhone:  fmt.Sprintf("1%d%09d", 3+rng.IntN(7), rng.IntN(1000000000)),
		RequestType:  reqType,
		CategoryCode: tmpl.category,
		Content:      content,
		Address:      "云川市" + g.DistrictName + g.StreetName + short,
		DistrictCode: g.District,
		Urgency:      tmpl.urgency,
		ReceivedAt:   now.In(cst).Truncate(time.Second),
	}
	// Where the caller is: apps and WeChat mini-programs send AMap/Tencent (GCJ-02) positions,
	// a few Baidu-based channels BD-09; phone calls mostly have only the address.
	switch r := rng.Float64(); {
	case r < 0.50:
		p := city.WGS84ToGCJ02(at)
		t.Lat, t.Lon, t.CoordSys = ptr(round7(p.Lat)), ptr(round7(p.Lon)), event.CoordGCJ02
	case r < 0.58:
		p := city.WGS84ToBD09(at)
		t.Lat, t.Lon, t.CoordSys = ptr(round7(p.Lat)), ptr(round7(p.Lon)), event.CoordBD09
	}
	if !follower && reqType != event.RequestConsult && reqType != event.RequestSuggest && rng.Float64() < s.cfg.RepeatChance {
		s.addProblem(problem{category: tmpl.category, at: at, grid: g, left: 1 + rng.IntN(4), until: now.Add(30 * time.Minute)})
	}
	return t
}

// nextTicketID numbers work orders the way 12345 platforms do (centre, date, serial), with a
// per-run part so that two simulator runs never issue the same number.
func (s *Simulator) nextTicketID(now time.Time) string {
	s.ticketSeq++
	return fmt.Sprintf("YC12345-%s-%s-%06d", now.In(cst).Format("20060102"), s.ticketRun, s.ticketSeq)
}
