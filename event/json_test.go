package event_test

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/authoring"
)

// FuzzMarshalMatchesEncodingJSON: event.Marshal writes the bytes encoding/json writes, or fails
// where it fails, for every type that goes through it — each record type, the stores'
// documents, an explanation's operand values — with any strings (invalid UTF-8, control bytes,
// HTML characters, U+2028, long enough for the encoder's vector paths), numbers (tiny, huge,
// negative zero, NaN) and times (any year, UTC or not) in every field, nil and empty values,
// and maps with enough keys to be sorted the long way; and MarshalString and Encode's data
// member are the same bytes. `make test` fuzzes it for 20 s.
func FuzzMarshalMatchesEncodingJSON(f *testing.F) {
	long := func(n int) string {
		var b strings.Builder
		for b.Len() < n {
			b.WriteString("清波街道 <b>&amp;</b> \"q\" \\ \x01\u2028\xff 0123456789abcdef")
		}
		return b.String()
	}
	f.Add("清波街道", "<a href=\"x\">&</a>", 42.5, int64(7), int64(1748766615), true)
	f.Add("\xff\xfe bad utf-8", "line\u2028sep\u2029\x00\x1f\t", 1e21, int64(-1), int64(0), false)
	f.Add("", "\\\"", 1e-7, int64(math.MaxInt64), int64(-62135596800-1), true)
	f.Add("a", "b", math.Copysign(0, -1), int64(math.MinInt64), int64(253402300800), false)
	f.Add("x", "y", math.NaN(), int64(0), int64(1), true)
	f.Add("x", "y", 123456789.125, int64(1<<53+1), int64(-1), false)
	// Strings across the encoders' 16- and 32-byte blocks and their long-string segments.
	f.Add(strings.Repeat("a", 31)+"<"+strings.Repeat("b", 8), strings.Repeat("c", 33)+"\u2028", 0.1, int64(3), int64(1e9), true)
	f.Add(long(300), strings.Repeat("\x7f\"", 150), 1e300, int64(-42), int64(-1e10), false)
	f.Add(long(2000), strings.Repeat("街", 700)+"\xc3", 5e-324, int64(99), int64(4e9), true)
	f.Fuzz(func(t *testing.T, s1, s2 string, fl float64, n, sec int64, b bool) {
		raw := filler{strs: []string{s1, s2}, f: fl, n: n, t: time.Unix(sec, int64(uint64(n)%1e9)), b: b}
		// The fuzzer's own time and float may be ones JSON cannot carry (year 10000, NaN):
		// then both encoders fail on every type, so each type is also compared with values
		// that encode, densely filled and sparsely (nil pointers, empty slices and maps).
		safe := raw
		safe.t = time.Unix(sec%253402300799, raw.t.UnixNano()%1e9)
		if math.IsNaN(fl) || math.IsInf(fl, 0) {
			safe.f = 0.5
		}
		sparse := safe
		sparse.sparse = true
		for _, fill := range []filler{raw, safe, sparse} {
			for _, v := range []any{
				&event.Event{}, &event.Signal{}, &event.IncidentChange{}, &event.Command{},
				&event.CommandResult{}, &event.Dispatch{}, &event.AuditRecord{}, &event.DeadLetter{},
				&event.Change{}, &event.Incident{}, &auth.Account{}, &authoring.RuleVersion{},
				new(any), new(time.Time), &[]any{}, &map[string]any{}, // operand values
			} {
				rv := reflect.ValueOf(v).Elem()
				fill.value(rv, 0)
				want, werr := json.Marshal(rv.Interface())
				got, gerr := event.Marshal(rv.Interface())
				if (werr != nil) != (gerr != nil) {
					t.Fatalf("%T: encoding/json error %v, event.Marshal error %v", v, werr, gerr)
				}
				if werr == nil && !bytes.Equal(got, want) {
					t.Fatalf("%T: bytes differ:\n got %s\nwant %s", v, got, want)
				}
				if str, serr := event.MarshalString(rv.Interface()); (serr != nil) != (werr != nil) || (werr == nil && str != string(want)) {
					t.Fatalf("%T: MarshalString = %s, %v; want %s, %v", v, str, serr, want, werr)
				}
				// Encode's data member (encoded into a pooled buffer, not by Marshal) too.
				if _, isBytes := rv.Interface().([]byte); rv.Interface() == nil || isBytes {
					continue
				}
				enc, eerr := event.Encode("t", "id", time.Time{}, rv.Interface())
				if (werr != nil) != (eerr != nil) {
					t.Fatalf("%T: encoding/json error %v, event.Encode error %v", v, werr, eerr)
				}
				if werr == nil && !bytes.HasSuffix(enc, slices.Concat([]byte(`,"data":`), want, []byte("}"))) {
					t.Fatalf("%T: Encode's data differs:\n got %s\nwant %s", v, enc, want)
				}
			}
		}
	})
}

// filler sets every field of a value, nested ones too, from the fuzzer's inputs: strings
// alternate between its two, times between UTC and +08:00, interface values between the types
// an expression yields; every third map gets 20 keys. Sparse, every other pointer is nil and
// slices and maps are nil or empty.
type filler struct {
	strs   []string
	f      float64
	n      int64
	t      time.Time
	b      bool
	sparse bool
	next   int
}

func (fl *filler) tick() int {
	fl.next++
	return fl.next
}

func (fl *filler) str() string { return fl.strs[fl.tick()%len(fl.strs)] }

func (fl *filler) time() time.Time {
	if fl.tick()%2 == 0 {
		return fl.t.UTC()
	}
	return fl.t.In(time.FixedZone("", 8*3600))
}

// operand is one of the kinds of value an expression yields, as explanations carry them.
func (fl *filler) operand(depth int) any {
	switch fl.tick() % 11 {
	case 0:
		return fl.str()
	case 1:
		return int(fl.n)
	case 2:
		return fl.f
	case 3:
		return fl.b
	case 4:
		return nil
	case 5:
		return fl.time()
	case 6:
		return time.Duration(fl.n)
	case 7:
		return []string{fl.str(), fl.str()}
	case 8:
		return []float64{fl.f, -fl.f}
	case 9:
		if depth < 3 {
			return []any{fl.operand(depth + 1), fl.operand(depth + 1)}
		}
	case 10:
		if depth < 3 {
			return map[string]any{fl.str(): fl.operand(depth + 1), fl.str() + "2": fl.operand(depth + 1)}
		}
	}
	return fl.str()
}

var timeType = reflect.TypeOf(time.Time{})

func (fl *filler) value(v reflect.Value, depth int) {
	if depth > 10 || !v.CanSet() {
		return
	}
	if v.Type() == timeType {
		v.Set(reflect.ValueOf(fl.time()))
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
		if fl.sparse && fl.tick()%2 == 0 {
			return // nil
		}
		p := reflect.New(v.Type().Elem())
		fl.value(p.Elem(), depth+1)
		v.Set(p)
	case reflect.Struct:
		for i := range v.NumField() {
			fl.value(v.Field(i), depth+1)
		}
	case reflect.Slice:
		if fl.sparse {
			if fl.tick()%2 == 0 {
				v.Set(reflect.MakeSlice(v.Type(), 0, 0)) // empty, not nil
			}
			return
		}
		if v.Type().Elem().Kind() == reflect.Uint8 { // []byte: base64
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
		keys := 2
		switch {
		case fl.sparse && fl.tick()%2 == 0:
			return // nil
		case fl.sparse:
			keys = 0
		case fl.tick()%3 == 0:
			keys = 20 // beyond the 16 keys up to which the encoder sorts by insertion
		}
		for i := range keys {
			k := reflect.New(v.Type().Key()).Elem()
			fl.value(k, depth+1)
			if k.Kind() == reflect.String && i > 0 {
				k.SetString(k.String() + strconv.Itoa(i)) // distinct keys
			}
			e := reflect.New(v.Type().Elem()).Elem()
			fl.value(e, depth+1)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Interface:
		if v.NumMethod() == 0 {
			if o := fl.operand(0); o != nil {
				v.Set(reflect.ValueOf(o))
			}
		}
	}
}

// TestMayEscape: an escape of a listed rune is found in either case of its hex digits and
// anywhere in the text; other escapes, short tails and raw runes are not.
func TestMayEscape(t *testing.T) {
	for _, c := range []struct {
		in   string
		want bool
	}{
		{`{"\u0064ata":1}`, true},
		{`{"x":"\u0044"}`, true},
		{`"\u017F"`, true},
		{`"\u017f"`, true},
		{`"\u003c\u212A"`, true},
		{`"\u003c\u003e"`, false},
		{`"\u00"`, false},
		{`"\u006"`, false},
		{`"\u00zz"`, false},
		{`"data ſ K"`, false},
		{``, false},
	} {
		if got := event.MayEscape([]byte(c.in), 'd', 'D', '\u017f', '\u212a'); got != c.want {
			t.Errorf("MayEscape(%s) = %v, want %v", c.in, got, c.want)
		}
	}
}
