package app

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/transport"
)

// An attacker who can reach the broker, with kcat, tries what a token would not let them do:
// an unsigned admin command cancelling an incident, a signed command captured from the topic
// and edited to act on another incident, and the captured command written again after its
// time. Each is refused and dead-lettered with its reason, and no incident changes.
func TestForgedRecordsOnInternalTopicsAreRefused(t *testing.T) {
	kcat := requireTool(t, "kcat")
	const maxAge = 15 * time.Second
	r := start(t, t.TempDir(), freeAddr(t), func(c *Config) { c.CommandMaxAge = maxAge })
	brokers := strings.Join(r.app.BrokerAddrs(), ",")
	operator := r.token(auth.Claims{Subject: "op-1", Role: auth.RoleOperator})
	produce := func(topic, key string, value []byte, headers ...kafka.Header) {
		t.Helper()
		args := []string{"-b", brokers, "-t", topic, "-P", "-k", key}
		for _, h := range headers {
			args = append(args, "-H", h.Key+"="+string(h.Value))
		}
		cmd := exec.Command(kcat, args...)
		cmd.Stdin = bytes.NewReader(append(bytes.Clone(value), '\n'))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kcat produce to %s: %v\n%s", topic, err, out)
		}
	}

	// Two incidents, from two 12345 tickets in two grids.
	grids := r.app.City().Grids()
	var incs [2]event.Incident
	for i, g := range []int{5, 40} {
		grid := grids[g]
		id := "T-forge-" + grid.Code
		b, _ := json.Marshal(hotlineTicket(id, event.RequestComplaint, "0401", "夜间施工噪音扰民", "13812345678", grid.Centroid))
		produce(event.TopicIngestHotline, grid.Street, b)
		eventually(t, 60*time.Second, "incident of "+id, func() bool {
			var l incidentList
			r.do("GET", "/api/v1/incidents?grid="+grid.Code, operator, nil, &l)
			for _, inc := range l.Incidents {
				if inc.Status == event.StatusDispatched && len(inc.Reports) > 0 && inc.Reports[0].EventID == id {
					incs[i] = inc
					return true
				}
			}
			return false
		})
	}
	a, b := incs[0], incs[1]

	// 1. An unsigned admin command, as anyone on the network could write it.
	now := time.Now().UTC()
	forged := event.Command{ID: "forged-cancel", IncidentID: a.ID, Action: event.ActionCancel, Reason: "误报",
		Actor: event.Actor{Subject: "admin", Role: auth.RoleAdmin}, At: now}
	v, err := event.Encode(event.TypeCommand, forged.ID, now, forged)
	if err != nil {
		t.Fatal(err)
	}
	produce(event.TopicCommands, a.Area.Key(), v)

	// 2. A real command, captured from the topic with its signature.
	var res map[string]any
	if code := r.do("POST", "/api/v1/incidents/"+a.ID+"/actions", operator,
		map[string]string{"action": "progress", "note": "已联系施工方", "id": "p-1"}, &res); code != http.StatusOK {
		t.Fatalf("progress on %s: %d %v", a.ID, code, res)
	}
	var captured kafka.Message
	err = transport.ReadRecords(t.Context(), r.app.BrokerAddrs(), event.TopicCommands, func(m kafka.Message) error {
		if bytes.Contains(m.Value, []byte(`"http:op-1:p-1"`)) {
			captured = m
		}
		return nil
	})
	if err != nil || captured.Value == nil {
		t.Fatalf("the operator's command is not on %s (%v)", event.TopicCommands, err)
	}
	var sig []kafka.Header
	for _, h := range captured.Headers {
		if h.Key == transport.SignatureHeader {
			sig = append(sig, h)
		}
	}
	if len(sig) != 1 {
		t.Fatalf("the operator's command carries %d signatures, want 1", len(sig))
	}
	//    Edited to act on the other incident, signature kept.
	produce(event.TopicCommands, b.Area.Key(), bytes.ReplaceAll(captured.Value, []byte(a.ID), []byte(b.ID)), sig...)
	//    Written again, unchanged, once it is older than --command-max-age.
	var issued struct {
		Data event.Command `json:"data"`
	}
	if err := json.Unmarshal(captured.Value, &issued); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(issued.Data.At.Add(maxAge + time.Second)))
	produce(event.TopicCommands, string(captured.Key), captured.Value, sig...)

	want := map[string]string{
		"unsigned":      transport.ErrUnsigned.Error(),
		"edited":        transport.ErrBadSignature.Error(),
		"replayed late": "refused as a replay",
	}
	var letters []event.DeadLetter
	eventually(t, 60*time.Second, "three dead letters on "+event.TopicDeadLetter, func() bool {
		letters = letters[:0]
		_ = transport.ReadAll(t.Context(), r.app.BrokerAddrs(), event.TopicDeadLetter, func(_ string, v []byte) error {
			var dl event.DeadLetter
			if _, err := event.Decode(v, event.TypeDeadLetter, &dl); err == nil && dl.Topic == event.TopicCommands {
				letters = append(letters, dl)
			}
			return nil
		})
		return len(letters) >= 3
	})
	for what, reason := range want {
		n := 0
		for _, dl := range letters {
			if strings.Contains(dl.Reason, reason) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s command: %d dead letters saying %q, want 1 (letters: %+v)", what, n, reason, letters)
		}
	}

	// Nothing changed but the operator's one progress note.
	for _, inc := range incs {
		var d struct {
			Incident event.Incident `json:"incident"`
		}
		r.do("GET", "/api/v1/incidents/"+inc.ID, operator, nil, &d)
		want := inc.Version
		if inc.ID == a.ID {
			want++ // the progress note
		}
		if d.Incident.Status != event.StatusDispatched || d.Incident.Version != want {
			t.Errorf("%s is %s v%d, want dispatched v%d: a forged command took effect", inc.ID, d.Incident.Status, d.Incident.Version, want)
		}
	}
	if n := counterValue(t, r.app, "urbanbrain_records_refused_total"); n < 2 {
		t.Errorf("urbanbrain_records_refused_total = %v, want at least 2", n)
	}
}
