// Package ingest is the front door of urbanbrain: it takes raw sensor readings, 12345 hotline
// work orders and video detections from the Kafka topics city.ingest.{sensor,hotline,video}
// and from POST /api/v1/events, checks them, converts their coordinates to WGS-84, resolves
// their area (district → street → community → grid) and produces one normalised
// event.Event per input for city.events, keyed by street. On the Kafka path it returns the
// event (or a dead letter) as an output for the stage runner to write; over HTTP it writes
// through its Sink and answers once the broker has acknowledged.
//
// Accepted forms: a CloudEvents 1.0 structured JSON record, a binary-mode record (ce_*
// Kafka headers or ce-* HTTP headers, the value is the data), and on the Kafka topics a bare
// payload with no envelope, whose type is the topic's. Any of the three event types is
// accepted on any ingest topic: producers that share one topic for several sources are
// common, and the type, not the topic, says what the payload is.
//
// What it must never do: drop bad input silently, block a partition on it, or panic on it.
// Input that fails a check goes to city.deadletter with a precise reason (and HTTP callers
// get the reason back); bad input is never an error. The checks are written so that hostile
// bytes cannot make them panic — recover is not the safety net — and FuzzHandleRecord keeps
// it that way. A structured record is read in one strict pass (scan.go) that refuses what the
// CloudEvents SDK's reader refused; FuzzEnvelopeMatchesSDK holds it to that reader.
//
// A 12345 ticket without a valid category code gets one from the city's words: its producer's
// category text through the aliases of categories.yaml, else its text through the keywords
// (category.go, city.Map.CategoryFor and Classify); the ticket records how (category_by), and
// the metrics count it. Only those tickets pay for it.
//
// Replays are dropped by a bounded set of recently seen (type, id) pairs. That is a cost
// saving, not the guarantee: every downstream stage is idempotent by event id.
package ingest
