package replay

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
)

// Readings describes a generated file of sensor readings, for tests and benchmarks.
type Readings struct {
	N       int           // lines
	Points  []event.Point // where devices are (cycled), e.g. the demo city's grid centroids
	Devices int           // distinct devices (default 1000)
	Start   time.Time     // time of the first reading
	Step    time.Duration // between readings (default 1s)
	Seed    uint64
	// Bare writes bare payloads (replay with Type city.sensor.reading) instead of CloudEvents.
	Bare bool
	// HotShare, when set, is the share of readings above 50 °C (uniform in (50, 60)); the
	// others are uniform in [0, 50]. Without it temperatures are uniform in [0, 60).
	HotShare float64
	// BadEvery, when set, makes every BadEvery-th line malformed JSON and the line after it
	// a reading with latitude 91, so the file exercises rejections.
	BadEvery int
}

// Generated is what a generated file holds.
type Generated struct {
	Lines     int
	Hot       int // readings with metrics.temperature > 50
	Malformed int
	BadLat    int
}

// Generate writes the readings. Temperatures are uniform in [0, 60) °C, so about one reading
// in six is above 50, unless HotShare says otherwise.
func Generate(w io.Writer, cfg Readings) (Generated, error) {
	if len(cfg.Points) == 0 {
		return Generated{}, fmt.Errorf("generate: no points")
	}
	if cfg.Devices == 0 {
		cfg.Devices = 1000
	}
	if cfg.Step == 0 {
		cfg.Step = time.Second
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	bw := bufio.NewWriterSize(w, 1<<20)
	var g Generated
	type data struct {
		DeviceID string             `json:"device_id"`
		Kind     string             `json:"kind"`
		Metrics  map[string]float64 `json:"metrics"`
		Lat      float64            `json:"lat"`
		Lon      float64            `json:"lon"`
		Status   string             `json:"status"`
	}
	type envelope struct {
		SpecVersion     string `json:"specversion"`
		ID              string `json:"id"`
		Source          string `json:"source"`
		Type            string `json:"type"`
		Time            string `json:"time"`
		DataContentType string `json:"datacontenttype"`
		Data            data   `json:"data"`
	}
	metrics := map[string]float64{}
	for i := range cfg.N {
		g.Lines++
		if cfg.BadEvery > 0 && i%cfg.BadEvery == cfg.BadEvery-1 {
			g.Malformed++
			if _, err := bw.WriteString(`{"specversion": "1.0", "id": "broken` + strconv.Itoa(i) + "\n"); err != nil {
				return g, err
			}
			continue
		}
		dev := i % cfg.Devices
		p := cfg.Points[dev%len(cfg.Points)]
		temp := float64(rng.IntN(600)) / 10
		if cfg.HotShare > 0 {
			if rng.Float64() < cfg.HotShare {
				temp = 50 + float64(1+rng.IntN(99))/10
			} else {
				temp = float64(rng.IntN(501)) / 10
			}
		}
		d := data{DeviceID: "TH-" + strconv.Itoa(dev), Kind: "air", Metrics: metrics, Lat: p.Lat, Lon: p.Lon, Status: "ok"}
		metrics["temperature"] = temp
		metrics["humidity"] = float64(40 + i%50)
		metrics["seq"] = float64(i) // a bare payload's id is its content: keep every line distinct
		if cfg.BadEvery > 0 && i%cfg.BadEvery == 0 && i > 0 {
			d.Lat = 91
			g.BadLat++
		} else if temp > 50 {
			g.Hot++
		}
		var b []byte
		var err error
		if cfg.Bare {
			b, err = json.Marshal(d)
		} else {
			at := cfg.Start.Add(time.Duration(i) * cfg.Step).Format(time.RFC3339)
			b, err = json.Marshal(envelope{SpecVersion: "1.0", ID: "r-" + strconv.Itoa(i), Source: "replay/gen",
				Type: event.TypeSensorReading, Time: at, DataContentType: "application/json", Data: d})
		}
		if err != nil {
			return g, err
		}
		bw.Write(b)
		if err := bw.WriteByte('\n'); err != nil {
			return g, err
		}
	}
	return g, bw.Flush()
}
