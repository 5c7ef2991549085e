package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
)

// Sink writes outputs to the broker, in order, and returns once the broker has acknowledged
// every one of them. The HTTP path needs it: a caller is told "accepted" only for what is
// written. The stage path does not: HandleRecord returns its outputs to the stage runner,
// which writes them before it commits the input.
type Sink interface {
	Write(ctx context.Context, outs event.Outputs) error
}

// AreaResolver finds the area (district → street → community → grid) that contains a WGS-84
// point. *city.Map is one.
type AreaResolver interface {
	Resolve(p event.Point) (event.Area, bool)
}

// Record is one Kafka record from an ingest topic.
type Record struct {
	Topic, Key string
	Headers    map[string]string
	Value      []byte
}

// deadLetterKey keys dead letters of input that came without a key.
const deadLetterKey = "unknown"

// Service is the ingest stage. It is safe for concurrent use.
type Service struct {
	cfg        Config
	areas      AreaResolver
	categories Categorizer // nil: tickets keep the category they came with
	sink       Sink
	log        *zap.Logger
	seen       *seenSet
	counts     counters
}

// New builds the ingest stage. sink is where POST /api/v1/events writes. An areas that is
// also a Categorizer, as *city.Map is, decides the category of 12345 tickets that come
// without a valid one (docs/events.md, "A ticket's category"); the city is one thing, and
// every caller that resolves areas with it classifies tickets the same way.
func New(cfg Config, areas AreaResolver, sink Sink, log *zap.Logger) (*Service, error) {
	cfg.setDefaults()
	err := cfg.Validate()
	if areas == nil {
		err = errors.Join(err, errors.New("ingest: an AreaResolver is required"))
	}
	if sink == nil {
		err = errors.Join(err, errors.New("ingest: a Sink is required"))
	}
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Service{cfg: cfg, areas: areas, sink: sink, log: log, seen: newSeenSet(cfg.DedupSize)}
	s.categories, _ = areas.(Categorizer)
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(collector{&s.counts}); err != nil {
			return nil, fmt.Errorf("ingest: register metrics: %w", err)
		}
	}
	return s, nil
}

// HandleRecord ingests one record of city.ingest.{sensor,hotline,video} and returns what it
// produced: the accepted event (Data an event.Event), a dead letter for bad input (Data an
// event.DeadLetter), or nothing for a replay of a recent event. It writes nothing itself: the
// stage runner writes the outputs and retries until the broker has them, so the event stays
// remembered as seen meanwhile. The error is for the stage runner's sake; bad input is never
// one.
func (s *Service) HandleRecord(_ context.Context, r Record) (event.Outputs, error) {
	res, out := s.ingest(recordInput(r))
	if out.Data == nil {
		return nil, nil
	}
	s.count(res)
	return event.Outputs{out}, nil
}

// ErrDuplicate is Decode's answer for an event whose (type, id) was seen recently.
var ErrDuplicate = errors.New("ingest: duplicate event")

// Decode is HandleRecord giving the event itself rather than outputs: it validates the
// record, converts its coordinates to WGS-84, locates it on the map and decides whether it is
// a replay. It returns the event and nil if HandleRecord would output it (and remembers it as
// seen), the event and ErrDuplicate if it would drop it as a replay, or a *RejectError if it
// would dead-letter it
// (the event then holds what could be read: id and type, perhaps). It counts nothing in
// Stats. For replays and tools that run the pipeline in process without a broker.
func (s *Service) Decode(r Record) (event.Event, error) {
	return s.decode(recordInput(r), s.cfg.Now(), nil)
}

// DeadLetter returns the dead letter HandleRecord would for a record Decode rejected with
// rej, without counting it in Stats.
func (s *Service) DeadLetter(r Record, rej *RejectError) event.Output {
	return s.deadLetter(recordInput(r), rej, s.cfg.Now())
}

func recordInput(r Record) input {
	in := input{origin: r.Topic, key: r.Key, headers: r.Headers, value: r.Value, bareType: event.IngestTopics[r.Topic]}
	if a, binary := binaryAttributes(r.Headers, '_'); binary {
		in.attrs = &a
	}
	return in
}

// dedupKey is what makes two events the same event.
func dedupKey(ev event.Event) string { return ev.Type + " " + ev.ID }

// result is the outcome of one input, as an HTTP batch reports it.
type result struct {
	Index  int    `json:"index"`
	ID     string `json:"id,omitempty"`
	Status string `json:"status"`
	Code   string `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`

	rej *RejectError
	typ string      // the event type, for the counters
	cat categorized // a ticket's category decision, for the counters
}

// ingest checks and locates one input. It returns the outcome for an HTTP answer and the
// output to write: the event, its dead letter, or none (nil Data) for a duplicate. Counting
// waits for the caller, which knows when the output is as good as written.
func (s *Service) ingest(in input) (result, event.Output) {
	now := s.cfg.Now()
	var cat categorized
	ev, err := s.decode(in, now, &cat)
	var rej *RejectError
	switch {
	case err == nil:
		return result{ID: ev.ID, Status: OutcomeAccepted, typ: ev.Type, cat: cat},
			event.Output{Key: ev.Area.Key(), ID: ev.ID, Time: ev.Time, Data: ev}
	case errors.Is(err, ErrDuplicate):
		s.counts.duplicate(ev.Type)
		return result{ID: ev.ID, Status: OutcomeDuplicate, typ: ev.Type}, event.Output{}
	case !errors.As(err, &rej):
		// decode returns nothing else; should it one day, the input is refused, not lost.
		rej = reject(ClassPayload, "%v", err)
	}
	// The id may be what was wrong with it (too long): echo a bounded one.
	res := result{ID: clipTo(ev.ID, maxIDBytes), Status: OutcomeRejected, Code: rej.Class.String(), Reason: rej.Reason, rej: rej, typ: ev.Type}
	return res, s.deadLetter(in, rej, now)
}

// count records an outcome whose output is written (or, in the stage path, handed to the
// runner that will write it).
func (s *Service) count(res result) {
	switch res.Status {
	case OutcomeAccepted:
		s.counts.accepted(res.typ)
		s.counts.categorized(res.cat)
	case OutcomeRejected:
		s.counts.reject(res.typ, res.rej.Class)
	}
}

// forget undoes the dedup entry of an accepted event whose write failed, so that the
// caller's retry is not dropped as a replay of an event never sent.
func (s *Service) forget(outs event.Outputs) {
	for _, o := range outs {
		if ev, ok := o.Data.(event.Event); ok {
			s.seen.remove(dedupKey(ev))
		}
	}
}

// decode is Decode for any input: it builds the event and marks it seen. A ticket's
// category decision goes to cat, if not nil.
func (s *Service) decode(in input, now time.Time, cat *categorized) (event.Event, error) {
	ev, rej := s.build(in, now, cat)
	if rej != nil {
		return ev, rej
	}
	if !s.seen.add(dedupKey(ev)) {
		return ev, ErrDuplicate
	}
	return ev, nil
}

// deadLetter is the record of rejected input for city.deadletter: the reason and the bytes.
func (s *Service) deadLetter(in input, rej *RejectError, now time.Time) event.Output {
	orig, reason := in.value, rej.Reason
	if len(orig) > s.cfg.MaxDeadLetterBytes {
		orig = orig[:s.cfg.MaxDeadLetterBytes]
		reason += fmt.Sprintf(" (original truncated to its first %d bytes)", len(orig))
	}
	key := in.key
	if key == "" {
		key = deadLetterKey
	}
	s.log.Debug("ingest: dead-lettered", zap.String("origin", in.origin), zap.String("key", in.key),
		zap.String("class", rej.Class.String()), zap.String("reason", rej.Reason))
	return event.Output{Key: key, ID: deadLetterID(in), Time: now.UTC(), Data: event.DeadLetter{
		Code: rej.Class.String(), Reason: reason, Topic: in.origin, Key: in.key, Headers: in.headers, Original: orig, At: now.UTC(),
	}}
}

// deadLetterID is derived from the input, so a redelivered bad record makes the same dead
// letter and consumers of city.deadletter can dedup it like any other event.
func deadLetterID(in input) string {
	h := sha256.New()
	h.Write([]byte(in.origin))
	h.Write([]byte{0})
	h.Write([]byte(in.key))
	h.Write([]byte{0})
	h.Write(in.value)
	return "dl-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// build turns an input into a validated, located event.
func (s *Service) build(in input, now time.Time, cat *categorized) (event.Event, *RejectError) {
	env, rej := s.readEnvelope(in)
	ev := event.Event{ID: env.id, Type: env.typ, Source: env.source, Received: now.UTC()}
	if rej != nil {
		return ev, rej
	}
	at := env.time
	var pos position
	switch env.typ {
	case event.TypeSensorReading:
		r := new(event.SensorReading)
		if rej := decodeData(env.data, env.scanned, r); rej != nil {
			return ev, rej
		}
		if rej := checkSensor(r); rej != nil {
			return ev, rej
		}
		ev.Sensor, pos = r, position{&r.Lat, &r.Lon, &r.CoordSys}
	case event.TypeHotlineTicket:
		r := new(event.HotlineTicket)
		if rej := decodeData(env.data, env.scanned, r); rej != nil {
			return ev, rej
		}
		if env.bare {
			ev.ID = r.TicketID
		}
		if rej := checkHotline(r); rej != nil {
			return ev, rej
		}
		// Decided once the ticket's own fields are valid; counted only if it is accepted.
		if c := s.categorize(r); cat != nil {
			*cat = c
		}
		if !r.ReceivedAt.IsZero() {
			r.ReceivedAt = r.ReceivedAt.UTC()
			if !encodable(r.ReceivedAt) {
				return ev, reject(ClassTime, "received_at %s is outside the years 0000–9999", r.ReceivedAt.Format(time.RFC3339))
			}
			if at.IsZero() {
				at = r.ReceivedAt
			}
		}
		ev.Hotline, pos = r, position{&r.Lat, &r.Lon, &r.CoordSys}
	case event.TypeVideoDetection:
		r := new(event.VideoDetection)
		if rej := decodeData(env.data, env.scanned, r); rej != nil {
			return ev, rej
		}
		if rej := checkVideo(r); rej != nil {
			return ev, rej
		}
		ev.Video, pos = r, position{&r.Lat, &r.Lon, &r.CoordSys}
	default:
		// readEnvelope admits only the three types; this keeps a fourth from slipping through.
		return ev, reject(ClassEnvelope, "unknown type %q", clip(env.typ))
	}

	if at.IsZero() {
		at = now
	}
	if rej := s.checkTime(at, now); rej != nil {
		return ev, rej
	}
	ev.Time = at.UTC()

	if *pos.lat != nil && *pos.lon != nil {
		w, rej := locate(**pos.lat, **pos.lon, *pos.coordSys)
		if rej != nil {
			return ev, rej
		}
		// The payload says where it is in the system's own terms from here on.
		lat, lon := w.Lat, w.Lon
		*pos.lat, *pos.lon, *pos.coordSys = &lat, &lon, event.CoordWGS84
		ev.Location = &w
		if area, ok := s.areas.Resolve(w); ok {
			ev.Area = area
		}
	} else {
		*pos.coordSys = "" // no coordinates, nothing for it to describe
	}
	// A ticket the call centre could only place in a district keeps that district; one
	// outside every grid still goes on, keyed to the unknown street.
	if ev.Area == (event.Area{}) && ev.Hotline != nil {
		ev.Area.District = ev.Hotline.DistrictCode
	}
	return ev, nil
}

// encodable reports whether a time in UTC can be written as JSON. The event is encoded only
// after HandleRecord has returned it, by the stage runner, so what it could not encode must
// be refused here: 0000-01-01T00:00:00+08:00 reads, but in UTC it is in the year -1.
func encodable(t time.Time) bool {
	y := t.Year()
	return y >= 0 && y <= 9999
}

func (s *Service) checkTime(at, now time.Time) *RejectError {
	if at.After(now.Add(s.cfg.MaxFutureSkew)) {
		return reject(ClassTime, "time %s is too far in the future (more than %s ahead of now)",
			at.Format(time.RFC3339), s.cfg.MaxFutureSkew)
	}
	if at.Before(now.Add(-s.cfg.MaxAge)) {
		return reject(ClassTime, "time %s is too old (more than %s before now)", at.Format(time.RFC3339), s.cfg.MaxAge)
	}
	if !encodable(at.UTC()) { // only with a MaxAge or MaxFutureSkew of millennia
		return reject(ClassTime, "time %s is outside the years 0000–9999", at.UTC().Format(time.RFC3339))
	}
	return nil
}
