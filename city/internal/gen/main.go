// Command gen writes the demo city 云川市 (Yunchuan): grids.geojson and roster.yaml.
// Run it with `go generate ./city` (see load.go); the output is committed so loading the demo
// needs nothing but the embedded files. categories.yaml and agencies.yaml are hand-written.
//
// Layout: a 12×12 lattice over lon 120.05–120.35, lat 30.15–30.40. Each quarter (6×6 cells)
// is a district; each district is three strips of 2×6 cells (streets); each strip is three
// 2×2 blocks (communities); each block is four grids. 4 districts, 12 streets, 36
// communities, 144 grids.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/paulmach/orb"

	"github.com/urbanbrain/urbanbrain/city/internal/lattice"
)

const (
	cols, rows = 12, 12
	seed       = 990000
	jitter     = 0.18
)

var (
	bound = orb.Bound{Min: orb.Point{120.05, 30.15}, Max: orb.Point{120.35, 30.40}}

	// Districts by quarter: [north/south][west/east].
	districtNames = [2][2]string{{"云湖区", "临江区"}, {"青山区", "北塘区"}} // [south,north][west,east]
	streetNames   = []string{
		"松涛街道", "云栖街道", "翠屏街道", "明湖街道", "北塘街道", "广济街道",
		"澄江街道", "柳浪街道", "桂苑街道", "望川街道", "临波街道", "星河街道",
	}
	communityNames = []string{
		"青石", "竹影", "枫林", "梅园", "兰亭", "荷塘", "桃源", "杏坛", "柏树",
		"樟树", "银杏", "紫薇", "金桂", "玉泉", "清溪", "碧波", "映月", "望湖",
		"听涛", "观澜", "锦绣", "和平", "安康", "幸福", "新村", "东苑", "西苑",
		"南苑", "北苑", "春晖", "秋实", "丰收", "育才", "文昌", "华庭", "嘉园",
	}
	surnames   = []rune("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余于杜叶程魏苏吕丁沈任姚卢傅钟姜崔谭廖范汪陆金石戴贾韦夏邱方侯邹熊孟秦白江阎薛尹段雷黎史龙陶贺顾毛郝龚邵万钱严赖覃洪武莫孔")
	givenNames = []string{
		"伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
		"超", "霞", "平", "刚", "秀英", "桂英", "建国", "志强", "晓东", "海燕", "丽华", "文博", "子涵",
		"思远", "佳怡", "俊杰", "欣怡", "浩然", "雨婷", "建华", "国强", "红梅", "玉兰", "秀兰", "春燕",
		"永红", "建军", "志刚", "晓明", "立新", "卫东", "凤英", "金凤", "德胜", "宏伟", "美玲", "志华",
	}
)

type grid struct {
	code, name               string
	community, communityName string
	street, streetName       string
	district, districtName   string
	row, col                 int
	polygon                  orb.Polygon
}

func main() {
	out := flag.String("out", "demo", "directory to write grids.geojson and roster.yaml into")
	flag.Parse()
	grids := layout()
	if err := writeGeoJSON(filepath.Join(*out, "grids.geojson"), grids); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := writeRoster(filepath.Join(*out, "roster.yaml"), grids); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func layout() []grid {
	cells := lattice.Cells(cols, rows, bound, jitter, seed)
	var grids []grid
	// Walk districts in code order: 01 north-west, 02 north-east, 03 south-west, 04 south-east.
	for d := range 4 {
		north, east := d < 2, d%2 == 1
		dRow0, dCol0 := 0, 0
		ns, ew := 0, 0
		if north {
			dRow0, ns = 6, 1
		}
		if east {
			dCol0, ew = 6, 1
		}
		dCode := fmt.Sprintf("9901%02d", d+1)
		for s := range 3 {
			sCode := fmt.Sprintf("%s%03d", dCode, s+1)
			sIdx := d*3 + s
			for c := range 3 {
				cCode := fmt.Sprintf("%s%03d", sCode, c+1)
				cName := communityNames[sIdx*3+c] + "社区"
				// Community blocks run north to south inside the street's strip.
				row0 := dRow0 + (2-c)*2
				col0 := dCol0 + s*2
				n := 0
				for _, rc := range [][2]int{{1, 0}, {1, 1}, {0, 0}, {0, 1}} { // NW, NE, SW, SE
					n++
					r, cl := row0+rc[0], col0+rc[1]
					grids = append(grids, grid{
						code:          fmt.Sprintf("%s-%02d", cCode, n),
						name:          fmt.Sprintf("%s第%d网格", cName, n),
						community:     cCode,
						communityName: cName,
						street:        sCode,
						streetName:    streetNames[sIdx],
						district:      dCode,
						districtName:  districtNames[ns][ew],
						row:           r,
						col:           cl,
						polygon:       cells[r][cl],
					})
				}
			}
		}
	}
	return grids
}

func writeGeoJSON(path string, grids []grid) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, `{"type":"FeatureCollection","coordsys":"wgs84","features":[`)
	for i, g := range grids {
		props, _ := json.Marshal(map[string]string{
			"code": g.code, "name": g.name,
			"community": g.community, "community_name": g.communityName,
			"street": g.street, "street_name": g.streetName,
			"district": g.district, "district_name": g.districtName,
		})
		coords, _ := json.Marshal(g.polygon)
		sep := ","
		if i == len(grids)-1 {
			sep = ""
		}
		fmt.Fprintf(w, `{"type":"Feature","id":%q,"properties":%s,"geometry":{"type":"Polygon","coordinates":%s}}%s`+"\n",
			g.code, props, coords, sep)
	}
	fmt.Fprintln(w, "]}")
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeRoster staffs every grid with a day worker (08:00–20:00 daily); grids on the "black
// squares" of the lattice also get a night worker (20:00–08:00), so at night every grid has
// one on duty in it or next to it; every third grid has an assistant on weekday office hours;
// every community has a supervisor (社区监督员).
func writeRoster(path string, grids []grid) error {
	rng := rand.New(rand.NewPCG(seed, 12345))
	usedPhones := map[string]bool{}
	phone := func() string {
		for {
			p := fmt.Sprintf("139%08d", rng.IntN(100000000))
			if !usedPhones[p] {
				usedPhones[p] = true
				return p
			}
		}
	}
	name := func() string {
		return string(surnames[rng.IntN(len(surnames))]) + givenNames[rng.IntN(len(givenNames))]
	}

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "# 云川市 网格员与社区监督员花名册 — generated by city/internal/gen; do not edit by hand.")
	fmt.Fprintln(w, "# Shifts are Asia/Shanghai time; end before start runs overnight into the next day.")
	fmt.Fprintln(w, "workers:")
	worker := func(id, role, community string, gridCodes []string, days, start, end string) {
		fmt.Fprintf(w, "  - id: %s\n    name: %s\n    phone: %q\n    role: %s\n", id, name(), phone(), role)
		if len(gridCodes) > 0 {
			fmt.Fprint(w, "    grids: [")
			for i, g := range gridCodes {
				if i > 0 {
					fmt.Fprint(w, ", ")
				}
				fmt.Fprintf(w, "%q", g)
			}
			fmt.Fprintln(w, "]")
		}
		fmt.Fprintf(w, "    community: %q\n", community)
		fmt.Fprintf(w, "    shifts: [{days: [%s], start: %q, end: %q}]\n", days, start, end)
	}
	lastCommunity := ""
	for i, g := range grids {
		if g.community != lastCommunity {
			lastCommunity = g.community
			worker("S-"+g.community, "supervisor", g.community, nil, "daily", "08:00", "22:00")
		}
		worker("W-"+g.code+"-D", "worker", g.community, []string{g.code}, "daily", "08:00", "20:00")
		if (g.row+g.col)%2 == 0 {
			worker("W-"+g.code+"-N", "worker", g.community, []string{g.code}, "daily", "20:00", "08:00")
		}
		if i%3 == 0 {
			worker("W-"+g.code+"-A", "worker", g.community, []string{g.code}, "weekdays", "08:30", "17:30")
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
