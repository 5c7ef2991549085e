package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/transport"
)

// Internal topics do not trust their producers (docs/security.md). Anyone who can reach the
// broker can write a record, so every record an instance writes to an internal topic is signed
// (transport.Signer: an HMAC over topic, key and value, in a header) and every record read from
// one is checked before it is decoded: a command, a signal, a changelog record, a rule version
// that no instance signed is dead-lettered with the reason and changes nothing. Only the
// producers' topics (city.ingest.*) take unsigned records; ingest validates those and signs what
// it makes of them.
//
// The record key is derived from the token signing key (auth.key), which every instance of one
// city already shares, under its own label: a record signature is not a token and a token is
// not a record signature.

// recordKeyLabel names the record key's derivation from the token key.
const recordKeyLabel = "urbanbrain record signing v1"

func newRecordSigner(tokenKey []byte) *transport.Signer {
	m := hmac.New(sha256.New, tokenKey)
	m.Write([]byte(recordKeyLabel))
	return transport.NewSigner(m.Sum(nil))
}

// signedTopic reports whether records of topic must carry an instance's signature: every topic
// but the producers' own.
func signedTopic(topic string) bool {
	switch topic {
	case event.TopicIngestSensor, event.TopicIngestHotline, event.TopicIngestVideo:
		return false
	}
	return true
}

// sign signs the records bound for internal topics.
func (a *App) sign(msgs []kafka.Message) {
	for i := range msgs {
		if signedTopic(msgs[i].Topic) {
			a.signer.Sign(&msgs[i])
		}
	}
}

// authentic checks a record read from topic rec.Topic: nil for a producers' topic or a
// record an instance signed.
func (a *App) authentic(rec kafka.Message) error {
	if !signedTopic(rec.Topic) {
		return nil
	}
	if err := a.signer.Verify(rec); err != nil {
		a.forged.Add(1)
		return err
	}
	return nil
}

// signedOnly wraps a handler of records read straight from Kafka (a state load, a catalog
// read): records that fail the check are skipped with a warning. The stages that consume the
// same topic dead-letter them.
func (a *App) signedOnly(what string, fn func(kafka.Message) error) func(kafka.Message) error {
	return func(rec kafka.Message) error {
		if err := a.authentic(rec); err != nil {
			a.log.Warn(what+": record refused", zap.String("topic", rec.Topic), zap.Int("partition", rec.Partition),
				zap.Int64("offset", rec.Offset), zap.Error(err), transport.RecordTraceField(rec))
			return nil
		}
		return fn(rec)
	}
}

// signatureCode is the dead-letter code of a record that failed the check.
func signatureCode(err error) string {
	if errors.Is(err, transport.ErrUnsigned) {
		return event.DeadLetterUnsigned
	}
	return event.DeadLetterBadSignature
}

// authenticSink wraps a storage sink's writer: records that fail the check are dead-lettered
// with the reason and the rest of the batch is written.
func (a *App) authenticSink(w sinkWriter) sinkWriter {
	return func(ctx context.Context, recs []kafka.Message) ([]sinkReject, error) {
		var rejects []sinkReject
		keep := make([]kafka.Message, 0, len(recs))
		from := make([]int, 0, len(recs))
		for i, r := range recs {
			if err := a.authentic(r); err != nil {
				rejects = append(rejects, sinkReject{index: i, code: signatureCode(err), reason: err.Error()})
				continue
			}
			keep = append(keep, r)
			from = append(from, i)
		}
		if len(rejects) == 0 {
			return w(ctx, recs)
		}
		if len(keep) == 0 {
			return rejects, nil
		}
		more, err := w(ctx, keep)
		for _, rj := range more {
			rj.index = from[rj.index]
			rejects = append(rejects, rj)
		}
		return rejects, err
	}
}

// handleCommand is the city.commands handler. A command older than --command-max-age is
// dead-lettered: a signed command captured from the topic and written again later is not
// applied a second time once its outcome has left the incident service's memory. (A repeat
// within the memory gets the first outcome and changes nothing.)
func (a *App) handleCommand(ctx context.Context, cmd event.Command) (event.Outputs, error) {
	if max := a.cfg.CommandMaxAge; max > 0 {
		if age := time.Since(cmd.At); age > max {
			return nil, refusedRecord{event.DeadLetterStaleCommand, fmt.Sprintf("command %s was issued %s ago, more than --command-max-age %s: refused as a replay",
				cmd.ID, age.Round(time.Second), max)}
		}
	}
	return a.incidents.HandleCommand(ctx, cmd)
}
