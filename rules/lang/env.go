package lang

import (
	"errors"
	"fmt"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
)

// The environments below are what an expression sees. They are typed so that a misspelt or
// forbidden field is a compile error when the rule is loaded, never a silent false at run time.
// Field names follow the JSON schema (snake_case) through `expr` tags.
//
// They deliberately copy only what rules may use: the 12345 caller's name and phone are not
// here, and the free text that may hold personal numbers (a ticket's content and address) is
// masked as it is copied in (auth.MaskText: "我的电话138****5678"), so no rule — whatever it
// does with the text: split it, index it, compare it digit by digit — can put a caller's phone
// or ID number into a title, a correlation key, a dry run, a backtest or an error, nor test
// for one. A rule sees what its author may see; the signal still carries the whole event.

// Common is what every event type shares.
type Common struct {
	ID       string    `expr:"id"`
	Type     string    `expr:"type"`
	Source   string    `expr:"source"`
	Time     time.Time `expr:"time"` // when it happened; hour(time) and weekday(time) read it in Beijing time
	Area     Area      `expr:"area"`
	Location Location  `expr:"location"`
	// Window holds a window rule's aggregate while its raise fields are rendered
	// ("{{window.count}} 起投诉"); no other expression may read it.
	Window WindowValues `expr:"window"`

	steps int // closure iterations of the running expression, see stepBudget
}

// WindowValues are a window's aggregate over the events of one group key. Having reads them
// as count, sum, avg, min and max; raise fields as window.count and so on. Without `of`,
// only count is known.
type WindowValues struct {
	Count int       `expr:"count" json:"count"`
	Sum   float64   `expr:"sum" json:"sum"`
	Avg   float64   `expr:"avg" json:"avg"`
	Min   float64   `expr:"min" json:"min"`
	Max   float64   `expr:"max" json:"max"`
	Start time.Time `expr:"start" json:"start"` // the first event's time (sliding) or the period's start (tumbling)
	End   time.Time `expr:"end" json:"end"`     // the last event's time (sliding) or the period's end (tumbling)
}

// HavingEnv is what window.having is compiled against.
type HavingEnv struct {
	WindowValues
	steps int
}

func (h *HavingEnv) step() bool {
	h.steps++
	return h.steps <= stepBudget
}

func (c *Common) step() bool {
	c.steps++
	return c.steps <= stepBudget
}

// Area is where the event happened: district (区) → street (街道) → community (社区) → grid (网格).
type Area struct {
	District      string `expr:"district"`
	DistrictName  string `expr:"district_name"`
	Street        string `expr:"street"`
	StreetName    string `expr:"street_name"`
	Community     string `expr:"community"`
	CommunityName string `expr:"community_name"`
	Grid          string `expr:"grid"`
	GridName      string `expr:"grid_name"`
}

// Location is the event's position in WGS-84 degrees; Known is false (and Lon, Lat zero) when
// the producer sent none.
type Location struct {
	Lon   float64 `expr:"lon"`
	Lat   float64 `expr:"lat"`
	Known bool    `expr:"known"`
}

// Sensor is a sensor reading as a rule sees it (`sensor.kind`, `sensor.metrics["level_cm"]`).
// A metric the reading does not carry reads as 0; test `"name" in sensor.metrics` where 0 is a
// meaningful value. Battery is nil when the device does not report it (`sensor.battery ?? 100`).
type Sensor struct {
	DeviceID string             `expr:"device_id"`
	Kind     string             `expr:"kind"`
	Metrics  map[string]float64 `expr:"metrics"`
	Status   string             `expr:"status"`
	Battery  *float64           `expr:"battery"`
}

// Hotline is a 12345 work order as a rule sees it. It has no caller name or phone on purpose,
// and the phone and ID numbers inside Content and Address are masked.
type Hotline struct {
	TicketID     string `expr:"ticket_id"`
	Channel      string `expr:"channel"`
	RequestType  string `expr:"request_type"` // 咨询/求助/投诉/举报/建议
	CategoryCode string `expr:"category_code"`
	CategoryBy   string `expr:"category_by"` // how ingest decided the code: given, mapped, keyword, default
	Content      string `expr:"content"`
	Address      string `expr:"address"`
	Urgency      string `expr:"urgency"` // normal, urgent, emergency
	DistrictCode string `expr:"district_code"`
}

// Video is an AI camera detection as a rule sees it.
type Video struct {
	CameraID    string  `expr:"camera_id"`
	Algorithm   string  `expr:"algorithm"`
	Confidence  float64 `expr:"confidence"`
	ObjectCount int     `expr:"object_count"`
	SnapshotURL string  `expr:"snapshot_url"`
}

// SensorEnv is the environment of rules on city.sensor.reading.
type SensorEnv struct {
	Common
	Sensor Sensor `expr:"sensor"`
}

// HotlineEnv is the environment of rules on city.hotline.ticket.
type HotlineEnv struct {
	Common
	Hotline Hotline `expr:"hotline"`
}

// VideoEnv is the environment of rules on city.video.detection.
type VideoEnv struct {
	Common
	Video Video `expr:"video"`
}

// EventTypes are the event types a rule may listen to, in a stable order.
var EventTypes = []string{event.TypeSensorReading, event.TypeHotlineTicket, event.TypeVideoDetection}

// EnvFor returns the zero environment that expressions for events of type t are compiled
// against, or nil if t is not an event type rules can listen to.
func EnvFor(t string) any {
	switch t {
	case event.TypeSensorReading:
		return SensorEnv{}
	case event.TypeHotlineTicket:
		return HotlineEnv{}
	case event.TypeVideoDetection:
		return VideoEnv{}
	}
	return nil
}

// ErrNoPayload is returned for an event whose payload does not match its type; ingest
// should never let one through, so it is reported rather than evaluated against zero values.
var ErrNoPayload = errors.New("event has no payload for its type")

// Scratch is what one evaluation needs besides the rules: a VM and room for the environment.
// Engines pool them, so evaluating an event allocates neither.
type Scratch struct {
	VM      vm.VM
	sensor  SensorEnv
	hotline HotlineEnv
	video   VideoEnv
	Having  HavingEnv

	Buf []byte // raise fields are rendered here
	// Reused: a stored event's environment was built over the one being handled (a
	// signal raised by time, built from a key's newest event)
	Reused bool
}

// Clear readies a pooled scratch for the next event. The environments and the event copy are
// not zeroed — the next event overwrites them, and zeroing structs this large costs more than
// evaluating a rule — so a pooled scratch keeps its last event alive until then; the pool
// holds at most a few per CPU.
func (s *Scratch) Clear() {
	if cap(s.Buf) > 4<<10 {
		s.Buf = nil // a rare long title: not kept in the pool
	}
}

// EnvOf builds a fresh environment for one event, for callers without a scratch.
func EnvOf(ev event.Event) (any, error) {
	s := &Scratch{VM: NewVM()}
	return s.Env(&ev)
}

// CommonOf returns the part of an environment every event type shares.
func CommonOf(env any) *Common {
	switch e := env.(type) {
	case *SensorEnv:
		return &e.Common
	case *HotlineEnv:
		return &e.Common
	case *VideoEnv:
		return &e.Common
	}
	return nil
}

// Env fills the environment for ev and returns a pointer to it; expr reads through pointers,
// and a pointer into the scratch costs no allocation where boxing the struct would. The
// result is shared by every rule evaluated on the event: expressions cannot assign, so
// sharing the metrics map is safe.
func (s *Scratch) Env(ev *event.Event) (any, error) {
	c := Common{
		ID:     ev.ID,
		Type:   ev.Type,
		Source: ev.Source,
		Time:   ev.Time,
		Area: Area{
			District:      ev.Area.District,
			DistrictName:  ev.Area.DistrictName,
			Street:        ev.Area.Street,
			StreetName:    ev.Area.StreetName,
			Community:     ev.Area.Community,
			CommunityName: ev.Area.CommunityName,
			Grid:          ev.Area.Grid,
			GridName:      ev.Area.GridName,
		},
	}
	if ev.Location != nil {
		c.Location = Location{Lon: ev.Location.Lon, Lat: ev.Location.Lat, Known: true}
	}
	switch ev.Type {
	case event.TypeSensorReading:
		r := ev.Sensor
		if r == nil {
			return nil, fmt.Errorf("event %s (%s): %w", ev.ID, ev.Type, ErrNoPayload)
		}
		s.sensor = SensorEnv{Common: c, Sensor: Sensor{
			DeviceID: r.DeviceID,
			Kind:     r.Kind,
			Metrics:  r.Metrics,
			Status:   r.Status,
			Battery:  r.Battery,
		}}
		return &s.sensor, nil
	case event.TypeHotlineTicket:
		h := ev.Hotline
		if h == nil {
			return nil, fmt.Errorf("event %s (%s): %w", ev.ID, ev.Type, ErrNoPayload)
		}
		s.hotline = HotlineEnv{Common: c, Hotline: Hotline{
			TicketID:     h.TicketID,
			Channel:      h.Channel,
			RequestType:  h.RequestType,
			CategoryCode: h.CategoryCode,
			CategoryBy:   h.CategoryBy,
			Content:      auth.MaskText(h.Content),
			Address:      auth.MaskText(h.Address),
			Urgency:      h.Urgency,
			DistrictCode: h.DistrictCode,
		}}
		return &s.hotline, nil
	case event.TypeVideoDetection:
		v := ev.Video
		if v == nil {
			return nil, fmt.Errorf("event %s (%s): %w", ev.ID, ev.Type, ErrNoPayload)
		}
		s.video = VideoEnv{Common: c, Video: Video{
			CameraID:    v.CameraID,
			Algorithm:   v.Algorithm,
			Confidence:  v.Confidence,
			ObjectCount: v.ObjectCount,
			SnapshotURL: v.SnapshotURL,
		}}
		return &s.video, nil
	}
	return nil, fmt.Errorf("event %s: type %q has no rule environment", ev.ID, ev.Type)
}
