package simulate

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Producer sources, as the real systems would name themselves.
const (
	SourceSensor  = "sensor-gw/yunchuan" // IoT gateway
	SourceHotline = "12345/yunchuan"     // the 12345 hotline platform
	SourceVideo   = "video-ai/yunchuan"  // the video analytics platform
)

// cst is Asia/Shanghai (no DST since 1991), the zone producers stamp their times in.
var cst = time.FixedZone("CST", 8*3600)

// envelope is a CloudEvents 1.0 structured-mode record. The simulator writes it itself rather
// than through the SDK, because real producers stamp local time with its offset
// (2025-06-02T09:30:00.123+08:00) and the SDK would rewrite it to UTC; ingest must cope.
type envelope struct {
	SpecVersion     string `json:"specversion"`
	ID              string `json:"id"`
	Source          string `json:"source"`
	Type            string `json:"type"`
	Subject         string `json:"subject,omitempty"`
	Time            string `json:"time"`
	DataContentType string `json:"datacontenttype"`
	Data            any    `json:"data"`
}

// encode builds a structured CloudEvent with a fresh id. Ids come from crypto/rand, not from
// the seeded generator, so that replaying a seed is new traffic and not a pile of duplicates.
func encode(source, ceType, subject string, at time.Time, data any) ([]byte, error) {
	b, err := json.Marshal(envelope{
		SpecVersion:     "1.0",
		ID:              uuid.NewString(),
		Source:          source,
		Type:            ceType,
		Subject:         subject,
		Time:            at.In(cst).Format("2006-01-02T15:04:05.000Z07:00"),
		DataContentType: "application/json",
		Data:            data,
	})
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", ceType, err)
	}
	return b, nil
}
