package simulate

import (
	"time"

	"github.com/urbanbrain/urbanbrain/event"
)

// invalidRecord produces one deliberately bad record of the kinds ingest must dead-letter.
func (s *Simulator) invalidRecord(now time.Time) (topic string, value []byte) {
	d := pick(s.rng, s.sensors)
	good := s.reading(d, now)
	switch s.rng.IntN(5) {
	case 0: // truncated JSON
		b, _ := encode(SourceSensor, event.TypeSensorReading, d.id, now, good)
		return event.TopicIngestSensor, b[:len(b)/2]
	case 1: // unknown type
		b, _ := encode(SourceSensor, "city.sensor.unknown", d.id, now, good)
		return event.TopicIngestSensor, b
	case 2: // missing device id and metrics
		b, _ := encode(SourceSensor, event.TypeSensorReading, "", now, event.SensorReading{Kind: good.Kind})
		return event.TopicIngestSensor, b
	case 3: // latitude and longitude swapped: not a place on Earth
		good.Lat, good.Lon = good.Lon, good.Lat
		b, _ := encode(SourceSensor, event.TypeSensorReading, d.id, now, good)
		return event.TopicIngestSensor, b
	default: // invalid UTF-8 in a ticket's content
		b, _ := encode(SourceHotline, event.TypeHotlineTicket, "bad-utf8", now, event.HotlineTicket{
			TicketID: "YC12345-BAD", Channel: "web", RequestType: event.RequestComplaint, Content: "PLACEHOLDER",
		})
		return event.TopicIngestHotline, replaceOnce(b, []byte("PLACEHOLDER"), []byte{0xff, 0xfe, 'x'})
	}
}

func replaceOnce(b, old, new []byte) []byte {
	for i := 0; i+len(old) <= len(b); i++ {
		if string(b[i:i+len(old)]) == string(old) {
			out := append([]byte{}, b[:i]...)
			out = append(out, new...)
			return append(out, b[i+len(old):]...)
		}
	}
	return b
}
