// Package city is the city map: the administrative areas (district 区 → street 街道 →
// community 社区 → grid 网格), the grid polygons with a spatial index, the event categories,
// the agencies that own them (权责清单), and the roster of grid workers (网格员) and community
// supervisors (社区监督员) with their shifts. It also converts between the coordinate systems
// producers use (WGS-84, GCJ-02, BD-09).
//
// A Map is loaded once from files (the embedded demo city 云川市, or a city's own data through
// Load) and is read-only afterwards, so it is safe for concurrent use without locks.
// Resolving a point never scans the polygons linearly: an R-tree over the grid bounding boxes
// picks the few candidates that a point-in-polygon test then decides.
//
// The package must never import anything downstream of the event contract (ingest, rules,
// incidents, dispatch): they all read the map, it reads nobody.
package city
