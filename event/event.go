package event

import "time"

// Coordinate systems a producer may declare in `coordsys`. Inside the system everything is
// WGS-84; ingest converts the other two.
const (
	CoordWGS84 = "wgs84"
	CoordGCJ02 = "gcj02" // AMap, Tencent (火星坐标)
	CoordBD09  = "bd09"  // Baidu
)

// Point is a position in WGS-84 degrees.
type Point struct {
	Lon float64 `json:"lon"`
	Lat float64 `json:"lat"`
}

// Area is where an event happened in the city's administrative hierarchy:
// district (区) → street (街道) → community (社区) → grid (网格).
type Area struct {
	District      string `json:"district"`
	DistrictName  string `json:"district_name,omitempty"`
	Street        string `json:"street"`
	StreetName    string `json:"street_name,omitempty"`
	Community     string `json:"community,omitempty"`
	CommunityName string `json:"community_name,omitempty"`
	Grid          string `json:"grid,omitempty"`
	GridName      string `json:"grid_name,omitempty"`
}

// UnknownStreet keys records whose street could not be resolved, so they still have an owner.
const UnknownStreet = "unknown"

// Key is the partition key: the street code, so one consumer owns a street's state.
func (a Area) Key() string {
	if a.Street == "" {
		return UnknownStreet
	}
	return a.Street
}

// SensorReading is an IoT sensor's payload (water level, gas, manhole cover, street lamp,
// bridge and tunnel, air, noise).
type SensorReading struct {
	DeviceID string             `json:"device_id"`
	Kind     string             `json:"kind"`    // water_level, gas, manhole, street_lamp, bridge, air, noise
	Metrics  map[string]float64 `json:"metrics"` // e.g. {"level_cm": 42}
	Lat      *float64           `json:"lat,omitempty"`
	Lon      *float64           `json:"lon,omitempty"`
	CoordSys string             `json:"coordsys,omitempty"`
	Status   string             `json:"status,omitempty"`  // ok, alarm, fault, offline
	Battery  *float64           `json:"battery,omitempty"` // percent 0..100
}

// Request types of a 12345 work order.
const (
	RequestConsult   = "咨询"
	RequestHelp      = "求助"
	RequestComplaint = "投诉"
	RequestReport    = "举报"
	RequestSuggest   = "建议"
)

// HotlineTicket is a 12345 citizen hotline work order (工单). CallerName and CallerPhone are
// personal data: mask them (see package auth) before they leave the system.
type HotlineTicket struct {
	TicketID     string `json:"ticket_id"`
	Channel      string `json:"channel"` // phone, app, web, wechat, open311
	CallerName   string `json:"caller_name,omitempty"`
	CallerPhone  string `json:"caller_phone,omitempty"`
	RequestType  string `json:"request_type"` // 咨询/求助/投诉/举报/建议
	CategoryCode string `json:"category_code,omitempty"`
	// Category is the producer's own category text (工单分类, e.g. "道路积水"), kept as sent;
	// ingest maps it to a CategoryCode through the city's aliases.
	Category string `json:"category,omitempty"`
	// CategoryBy says how ingest decided CategoryCode (one of the CategoryBy… constants), and
	// CategoryMatch what decided it: the producer's text that an alias matched, or the
	// keywords found in the ticket's text.
	CategoryBy    string    `json:"category_by,omitempty"`
	CategoryMatch []string  `json:"category_match,omitempty"`
	Content       string    `json:"content"`
	Address       string    `json:"address,omitempty"`
	Lat           *float64  `json:"lat,omitempty"`
	Lon           *float64  `json:"lon,omitempty"`
	CoordSys      string    `json:"coordsys,omitempty"`
	DistrictCode  string    `json:"district_code,omitempty"`
	Urgency       string    `json:"urgency,omitempty"` // normal, urgent, emergency
	ReceivedAt    time.Time `json:"received_at,omitzero"`
}

// How a ticket's category was decided (HotlineTicket.CategoryBy).
const (
	CategoryByGiven   = "given"   // the producer sent a category_code from the city's list
	CategoryByMapped  = "mapped"  // the producer's category text is an alias of a category
	CategoryByKeyword = "keyword" // the ticket's text holds the keywords of a category
	CategoryByDefault = "default" // none of these: the generic category by request type (rules decide)
)

// VideoDetection is an AI camera's detection (illegal parking, garbage overflow, crowding,
// smoke and fire, road waterlogging, street vending).
type VideoDetection struct {
	CameraID    string    `json:"camera_id"`
	Algorithm   string    `json:"algorithm"`
	Confidence  float64   `json:"confidence"`
	BBox        []float64 `json:"bbox,omitempty"` // x, y, width, height in pixels
	SnapshotURL string    `json:"snapshot_url,omitempty"`
	ObjectCount int       `json:"object_count,omitempty"`
	Lat         *float64  `json:"lat,omitempty"`
	Lon         *float64  `json:"lon,omitempty"`
	CoordSys    string    `json:"coordsys,omitempty"`
}

// Event is a validated event as it travels on city.events: the producer's id and type, time
// in UTC, position converted to WGS-84, the resolved area, and exactly one payload.
type Event struct {
	ID       string    `json:"id"`
	Type     string    `json:"type"`
	Source   string    `json:"source"`
	Time     time.Time `json:"time"`     // when it happened (UTC)
	Received time.Time `json:"received"` // when ingest accepted it (UTC)
	Location *Point    `json:"location,omitempty"`
	Area     Area      `json:"area"`

	Sensor  *SensorReading  `json:"sensor,omitempty"`
	Hotline *HotlineTicket  `json:"hotline,omitempty"`
	Video   *VideoDetection `json:"video,omitempty"`
}

// DeadLetter is what city.deadletter carries: why input was refused and the bytes as received.
type DeadLetter struct {
	// Code is the machine-readable cause (docs/events.md, "Dead letters"): for ingest the
	// rejection class an HTTP caller gets as its code, for a stage or storage sink one of the
	// DeadLetter… constants.
	Code     string            `json:"code"`
	Reason   string            `json:"reason"`
	Topic    string            `json:"topic"` // where it came from: an ingest topic or "http"
	Key      string            `json:"key,omitempty"`
	Headers  map[string]string `json:"headers,omitempty"`
	Original []byte            `json:"original"` // base64 in JSON
	At       time.Time         `json:"at"`
}

// Codes of dead letters made by stages and storage sinks, for records on internal topics.
// Ingest's codes are its rejection classes (payload_too_large, malformed, invalid_payload, …).
const (
	DeadLetterUnsigned     = "unsigned"      // no urbanbrain-sig header on an internal topic
	DeadLetterBadSignature = "bad_signature" // the signature does not match: forged, altered or moved
	DeadLetterUndecodable  = "undecodable"   // not a CloudEvent of a type the consumer takes, or its data does not decode
	DeadLetterStaleCommand = "stale_command" // a command older than --command-max-age: refused as a replay
	DeadLetterStoreRefused = "store_refused" // the store will never take the record (it names why)
)
