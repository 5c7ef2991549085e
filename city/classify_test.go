package city_test

import (
	"slices"
	"testing"

	"github.com/urbanbrain/urbanbrain/city"
)

func demoCity(t testing.TB) *city.Map {
	t.Helper()
	m, err := city.LoadDemo()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Issue 12 item 3: a producer's category text (道路积水) was lost; the city's aliases map it.
func TestCategoryForMapsProducerText(t *testing.T) {
	t.Parallel()
	m := demoCity(t)
	tests := []struct {
		text, want, match string
	}{
		{"道路积水", "0202", "道路积水"}, // the category's own name
		{"路面积水", "0202", "路面积水"},
		{"下穿通道积水", "0202", "下穿通道积水"},
		{" 下穿通道 积水 ", "0202", "下穿通道积水"}, // spaces do not matter
		{"城市管理/道路积水", "0202", "道路积水"},   // a producer's class path: the minor class
		{"市容环境-垃圾满溢", "0301", "垃圾满溢"},
		{"城市管理／路面积水", "0202", "路面积水"}, // full-width separator
		{"燃气异味", "0103", "燃气异味"},
		{"噪音扰民", "0401", "噪音扰民"},
		{"井盖破损/缺失", "0101", "井盖破损/缺失"}, // a name with a slash is one name
		{"ＰＭ２．５超标", "", ""},            // no such alias: full-width folding does not invent one
		{"其他", "", ""},
		{"", "", ""},
		{"   ", "", ""},
		{"/", "", ""},
	}
	for _, tt := range tests {
		got, ok := m.CategoryFor(tt.text)
		if ok != (tt.want != "") || got.Code != tt.want {
			t.Errorf("CategoryFor(%q) = %+v, %v; want %q", tt.text, got, ok, tt.want)
			continue
		}
		if ok && !slices.Equal(got.Match, []string{tt.match}) {
			t.Errorf("CategoryFor(%q).Match = %q, want [%q]", tt.text, got.Match, tt.match)
		}
	}
}

// Issue 12 item 3: tickets with only text landed in the generic complaint category; the
// city's keywords classify them. Texts in the style of real 12345 work orders.
func TestClassifyRealStyleTickets(t *testing.T) {
	t.Parallel()
	m := demoCity(t)
	tests := []struct {
		text  string
		want  string   // "" for no match
		match []string // the keywords found, in the city's order
	}{
		{"下穿隧道积水很深，车辆熄火", "0202", []string{"积水", "熄火"}},
		{"闻到很浓的煤气味", "0103", []string{"煤气", "煤气味"}},
		{"楼下广场舞噪音太大", "0401", []string{"噪音", "广场舞"}},
		{"云栖路下穿通道积水严重，车辆无法通行。", "0202", []string{"积水"}},
		{"翠苑社区88号路面积水很深，已经没过小腿，车辆熄火，请求帮助排水。", "0202", []string{"积水", "没过小腿", "熄火"}},
		{"楼道里有很浓的煤气味，怀疑燃气泄漏，请马上派人来！", "0103", []string{"燃气", "煤气", "煤气味"}},
		{"附近工地夜间施工，晚上十一点以后还在打桩，噪声很大，严重影响休息，要求处理。", "0401", []string{"噪声", "打桩", "夜间施工"}},
		{"小区门口的垃圾桶已经满了好几天没人清运，气味很大，蚊蝇滋生。", "0301", []string{"垃圾桶", "清运"}},
		{"路边有人乱倒建筑垃圾和生活垃圾，堆了一大堆没人管。", "0303", []string{"乱倒", "建筑垃圾", "生活垃圾"}},
		{"门口长期有车辆违停，占用消防通道，出入非常不便。", "0201", []string{"违停", "消防通道"}},
		{"人民路一整段路灯都不亮，已经黑了好几个晚上了。", "0102", []string{"路灯", "黑了好几个晚上"}},
		{"人行道上的井盖不见了，晚上很容易掉下去，请赶紧处理！", "0101", []string{"井盖"}},
		{"附近冒出大量黑烟，好像有东西着火了！", "0501", []string{"着火", "黑烟"}},
		{"附近一家餐馆油烟直排，整栋楼都是油烟味。", "0402", []string{"油烟"}},
		{"江滨路桥面出现明显裂缝，车辆经过时有晃动感，请相关部门检查。", "0203", []string{"桥面", "裂缝", "晃动"}},
		{"小区雨水井堵了，污水漫到路面", "0104", []string{"雨水井", "污水漫"}},
		{"人越来越多了，挤得走不动，担心发生踩踏", "0502", []string{"踩踏", "挤得", "人越来越多"}},
		{"楼下 广场 舞 噪音", "0401", []string{"噪音", "广场舞"}}, // spaces do not split a keyword
		// No keyword: the ticket keeps the generic category.
		{"请问老人申请居家养老服务补贴需要到哪个窗口办理？", "", nil},
		{"物业不作为，小区公共设施长期损坏没人修。", "", nil},
		{"", "", nil},
	}
	for _, tt := range tests {
		got, ok := m.Classify(tt.text)
		if ok != (tt.want != "") || got.Code != tt.want || !slices.Equal(got.Match, tt.match) {
			t.Errorf("Classify(%q) = %+v, %v; want %q %q", tt.text, got, ok, tt.want, tt.match)
		}
	}
}

// The tie-break is deterministic: most keywords, then the longest keyword, then the smaller
// code, whatever order the words come in.
func TestClassifyTieBreak(t *testing.T) {
	t.Parallel()
	m := demoCity(t)
	tests := []struct{ text, want, why string }{
		{"路灯旁边的井盖", "0101", "井盖 (0101) and 路灯 (0102): one keyword of two runes each; the smaller code"},
		{"井盖旁边的路灯", "0101", "the same words the other way round"},
		{"下水道在冒烟", "0104", "下水道 (0104, three runes) beats 冒烟 (0501, two)"},
		{"冒烟的下水道", "0104", "the same words the other way round"},
		{"扬尘很大，还有噪音，太吵了", "0401", "噪音 and 太吵 (0401) beat 扬尘 (0402): more keywords"},
	}
	for _, tt := range tests {
		got, _ := m.Classify(tt.text)
		if got.Code != tt.want {
			t.Errorf("Classify(%q) = %q, want %q: %s", tt.text, got.Code, tt.want, tt.why)
		}
	}
}

// FuzzClassify: any text gives a category of the city or none, the same one every time, with
// keywords of that category.
func FuzzClassify(f *testing.F) {
	m := demoCity(f)
	for _, s := range []string{"下穿隧道积水很深，车辆熄火", "闻到很浓的煤气味", "ＰＭ２．５", "\xff积水", "城市管理/道路积水", "//--", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		for i, fn := range []func(string) (city.TicketCategory, bool){m.Classify, m.CategoryFor} {
			got, ok := fn(text)
			again, _ := fn(text)
			if got.Code != again.Code || !slices.Equal(got.Match, again.Match) {
				t.Fatalf("%q: %+v then %+v", text, got, again)
			}
			if !ok {
				if got.Code != "" {
					t.Fatalf("%q: no match but code %q", text, got.Code)
				}
				continue
			}
			c, known := m.Category(got.Code)
			if !known || len(got.Match) == 0 {
				t.Fatalf("%q: %+v: unknown category or no match", text, got)
			}
			for _, k := range got.Match {
				if i == 0 && !slices.Contains(c.Keywords, k) {
					t.Fatalf("%q: %+v: %q is no keyword of %s", text, got, k, c.Code)
				}
			}
		}
	})
}
