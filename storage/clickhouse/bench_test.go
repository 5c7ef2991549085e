package clickhouse_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage/clickhouse"
	"github.com/urbanbrain/urbanbrain/storage/clickhouse/clickhousetest"
	"github.com/urbanbrain/urbanbrain/storage/storagetest"
)

func BenchmarkHandleEvent(b *testing.B) {
	storagetest.BenchmarkHandleEvent(b, func(b *testing.B) storagetest.Store { return openStore(b, zap.NewNop()) })
}

func BenchmarkListIncidents(b *testing.B) {
	storagetest.BenchmarkListIncidents(b, func(b *testing.B) storagetest.Store { return openStore(b, zap.NewNop()) })
}

func BenchmarkQueries(b *testing.B) {
	storagetest.BenchmarkQueries(b, func(b *testing.B) storagetest.Store { return openStore(b, zap.NewNop()) })
}

// benchEvent is a typical sensor reading.
func benchEvent(i int) event.Event {
	tm := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)
	lat, lon, bat := 30.2741, 120.1551, 87.5
	return event.Event{
		ID: fmt.Sprintf("sink-%09d", i), Type: event.TypeSensorReading, Source: "iot/dev", Time: tm, Received: tm,
		Location: &event.Point{Lon: lon, Lat: lat},
		Area:     event.Area{District: "d01", Street: fmt.Sprintf("s%03d", i%200), Grid: fmt.Sprintf("g%03d", i%200)},
		Sensor: &event.SensorReading{DeviceID: fmt.Sprintf("dev-%d", i%2000), Kind: "water_level",
			Metrics: map[string]float64{"level_cm": 42.5}, Lat: &lat, Lon: &lon, Status: "ok", Battery: &bat},
	}
}

// BenchmarkSink compares, in one run on one server, the store's batch write of events (what
// the storage sink calls: encoding, row building, the insert with isolation of refused rows)
// with a bare clickhouse-go batch insert of the very same rows, built before the clock starts.
// The two alternate batch by batch, so that load from elsewhere on the machine falls on both
// alike; it reports rows/s of each and their ratio (docs/performance.md, "Storage").
func BenchmarkSink(b *testing.B) {
	const batch = 5000
	srv := clickhousetest.Require(b)
	s := openStore(b, zap.NewNop()) // the store's own database
	bare := openStore(b, zap.NewNop())
	_ = bare.Close()
	// A second database with the same schema for the bare inserts, so both tables grow alike.
	db := clickhousetest.Database("bare")
	bs, err := clickhouse.Open(b.Context(), clickhouse.Config{Addrs: []string{srv.Addr()}, Database: db}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	_ = bs.Close()
	conn, err := ch.Open(&ch.Options{Addr: []string{srv.Addr()}, Auth: ch.Auth{Database: db}})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()

	evs := make([]event.Event, batch)
	rows := make([][]any, batch)
	next := 0
	var bareTime, storeTime time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	sent := 0
	for sent < b.N {
		b.StopTimer()
		for k := range evs {
			e := benchEvent(next)
			next++
			evs[k] = e
			payload, _ := json.Marshal(e)
			rows[k] = []any{e.ID, e.Type, e.Source, e.Time.UnixMilli(), e.Received.UnixMilli(), uint8(1),
				e.Location.Lon, e.Location.Lat, e.Area.District, e.Area.Street, e.Area.Community, e.Area.Grid,
				e.Sensor.DeviceID, "", "", string(payload)}
		}
		b.StartTimer()

		t0 := time.Now()
		bt, err := conn.PrepareBatch(b.Context(), `INSERT INTO events (id, type, source, time_ms, received_ms, has_location,
			lon, lat, district, street, community, grid, device, content, address, payload)`)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range rows {
			if err := bt.Append(r...); err != nil {
				b.Fatal(err)
			}
		}
		if err := bt.Send(); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := s.HandleEvents(b.Context(), evs); err != nil {
			b.Fatal(err)
		}
		storeTime += time.Since(t1)
		bareTime += t1.Sub(t0)
		sent += batch
	}
	bareRate := float64(sent) / bareTime.Seconds()
	storeRate := float64(sent) / storeTime.Seconds()
	b.ReportMetric(bareRate, "bare-rows/s")
	b.ReportMetric(storeRate, "store-rows/s")
	b.ReportMetric(storeRate/bareRate, "store/bare")
}
