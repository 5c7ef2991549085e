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

// Publisher sends one record to a topic; key picks the partition (the street code).
type Publisher interface {
	Publish(ctx context.Context, topic, key string, value []byte) error
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
	cfg    Config
	areas  AreaResolver
	pub    Publisher
	log    *zap.Logger
	seen   *seenSet
	counts counters
}

// New builds the ingest stage.
func New(cfg Config, areas AreaResolver, pub Publisher, log *zap.Logger) (*Service, error) {
	cfg.setDefaults()
	err := cfg.Validate()
	if areas == nil {
		err = errors.Join(err, errors.New("ingest: an AreaResolver is required"))
	}
	if pub == nil {
		err = errors.Join(err, errors.New("ingest: a Publisher is required"))
	}
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Service{cfg: cfg, areas: areas, pub: pub, log: log, seen: newSeenSet(cfg.DedupSize)}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(collector{&s.counts}); err != nil {
			return nil, fmt.Errorf("ingest: register metrics: %w", err)
		}
	}
	return s, nil
}

// HandleRecord ingests one record of city.ingest.{sensor,hotline,video}. Bad input is
// dead-lettered and nil returned; an error means a publish failed and the record should be
// redelivered.
func (s *Service) HandleRecord(ctx context.Context, r Record) error {
	_, err := s.ingest(ctx, recordInput(r))
	return err
}

// ErrDuplicate is Decode's answer for an event whose (type, id) was seen recently.
var ErrDuplicate = errors.New("ingest: duplicate event")

// Decode is HandleRecord without the publishing: it validates the record, converts its
// coordinates to WGS-84, locates it on the map and decides whether it is a replay. It returns
// the event and nil if HandleRecord would publish it (and remembers it as seen), the event and
// ErrDuplicate if it would drop it as a replay, or a *RejectError if it would dead-letter it
// (the event then holds what could be read: id and type, perhaps). It counts nothing in
// Stats. For replays and tools that run the pipeline in process without a broker.
func (s *Service) Decode(r Record) (event.Event, error) {
	return s.decode(recordInput(r), s.cfg.Now())
}

// DeadLetter publishes the dead letter HandleRecord would for a record Decode rejected with
// rej, without counting it in Stats.
func (s *Service) DeadLetter(ctx context.Context, r Record, rej *RejectError) error {
	return s.deadLetter(ctx, recordInput(r), rej, s.cfg.Now())
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
}

// ingest checks, locates and publishes one input, or dead-letters it.
func (s *Service) ingest(ctx context.Context, in input) (result, error) {
	now := s.cfg.Now()
	ev, err := s.decode(in, now)
	var rej *RejectError
	switch {
	case err == nil:
		value, err := event.Encode(ev.Type, ev.ID, ev.Time, ev)
		if err == nil {
			return s.publish(ctx, ev, value)
		}
		s.seen.remove(dedupKey(ev)) // never sent, so not a replay when it comes again
		rej = reject(ClassPayload, "cannot encode event: %v", err)
	case errors.Is(err, ErrDuplicate):
		s.counts.duplicate(ev.Type)
		return result{ID: ev.ID, Status: OutcomeDuplicate}, nil
	case !errors.As(err, &rej):
		return result{}, err // decode returns nothing else
	}
	// The id may be what was wrong with it (too long): echo a bounded one.
	res := result{ID: clipTo(ev.ID, maxIDBytes), Status: OutcomeRejected, Code: rej.Class.String(), Reason: rej.Reason, rej: rej}
	if err := s.deadLetter(ctx, in, rej, now); err != nil {
		return res, err
	}
	s.counts.reject(ev.Type, rej.Class)
	return res, nil
}

// decode is Decode for any input: it builds the event and marks it seen.
func (s *Service) decode(in input, now time.Time) (event.Event, error) {
	ev, rej := s.build(in, now)
	if rej != nil {
		return ev, rej
	}
	if !s.seen.add(dedupKey(ev)) {
		return ev, ErrDuplicate
	}
	return ev, nil
}

func (s *Service) publish(ctx context.Context, ev event.Event, value []byte) (result, error) {
	if err := s.pub.Publish(ctx, event.TopicEvents, ev.Area.Key(), value); err != nil {
		// Forget it, or the redelivery would be dropped as a replay of an event never sent.
		s.seen.remove(dedupKey(ev))
		return result{ID: ev.ID, Status: OutcomeAccepted}, fmt.Errorf("ingest: publish %s %s: %w", ev.Type, ev.ID, err)
	}
	s.counts.accepted(ev.Type)
	return result{ID: ev.ID, Status: OutcomeAccepted}, nil
}

// deadLetter publishes rejected input to city.deadletter with its reason.
func (s *Service) deadLetter(ctx context.Context, in input, rej *RejectError, now time.Time) error {
	orig, reason := in.value, rej.Reason
	if len(orig) > s.cfg.MaxDeadLetterBytes {
		orig = orig[:s.cfg.MaxDeadLetterBytes]
		reason += fmt.Sprintf(" (original truncated to its first %d bytes)", len(orig))
	}
	dl := event.DeadLetter{Reason: reason, Topic: in.origin, Key: in.key, Headers: in.headers, Original: orig, At: now.UTC()}
	value, err := event.Encode(event.TypeDeadLetter, deadLetterID(in), now, dl)
	if err != nil {
		return fmt.Errorf("ingest: encode dead letter: %w", err)
	}
	key := in.key
	if key == "" {
		key = deadLetterKey
	}
	if err := s.pub.Publish(ctx, event.TopicDeadLetter, key, value); err != nil {
		return fmt.Errorf("ingest: publish dead letter: %w", err)
	}
	s.log.Debug("ingest: dead-lettered", zap.String("origin", in.origin), zap.String("key", in.key),
		zap.String("class", rej.Class.String()), zap.String("reason", rej.Reason))
	return nil
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
func (s *Service) build(in input, now time.Time) (event.Event, *RejectError) {
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
		if rej := decodeData(env.data, r); rej != nil {
			return ev, rej
		}
		if rej := checkSensor(r); rej != nil {
			return ev, rej
		}
		ev.Sensor, pos = r, position{&r.Lat, &r.Lon, &r.CoordSys}
	case event.TypeHotlineTicket:
		r := new(event.HotlineTicket)
		if rej := decodeData(env.data, r); rej != nil {
			return ev, rej
		}
		if env.bare {
			ev.ID = r.TicketID
		}
		if rej := checkHotline(r); rej != nil {
			return ev, rej
		}
		if !r.ReceivedAt.IsZero() {
			r.ReceivedAt = r.ReceivedAt.UTC()
			if at.IsZero() {
				at = r.ReceivedAt
			}
		}
		ev.Hotline, pos = r, position{&r.Lat, &r.Lon, &r.CoordSys}
	case event.TypeVideoDetection:
		r := new(event.VideoDetection)
		if rej := decodeData(env.data, r); rej != nil {
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

func (s *Service) checkTime(at, now time.Time) *RejectError {
	if at.After(now.Add(s.cfg.MaxFutureSkew)) {
		return reject(ClassTime, "time %s is too far in the future (more than %s ahead of now)",
			at.Format(time.RFC3339), s.cfg.MaxFutureSkew)
	}
	if at.Before(now.Add(-s.cfg.MaxAge)) {
		return reject(ClassTime, "time %s is too old (more than %s before now)", at.Format(time.RFC3339), s.cfg.MaxAge)
	}
	return nil
}
