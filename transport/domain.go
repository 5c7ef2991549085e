package transport

import (
	"context"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// DomainPublisher adapts a watermill publisher to the one-method interface the domain
// packages declare:
//
//	Publish(ctx context.Context, topic, key string, value []byte) error
//
// so that they never import watermill.
type DomainPublisher struct {
	pub message.Publisher
}

// NewDomainPublisher wraps pub (usually a *Publisher).
func NewDomainPublisher(pub message.Publisher) *DomainPublisher {
	return &DomainPublisher{pub: pub}
}

// Publish sends value to topic under key (the partition key; the street code on
// urbanbrain's own topics) and returns once the broker acknowledged it. ctx bounds the wait.
func (d *DomainPublisher) Publish(ctx context.Context, topic, key string, value []byte) error {
	msg := message.NewMessage(watermill.NewUUID(), value)
	msg.Metadata.Set(KeyMetadata, key)
	msg.SetContext(ctx)
	return d.pub.Publish(topic, msg)
}

// MessageKey returns the partition key of a message: the Kafka record key of a consumed
// message, or the KeyMetadata set on one about to be published.
func MessageKey(msg *message.Message) string {
	return msg.Metadata.Get(KeyMetadata)
}
