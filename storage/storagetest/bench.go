package storagetest

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
)

// BenchmarkHandleEvent measures storing events one at a time (as the consumer does now) and in
// batches; each op is one event, and rows/s is reported. open must return an empty store.
func BenchmarkHandleEvent(b *testing.B, open func(b *testing.B) Store) {
	a := area("d1", "s1", "c1", "g1")
	// Ids as producers make them (UUIDs, in no order), made before the clock starts: a store
	// that indexes events by id takes them anywhere in that index, where sequential ids would
	// append to it (at 300,000 rows they made a row look a third cheaper than it was).
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = uuid.NewSHA1(uuid.NameSpaceOID, strconv.AppendInt(nil, int64(i), 10)).String()
		}
		return out
	}
	mk := func(id string, i int) event.Event {
		return sensorEvent(id, a, fmt.Sprintf("dev-%d", i%500), at(time.Duration(i)*time.Millisecond))
	}
	b.Run("single", func(b *testing.B) {
		s := open(b)
		ctx := b.Context()
		id := ids(b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if err := s.HandleEvent(ctx, mk(id[i], i)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	for _, size := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := open(b)
			ctx := b.Context()
			batch := make([]event.Event, 0, size)
			id := ids(b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				batch = append(batch, mk(id[i], i))
				if len(batch) == size || i == b.N-1 {
					if err := s.HandleEvents(ctx, batch); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkHandleIncidentChange measures applying changelog records one at a time: each op
// is one record of a seven-step lifecycle.
func BenchmarkHandleIncidentChange(b *testing.B, open func(b *testing.B) Store) {
	s := open(b)
	ctx := b.Context()
	b.ReportAllocs()
	var log []event.IncidentChange
	b.ResetTimer()
	for i := range b.N {
		if len(log) == 0 {
			b.StopTimer()
			spec := flood
			spec.id = fmt.Sprintf("INC-s1-%09d", i)
			log = spec.changelog()
			b.StartTimer()
		}
		if err := s.HandleIncidentChange(ctx, log[0]); err != nil {
			b.Fatal(err)
		}
		log = log[1:]
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkHandleIncidentChangeBatches stores the changelog as the storage sink does, in
// batches: 500 records a batch over 100 incidents, each incident five versions further per
// batch (a busy incident: every reading of a device's episode is a change).
func BenchmarkHandleIncidentChangeBatches(b *testing.B, open func(b *testing.B) Store) {
	s := open(b)
	ctx := b.Context()
	b.ReportAllocs()
	const incidents, perBatch = 100, 5
	base := make([]event.IncidentChange, incidents)
	for i := range base {
		spec := flood
		spec.id = fmt.Sprintf("INC-s1-%09d", i)
		spec.steps = 2
		base[i] = spec.changelog()[1]
	}
	batch := make([]event.IncidentChange, 0, incidents*perBatch)
	version := int64(2)
	rows := 0
	for b.Loop() {
		batch = batch[:0]
		for range perBatch {
			version++
			for _, c := range base {
				c.Incident.Version = version
				c.Incident.UpdatedAt = c.Incident.UpdatedAt.Add(time.Duration(version) * time.Second)
				c.Change.SignalID = fmt.Sprintf("sig-%d", version)
				batch = append(batch, c)
			}
		}
		if err := s.HandleIncidentChanges(ctx, batch); err != nil {
			b.Fatal(err)
		}
		rows += len(batch)
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "records/s")
}

// BenchIncidents is how many incidents BenchmarkListIncidents stores: 20 districts of 5000.
const BenchIncidents = 100_000

// BenchmarkListIncidents measures list and count queries on BenchIncidents incidents, spread
// over 20 districts, 200 streets and four severities, half of them closed.
func BenchmarkListIncidents(b *testing.B, open func(b *testing.B) Store) {
	s := open(b)
	ctx := b.Context()
	const batch = 2000
	log := make([]event.IncidentChange, 0, batch)
	for i := range BenchIncidents {
		district := fmt.Sprintf("d%02d", i%20)
		street := fmt.Sprintf("s%03d", i%200)
		spec := incidentSpec{
			id:       fmt.Sprintf("INC-%s-%07d", street, i),
			category: []string{"waterlogging", "garbage", "gas", "parking"}[i%4],
			severity: []string{event.SeverityRed, event.SeverityOrange, event.SeverityYellow, event.SeverityBlue}[i/4%4],
			area:     area(district, street, "c"+street, "g"+street),
			created:  at(time.Duration(i) * time.Minute),
			worker:   fmt.Sprintf("w%03d", i%300),
			steps:    []int{1, 7}[i/16%2],
		}
		ch := spec.changelog()
		log = append(log, ch[len(ch)-1])
		if len(log) == batch {
			if err := s.HandleIncidentChanges(ctx, log); err != nil {
				b.Fatal(err)
			}
			log = log[:0]
		}
	}

	queries := []struct {
		name string
		f    storage.IncidentFilter
	}{
		{"district", storage.IncidentFilter{District: "d07"}},
		{"district+open+severity", storage.IncidentFilter{District: "d07", OpenOnly: true, Severity: event.SeverityRed}},
		{"district+offset=2000", storage.IncidentFilter{District: "d07", Offset: 2000}},
		{"district+last-day", storage.IncidentFilter{District: "d07", Since: at(BenchIncidents*time.Minute - 24*time.Hour)}},
	}
	for _, q := range queries {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				incs, err := s.ListIncidents(ctx, q.f)
				if err != nil {
					b.Fatal(err)
				}
				if len(incs) == 0 {
					b.Fatal("no incidents matched")
				}
			}
		})
	}
	b.Run("count/district+open", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n, err := s.CountIncidents(ctx, storage.IncidentFilter{District: "d07", OpenOnly: true})
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				b.Fatal("no incidents counted")
			}
		}
	})
	b.Run("get", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			id := fmt.Sprintf("INC-s%03d-%07d", i%200, i)
			if _, err := s.GetIncident(ctx, id); err != nil {
				b.Fatal(err)
			}
			i = (i + 7919) % BenchIncidents
		}
	})
}

// BenchmarkHandleIncidentChangesCity stores a changelog shaped like the demo city's at
// 5,000 events/s: batches of 500 records, 150 of them opening an incident and 350 linking a
// further report to one of the last 2,000 opened, over 20 streets whose incident ids grow with
// time (as the incidents stage names them: street, then a time-ordered suffix); a link adds a
// report and moves the incident's updated time to now. Unlike
// BenchmarkHandleIncidentChangeBatches the tables grow as they do in a running city, so the
// cost of placing each new row among those already stored counts, and it grows with the run:
// compare runs of the same number of batches (-benchtime 300x).
func BenchmarkHandleIncidentChangesCity(b *testing.B, open func(b *testing.B) Store) {
	s := open(b)
	ctx := b.Context()
	b.ReportAllocs()
	const perBatch, opens, recent = 500, 150, 2000
	// Every change of a signal carries its rule's explanation, which makes a timeline entry of
	// the demo city about 840 bytes.
	explained := func(c event.Change, ev string) event.Change {
		const cond = `hotline.request_type in ["求助", "投诉", "举报"]`
		c.RuleID, c.RuleVersion, c.EventID = "hotline-ticket", 1, ev
		c.Explanation = &event.Explanation{Condition: cond, Terms: []event.Term{{
			Expr: cond, Text: `hotline.request_type "投诉" in ["求助", "投诉", "举报"]`, Holds: true,
			Left:  event.Operand{Expr: "hotline.request_type", Value: `"投诉"`},
			Right: event.Operand{Expr: `["求助", "投诉", "举报"]`, Value: `["求助","投诉","举报"]`},
		}}}
		return c
	}
	var (
		latest  [recent]event.IncidentChange // the newest version of the last incidents opened, by opening number % recent
		opened  int
		rows    int
		batch   = make([]event.IncidentChange, 0, perBatch)
		streets = 20
	)
	for b.Loop() {
		batch = batch[:0]
		now := at(time.Duration(rows) * time.Millisecond) // a running clock: 500 records a second
		for range opens {
			street := fmt.Sprintf("s%02d", opened%streets)
			spec := flood
			spec.id = fmt.Sprintf("INC-%s-%012d", street, opened)
			spec.area = area("d1", street, "c"+street, "g"+street)
			spec.created = now
			spec.steps = 1
			ch := spec.changelog()[0]
			ch.Change = explained(ch.Change, spec.id+"/e1")
			latest[opened%recent] = ch
			batch = append(batch, ch)
			opened++
		}
		window := min(opened, recent)
		for i := range perBatch - opens {
			// A spread of the recent incidents: each once a batch when there are enough of them
			// (consecutive ones from a starting point that moves with every batch).
			k := (opened - 1 - (rows/perBatch*131+i)%window) % recent
			c := latest[k]
			ev := fmt.Sprintf("%s/e%d", c.Incident.ID, c.Incident.Version+1)
			c.Incident.Version++
			c.Incident.UpdatedAt = now
			c.Incident.ReportCount++
			c.Incident.Reports = append(slices.Clip(c.Incident.Reports),
				event.Report{EventID: ev, EventType: event.TypeHotlineTicket, At: now, Summary: "积水"})
			c.Change.Action = "link"
			c.Change.From, c.Change.To = c.Incident.Status, c.Incident.Status
			c.Change.At = now
			c.Change.SignalID = "sig-" + ev
			c.Change = explained(c.Change, ev)
			latest[k] = c
			batch = append(batch, c)
		}
		if err := s.HandleIncidentChanges(ctx, batch); err != nil {
			b.Fatal(err)
		}
		rows += len(batch)
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "records/s")
}
