// Package incidents owns the incident lifecycle, the 数字城管 / 12345 work-order loop: it turns
// rule signals into incidents — one incident per real-world problem, however many reports
// (一事多报): a signal joins the open incident with its correlation key, or else the nearest
// open incident of the same or a related category within the category's radius and time window
// (a spatial-temporal bucket index, never a scan) — and applies commands against the state
// machine (lifecycle.go: 立案 new → 派遣 dispatched → 签收 accepted → 处置 in_progress →
// 反馈 resolved → 核查 verified → 结案 closed, with 退单 returned, 延期, 督办, 重办, 误报
// cancelled, 回访, 并单 merged and 拆单), each checked against the actor's role and scope.
// Every change goes to the city.incidents changelog, the system of record from which it
// rebuilds on start, and every command's outcome, refusals included, to the city.audit log.
//
// Each incident carries the SLA clock of its current stage (clock.go), so the clocks are
// rebuilt with the incidents; Tick, driven by the application or by a test's fake time, turns
// due warnings and breaches into commands for the partition's owner.
//
// State is single-writer per street (the partition key), so correlation, idempotency and
// transitions behave the same in one process as across many. The package must never change
// memory before the change is on the changelog: a failed publish leaves the state untouched so
// a redelivered message retries cleanly. It never reads the wall clock outside Config.Now and
// RunClock, and never imports the transport; it publishes through Publisher.
package incidents
