package app

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
)

// open311Request is a service request as an Open311 client decodes it (JSON).
type open311Request struct {
	ServiceRequestID string   `json:"service_request_id"`
	Token            string   `json:"token"`
	Status           string   `json:"status"`
	StatusNotes      string   `json:"status_notes"`
	ServiceCode      string   `json:"service_code"`
	ServiceName      string   `json:"service_name"`
	Description      string   `json:"description"`
	ServiceNotice    string   `json:"service_notice"`
	ExpectedDatetime string   `json:"expected_datetime"`
	Lat              *float64 `json:"lat"`
	Long             *float64 `json:"long"`
}

type open311Error struct {
	Code        int    `json:"code" xml:"code"`
	Description string `json:"description" xml:"description"`
}

// open311Call sends a request as an Open311 client does — no Authorization header; a POST's
// fields form-encoded in the body — and returns the status, the Content-Type and the body.
func open311Call(t *testing.T, r *running, method, path string, form url.Values) (int, string, []byte) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, r.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("User-Agent", "open311-client-test/1.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

func open311Get(t *testing.T, r *running, path string, out any) int {
	t.Helper()
	code, _, b := open311Call(t, r, http.MethodGet, path, nil)
	if out != nil && code == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("GET %s: decode %q: %v", path, b, err)
		}
	}
	return code
}

var ticketID = regexp.MustCompile(`O311-[0-9A-F]+`)

// An Open311 client's whole flow on the running system: list the services, post a request
// (form-encoded, with an ingest token as api_key), follow it while the city works it through
// the loop to closed, in JSON and XML; a public read never shows who asked.
func TestOpen311ClientFollowsARequestToClosed(t *testing.T) {
	r := start(t, t.TempDir(), freeAddr(t))
	grid := r.app.City().Grids()[7]
	apiKey := r.token(auth.Claims{Subject: "citizen-app", Role: auth.RoleIngest})
	admin := r.token(auth.Claims{Subject: "admin-1", Role: auth.RoleAdmin})
	operator := r.token(auth.Claims{Subject: "op-1", Role: auth.RoleOperator})

	// 1. The services: the city's categories.
	var services []struct {
		ServiceCode string `json:"service_code"`
		ServiceName string `json:"service_name"`
		Group       string `json:"group"`
		Type        string `json:"type"`
		Metadata    bool   `json:"metadata"`
	}
	if code := open311Get(t, r, "/open311/v2/services.json", &services); code != http.StatusOK || len(services) != len(r.app.City().Categories()) {
		t.Fatalf("GET services.json: %d, %d services", code, len(services))
	}
	if s := services[0]; s.ServiceCode == "" || s.ServiceName == "" || s.Group == "" || s.Type != "realtime" || s.Metadata {
		t.Errorf("service %+v", s)
	}
	code, ct, b := open311Call(t, r, http.MethodGet, "/open311/v2/services.xml", nil)
	var xmlServices struct {
		XMLName  xml.Name `xml:"services"`
		Services []struct {
			ServiceCode string `xml:"service_code"`
		} `xml:"service"`
	}
	if code != http.StatusOK || !strings.HasPrefix(ct, "text/xml") || xml.Unmarshal(b, &xmlServices) != nil || len(xmlServices.Services) != len(services) {
		t.Errorf("GET services.xml: %d %s %.200s", code, ct, b)
	}
	code, _, b = open311Call(t, r, http.MethodGet, "/open311/v2/services/0301.json", nil)
	var errs []open311Error
	if code != http.StatusNotFound || json.Unmarshal(b, &errs) != nil || len(errs) != 1 || errs[0].Code != http.StatusNotFound {
		t.Errorf("GET services/0301.json (metadata false): %d %s", code, b)
	}

	// 2. Post a request, as a citizen's app does.
	form := url.Values{
		"api_key": {apiKey}, "service_code": {"0301"},
		"lat": {fmt.Sprint(grid.Centroid.Lat)}, "long": {fmt.Sprint(grid.Centroid.Lon)},
		"address_string": {"幸福路 8 号"}, "description": {"垃圾桶满了好几天，请联系我 13812345678 <script>alert(1)</script>"},
		"first_name": {"小明"}, "last_name": {"王"}, "phone": {"13987654321"}, "email": {"xiaoming@example.com"},
		"media_url": {"https://img.example/1.jpg"},
	}
	code, ct, b = open311Call(t, r, http.MethodPost, "/open311/v2/requests.json", form)
	var receipts []open311Request
	if code != http.StatusOK || !strings.HasPrefix(ct, "application/json") || json.Unmarshal(b, &receipts) != nil || len(receipts) != 1 {
		t.Fatalf("POST requests.json: %d %s", code, b)
	}
	ticket := ticketID.FindString(receipts[0].ServiceNotice)
	if ticket == "" {
		t.Fatalf("receipt %s names no ticket", b)
	}
	id := receipts[0].ServiceRequestID
	if id == "" {
		if receipts[0].Token != ticket {
			t.Fatalf("receipt %s: neither a service_request_id nor the token", b)
		}
		eventually(t, 60*time.Second, "the token to name its request", func() bool {
			var ts []struct {
				ServiceRequestID string `json:"service_request_id"`
			}
			open311Get(t, r, "/open311/v2/tokens/"+ticket+".json", &ts)
			if len(ts) == 1 {
				id = ts[0].ServiceRequestID
			}
			return id != ""
		})
	}
	var ts []struct {
		ServiceRequestID string `json:"service_request_id"`
		Token            string `json:"token"`
	}
	if code := open311Get(t, r, "/open311/v2/tokens/"+ticket+".json", &ts); code != http.StatusOK || len(ts) != 1 || ts[0].ServiceRequestID != id || ts[0].Token != ticket {
		t.Errorf("GET tokens/%s.json: %d %+v, want %s", ticket, code, ts, id)
	}

	// The ticket went through ingest: a 12345 ticket of channel open311 with the caller fields.
	var detail struct {
		Incident event.Incident `json:"incident"`
		Events   []event.Event  `json:"events"`
	}
	eventually(t, 60*time.Second, "the request to be dispatched", func() bool {
		r.do(http.MethodGet, "/api/v1/incidents/"+id, admin, nil, &detail)
		return detail.Incident.Status == event.StatusDispatched && len(detail.Events) == 1
	})
	if h := detail.Events[0].Hotline; h == nil || h.Channel != "open311" || h.TicketID != ticket || h.CallerName != "王小明" ||
		h.CallerPhone != "13987654321" || h.RequestType != event.RequestHelp || h.CategoryCode != "0301" || h.Address != "幸福路 8 号" {
		t.Errorf("the ticket as ingest kept it: %+v", detail.Events[0].Hotline)
	}

	// A second citizen reports the same problem, in XML: one problem, one request (一事多报).
	second := url.Values{"api_key": {apiKey}, "service_code": {"0301"}, "description": {"这里垃圾也没人收"},
		"lat": form["lat"], "long": form["long"]}
	code, ct, b = open311Call(t, r, http.MethodPost, "/open311/v2/requests.xml", second)
	var xmlReceipt struct {
		XMLName  xml.Name `xml:"service_requests"`
		Requests []struct {
			ServiceRequestID string `xml:"service_request_id"`
			Token            string `xml:"token"`
		} `xml:"request"`
	}
	if code != http.StatusOK || !strings.HasPrefix(ct, "text/xml") || xml.Unmarshal(b, &xmlReceipt) != nil || len(xmlReceipt.Requests) != 1 {
		t.Fatalf("POST requests.xml: %d %s", code, b)
	}
	if rc := xmlReceipt.Requests[0]; rc.ServiceRequestID != id {
		eventually(t, 60*time.Second, "the second report to join the request", func() bool {
			var got []open311Request
			open311Get(t, r, "/open311/v2/requests/"+rc.Token+".json", &got)
			return len(got) == 1 && got[0].ServiceRequestID == id
		})
	}

	// 3. Follow it: open, and public without personal data.
	var got []open311Request
	for _, path := range []string{"/open311/v2/requests/" + id + ".json", "/open311/v2/requests/" + ticket + ".json"} {
		code, _, b = open311Call(t, r, http.MethodGet, path, nil)
		if code != http.StatusOK || json.Unmarshal(b, &got) != nil || len(got) != 1 || got[0].ServiceRequestID != id || got[0].Status != "open" {
			t.Fatalf("GET %s: %d %s", path, code, b)
		}
		noPersonalData(t, path, b)
	}
	if g := got[0]; g.ServiceCode != "0301" || g.ServiceName == "" || g.Lat == nil || g.Long == nil || g.ExpectedDatetime == "" ||
		!strings.Contains(g.Description, "138****5678") {
		t.Errorf("request %+v", g)
	}
	code, _, b = open311Call(t, r, http.MethodGet, "/open311/v2/requests.json?status=open&service_code=0301", nil)
	if code != http.StatusOK || !strings.Contains(string(b), id) {
		t.Errorf("GET requests.json?status=open: %d %.300s", code, b)
	}
	noPersonalData(t, "requests.json", b)
	code, _, b = open311Call(t, r, http.MethodGet, "/open311/v2/requests.xml?service_request_id="+id, nil)
	if code != http.StatusOK || strings.Contains(string(b), "<script>") {
		t.Errorf("GET requests.xml: %d %s", code, b)
	}
	noPersonalData(t, "requests.xml", b)

	// 4. The city works it through the loop.
	worker := r.token(auth.Claims{Subject: detail.Incident.Assignment.WorkerID, Role: auth.RoleWorker, Grids: []string{detail.Incident.Area.Grid}})
	for _, step := range []struct {
		token string
		body  map[string]string
	}{
		{worker, map[string]string{"action": event.ActionAccept}},
		{worker, map[string]string{"action": event.ActionStart}},
		{worker, map[string]string{"action": event.ActionResolve, "note": "已清运"}},
		{operator, map[string]string{"action": event.ActionVerify}},
		{operator, map[string]string{"action": event.ActionClose}},
	} {
		if code := r.do(http.MethodPost, "/api/v1/incidents/"+id+"/actions", step.token, step.body, nil); code != http.StatusOK {
			t.Fatalf("%s: %d", step.body["action"], code)
		}
	}
	eventually(t, 30*time.Second, "the request to read closed", func() bool {
		got = nil
		open311Get(t, r, "/open311/v2/requests/"+id+".json", &got)
		return len(got) == 1 && got[0].Status == "closed"
	})
	if !strings.HasPrefix(got[0].StatusNotes, "已结案") || got[0].ExpectedDatetime != "" {
		t.Errorf("closed request %+v", got[0])
	}
	code, _, b = open311Call(t, r, http.MethodGet, "/open311/v2/requests/"+id+".xml", nil)
	var xmlRequests struct {
		XMLName  xml.Name `xml:"service_requests"`
		Requests []struct {
			ServiceRequestID string `xml:"service_request_id"`
			Status           string `xml:"status"`
		} `xml:"request"`
	}
	if code != http.StatusOK || xml.Unmarshal(b, &xmlRequests) != nil || len(xmlRequests.Requests) != 1 ||
		xmlRequests.Requests[0].ServiceRequestID != id || xmlRequests.Requests[0].Status != "closed" {
		t.Errorf("GET requests/%s.xml: %d %s", id, code, b)
	}
	code, _, b = open311Call(t, r, http.MethodGet, "/open311/v2/requests.json?status=closed", nil)
	if code != http.StatusOK || !strings.Contains(string(b), id) {
		t.Errorf("GET requests.json?status=closed: %d %.300s", code, b)
	}
}

// noPersonalData fails when a public answer holds the caller's name, phones or e-mail.
func noPersonalData(t *testing.T, what string, b []byte) {
	t.Helper()
	for _, secret := range []string{"王小明", "小明", "13987654321", "13812345678", "xiaoming@example.com", "img.example"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("%s shows %q: %s", what, secret, b)
		}
	}
}

// The api_key: missing, wrong, of a role that may not post; and a request ingest refuses.
// Each answer is an Open311 error in the format asked for.
func TestOpen311RefusesWithOpen311Errors(t *testing.T) {
	r := start(t, t.TempDir(), freeAddr(t))
	grid := r.app.City().Grids()[3]
	viewer := r.token(auth.Claims{Subject: "leader", Role: auth.RoleViewer})
	apiKey := r.token(auth.Claims{Subject: "citizen-app", Role: auth.RoleIngest})
	form := func(key string, kv ...string) url.Values {
		v := url.Values{"service_code": {"0102"}, "lat": {fmt.Sprint(grid.Centroid.Lat)}, "long": {fmt.Sprint(grid.Centroid.Lon)},
			"description": {"路灯不亮"}}
		if key != "" {
			v.Set("api_key", key)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	for _, tc := range []struct {
		name   string
		format string
		form   url.Values
		status int
		want   string
	}{
		{"no api_key", "json", form(""), http.StatusUnauthorized, "api_key is required"},
		{"no api_key", "xml", form(""), http.StatusUnauthorized, "api_key is required"},
		{"a wrong api_key", "json", form("not-a-token"), http.StatusUnauthorized, "invalid token"},
		{"a viewer's token", "xml", form(viewer), http.StatusForbidden, "may not ingest"},
		{"an unknown service", "json", form(apiKey, "service_code", "9999"), http.StatusBadRequest, "service_code 9999 not found"},
		{"no service", "json", form(apiKey, "service_code", ""), http.StatusBadRequest, "service_code is required"},
		{"a lat that is no number", "json", form(apiKey, "lat", "north"), http.StatusBadRequest, "not a number"},
		{"out of range (ingest)", "json", form(apiKey, "lat", "91"), http.StatusUnprocessableEntity, "invalid_location"},
		{"no location (ingest)", "xml", form(apiKey, "lat", "", "long", ""), http.StatusUnprocessableEntity, "no location"},
	} {
		code, ct, b := open311Call(t, r, http.MethodPost, "/open311/v2/requests."+tc.format, tc.form)
		var errs []open311Error
		var err error
		if tc.format == "xml" {
			var doc struct {
				XMLName xml.Name       `xml:"errors"`
				Errors  []open311Error `xml:"error"`
			}
			err = xml.Unmarshal(b, &doc)
			errs = doc.Errors
		} else {
			err = json.Unmarshal(b, &errs)
		}
		if code != tc.status || !strings.Contains(ct, tc.format) || err != nil || len(errs) != 1 || errs[0].Code != tc.status ||
			!strings.Contains(errs[0].Description, tc.want) {
			t.Errorf("%s (%s): %d %s %s, want %d with %q", tc.name, tc.format, code, ct, b, tc.status, tc.want)
		}
	}
	// Public reads of what does not exist.
	for path, status := range map[string]int{
		"/open311/v2/requests/INC-990101001-NOPE.json": http.StatusNotFound,
		"/open311/v2/requests/O311-NOPE.xml":           http.StatusNotFound,
		"/open311/v2/tokens/O311-NOPE.json":            http.StatusNotFound,
		"/open311/v2/services/9999.json":               http.StatusNotFound,
		"/open311/v2/requests/INC-1.csv":               http.StatusBadRequest,
		"/open311/v2/requests.json?status=pending":     http.StatusBadRequest,
		"/open311/v2/requests.json?start_date=monday":  http.StatusBadRequest,
	} {
		if code, _, b := open311Call(t, r, http.MethodGet, path, nil); code != status {
			t.Errorf("GET %s: %d %s, want %d", path, code, b, status)
		}
	}
}

// Public reads have no token to key a limit by: each client address gets the per-token rate.
func TestOpen311PublicReadsAreLimitedPerAddress(t *testing.T) {
	r := start(t, t.TempDir(), freeAddr(t), func(c *Config) { c.RateLimit, c.RateBurst = 0.5, 2 })
	var codes []int
	for range 3 {
		code, _, b := open311Call(t, r, http.MethodGet, "/open311/v2/services.xml", nil)
		codes = append(codes, code)
		if code == http.StatusTooManyRequests {
			var doc struct {
				XMLName xml.Name       `xml:"errors"`
				Errors  []open311Error `xml:"error"`
			}
			if err := xml.Unmarshal(b, &doc); err != nil || len(doc.Errors) != 1 || doc.Errors[0].Code != http.StatusTooManyRequests {
				t.Errorf("429 answer %s: %v", b, err)
			}
		}
	}
	if codes[0] != http.StatusOK || codes[1] != http.StatusOK || codes[2] != http.StatusTooManyRequests {
		t.Errorf("three reads at once: %v, want 200 200 429", codes)
	}
}
