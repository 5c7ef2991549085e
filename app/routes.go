package app

import (
	"github.com/urbanbrain/urbanbrain/event"
)

// routes maps every topic to its handler. Read top to bottom, it is the path of an event:
//
//	producers → city.ingest.* → ingest → city.events → rules → city.signals → incidents
//	operators → HTTP → city.commands → incidents → city.incidents → dispatch, cockpit, storage
//	dispatch → city.dispatch (record) + city.commands (the dispatch command)
//	incidents → city.command-results → the HTTP caller waiting for its command's outcome
//
// Each line is one consumer group (urbanbrain.<name>), so each stage keeps its own offsets
// and commits only what it has handled. Groups marked perInstance are named after this
// process's instance id because every instance needs every record (in-memory views).
func (a *App) routes() []route {
	var rs []route
	add := func(on bool, r route) {
		if on {
			rs = append(rs, r)
		}
	}
	// 1. Ingest: raw producer input → validated, located events (bad input → city.deadletter).
	for _, topic := range []string{event.TopicIngestSensor, event.TopicIngestHotline, event.TopicIngestVideo} {
		add(a.cfg.Runs(CompIngest), route{name: "ingest." + topic, topic: topic, handle: a.ingestRecord})
	}
	// 2. Rules: events → signals.
	add(a.cfg.Runs(CompRules), route{name: "rules", topic: event.TopicEvents,
		handle: typed(a, eventTypes, a.rules.HandleEvent)})
	// 3. Incidents: signals and commands → the city.incidents changelog and command results.
	add(a.cfg.Runs(CompIncidents), route{name: "incidents.signals", topic: event.TopicSignals,
		handle: typed(a, []string{event.TypeSignal}, a.incidents.HandleSignal)})
	add(a.cfg.Runs(CompIncidents), route{name: "incidents.commands", topic: event.TopicCommands,
		handle: typed(a, []string{event.TypeCommand}, a.incidents.HandleCommand)})
	// 4. Dispatch: new incidents → a dispatch record and a dispatch command.
	add(a.cfg.Runs(CompDispatch), route{name: "dispatch", topic: event.TopicIncidents,
		handle: typed(a, []string{event.TypeIncidentChanged}, a.dispatch.HandleIncidentChange)})
	// 5. Storage: projections of events, incidents and dispatches.
	add(a.cfg.Runs(CompStorage), route{name: "storage.events", topic: event.TopicEvents,
		handle: typed(a, eventTypes, a.store.HandleEvent)})
	add(a.cfg.Runs(CompStorage), route{name: "storage.incidents", topic: event.TopicIncidents,
		handle: typed(a, []string{event.TypeIncidentChanged}, a.store.HandleIncidentChange)})
	add(a.cfg.Runs(CompStorage), route{name: "storage.dispatch", topic: event.TopicDispatch,
		handle: typed(a, []string{event.TypeDispatch}, a.store.HandleDispatch)})
	// 6. Cockpit: the changelog → websocket snapshot and deltas.
	add(a.cfg.Runs(CompCockpit), route{name: "cockpit", topic: event.TopicIncidents, perInstance: true,
		handle: typed(a, []string{event.TypeIncidentChanged}, a.cockpit.HandleIncidentChange)})
	// 7. API: command outcomes → the waiting HTTP request.
	add(a.cfg.Runs(CompAPI), route{name: "api.results", topic: event.TopicResults, perInstance: true,
		handle: typed(a, []string{event.TypeCommandResult}, a.results.HandleResult)})
	return rs
}

var eventTypes = []string{event.TypeSensorReading, event.TypeHotlineTicket, event.TypeVideoDetection}
