// Package cockpit (folder cockpit-ws, as kafka-go holds package kafka) is the live feed of
// the leadership cockpit (领导驾驶舱) and the command-centre wall screens: /ws/cockpit.
//
// The Hub keeps the open incidents in memory, fed by the city.incidents changelog
// (HandleIncidentChange; Restore at start-up), and pushes every change to every connected
// screen over a websocket.
//
// # Protocol
//
// The client authenticates on the handshake (`Authorization: Bearer <token>`, or
// `?access_token=<token>` since browsers cannot set headers on a WebSocket); the role must
// hold auth.PermCockpit. Browsers must come from an allowed Origin. Then the server sends,
// as JSON text messages:
//
//	{"type":"snapshot","seq":N,"epoch":"…","incidents":[…]}
//	{"type":"delta","seq":N+1,"op":"upsert","id":"INC-…","incident":{…}}
//	{"type":"delta","seq":N+2,"op":"remove","id":"INC-…","incident":{…}}
//	{"type":"delta","seq":N+3,"op":"remove","id":"INC-…"}
//	{"type":"delta","seq":N+4,"op":"noop"}
//
// Sequence numbers are the hub's global numbers: the snapshot carries the number of the last
// change it includes, and after it the connection receives every later number exactly once,
// in order, without gaps. A change the caller may not see (auth.Claims.CanSee: a worker's
// grids, an operator's district) arrives as op "noop", so a gap always means a lost message
// and resuming (a later feature) can work on the global numbers. "upsert" carries the
// incident's latest state; "remove" with an incident means it was closed (结案); "remove"
// without one means it left the caller's scope, whose new state the caller may not see.
// Incidents are masked for the caller's role with auth.MaskIncident (an operator sees
// 138****5678, a supervisor the number). epoch changes when the server restarts: sequence
// numbers of different epochs are unrelated.
//
// The server pings every PingInterval; a client must answer pongs (browsers do) and may send
// messages up to ReadLimit bytes, which are ignored for now (filters come later).
//
// # Slow clients
//
// Each connection has one writer goroutine that owns every write (frames and pings, each
// with a deadline) and a bounded queue. Fan-out never blocks: when a connection's queue is
// full, the client is too slow and is closed with code 4000 ("slow consumer"); it should
// reconnect and take a fresh snapshot. Other clients are unaffected.
//
// The hub must never block the changelog consumer on a websocket, never send an incident a
// caller may not see, and never send personal data unmasked to a role that may not see it.
package cockpit
