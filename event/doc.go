// Package event is the contract every stage of urbanbrain shares: topic names, CloudEvents
// types, the payloads of the three sources (sensor, 12345 hotline, video), the normalised
// Event that travels on city.events, and the Signal, Incident, Command and Dispatch records
// that follow it downstream.
//
// It is a leaf: it imports nothing from this module and must never grow behaviour beyond
// encoding, so that ingest, rules, incidents, dispatch, cockpit and storage can all depend on
// it without depending on each other. Field names here are the wire schema documented in
// docs/events.md; change them only together with that page.
package event
