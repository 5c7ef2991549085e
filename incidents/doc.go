// Package incidents owns the incident lifecycle: it turns rule signals into incidents (one
// incident per real-world problem, however many reports: 一事多报), applies commands against
// the state machine (立案 new → 派遣 dispatched → 签收 accepted → 处置 in_progress →
// 反馈 resolved → 结案 closed), and writes every change to the city.incidents changelog, the
// system of record from which it rebuilds on start.
//
// State is single-writer per street (the partition key), so correlation, idempotency and
// transitions behave the same in one process as across many. The package must never change
// memory before the change is on the changelog: a failed publish leaves the state untouched so
// a redelivered message retries cleanly. It never imports the transport; it publishes through
// Publisher.
package incidents
