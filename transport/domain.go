package transport

import (
	"context"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// DomainPublisher adapts a watermill publisher to a one-method interface,
//
//	Publish(ctx context.Context, topic, key string, value []byte) error
//
// for callers that write encoded records without importing watermill. (The pipeline's stages
// do not use it: they return outputs to the Stage runner, which produces them.)
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
