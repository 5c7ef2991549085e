// Package rules turns events into signals: each rule is data — a YAML or JSON file a rule
// author writes, not code — with an expr-lang condition that, when it holds for an event on
// city.events, raises a Signal on city.signals for the incident service to open or merge into
// an incident.
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
// renders empty falls back to the default.
// Unknown fields are errors; for, window and absent are reserved for the stateful rules of a
// later release and refused until then.
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
// sensor.battery is nil when the device does not report it (`(sensor.battery ?? 100) < 20`). The 12345 caller's name and
// phone are not in the environment: no rule can copy personal data into a signal's text.
//
// Functions: contains_any(text, words...) (包含任意关键词), hour(t) and weekday(t) (1 Monday …
// 7 Sunday) in Beijing time, distance_m(lat1, lon1, lat2, lon2), and a pure subset of expr's
// builtins (len, lower, upper, trim, split, abs, round, min, max, all, any, filter, map, count,
// …). now() is not available: the same event must always give the same answer, so replays
// and backtests agree with what happened. Expressions are capped at MaxNodes (5000) syntax
// nodes, a rule's text at MaxRuleBytes (64 KiB) and a file at MaxFileBytes (4 MiB).
//
// # Evaluation
//
// Load reads a directory in file-name order. Engine.HandleEvent runs the enabled rules of the
// event's type in that order and publishes a Signal per match, keyed by the event's street.
// Signal ids are "<rule id>:<event id>", so a redelivered event yields the same signals, which
// the incident service already holds. A rule that fails on an event at run time is logged,
// counted (Engine.Stats) and skipped for that event; it never stops the other rules or blocks
// the partition. Only a failed Publish is returned, to have the event redelivered.
//
// The package must never import the city map or the transport: rules arrive as an fs.FS or
// bytes, signals leave through the one-method Publisher.
package rules
