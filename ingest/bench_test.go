package ingest_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/ingest"
	"github.com/urbanbrain/urbanbrain/ingest/ingesttest"
)

// discard is a Sink that drops what it is given; the stage path never calls it.
type discard struct{}

func (discard) Write(context.Context, event.Outputs) error { return nil }

// BenchmarkIngest measures one structured event through HandleRecord and the encoding of its
// output as the stage runner does it: decode, validate, coordinate conversion where asked,
// area resolution, encode. (Before outputs, HandleRecord encoded and published itself: the
// figures compare across that change.) Every iteration has a fresh id (written into the
// record in place) so none is dropped as a duplicate.
func BenchmarkIngest(b *testing.B) {
	g := grid(b, 40)
	const idTemplate = "bench-0000000000000000"
	// A ticket with only text: the city's keywords decide its category (issue 12 item 3).
	textOnly := ingesttest.Hotline("T-bench", g.Centroid, "")
	textOnly.CategoryCode, textOnly.Content = "", "云栖路下穿隧道积水很深，已经没过小腿，好几辆车熄火了，请尽快派人排水"
	cases := []struct {
		name, topic, typ string
		data             any
	}{
		{"sensor", event.TopicIngestSensor, event.TypeSensorReading, ingesttest.Sensor(g.Centroid, "")},
		{"hotline", event.TopicIngestHotline, event.TypeHotlineTicket, ingesttest.Hotline("T-bench", g.Centroid, "")},
		{"hotline-text", event.TopicIngestHotline, event.TypeHotlineTicket, textOnly},
		{"video", event.TopicIngestVideo, event.TypeVideoDetection, ingesttest.Video(g.Centroid, "")},
		{"video-gcj02", event.TopicIngestVideo, event.TypeVideoDetection, ingesttest.Video(city.WGS84ToGCJ02(g.Centroid), event.CoordGCJ02)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			s, err := ingest.New(ingest.Config{Now: func() time.Time { return now }}, demoMap(b), discard{}, nil)
			if err != nil {
				b.Fatal(err)
			}
			value := ingesttest.Structured(b, c.typ, idTemplate, now, c.data)
			at := bytes.Index(value, []byte(idTemplate))
			digits := value[at+len("bench-") : at+len(idTemplate)]
			r := ingest.Record{Topic: c.topic, Key: "k", Value: value}
			ctx := context.Background()
			b.SetBytes(int64(len(value)))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				for j, n := len(digits)-1, i; j >= 0; j, n = j-1, n/10 {
					digits[j] = byte('0' + n%10)
				}
				outs, err := s.HandleRecord(ctx, r)
				if err != nil || len(outs) != 1 {
					b.Fatalf("HandleRecord = %d outputs, %v", len(outs), err)
				}
				if _, err := ingesttest.Encode(outs[0]); err != nil {
					b.Fatal(err)
				}
			}
			if st := s.Stats().ByType[c.typ]; st.Rejected != 0 || st.Duplicates != 0 {
				b.Fatalf("counts = %+v: the benchmark measured rejections or duplicates", st)
			}
			if c.name == "hotline-text" && s.Stats().Categories[event.CategoryByKeyword] == 0 {
				b.Fatal("the text-only ticket was not classified by keyword")
			}
		})
	}
}
