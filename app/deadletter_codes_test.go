package app

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/transport"
)

// Issue 12 item 7: dead letters carried a reason but no machine-readable code. Every place
// a stage or a storage sink makes one sets its code.
func TestDeadLetterCodesAtEverySite(t *testing.T) {
	t.Parallel()
	a := &App{log: zap.NewNop(), signer: transport.NewSigner([]byte("0123456789abcdef0123456789abcdef")),
		forged: prometheus.NewCounter(prometheus.CounterOpts{Name: "forged_test"}),
		cfg:    Config{CommandMaxAge: time.Minute}}
	ctx := context.Background()
	codeOf := func(t *testing.T, outs event.Outputs) string {
		t.Helper()
		if len(outs) != 1 {
			t.Fatalf("outputs = %+v, want one dead letter", outs)
		}
		dl, ok := outs[0].Data.(event.DeadLetter)
		if !ok {
			t.Fatalf("output = %T, want a dead letter", outs[0].Data)
		}
		return dl.Code
	}

	t.Run("stage: undecodable", func(t *testing.T) {
		h := typed(a, []string{event.TypeCommand}, a.handleCommand)
		outs, err := h(ctx, kafka.Message{Topic: event.TopicCommands, Value: []byte(`{"not":"a cloudevent"}`)})
		if err != nil {
			t.Fatal(err)
		}
		if c := codeOf(t, outs); c != event.DeadLetterUndecodable {
			t.Errorf("code = %q, want %q", c, event.DeadLetterUndecodable)
		}
	})
	t.Run("stage: stale command", func(t *testing.T) {
		cmd := event.Command{ID: "http:op:1", IncidentID: "INC-990101001-1", Action: "verify", At: time.Now().Add(-time.Hour)}
		b, err := event.Encode(event.TypeCommand, cmd.ID, cmd.At, cmd)
		if err != nil {
			t.Fatal(err)
		}
		outs, err := typed(a, []string{event.TypeCommand}, a.handleCommand)(ctx, kafka.Message{Topic: event.TopicCommands, Value: b})
		if err != nil {
			t.Fatal(err)
		}
		if c := codeOf(t, outs); c != event.DeadLetterStaleCommand {
			t.Errorf("code = %q, want %q", c, event.DeadLetterStaleCommand)
		}
	})
	t.Run("signatures", func(t *testing.T) {
		unsigned := kafka.Message{Topic: event.TopicSignals, Key: []byte("k"), Value: []byte("v")}
		signed := unsigned
		a.signer.Sign(&signed)
		altered := signed
		altered.Value = []byte("w")
		for _, tt := range []struct {
			rec  kafka.Message
			want string
		}{{unsigned, event.DeadLetterUnsigned}, {altered, event.DeadLetterBadSignature}} {
			err := a.authentic(tt.rec)
			if err == nil {
				t.Fatalf("%+v passed the check", tt.rec)
			}
			if c := codeOf(t, event.Outputs{a.deadLetterOf(tt.rec, "stage", signatureCode(err), err.Error())}); c != tt.want {
				t.Errorf("code = %q, want %q", c, tt.want)
			}
			rejects, err := a.authenticSink(func(context.Context, []kafka.Message) ([]sinkReject, error) { return nil, nil })(ctx, []kafka.Message{tt.rec})
			if err != nil || len(rejects) != 1 || rejects[0].code != tt.want {
				t.Errorf("sink rejects = %+v, %v; want one with code %q", rejects, err, tt.want)
			}
		}
	})
	t.Run("sink: undecodable and refused by the store", func(t *testing.T) {
		good, err := event.Encode(event.TypeDispatch, "d-1", time.Now(), event.Dispatch{ID: "d-1", IncidentID: "INC-1"})
		if err != nil {
			t.Fatal(err)
		}
		w := batchOf(a, []string{event.TypeDispatch}, func(context.Context, []event.Dispatch) error {
			return storage.Rejects([]storage.Rejected{{Index: 0, Reason: "too big"}})
		})
		rejects, err := w(ctx, []kafka.Message{{Value: []byte("garbage")}, {Value: good}})
		if err != nil || len(rejects) != 2 {
			t.Fatalf("rejects = %+v, %v", rejects, err)
		}
		if rejects[0].code != event.DeadLetterUndecodable || rejects[1].code != event.DeadLetterStoreRefused {
			t.Errorf("codes = %q, %q; want %q, %q", rejects[0].code, rejects[1].code, event.DeadLetterUndecodable, event.DeadLetterStoreRefused)
		}
	})
}
