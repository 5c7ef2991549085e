package clickhouse_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/urbanbrain/urbanbrain/event"
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
// rows/s of the two is the figure docs/performance.md reports.
func BenchmarkSink(b *testing.B) {
	const batch = 5000
	srv := clickhousetest.Require(b)
	b.Run("bare-clickhouse-go", func(b *testing.B) {
		openStore(b, zap.NewNop()) // creates the schema in a database of its own
		db, _ := databases.Load(b)
		conn, err := ch.Open(&ch.Options{Addr: []string{srv.Addr()}, Auth: ch.Auth{Database: db.(string)}})
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		rows := make([][]any, batch)
		next := 0
		build := func() {
			for k := range rows {
				e := benchEvent(next)
				next++
				payload, _ := json.Marshal(e)
				rows[k] = []any{e.ID, e.Type, e.Source, e.Time.UnixMilli(), e.Received.UnixMilli(), uint8(1),
					e.Location.Lon, e.Location.Lat, e.Area.District, e.Area.Street, e.Area.Community, e.Area.Grid,
					e.Sensor.DeviceID, "", "", string(payload)}
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		sent := 0
		for sent < b.N {
			b.StopTimer()
			build()
			b.StartTimer()
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
			sent += batch
		}
		b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("store.HandleEvents", func(b *testing.B) {
		s := openStore(b, zap.NewNop())
		evs := make([]event.Event, batch)
		next := 0
		b.ReportAllocs()
		b.ResetTimer()
		sent := 0
		for sent < b.N {
			b.StopTimer()
			for k := range evs {
				evs[k] = benchEvent(next)
				next++
			}
			b.StartTimer()
			if err := s.HandleEvents(b.Context(), evs); err != nil {
				b.Fatal(err)
			}
			sent += batch
		}
		b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "rows/s")
	})
}
