// Package lang is the rule language: each rule is data — a YAML or JSON file a rule author
// writes, not code — with an expr-lang condition that, when it holds for an event on
// city.events (or, for a stateful rule, holds over time), raises a Signal on city.signals for
// the incident service to open or merge into an incident. This package parses and loads rule
// files (Parse, Load), compiles every expression once against a typed environment per event
// type, and holds the functions and the sandbox a rule runs in; package engine evaluates the
// rules on events, package authoring keeps their versions, dry runs and backtests.
//
// # Rule files
//
// A file holds one rule, a list of rules, or several "---" documents of either:
//
//	id: water-level-high           # required, [a-z0-9-]+, at most 64 bytes, unique
//	name: 水位超警戒                # required; the default title
//	description: 积水点水位超过 80 cm  # optional
//	version: 1                     # default 1; becomes the signal's rule_version
//	enabled: true                  # default true
//	types: [city.sensor.reading]   # required: city.sensor.reading, city.hotline.ticket, city.video.detection
//	when: sensor.kind == "water_level" && sensor.metrics["level_cm"] > 80   # required, boolean
//	raise:
//	  category: "0104"             # required: a category code, or "=expr"
//	  severity: orange             # required: red|orange|yellow|blue, or "=expr"
//	  title: "{{area.street_name}} 水位 {{sensor.metrics.level_cm}}cm 超警戒"   # default: name
//	  correlation_key: "water:{{sensor.device_id}}"   # default "<rule id>:<event id>"
//	  agency: water                # optional routing hint (agency code)
//	  shadow: false                # true: record the signal, never raise an incident
//
// Every raise text is a template — literal text with {{ expr }} placeholders — or, when it
// starts with "=", a single expression whose string value is the field
// (category: "=hotline.category_code"). A literal that must start with "=" is written as an
// expression: `='=...'`. Numbers render as written (85, 0.5), times in Beijing time.
// Signals with the same correlation key merge into one incident, so the key should name the
// real-world thing: the device, the camera and algorithm, the category and grid. A key that
// renders empty falls back to the default. Unknown fields are errors.
//
// # Stateful rules
//
// A rule may have one of three stateful parts, kept per group key — group_by, an expression
// of the event (default: sensor.device_id for sensors, video.camera_id for cameras; hotline
// rules must name one) — within the event's street:
//
//	for: 5m          # when must hold on every event of the key for 5m of event time; it fires
//	                 # then, and clears at the first event on which when is false
//	window:          # an aggregate of the events for which when holds
//	  kind: sliding  # sliding: checked on each event and as time passes, over the last size;
//	                 #   fires when having becomes true, clears when it stops being true.
//	                 # tumbling: fixed periods of size from Beijing midnight, judged once
//	                 #   when the period has closed; fires, never clears
//	  size: 1h
//	  of: sensor.metrics["db"]   # the number aggregated (optional: without it, count only)
//	  having: count >= 3         # boolean over count, sum, avg, min, max
//	absent: 30m      # a key that has matched once and then not for 30m of clock time fires;
//	                 # it clears when the key matches again
//
// A clear is a Signal with Clear and Shadow set: it never opens an incident, it tells the
// incident service (and anyone reading city.signals) that the condition for that correlation
// key has stopped. Raise fields of a window rule may read window.count, window.sum,
// window.avg, window.min, window.max, window.start and window.end.
//
// Time is event time. Each street has a clock: the newest event time it has seen, run on by
// Engine.Tick while the street is idle at the pace of the wall clock from that event's
// arrival (the app ticks with the wall clock every second; replays and backtests with the
// replayed time) — never set to the wall clock, so a backlog old by the wall clock counts.
// The street's watermark is its clock minus Config.AllowedLateness (2m by default); an event
// behind it is late: stateless rules still judge it, stateful rules ignore it and count it
// in EngineStats().Late; at or after it an event counts in its place. Deadlines that wait on
// silence (for without a new event, absent, a tumbling period's end) act only once the
// watermark has passed them, so no event still allowed to arrive can contradict them. Signals
// raised by time carry the event time of their deadline, so a street's events handed over at
// once, in order, raise the same signals (ids, events, times) as the same events arriving live.
// A stateful rule's top-level equality conjuncts on indexed fields (sensor.kind == "gas",
// video.algorithm in [...]) select the events it is about: another kind of sensor neither
// holds nor breaks a for rule's condition, whatever its group key.
//
// State is in memory: a restart or a partition moving to another instance starts it afresh.
// A new version of a rule keeps its state when kind, group_by and the window's kind and of
// (and a tumbling window's size) are unchanged; see SetRules.
//
// # Expressions
//
// Expressions are expr-lang (https://expr-lang.org), compiled once when the rule is loaded
// against a typed environment per event type (SensorEnv, HotlineEnv, VideoEnv), so a misspelt
// field is a CompileError with its line, column and snippet, not a rule that never fires.
// Names are the JSON field names: every event has id, type, source, time, area.{district,
// district_name, street, street_name, community, community_name, grid, grid_name} and
// location.{lon, lat, known}; then sensor.{device_id, kind, metrics, status, battery},
// hotline.{ticket_id, channel, request_type, category_code, content, address, urgency,
// district_code} or video.{camera_id, algorithm, confidence, object_count, snapshot_url}.
// A rule listening to several types may use only what they share. A metric the reading does
// not carry reads as 0 (test `"current_a" in sensor.metrics` where 0 means something), and
// sensor.battery is nil when the device does not report it (`(sensor.battery ?? 100) < 20`).
// The 12345 caller's name and phone are not in the environment: no rule can copy personal
// data into a signal's text.
//
// Functions: contains_any(text, words...) (包含任意关键词), hour(t) and weekday(t) (1 Monday …
// 7 Sunday) in Beijing time, distance_m(lat1, lon1, lat2, lon2), in_area(area, name-or-code),
// in_polygon(lat, lon, [[lon, lat], …]), and a pure subset of expr's builtins (len, lower,
// upper, trim, split, abs, round, min, max, all, any, filter, map, count, …). now() is not
// available: the same event must always give the same answer, so replays and backtests agree
// with what happened.
//
// # Sandbox
//
// A rule's text is capped at MaxRuleBytes (64 KiB), a file at MaxFileBytes (4 MiB), an
// expression at MaxNodes (5000) syntax nodes, a range with constant bounds at 5,000
// elements; each run at MemoryBudget in expr's VM, a rule on one event at 5,000 closure
// iterations (its cost budget), and strings joined with + at 64 KiB (sandbox.go). A failure
// is an EvalError of that rule on that event, never a panic, and its text names the kind of
// failure, never a value of the event (errors.go); a rule over its cost budget on one event,
// or that fails Config.DisableAfter times in a row, is disabled on this instance
// (RuleStats.Quarantined and QuarantineReason, the urbanbrain_rules_quarantined metric) until
// a new version is loaded.
//
// # What a rule sees
//
// What its author may see: no caller name or phone, and the phone and ID numbers in a
// ticket's content and address masked (env.go). A rule with a District is offered only that
// district's events (engine/index.go); who may write which rule is the API's business.
//
// The package must never import the engine, the city map or the transport: rules arrive as
// an fs.FS or bytes and leave as compiled Rules.
package lang
