package incidentstest

import (
	"io/fs"
	"sync"
	"testing"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/engine"
	"github.com/urbanbrain/urbanbrain/rules/lang"
)

// With the rules engine in the loop (Options.Engine), a scenario is pushed events rather than
// signals: Send hands an event to the engine as the rules stage would, its signals go to
// city.signals on the bus and on to the incidents service, and every tick also runs the
// engine's clock (held conditions, windows closing, silent devices) on the fake time.

var demoRules = sync.OnceValues(func() ([]lang.Rule, error) {
	sub, err := fs.Sub(city.DemoFS, "demo/rules")
	if err != nil {
		return nil, err
	}
	return lang.Load(sub)
})

// DemoEngine is a rules engine over the demo city's rules, as `serve` loads them.
func DemoEngine(t testing.TB) *engine.Engine {
	t.Helper()
	rs, err := demoRules()
	if err != nil {
		t.Fatalf("demo rules: %v", err)
	}
	e, err := engine.New(engine.Config{}, rs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Send hands an event to the rules engine at the scenario's time (its Time, when zero, is
// now), and delivers the signals it raises and what follows. It needs Options.Engine.
func (s *Scenario) Send(ev event.Event) *Scenario {
	s.T.Helper()
	if s.opts.Engine == nil {
		s.T.Fatal("Send needs Options.Engine")
	}
	if ev.Time.IsZero() {
		ev.Time = s.Clock.Now()
	}
	ev.Received = s.Clock.Now()
	out, err := s.opts.Engine.HandleEvent(s.T.Context(), ev)
	if err != nil {
		s.T.Fatalf("at %s rules on %s: %v", s.Now(), ev.ID, err)
	}
	s.Bus.Write(s.T, out)
	s.Pump()
	return s
}

// Signals are the signals on city.signals, oldest first.
func (s *Scenario) Signals() []event.Signal {
	return decodeAll[event.Signal](s.T, s.Bus, event.TopicSignals, event.TypeSignal)
}

// Reading is a sensor reading at p.
func Reading(id, device, kind string, metrics map[string]float64, p event.Point, area event.Area) event.Event {
	loc := p
	return event.Event{ID: id, Type: event.TypeSensorReading, Source: "iot", Location: &loc, Area: area,
		Sensor: &event.SensorReading{DeviceID: device, Kind: kind, Metrics: metrics, Status: "alarm"}}
}

// Ticket is a 12345 work order at p.
func Ticket(id, category, requestType, content, phone string, p event.Point, area event.Area) event.Event {
	loc := p
	return event.Event{ID: id, Type: event.TypeHotlineTicket, Source: "12345", Location: &loc, Area: area,
		Hotline: &event.HotlineTicket{TicketID: id, Channel: "phone", CallerName: "市民", CallerPhone: phone,
			RequestType: requestType, CategoryCode: category, Content: content}}
}

// Detection is an AI camera's detection at p.
func Detection(id, camera, algorithm string, confidence float64, p event.Point, area event.Area) event.Event {
	loc := p
	return event.Event{ID: id, Type: event.TypeVideoDetection, Source: "video", Location: &loc, Area: area,
		Video: &event.VideoDetection{CameraID: camera, Algorithm: algorithm, Confidence: confidence}}
}
