package incidentstest

import (
	"math"

	"github.com/urbanbrain/urbanbrain/event"
)

// Offset is p moved east and north by the given meters.
func Offset(p event.Point, east, north float64) event.Point {
	const m = 111_320.0
	return event.Point{
		Lon: p.Lon + east/(m*math.Cos(p.Lat*math.Pi/180)),
		Lat: p.Lat + north/m,
	}
}

// Sensor is a water-level style sensor alarm as the demo rules raise it.
func Sensor(eventID, device, category, severity string, p event.Point, area event.Area) event.Signal {
	sig := base("sensor-rule", eventID, category, severity, "sensor:"+device, p, area)
	sig.Event.Type = event.TypeSensorReading
	sig.Event.Sensor = &event.SensorReading{DeviceID: device, Kind: "water_level", Status: "alarm",
		Metrics: map[string]float64{"level_cm": 95}}
	sig.Title = "水位超警戒"
	return sig
}

// Call is a 12345 work order as the hotline rule raises it: the key is category and grid.
func Call(ticketID, category, severity, content, phone string, p event.Point, area event.Area) event.Signal {
	sig := base("hotline-ticket", ticketID, category, severity, "hotline:"+category+":"+area.Grid, p, area)
	sig.Event.Type = event.TypeHotlineTicket
	sig.Event.Hotline = &event.HotlineTicket{TicketID: ticketID, Channel: "phone", CallerName: "市民",
		CallerPhone: phone, RequestType: event.RequestReport, CategoryCode: category, Content: content}
	sig.Title = "12345 工单 " + ticketID
	return sig
}

// Camera is an AI camera detection as the video rules raise it.
func Camera(eventID, camera, algorithm, category, severity string, p event.Point, area event.Area) event.Signal {
	sig := base("video-"+algorithm, eventID, category, severity, "video:"+camera+":"+algorithm, p, area)
	sig.Event.Type = event.TypeVideoDetection
	sig.Event.Video = &event.VideoDetection{CameraID: camera, Algorithm: algorithm, Confidence: 0.93}
	sig.Title = "摄像头 " + camera + " " + algorithm
	return sig
}

func base(rule, eventID, category, severity, key string, p event.Point, area event.Area) event.Signal {
	loc := p
	return event.Signal{
		ID: rule + "@1/" + eventID, RuleID: rule, RuleVersion: 1,
		Category: category, Severity: severity, CorrelationKey: key,
		Event: event.Event{ID: eventID, Location: &loc, Area: area},
	}
}
