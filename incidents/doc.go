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
// rebuilt with the incidents; Tick, driven by RunClock or by a test's fake time, turns due
// warnings and breaches into commands for the partition's owner.
//
// Handlers return what they produce as event.Outputs — changelog records, audit records,
// command results, SLA commands — in the order they must be written, and never choose a topic:
// the composition root's routes do. The state changes as soon as the outputs are built,
// because the stage runner writes every output it is handed, retrying in order, before it
// commits the input's offset. A crash before the outputs are acknowledged leaves the input
// uncommitted: after the restart the state is rebuilt from the changelog, which holds only the
// changes that were acknowledged, and the redelivered input builds the missing outputs again.
// (One gap: a command whose change reached the changelog but whose audit record did not is
// answered again from the outcome rebuilt by Restore, which has its result but not its audit.)
//
// State is single-writer per street (the partition key), so correlation, idempotency and
// transitions behave the same in one process as across many, and every handler is idempotent:
// a redelivered signal or command produces no second change. The package never reads the wall
// clock outside Config.Now and RunClock, and never imports the transport.
package incidents
