// Package eventtest builds the events producers send, as CloudEvents JSON maps ready to post
// to POST /api/v1/events or to write to an ingest topic, for tests of the whole system.
package eventtest

import (
	"fmt"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
)

// HotlineTicket is a CloudEvents 12345 ticket at p, as the hotline gateway sends it (the
// caller 王小明 with phone).
func HotlineTicket(id, requestType, category, content, phone string, p event.Point) map[string]any {
	return map[string]any{
		"specversion": "1.0", "id": id, "source": "hotline-12345/test", "type": event.TypeHotlineTicket,
		"time": time.Now().UTC().Format(time.RFC3339), "datacontenttype": "application/json",
		"data": map[string]any{
			"ticket_id": id, "channel": "phone", "caller_name": "王小明", "caller_phone": phone,
			"request_type": requestType, "category_code": category, "content": content,
			"lat": p.Lat, "lon": p.Lon, "urgency": "normal",
		},
	}
}

// SensorReading is a CloudEvents water-level reading of device at p (alarm above 80 cm).
func SensorReading(device string, p event.Point, levelCM float64) map[string]any {
	status := "ok"
	if levelCM > 80 {
		status = "alarm"
	}
	return map[string]any{
		"specversion": "1.0", "id": fmt.Sprintf("%s-%d", device, time.Now().UnixNano()), "source": "sensor-gw/test",
		"type": event.TypeSensorReading, "time": time.Now().UTC().Format(time.RFC3339), "datacontenttype": "application/json",
		"data": map[string]any{"device_id": device, "kind": "water_level", "metrics": map[string]any{"level_cm": levelCM},
			"lat": p.Lat, "lon": p.Lon, "status": status},
	}
}
