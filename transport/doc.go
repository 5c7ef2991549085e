// Package transport is urbanbrain's Kafka transport on segmentio/kafka-go:
//
//   - the stage runner (Stage) every route of the pipeline runs on: a consumer group whose
//     partitions are handled in parallel, each in order, with outputs handed to the shared
//     asynchronous Producer and offsets committed only once every output of a record and of
//     the records before it is acknowledged; partitions are loaded on assignment and given up
//     after a drain (OnAssigned, OnRevoked), and co-partitioned topics are assigned alike;
//   - the Producer, one kafka-go Writer in async mode shared by every stage and by the few
//     synchronous writers (Write);
//   - a watermill Publisher and Subscriber (they pass watermill's universal suite), for
//     watermill users and tests;
//   - the embedded Kafka-protocol broker (kfake) the binary starts when no cluster is
//     configured, and the helpers around them: creating topics, reading a changelog topic or
//     one partition of it (ReadAll, ReadPartition, ReadPartitionSince), and the producers'
//     partitioner (PartitionOf);
//   - the connection security (Security: TLS and SASL), the one place every kafka-go Dialer,
//     Transport and Client of the process is built, and the embedded broker's SASL when it
//     listens beyond loopback.
//
// Delivery is at-least-once and in order per partition: nothing is committed before it is
// handled and its outputs are acknowledged, a failed record is handed over again before
// anything behind it. Handlers must therefore be idempotent by the record's identity.
//
// This is the only package besides the composition root that imports watermill and kafka-go.
// It must never learn about domain types: it moves keys, bytes and headers, nothing more.
package transport
