package ingest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/urbanbrain/urbanbrain/event"
)

// FuzzDecodeDataMatchesEncodingJSON: for every record the scan accepts, decoding its data
// the fast way (segmentio, after the scan) gives each payload type the same value as
// encoding/json, or the same reason to refuse it. A difference would be a payload that ingest
// reads other than its contract (encoding/json's rules) says: a field matched that should not
// be, a number or a time accepted that should be refused.
func FuzzDecodeDataMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"device_id":"wl-1","kind":"water_level","metrics":{"level_cm":42.5,"rate":-0.25},"lat":31.2,"lon":121.4,"coordsys":"gcj02","status":"ok","battery":88}`,
		`{"ticket_id":"T-1","channel":"phone","caller_name":"张三","caller_phone":"13800000000","request_type":"投诉","category_code":"0301","category":"道路积水","category_match":["积水"],"content":"路口积水\n很深","address":"人民路 1 号","lat":31.2,"lon":121.4,"district_code":"990101","urgency":"urgent","received_at":"2025-06-01T08:29:00+08:00"}`,
		`{"camera_id":"cam-1","algorithm":"illegal_parking","confidence":0.93,"bbox":[1,2,3.5,4],"snapshot_url":"s3://x/y.jpg","object_count":3,"lat":31.2,"lon":121.4}`,
		// Names in another case, twice, escaped; values of the wrong kind; null everywhere.
		`{"DEVICE_ID":"a","Device_Id":"b","kind":"k","KIND":null,"metrics":{"a":1,"a":2,"A":3},"Metrics":{"b":4}}`,
		`{"device_\u0069d":"x","kind":"k","metrics":{"\u00e9":1e-320}}`,
		`{"device_id":1,"kind":"k","metrics":{"a":1}}`,
		`{"device_id":"d","kind":"k","metrics":[1,2]}`,
		`{"device_id":"d","kind":"k","metrics":{"a":null,"b":"1"}}`,
		`{"device_id":"d","kind":"k","metrics":{"a":1e400}}`,
		`{"device_id":"d","kind":"k","metrics":{"a":-0,"b":1E+2,"c":0.000000000000000000001,"d":123456789012345678901234567890}}`,
		`{"device_id":null,"kind":"k","metrics":null,"lat":null,"lon":"31","battery":true}`,
		`{"camera_id":"c","algorithm":"a","confidence":"0.9","object_count":1.5}`,
		`{"camera_id":"c","algorithm":"a","confidence":0.9,"object_count":3e9,"bbox":{"x":1}}`,
		`{"camera_id":"c","algorithm":"a","confidence":0.9,"object_count":1e2,"bbox":[null,1]}`,
		`{"camera_id":"c","algorithm":"a","confidence":0.9,"object_count":-9223372036854775809}`,
		`{"ticket_id":"T","request_type":"咨询","content":"c","received_at":"2025-06-01 08:29:00"}`,
		`{"ticket_id":"T","request_type":"咨询","content":"c","received_at":"2025-06-01t08:29:00z"}`,
		`{"ticket_id":"T","request_type":"咨询","content":"c","received_at":"2025-02-30T08:29:00Z"}`,
		`{"ticket_id":"T","request_type":"咨询","content":"c","received_at":"2025-06-01T24:00:00Z"}`,
		`{"ticket_id":"T","request_type":"咨询","content":"c","received_at":"2025-06-01T08:29:00.123456789123Z"}`,
		`{"ticket_id":"T","request_type":"咨询","content":"c","received_at":"2025-06-01T08:29:00+24:00"}`,
		`{"ticket_id":"T","request_type":"咨询","content":"c","received_at":"0000-01-01T00:00:00+08:00"}`,
		`{"ticket_id":"T","request_type":"咨询","content":"c","received_at":null,"category_match":"积水"}`,
		`{"ticket_id":"T","request_type":"咨询","content":"\u0000\ud83d\ude00\"\\\/\b\f\t","received_at":1}`,
		`{"ticket_id":"T","unknown":{"deep":[[[{"a":[1,{"b":null}]}]]],"s":"x"},"content":"c"}`,
		`{}`,
		`{"lat":1,"lat":"x"}`,
		// Names with runes that fold to ASCII letters: encoding/json matches them, segmentio does not.
		`{"\u017ftatus":"alarm","coord\u017fys":"bd09","\u212aind":"k","snap\u017Fhot_url":"u"}`,
		"{\"\u017ftatus\":\"alarm\",\"coord\u017fys\":\"bd09\",\"addre\u017f\u017f\":\"a\",\"\u212aind\":\"k\"}",
		`{"content":"\\u017f is not an escape here","status":"ok"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, rej := scanObject(b); rej != nil {
			return // decodeData is given scanned data only on its fast path
		}
		for _, newPayload := range []func() any{
			func() any { return new(event.SensorReading) },
			func() any { return new(event.HotlineTicket) },
			func() any { return new(event.VideoDetection) },
		} {
			fast, std := newPayload(), newPayload()
			rej := decodeData(b, true, fast)
			err := json.Unmarshal(b, std)
			if bytes.TrimLeft(b, " \t\r\n")[0] != '{' {
				err = errors.New("not an object") // decodeData wants an object first
			}
			if (rej == nil) != (err == nil) {
				t.Fatalf("%T from %q: after the scan %v, encoding/json %v", fast, b, rej, err)
			}
			if rej != nil {
				continue
			}
			// DeepEqual, and the same bytes again: DeepEqual takes -0 for 0.
			fastJSON, _ := json.Marshal(fast)
			stdJSON, _ := json.Marshal(std)
			if !reflect.DeepEqual(fast, std) || !bytes.Equal(fastJSON, stdJSON) {
				t.Fatalf("%T from %q:\nafter the scan %s\nencoding/json  %s", fast, b, fastJSON, stdJSON)
			}
		}
	})
}

// TestFoldRunesAreAllThatFoldToASCII: foldRunes lists every rune outside ASCII whose case
// folding reaches an ASCII letter, per the Unicode tables this build has.
func TestFoldRunesAreAllThatFoldToASCII(t *testing.T) {
	var want []rune
	for r := rune(utf8.RuneSelf); r <= unicode.MaxRune; r++ {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < utf8.RuneSelf {
				want = append(want, r)
				break
			}
		}
	}
	if !reflect.DeepEqual(foldRunes, want) {
		t.Fatalf("foldRunes = %q, the Unicode tables fold %q to ASCII", foldRunes, want)
	}
	for _, c := range []struct {
		data string
		want bool
	}{
		{`{"status":"ok"}`, false},
		{`{"\u017ftatus":"ok"}`, true},
		{`{"\u017Ftatus":"ok"}`, true},
		{"{\"\u017ftatus\":\"ok\"}", true},
		{`{"\u212Aind":"ok"}`, true},
		{"{\"\u212aind\":\"ok\"}", true},
		{`{"content":"\u6c34\u4f4d"}`, false},
		{`{"content":"\u017`, false},
	} {
		if got := foldsToASCIIIn([]byte(c.data)); got != c.want {
			t.Errorf("foldsToASCIIIn(%s) = %v, want %v", c.data, got, c.want)
		}
	}
}

// TestOnlyScannedDataTakesTheFastDecoder: the data of bare and structured records went through
// the record's scan; binary-mode values and data_base64 did not, and segmentio's decoder, which
// has no nesting limit of its own, must not get them.
func TestOnlyScannedDataTakesTheFastDecoder(t *testing.T) {
	s := &Service{cfg: Config{MaxEventBytes: 1 << 20}}
	data := `{"device_id":"d","kind":"k","metrics":{"a":1}}`
	structured := `{"specversion":"1.0","id":"x","source":"s","type":"city.sensor.reading","data":` + data + `}`
	base64Data := `{"specversion":"1.0","id":"x","source":"s","type":"city.sensor.reading","data_base64":"` +
		base64.StdEncoding.EncodeToString([]byte(data)) + `"}`
	for _, c := range []struct {
		name string
		in   input
		want bool
	}{
		{"bare", input{value: []byte(data), bareType: event.TypeSensorReading}, true},
		{"structured", input{value: []byte(structured)}, true},
		{"data_base64", input{value: []byte(base64Data)}, false},
		{"binary", input{value: []byte(data), attrs: &binaryAttrs{specVersion: "1.0", id: "x", typ: event.TypeSensorReading, source: "s"}}, false},
	} {
		env, rej := s.readEnvelope(c.in)
		if rej != nil {
			t.Fatalf("%s: %v", c.name, rej)
		}
		if env.scanned != c.want || string(env.data) != data {
			t.Errorf("%s: scanned %v, data %s; want scanned %v, data %s", c.name, env.scanned, env.data, c.want, data)
		}
	}
}
