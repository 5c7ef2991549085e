package event_test

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
)

// FuzzMarshalMatchesEncodingJSON: event.Marshal writes the bytes encoding/json writes, or fails
// where it fails, for every record type with any strings (invalid UTF-8, control bytes, HTML
// characters, U+2028), numbers (tiny, huge, negative zero, NaN) and times in every field.
func FuzzMarshalMatchesEncodingJSON(f *testing.F) {
	f.Add("清波街道", "<a href=\"x\">&</a>", 42.5, int64(7), int64(1748766615), true)
	f.Add("\xff\xfe bad utf-8", "line\u2028sep\u2029\x00\x1f\t", 1e21, int64(-1), int64(0), false)
	f.Add("", "\\\"", 1e-7, int64(math.MaxInt64), int64(-62135596800-1), true)
	f.Add("a", "b", math.Copysign(0, -1), int64(math.MinInt64), int64(253402300800), false)
	f.Add("x", "y", math.NaN(), int64(0), int64(1), true)
	f.Add("x", "y", 123456789.125, int64(1<<53+1), int64(-1), false)
	f.Fuzz(func(t *testing.T, s1, s2 string, fl float64, n, sec int64, b bool) {
		fill := filler{strs: []string{s1, s2}, f: fl, n: n, t: time.Unix(sec, int64(uint64(n)%1e9)).UTC(), b: b}
		for _, v := range []any{
			&event.Event{}, &event.Signal{}, &event.IncidentChange{}, &event.Command{},
			&event.CommandResult{}, &event.Dispatch{}, &event.AuditRecord{}, &event.DeadLetter{},
			&event.Change{}, &event.Incident{},
			&map[string]any{}, // an explanation's operand values and the cockpit's frames
		} {
			rv := reflect.ValueOf(v).Elem()
			fill.value(rv, 0)
			if m, ok := v.(*map[string]any); ok {
				(*m)[s1] = []any{s2, fl, n, b, nil, map[string]any{s2: fl}}
			}
			want, werr := json.Marshal(rv.Interface())
			got, gerr := event.Marshal(rv.Interface())
			if (werr != nil) != (gerr != nil) {
				t.Fatalf("%T: encoding/json error %v, event.Marshal error %v", v, werr, gerr)
			}
			if werr == nil && !bytes.Equal(got, want) {
				t.Fatalf("%T: bytes differ:\n got %s\nwant %s", v, got, want)
			}
		}
	})
}

// filler sets every field of a value, nested ones too, from the fuzzer's inputs: strings
// alternate between its two, pointers and slices get values, maps two keys.
type filler struct {
	strs []string
	next int
	f    float64
	n    int64
	t    time.Time
	b    bool
}

func (fl *filler) str() string {
	fl.next++
	return fl.strs[fl.next%len(fl.strs)]
}

var timeType = reflect.TypeOf(time.Time{})

func (fl *filler) value(v reflect.Value, depth int) {
	if depth > 5 || !v.CanSet() {
		return
	}
	if v.Type() == timeType {
		v.Set(reflect.ValueOf(fl.t))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(fl.str())
	case reflect.Float32, reflect.Float64:
		v.SetFloat(fl.f)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !v.OverflowInt(fl.n) {
			v.SetInt(fl.n)
		}
	case reflect.Uint8:
		v.SetUint(uint64(fl.n) & 0xff)
	case reflect.Bool:
		v.SetBool(fl.b)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fl.value(p.Elem(), depth+1)
		v.Set(p)
	case reflect.Struct:
		for i := range v.NumField() {
			fl.value(v.Field(i), depth+1)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 { // []byte: base64, or raw JSON
			if v.Type() == reflect.TypeOf(json.RawMessage{}) {
				v.SetBytes([]byte(`{"k": [1, "` + fl.str() + `"]}`))
				return
			}
			v.SetBytes([]byte(fl.str()))
			return
		}
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fl.value(s.Index(i), depth+1)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for range 2 {
			k := reflect.New(v.Type().Key()).Elem()
			fl.value(k, depth+1)
			e := reflect.New(v.Type().Elem()).Elem()
			fl.value(e, depth+1)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Interface:
		if v.NumMethod() == 0 {
			v.Set(reflect.ValueOf(fl.str()))
		}
	}
}
