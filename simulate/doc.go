// Package simulate is the load generator for the demo city: a fixed fleet of sensors and AI
// cameras placed in the city's grids, and 12345 callers, producing realistic mixed traffic as
// CloudEvents in structured JSON mode — the same bytes real producers would send — to a Sink
// (Kafka ingest topics or the HTTP ingest API).
//
// Traffic is mostly normal readings with occasional alarm excursions; some problems are
// reported several times by different sources close together in space and time (一事多报), so
// the incident service has something to merge. The content is reproducible from Config.Seed;
// event ids are always fresh, so a second run with the same seed is not deduplicated away.
//
// Alarm levels the simulator produces (for rule authors; a rule's threshold should sit between
// the normal and the alarm band):
//
//	water_level level_cm   normal 20–80        excursion 120–260
//	gas         ppm        normal 0–15         excursion 60–500
//	manhole     tilt_deg   normal 0–3, open 0  excursion 12–60, open 1 (half the time)
//	street_lamp current_a  normal 0.8–1.3 (night), 0–0.05 (day)   fault 0 at night or 3–6
//	noise       db         normal 40–65 (day), 35–50 (night)      excursion 75–95
//	air         pm25       normal 10–75        excursion 150–320
//	bridge      strain     normal 80–300       excursion 550–900
//
// A device in excursion sends status "alarm" (street_lamp: "fault"); some devices go silent
// (status "offline" before they stop) for a while, for absence rules.
//
// The simulator must never be part of the processing path: it only produces input.
package simulate
