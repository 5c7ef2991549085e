// Package cockpit (folder cockpit-ws, as kafka-go holds package kafka) is the live feed of
// the leadership cockpit (领导驾驶舱) and the command-centre wall screens, /ws/cockpit, the
// grid workers' own feed, /ws/worker, and the wall-screen page itself (Page).
//
// The Hub keeps the open incidents in memory, fed by the city.incidents changelog
// (HandleIncidentChange; Restore at start-up), and counts the events of city.events
// (HandleEvent) for the KPIs. docs/cockpit.md is the protocol; in short:
//
//   - A client subscribes with a filter (district, street, category, severity), a
//     coordinate system and a view fixed by its token (scope and masking). Every client with
//     the same subscription shares it: frames are numbered and encoded once per
//     subscription, not per client.
//   - It gets a snapshot with a seq, then delta frames with consecutive seqs. Changes are
//     coalesced: each tick (FlushInterval, 250 ms by default) makes at most one delta per
//     subscription, the net change of the tick, latest state of each incident winning.
//     Applying delta N to the state at N-1 gives exactly the state at N; a missing number
//     always means a lost frame.
//   - After a reconnect it resumes from its epoch and last seq: the missed deltas are
//     replayed from the subscription's bounded history, or the server says reload and sends
//     a new snapshot. It is never silently behind.
//   - KPI frames (every KPIInterval) and the grid layer (map frame, WGS-84, GCJ-02 or BD-09)
//     are sent to clients that ask for them.
//
// # Slow clients
//
// Each connection has one writer goroutine that owns every write (frames and pings, each
// with a deadline) and a bounded queue. Fan-out never blocks: when a connection's queue is
// full (close 4000, "slow consumer"), or a write does not finish within WriteTimeout, the
// client is dropped and should reconnect and resume. Other clients are unaffected.
//
// # Limits
//
// One token cannot take the hub from the others: each subject (role and `sub`) holds at most
// SubjectConnections sockets and SubjectSubscriptions distinct subscriptions, the roles
// that act on incidents (admin, supervisor, operator) have ReservedShare of the connections
// and subscriptions to themselves, and the histories of all subscriptions together stay
// within HistoryBudget. A refused handshake is upgraded and closed with a reason (1008 for
// the token's own limits, 1013 for the server's), which a browser can show; a plain HTTP
// status it could not.
//
// The hub must never block the changelog consumer on a websocket, never let viewers lock
// the command centre out, never send an incident a
// caller may not see, never send personal data unmasked to a role that may not see it, and
// never let a client believe it is up to date when it is not.
package cockpit
