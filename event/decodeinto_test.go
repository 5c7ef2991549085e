package event_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/urbanbrain/urbanbrain/event"
)

// FuzzDecodeIntoMatchesDecodeAny: DecodeInto, which reads the usual record in one pass, gives
// what DecodeAny gives — the same envelope, the same error or none, and the same value — for
// every record type the stages decode, whatever the bytes.
func FuzzDecodeIntoMatchesDecodeAny(f *testing.F) {
	for _, s := range samples() {
		if b, err := event.Encode(s.ceType, s.id, s.at, s.data); err == nil {
			f.Add(b)
		}
	}
	const head = `{"specversion":"1.0","id":"x","source":"s","type":"city.incident.changed"`
	for _, s := range []string{
		head + `}`,
		head + `,"data":null}`,
		head + `,"data":"text"}`,
		head + `,"data":{"incident":{"id":1}}}`,
		head + `,"data":{"incident":{"id":"I-1","version":2},"change":{"action":"open"},"extra":[1,{"a":null}]}}`,
		head + `,"data":{},"data_base64":"e30="}`,
		head + `,"data_base64":"eyJpbmNpZGVudCI6eyJpZCI6IkktMSJ9fQ=="}`,
		head + `,"datacontenttype":"text/plain","data":{}}`,
		head + `,"data":{},"time":"yesterday"}`,
		head + `,"data":{},"time":""}`,
		`{"specversion":"0.3","id":"x","source":"s","type":"city.incident.changed","data":{}}`,
		`{"specversion":"1.0","id":" ","source":"","type":"city.incident.changed","data":{}}`,
		`{"specversion":"1.0","id":"x","source":"s","type":"city.other","data":{}}`,
		`{"specversion":"1.0","id":"x","source":"s","type":"city.signal","data":{"id":"S","event":{"id":"e","metrics":1}}}`,
		// Two data members (found by review): the last one wins, as encoding/json has it.
		`{"specversion":"1.0","id":"x","source":"s","type":"city.signal","data":{"id":"S"},"data":{"rule_id":"r"}}`,
		`{"specversion":"1.0","id":"x","source":"s","type":"city.signal","Data":{"id":"S"},"data":{"rule_id":"r"}}`,
		`{"specversion":"1.0","id":"x","source":"s","type":"city.signal","data":{"id":"S"},"dAtA":{"rule_id":"r"}}`,
		`{"specversion":"1.0","id":"x","source":"s","type":"city.signal","data":{"id":"S"},"d\u0061ta":{"rule_id":"r"}}`,
		head + `,"data":{"incident":{"id":"I-1","version":3}},"DATA":{"incident":{"version":4}}}`,
		head + `,"data":{"incident":{"id":"I-1"}},"data":{}}`,
		head + `,"data":{"incident":{"id":"I-1","title":"\"data\""}}}`,
		head + `,"data":{"incident":{"id":"I-1"}}} `,
		head + `,"data":{"incident":{"id":"I-1"}}}x`,
	} {
		f.Add([]byte(s))
	}
	types := []string{event.TypeIncidentChanged, event.TypeSignal, event.TypeDispatch, event.TypeCommand,
		event.TypeSensorReading, event.TypeHotlineTicket, event.TypeVideoDetection}
	f.Fuzz(func(t *testing.T, b []byte) {
		same[event.IncidentChange](t, b, types)
		same[event.Signal](t, b, types)
		same[event.Dispatch](t, b, types)
		same[event.Command](t, b, types)
		same[event.Event](t, b, types)
		same[map[string]any](t, b, types)
	})
}

func same[T any](t *testing.T, b []byte, types []string) {
	t.Helper()
	var want, got T
	wantEnv, wantErr := event.DecodeAny(b, types, &want)
	// DecodeInto replaces what out held: give it something to replace.
	if err := json.Unmarshal([]byte(`{"id":"stale","rule_id":"stale","incident":{"id":"stale"},"stale":1}`), &got); err != nil {
		t.Fatal(err)
	}
	gotEnv, gotErr := event.DecodeInto(b, types, &got)
	if (wantErr == nil) != (gotErr == nil) || wantErr != nil && wantErr.Error() != gotErr.Error() {
		t.Fatalf("%T from %q: DecodeInto error %v, DecodeAny %v", got, b, gotErr, wantErr)
	}
	if !reflect.DeepEqual(gotEnv, wantEnv) {
		t.Fatalf("%T from %q: DecodeInto envelope %+v, DecodeAny %+v", got, b, gotEnv, wantEnv)
	}
	if wantErr != nil {
		return
	}
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	if !reflect.DeepEqual(got, want) || !bytes.Equal(gotJSON, wantJSON) {
		t.Fatalf("%T from %q:\nDecodeInto %s\nDecodeAny  %s", got, b, gotJSON, wantJSON)
	}
}

// BenchmarkDecodeInto: the one-pass read of the stages against DecodeAny's two passes, on the
// records the stages decode most (signals and incident changes).
func BenchmarkDecodeInto(b *testing.B) {
	for _, r := range benchRecords() {
		value, err := event.Encode(r.ceType, r.id, r.at, r.data)
		if err != nil {
			b.Fatal(err)
		}
		types := []string{r.ceType}
		switch r.data.(type) {
		case event.Signal:
			benchDecodeInto[event.Signal](b, r.name, value, types)
		case event.IncidentChange:
			benchDecodeInto[event.IncidentChange](b, r.name, value, types)
		default:
			b.Fatalf("no benchmark for %T", r.data)
		}
	}
}

func benchDecodeInto[T any](b *testing.B, name string, value []byte, types []string) {
	for _, d := range []struct {
		pass   string
		decode func(*T) error
	}{
		{"two-pass", func(v *T) error { _, err := event.DecodeAny(value, types, v); return err }},
		{"one-pass", func(v *T) error { _, err := event.DecodeInto(value, types, v); return err }},
	} {
		b.Run(name+"/"+d.pass, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(value)))
			for b.Loop() {
				var v T
				if err := d.decode(&v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
