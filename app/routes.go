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
//	incidents, webhook → city.audit (every command's outcome, every notification) → storage
//	dispatch → city.dispatch → webhook → agencies (signed HTTP POST)
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
	// 2. Rules: events → signals; rule versions → every instance's catalog and engine (rules.go).
	add(a.cfg.Runs(CompRules), route{name: "rules", topic: event.TopicEvents,
		handle: typed(a, eventTypes, a.rules.HandleEvent)})
	add(a.cfg.Runs(CompRules) || a.cfg.Runs(CompAPI), route{name: "rules.versions", topic: event.TopicRules, perInstance: true,
		handle: typed(a, []string{event.TypeRuleVersion}, a.applyRuleVersion)})
	// 3. Incidents: signals and commands → the city.incidents changelog and command results.
	add(a.cfg.Runs(CompIncidents), route{name: "incidents.signals", topic: event.TopicSignals,
		handle: typed(a, []string{event.TypeSignal}, a.incidents.HandleSignal)})
	add(a.cfg.Runs(CompIncidents), route{name: "incidents.commands", topic: event.TopicCommands,
		handle: typed(a, []string{event.TypeCommand}, a.incidents.HandleCommand)})
	// 4. Dispatch: new incidents → a dispatch record and a dispatch command.
	add(a.cfg.Runs(CompDispatch), route{name: "dispatch", topic: event.TopicIncidents,
		handle: typed(a, []string{event.TypeIncidentChanged}, a.dispatch.HandleIncidentChange)})
	//    Agencies with a webhook are told of their dispatches (signed, retried, audited).
	add(a.cfg.Runs(CompDispatch), route{name: "webhook", topic: event.TopicDispatch,
		handle: typed(a, []string{event.TypeDispatch}, a.webhook.HandleDispatch)})
	// 5. Storage: projections of events, incidents and dispatches, written in batches by the
	//    storage sinks below (storageSinks), not by routes.
	// 6. Cockpit: the changelog → websocket snapshot and deltas; events → KPIs (events per
	//    second, sensors online).
	add(a.cfg.Runs(CompCockpit), route{name: "cockpit", topic: event.TopicIncidents, perInstance: true,
		handle: typed(a, []string{event.TypeIncidentChanged}, a.cockpit.HandleIncidentChange)})
	add(a.cfg.Runs(CompCockpit), route{name: "cockpit.events", topic: event.TopicEvents, perInstance: true,
		handle: typed(a, eventTypes, a.cockpit.HandleEvent)})
	// 7. API: command outcomes → the waiting HTTP request.
	add(a.cfg.Runs(CompAPI), route{name: "api.results", topic: event.TopicResults, perInstance: true,
		handle: typed(a, []string{event.TypeCommandResult}, a.results.HandleResult)})
	return rs
}

var eventTypes = []string{event.TypeSensorReading, event.TypeHotlineTicket, event.TypeVideoDetection}

// storageSinks maps the topics the store projects to its batch handlers. They run as storage
// sinks (storagesink.go), each on its own consumer group, so that a batch is committed only
// once it is stored and a store outage leaves the backlog in Kafka.
func (a *App) storageSinks() []storageSink {
	if !a.cfg.Runs(CompStorage) {
		return nil
	}
	return append([]storageSink{
		{name: "storage.events", topic: event.TopicEvents, write: batchOf(eventTypes, a.store.HandleEvents)},
		{name: "storage.incidents", topic: event.TopicIncidents, write: batchOf([]string{event.TypeIncidentChanged}, a.store.HandleIncidentChanges)},
		{name: "storage.dispatch", topic: event.TopicDispatch, write: batchOf([]string{event.TypeDispatch}, a.store.HandleDispatches)},
	}, a.auditSinks()...) // city.audit → the audit log (workflow.go)
}
