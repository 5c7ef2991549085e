// Package transport is urbanbrain's Kafka transport: a watermill Publisher and Subscriber
// built on segmentio/kafka-go, the embedded Kafka-protocol broker (kfake) the binary starts
// when no cluster is configured, and the small helpers the services need around them
// (creating topics, replaying a changelog topic, adapting watermill to the one-method
// Publisher interface the domain packages declare).
//
// Delivery is at-least-once: a message's offset is committed only after it was acked, a nacked
// message is delivered again (after NackBackoff) before anything behind it on its
// subscription, and records with the same partition key keep their order. Handlers must
// therefore be idempotent by event id.
//
// This is the only package besides the composition root that imports watermill and kafka-go.
// It must never learn about domain types: it moves keys, bytes and headers, nothing more.
package transport
