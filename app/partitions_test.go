package app

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/transport"
)

func TestTopicPartitionsFollowTheBroker(t *testing.T) {
	for _, c := range []struct {
		name       string
		brokers    []string
		partitions int
		want       int
	}{
		{"embedded broker", nil, 0, EmbeddedPartitions},
		{"Kafka cluster", []string{"kafka:9092"}, 0, ClusterPartitions},
		{"embedded, said", nil, 12, 12},
		{"cluster, said", []string{"kafka:9092"}, 2, 2},
	} {
		cfg := DefaultConfig()
		cfg.KafkaBrokers, cfg.Partitions = c.brokers, c.partitions
		if got := cfg.TopicPartitions(); got != c.want {
			t.Errorf("%s, --partitions %d: %d partitions, want %d", c.name, c.partitions, got, c.want)
		}
	}
	if EmbeddedPartitions == ClusterPartitions {
		t.Fatal("the two defaults are the same: the cases above prove nothing")
	}
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	if cfg.Partitions != 0 {
		t.Errorf("--partitions defaults to %d, want 0 (chosen by broker)", cfg.Partitions)
	}
	cfg.Partitions = -1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--partitions -1") {
		t.Errorf("--partitions -1: %v, want it refused", err)
	}
}

// The embedded default creates its topics with EmbeddedPartitions, and every stage of the one
// node runs on them.
func TestEmbeddedDefaultCreatesItsTopicsForOneNode(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.BrokerListen = freeAddr(t)
	r := startCfg(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, topic := range []string{event.TopicIngestSensor, event.TopicEvents, event.TopicSignals, event.TopicCommands, event.TopicIncidents} {
		n, err := transport.PartitionCount(ctx, r.app.brokers, topic)
		if err != nil {
			t.Fatal(err)
		}
		if n != EmbeddedPartitions {
			t.Errorf("%s has %d partitions, want %d", topic, n, EmbeddedPartitions)
		}
	}
}

// Topics partitioned by street, created with different partition counts, stop the instance
// with a reason instead of splitting streets between owners.
func TestTopicsReadTogetherMustHaveAsManyPartitions(t *testing.T) {
	for _, topic := range []string{event.TopicEvents, event.TopicSignals, event.TopicCommands} {
		t.Run(topic, func(t *testing.T) { refusedWithOddTopic(t, topic) })
	}
}

func refusedWithOddTopic(t *testing.T, topic string) {
	emb, err := transport.StartEmbedded(transport.EmbeddedConfig{
		DataDir: t.TempDir(), Listen: freeAddr(t), Partitions: 2, Topics: []string{topic},
	}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.KafkaBrokers = emb.Addrs() // the other topics are created with ClusterPartitions
	a, err := New(cfg, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = a.Run(ctx)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Run on topics of 2 and %d partitions: %v, want it to stop by itself", ClusterPartitions, err)
	}
	if want := fmt.Sprintf("%s has 2 partitions and %s %d", topic, event.TopicIncidents, ClusterPartitions); !strings.Contains(err.Error(), want) {
		t.Fatalf("Run: %v, want it to name the topics and their partitions", err)
	}
}
