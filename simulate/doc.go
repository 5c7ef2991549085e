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
// Sources: SourceSensor ("sensor-gw/yunchuan"), SourceHotline ("12345/yunchuan") and
// SourceVideo ("video-ai/yunchuan"); times carry the +08:00 offset, positions are WGS-84 except
// tickets, half of which carry GCJ-02 and a few BD-09 positions (the rest only an address and a
// district code). Keys are the device, ticket or camera id; ingest re-keys by street.
//
// Levels the simulator produces (for rule authors: put a threshold between the two bands):
//
//	water_level level_cm   normal 20–80                       excursion 120–260
//	gas         ppm        normal 0–15                        excursion 65–510
//	manhole     tilt_deg   normal 0–3, open 0                 excursion 12–60, open 1 half the time
//	street_lamp current_a  night (18–06h) 0.8–1.3, day 0–0.02 fault 0, or 3–6 (status "fault")
//	noise       db         day 40–65, night 30–55             excursion 75–95
//	air         pm25       normal 5–80                        excursion 160–330
//	bridge      strain     normal 60–300                      excursion 550–900
//
// An excursion lasts 2–10 minutes of wall time and its readings have status "alarm" (street
// lamps "fault"); a few devices go silent for 5–20 minutes, for absence rules; a few report
// a battery under 20 %. Each excursion is also a problem that tickets and camera detections
// may report again within 60 m (a water_level excursion is reported as 0202 道路积水 and seen by
// the waterlogging algorithm; gas as 0103; manhole 0101; street_lamp 0102; noise 0401; air
// 0402; bridge 0203). Camera algorithms map to categories: illegal_parking 0201,
// garbage_overflow 0301, street_vending 0302, crowding 0502, waterlogging 0202, smoke_fire 0501.
//
// The simulator must never be part of the processing path: it only produces input.
package simulate
