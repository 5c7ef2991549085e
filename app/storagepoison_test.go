package app

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/storage/clickhouse/clickhousetest"
	"github.com/urbanbrain/urbanbrain/transport"
)

// One bad record in a large batch — an event time no store can keep, and bytes that are not a
// CloudEvent — goes to city.deadletter with its reason; every other record is stored once.
func TestStoragePoisonRowIsDeadLettered(t *testing.T) {
	for _, backend := range []string{StoreSQLite, StoreClickHouse} {
		t.Run(backend, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.DataDir = t.TempDir()
			cfg.BrokerListen = freeAddr(t)
			cfg.Partitions = 3
			cfg.Components = []string{CompStorage}
			cfg.StoreBatchSize = 5000
			cfg.StoreFlushInterval = 200 * time.Millisecond
			if backend == StoreClickHouse {
				srv := clickhousetest.New(t)
				cfg.Store, cfg.ClickHouseAddrs, cfg.ClickHouseDatabase = StoreClickHouse, []string{srv.Addr()}, "poison"
			}
			r := startCfg(t, cfg)
			f := newFeed(t, r.app)
			recs := sensorRecords(t, "p", 3000, time.Now().UTC().Add(-time.Hour))
			bad := event.Event{ID: "p-bad", Type: event.TypeSensorReading, Time: time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC),
				Area: event.Area{Street: "s1"}, Sensor: &event.SensorReading{DeviceID: "dev-x"}}
			b, err := event.Encode(event.TypeSensorReading, bad.ID, bad.Time, bad)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs[:1500], append([][2]string{{"s1", string(b)}, {"s1", "this is not a CloudEvent"}}, recs[1500:]...)...)
			f.send(event.TopicEvents, recs)
			f.send(event.TopicEvents, recs[:700]) // redelivered, as after a crash

			stored := func() int {
				n := 0
				_ = r.app.store.EachEvent(context.Background(), storage.EventFilter{}, func(event.Event) error { n++; return nil })
				return n
			}
			eventually(t, 60*time.Second, "3000 events stored", func() bool { return stored() == 3000 })
			var letters []event.DeadLetter
			eventually(t, 60*time.Second, "two dead letters per delivery of the bad records", func() bool {
				letters = letters[:0]
				err := transport.ReadAll(context.Background(), r.app.BrokerAddrs(), event.TopicDeadLetter, func(_ string, v []byte) error {
					var dl event.DeadLetter
					if _, err := event.Decode(v, event.TypeDeadLetter, &dl); err != nil {
						return err
					}
					letters = append(letters, dl)
					return nil
				})
				return err == nil && len(letters) >= 2
			})
			reasons := map[string]string{}
			for _, dl := range letters {
				if dl.Topic != event.TopicEvents {
					t.Errorf("dead letter from topic %q, want %s", dl.Topic, event.TopicEvents)
				}
				reasons[string(dl.Original)] = dl.Reason
			}
			if reason := reasons[string(b)]; !strings.Contains(reason, "refused by the store") {
				t.Errorf("the out-of-range event's dead letter says %q; want the store's refusal", reason)
			}
			if reason := reasons["this is not a CloudEvent"]; !strings.Contains(reason, "not a CloudEvent") {
				t.Errorf("the garbage record's dead letter says %q", reason)
			}
			if len(reasons) != 2 {
				t.Errorf("dead letters for %d distinct records, want 2: %v", len(reasons), fmt.Sprint(reasons))
			}
			if n := stored(); n != 3000 {
				t.Errorf("stored %d events, want 3000 once each", n)
			}
		})
	}
}
