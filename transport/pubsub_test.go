package transport_test

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/transport"
	"github.com/urbanbrain/urbanbrain/transport/transporttest"
)

var kafkaLog = flag.Bool("kafka.log", false, "log the transport and kafka-go at debug level to stderr")

func testLogger(t testing.TB) *zap.Logger {
	if !*kafkaLog {
		return zap.NewNop()
	}
	l, err := zap.NewDevelopment()
	if err != nil {
		t.Fatal(err)
	}
	return l.With(zap.String("test", t.Name()))
}

// suiteClient builds the publisher/subscriber pairs the watermill suite asks for.
type suiteClient struct {
	broker *transporttest.Broker
	// group returns the consumer group of the suite's plain constructor; "" means none.
	group func(t *testing.T) string
	// keyByPayload keys records by their payload, the suite's notion of an ordering key
	// (TestPublishSubscribeInOrder sends payloads "0".."15" and checks order per payload).
	keyByPayload bool
}

func (c suiteClient) pubSub(t *testing.T) (message.Publisher, message.Subscriber) {
	return c.pubSubWithGroup(t, c.group(t))
}

func (c suiteClient) pubSubWithGroup(t *testing.T, group string) (message.Publisher, message.Subscriber) {
	log := testLogger(t)
	pcfg := transport.PublisherConfig{Brokers: c.broker.Addrs()}
	if c.keyByPayload {
		pcfg.KeyFunc = func(_ string, m *message.Message) string { return string(m.Payload) }
	}
	pub, err := transport.NewPublisher(pcfg, log)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := transport.NewSubscriber(suiteSubscriberConfig(c.broker, group), log)
	if err != nil {
		t.Fatal(err)
	}
	return pub, sub
}

// suiteSubscriberConfig shortens the waits that only exist to be gentle with a production
// cluster: the suite nacks hundreds of times and rebalances groups of 50 members.
func suiteSubscriberConfig(b *transporttest.Broker, group string) transport.SubscriberConfig {
	return transport.SubscriberConfig{
		Brokers:           b.Addrs(),
		GroupID:           group,
		NackBackoff:       5 * time.Millisecond,
		HeartbeatInterval: 250 * time.Millisecond,
		SessionTimeout:    6 * time.Second, // kfake's minimum
		RebalanceTimeout:  6 * time.Second,
		JoinGroupBackoff:  200 * time.Millisecond,
		RetryBackoffMax:   time.Second,
	}
}

// groupPerTest gives every suite test its own consumer group: subscribers created within a
// test share it (so a new one continues where the last stopped, as the suite expects),
// while tests running in parallel do not trigger each other's rebalances.
func groupPerTest(t *testing.T) string {
	return "cg-" + strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
}

func noGroup(*testing.T) string { return "" }

// TestPubSub runs watermill's universal suite with consumer groups and the default keying
// (the message UUID, spreading records over all partitions). Order across partitions is not
// promised, so GuaranteedOrder is off here; TestPubSubOrderedByKey covers the per-key order.
// The suite's reconnect test is left out (no RestartServiceCommand): it compares its list of
// published messages while the last publisher may still be adding to it, so a fast broker
// fails it ("received 10000, sent 9999") — TestReconnect (transport_test.go) runs the same
// scenario without that race.
func TestPubSub(t *testing.T) {
	t.Parallel()
	b := transporttest.NewBroker(t, transport.EmbeddedConfig{})
	c := suiteClient{broker: b, group: groupPerTest}
	features := tests.Features{
		ConsumerGroups:      true,
		ExactlyOnceDelivery: false,
		GuaranteedOrder:     false,
		Persistent:          true,
	}
	tests.TestPubSub(t, features, c.pubSub, c.pubSubWithGroup)
}

// TestPubSubNoGroup runs the suite with group-less subscribers: every subscription reads all
// partitions from the start, so a new subscriber sees old messages. Records are keyed by
// payload, which makes the suite's order test an order-per-key test. The suite's short
// sizes are used (ForceShort): without a group, each of its 50 concurrent subscribers
// would read all 5 000 messages; the full sizes run in TestPubSub.
func TestPubSubNoGroup(t *testing.T) {
	t.Parallel()
	b := transporttest.NewBroker(t, transport.EmbeddedConfig{})
	c := suiteClient{broker: b, group: noGroup, keyByPayload: true}
	features := tests.Features{
		ConsumerGroups:                   true,
		ExactlyOnceDelivery:              false,
		GuaranteedOrder:                  true,
		Persistent:                       true,
		NewSubscriberReceivesOldMessages: true,
		ForceShort:                       true,
	}
	tests.TestPubSub(t, features, c.pubSub, c.pubSubWithGroup)
}

// TestPubSubOrderedByKey runs the suite's order tests with consumer groups and records
// keyed by payload: TestPublishSubscribeInOrder has ten subscribers share a group (so
// partitions move between them while they join) and checks that each payload's messages
// arrive in publish order; TestNoAck checks that nothing overtakes an unacked message.
func TestPubSubOrderedByKey(t *testing.T) {
	t.Parallel()
	b := transporttest.NewBroker(t, transport.EmbeddedConfig{})
	c := suiteClient{broker: b, group: groupPerTest, keyByPayload: true}
	features := tests.Features{
		ConsumerGroups:      true,
		ExactlyOnceDelivery: false,
		GuaranteedOrder:     true,
		Persistent:          true,
	}
	for name, fn := range map[string]func(*testing.T, tests.TestContext, tests.PubSubConstructor){
		"TestPublishSubscribeInOrder": tests.TestPublishSubscribeInOrder,
		"TestNoAck":                   tests.TestNoAck,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, tests.TestContext{TestID: tests.NewTestID(), Features: features}, c.pubSub)
		})
	}
}

// TestPubSubStress runs the grouped suite three times at once on one broker, at the suite's
// short sizes, to shake out races between concurrent publishers, subscribers and closes.
// The reconnect test is left out here: a restart would hit all three copies at once.
func TestPubSubStress(t *testing.T) {
	if testing.Short() {
		t.Skip("stress variant of the watermill suite skipped in -short mode; TestPubSub still runs the full suite")
	}
	// Not parallel: t.Setenv forbids it. The suite reads its repeat count from the
	// environment.
	t.Setenv("STRESS_TEST_COUNT", "3")
	b := transporttest.NewBroker(t, transport.EmbeddedConfig{})
	c := suiteClient{broker: b, group: groupPerTest}
	tests.TestPubSubStressTest(t, tests.Features{
		ConsumerGroups:      true,
		ExactlyOnceDelivery: false,
		GuaranteedOrder:     false,
		Persistent:          true,
		ForceShort:          true,
	}, c.pubSub, c.pubSubWithGroup)
}
