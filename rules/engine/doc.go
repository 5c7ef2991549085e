// Package engine evaluates compiled rules (package lang) on events and turns matches into
// signals, keeping the state of stateful rules per street on event time.
//
// # Evaluation
//
// Engine.HandleEvent offers each event only to the enabled rules that could match it — by
// event type, by one equality conjunct of their condition, and, for stateless rules, by one
// comparison of a number with a constant (sensor.metrics.level_cm > 80), found by binary
// search among the thresholds (index.go) — in rule order, and returns a Signal per match as
// an event.Output keyed by the event's street; which topic it goes to is the routes file's
// business. Signal ids are "<rule id>:<event id>" (":clear" appended for a clear), so an
// event handled again yields the same signals, which the incident service already holds. A
// rule that fails on an event at run time is logged, counted (Engine.Stats) and skipped for
// that event; it never stops the other rules or blocks the partition. Stateful rules
// remember each street's latest events (Config.Redelivery) and give an event handled again
// the outputs it gave the first time instead of applying it twice. Engine.Tick returns what
// the clock raises; those outputs are not tied to an input and must be written, not dropped.
//
// The package must never import the city map or the transport: rules arrive as []lang.Rule,
// signals leave as the outputs HandleEvent and Tick return.
package engine
