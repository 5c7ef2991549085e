package auth_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
)

func TestMaskPhone(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"13812345678":       "138****5678",
		"19912345678":       "199****5678",
		"+8613812345678":    "+86138****5678",
		"+86 138 1234 5678": "+86 138 **** 5678",
		"008613812345678":   "0086138****5678",
		"138-1234-5678":     "138-****-5678",
		"0571-88886666":     "0571-****6666",
		"010-12345678":      "010-****5678",
		"0571-8888666":      "0571-***8666",
		"0571 88886666":     "0571 ****6666",
		"12345678901":       "123****8901", // 11 digits but not a mobile: still 3 + 4 kept
		"88886666":          "88****66",
		"12345":             "1***5",
		"110":               "***",
		"12":                "**",
		"unknown":           "u*****n",
		"":                  "",
		"138****5678":       "138****5678",
		"0571-****6666":     "0571-****6666",
	} {
		if got := auth.MaskPhone(in); got != want {
			t.Errorf("MaskPhone(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMaskName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":           "",
		"张":          "*",
		"张三":         "张*",
		"张三丰":        "张**",
		"欧阳娜娜":       "欧***",
		"张**":        "张**",
		"John Smith": "J*********",
	} {
		if got := auth.MaskName(in); got != want {
			t.Errorf("MaskName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMaskIDNumber(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"110101199003071234": "110101********1234",
		"11010119900307123X": "110101********123X",
		"11010119900307123x": "110101********123x",
		"110101900307123":    "110101******123",
		"110101********1234": "110101********1234",
		"12345":              "1***5",
		"":                   "",
	} {
		if got := auth.MaskIDNumber(in); got != want {
			t.Errorf("MaskIDNumber(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMaskText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"路灯不亮", "路灯不亮"},
		{"我的电话13812345678，请回电", "我的电话138****5678，请回电"},
		{"13812345678", "138****5678"},
		{"电话13812345678或15900001111", "电话138****5678或159****1111"},
		{"联系 +86 138 1234 5678 张先生", "联系 +86 138 **** 5678 张先生"},
		{"号码138-1234-5678", "号码138-****-5678"},
		{"tel13812345678x", "tel138****5678x"},
		{"身份证号11010119900307123X，住三楼", "身份证号110101********123X，住三楼"},
		{"身份证110101199003071234", "身份证110101********1234"},
		{"座机0571-88886666", "座机0571-****6666"},
		{"工单号202412011381234567890", "工单号202412011381234567890"}, // a longer number is not a phone
		{"拨打12345热线", "拨打12345热线"},
		{"水位120cm，持续30分钟", "水位120cm，持续30分钟"},
		{"已脱敏138****5678", "已脱敏138****5678"},
		// Any 11 digits starting with 1 are taken as a mobile: prefixes come and go (14x, 16x,
		// 19x), and masking a number that is not one costs nothing.
		{"12812345678", "128****5678"},
		// Issue 11 item 4: the formats the first cut missed.
		{"电话138.1234.5678", "电话138.****.5678"},
		{"电话１３８１２３４５６７８谢谢", "电话１３８****５６７８谢谢"},
		{"电话１３８ １２３４ ５６７８", "电话１３８ **** ５６７８"},
		{"138 - 1234 - 5678", "138 - **** - 5678"},
		{"138　1234　5678", "138　****　5678"},
		{"138－1234－5678", "138－****－5678"},
		{"0086 138 1234 5678", "0086 138 **** 5678"},
		{"86-138-1234-5678", "86-138-****-5678"},
		{"两个号码 13812345678 13912345678", "两个号码 138****5678 139****5678"},
		{"身份证 110101 19900307 123X 已核实", "身份证 110101 ******** 123X 已核实"},
		{"身份证１１０１０１１９９００３０７１２３Ｘ", "身份证１１０１０１********１２３Ｘ"},
		{"旧证110101900307123", "旧证110101******123"},
		{"2026-03-01 13812345678", "2026-03-01 138****5678"}, // the phone, not a 15-digit "ID" across the date
		{"座机057188886666", "座机0571****6666"},
		{"座机010 12345678", "座机010 ****5678"},
		{"Xiamen 11010119900307123Xiamen", "Xiamen 11010119900307123Xiamen"}, // 17 digits and a word
		// A summary cut at 140 characters: the digits the cut left are masked after the first 3.
		{"投诉 噪音扰民，电话1381234567…", "投诉 噪音扰民，电话138*******…"},
		{"回电1381234...", "回电138****..."},
		{"电话13812345678，备用1391…", "电话138****5678，备用139*…"},
		{"共12…", "共12…"},     // too short to be a number
		{"门牌1234", "门牌1234"}, // not cut: a house number
		{"2024年3月1日上午10点", "2024年3月1日上午10点"},
		{"PM2.5=35.5 μg/m³", "PM2.5=35.5 μg/m³"},
		{"已脱敏138****5678…", "已脱敏138****5678…"},
	} {
		if got := auth.MaskText(tc.in); got != tc.want {
			t.Errorf("MaskText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func sampleIncident() event.Incident {
	at := time.Date(2025, 7, 1, 9, 0, 0, 0, time.UTC)
	return event.Incident{
		ID: "INC-330106001-1", Version: 3, Status: event.StatusDispatched,
		Title:    "积水 (来电13812345678)",
		Area:     event.Area{District: "330106", Street: "330106001", Grid: "G-01"},
		Location: &event.Point{Lon: 120.1, Lat: 30.2},
		Reports: []event.Report{
			{EventID: "e1", EventType: event.TypeHotlineTicket, At: at, Summary: "地下通道积水，电话13812345678",
				Location: &event.Point{Lon: 120.1, Lat: 30.2}, Caller: &event.Caller{Name: "张三丰", Phone: "13812345678"}},
			{EventID: "e2", EventType: event.TypeSensorReading, At: at, Summary: "水位 42cm"},
		},
		ReportCount: 2,
	}
}

func TestMaskIncident(t *testing.T) {
	t.Parallel()
	orig := sampleIncident()
	masked := auth.MaskIncident(orig, auth.Claims{Subject: "op", Role: auth.RoleOperator})
	if !reflect.DeepEqual(orig, sampleIncident()) {
		t.Fatal("MaskIncident modified its input")
	}
	want := sampleIncident()
	want.Title = "积水 (来电138****5678)"
	want.Reports[0].Summary = "地下通道积水，电话138****5678"
	want.Reports[0].Caller = &event.Caller{Name: "张**", Phone: "138****5678"}
	if !reflect.DeepEqual(masked, want) {
		t.Fatalf("operator view:\n got %+v\nwant %+v", masked, want)
	}

	for _, role := range []auth.Role{auth.RoleSupervisor, auth.RoleAdmin} {
		got := auth.MaskIncident(orig, auth.Claims{Subject: "x", Role: role})
		if !reflect.DeepEqual(got, orig) {
			t.Errorf("%s view differs from the original: %+v", role, got)
		}
		// A deep copy: changing the result leaves the original alone.
		got.Reports[0].Caller.Phone = "changed"
		got.Reports[0].Location.Lat = 0
		got.Location.Lon = 0
		if !reflect.DeepEqual(orig, sampleIncident()) {
			t.Fatalf("%s: result shares memory with the input", role)
		}
	}
}

func TestMaskEvent(t *testing.T) {
	t.Parallel()
	lat, lon := 30.2, 120.1
	mk := func() event.Event {
		return event.Event{ID: "e1", Type: event.TypeHotlineTicket, Hotline: &event.HotlineTicket{
			TicketID: "T1", CallerName: "李四", CallerPhone: "15900001111",
			Content: "门口井盖丢失，回电15900001111", Lat: &lat, Lon: &lon,
		}}
	}
	orig := mk()
	got := auth.MaskEvent(orig, auth.Claims{Subject: "w", Role: auth.RoleWorker})
	if !reflect.DeepEqual(orig, mk()) {
		t.Fatal("MaskEvent modified its input")
	}
	h := got.Hotline
	if h.CallerName != "李*" || h.CallerPhone != "159****1111" || h.Content != "门口井盖丢失，回电159****1111" {
		t.Errorf("worker view: %+v", *h)
	}
	if sup := auth.MaskEvent(orig, auth.Claims{Subject: "s", Role: auth.RoleSupervisor}); !reflect.DeepEqual(sup, orig) {
		t.Errorf("supervisor view differs: %+v", *sup.Hotline)
	}

	sensor := event.Event{ID: "s1", Type: event.TypeSensorReading, Sensor: &event.SensorReading{
		DeviceID: "D1", Metrics: map[string]float64{"level_cm": 42}}}
	cp := auth.MaskEvent(sensor, auth.Claims{Subject: "op", Role: auth.RoleOperator})
	cp.Sensor.Metrics["level_cm"] = 0
	if sensor.Sensor.Metrics["level_cm"] != 42 {
		t.Error("MaskEvent result shares the sensor metrics with its input")
	}
}

// An uploaded photo's name (the hash of its bytes) is the system's, not a person's: masking
// leaves it whole even where its hex digits look like a phone number, so the link works for
// every role; a photo URL of another system is masked like any text.
func TestMaskIncidentKeepsPhotoNames(t *testing.T) {
	name := "3fdba35f04dc8c462986c992bcf875546257113072a909c162f7e470e581e278.png"
	if !event.IsPhotoName(name) || auth.MaskText(name) == name {
		t.Fatalf("the fixture must be a photo name MaskText would change (%q)", auth.MaskText(name))
	}
	url := "https://photos.example/13912345678.jpg"
	inc := event.Incident{Evidence: &event.Evidence{Note: "已处理", Photos: []string{name, url}}}
	got := auth.MaskIncident(inc, auth.Claims{Role: auth.RoleOperator})
	if got.Evidence.Photos[0] != name || got.Evidence.Photos[1] == url {
		t.Errorf("photos %v: want the name whole and the URL masked", got.Evidence.Photos)
	}
}
