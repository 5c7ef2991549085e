// Package open311 is the Open311 GeoReport v2 vocabulary of the city: its services (the
// city's problem categories), a citizen's service request as the 12345 hotline ticket that
// ingest accepts, an incident as a service request, and the JSON and XML encodings exactly as
// the GeoReport v2 specification defines them (http://wiki.open311.org/GeoReport_v2).
//
// It is pure: types and mappings, no HTTP server state, no store, no broker. It never decides
// what is personal data or masks it — package auth does, once, and the API applies it before
// an incident reaches FromIncident; a service request made here carries no caller field at
// all, so a caller's name, phone or e-mail cannot leave through it.
package open311
