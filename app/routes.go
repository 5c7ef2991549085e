package app

import (
	"fmt"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
)

// routes maps every topic to its handler, and outputTopic below maps every output kind to its
// topic: read together, top to bottom, they are the path of an event, in and out:
//
//	producers → city.ingest.* → ingest → city.events (bad input → city.deadletter)
//	city.events → rules → city.signals
//	city.signals, city.commands → incidents → city.incidents (changelog), city.command-results, city.audit
//	city.incidents → dispatch → city.commands (the dispatch command) + city.dispatch (the record)
//	city.dispatch → webhook → agencies (signed HTTP POST) + city.audit
//	city.incidents, city.events → cockpit (websockets); city.command-results → the waiting HTTP caller
//
// Each line is one stage (stage.go): a consumer group (urbanbrain.<name>) whose partitions run
// in parallel, each in order, with outputs produced asynchronously and offsets committed only
// once every output of a record is acknowledged. Groups marked perInstance are named after
// this process's instance id because every instance needs every record (in-memory views).
func (a *App) routes() []route {
	var rs []route
	add := func(on bool, r route) {
		if on {
			rs = append(rs, r)
		}
	}
	// 1. Ingest: raw producer input → validated, located events (bad input → city.deadletter).
	for _, topic := range []string{event.TopicIngestSensor, event.TopicIngestHotline, event.TopicIngestVideo} {
		add(a.cfg.Runs(CompIngest), route{name: "ingest." + topic, topics: []string{topic}, handle: a.ingestRecord})
	}
	// 2. Rules: events → signals; rule versions → every instance's catalog and engine (rules.go).
	add(a.cfg.Runs(CompRules), route{name: "rules", topics: []string{event.TopicEvents},
		handle: typed(a, eventTypes, a.rules.HandleEvent), assigned: a.loadRuleState, revoked: a.forgetRuleState})
	add(a.cfg.Runs(CompRules) || a.cfg.Runs(CompAPI), route{name: "rules.versions", topics: []string{event.TopicRules}, perInstance: true,
		handle: typed(a, []string{event.TypeRuleVersion}, none(a.applyRuleVersion))})
	// 3. Incidents: signals and commands → the city.incidents changelog, command results, audit.
	//    One group on both topics (co-partitioned by street), so one member owns all of a
	//    street; a partition's incidents are loaded from its changelog partition when it is
	//    assigned and forgotten when it is revoked (ownership.go).
	add(a.cfg.Runs(CompIncidents), route{name: "incidents", topics: []string{event.TopicSignals, event.TopicCommands},
		handle: byTopic(map[string]handler{
			event.TopicSignals:  typed(a, []string{event.TypeSignal}, a.incidents.HandleSignal),
			event.TopicCommands: typed(a, []string{event.TypeCommand}, a.handleCommand), // signing.go
		}), assigned: a.loadIncidents, revoked: a.forgetIncidents})
	// 4. Dispatch: new incidents → a dispatch command and a dispatch record. A partition's
	//    open dispatches (the workers' load) are read from its changelog partition on assignment;
	//    an unanswered dispatch of a street this instance owns is decided again on a timer
	//    (workflow.go, dispatch.Retry), its outputs bound by outputTopic like the stage's.
	add(a.cfg.Runs(CompDispatch), route{name: "dispatch", topics: []string{event.TopicIncidents},
		handle: typed(a, []string{event.TypeIncidentChanged}, a.dispatch.HandleIncidentChange), assigned: a.loadDispatch})
	//    Agencies with a webhook are told of their dispatches (signed, retried, audited).
	add(a.cfg.Runs(CompDispatch), route{name: "webhook", topics: []string{event.TopicDispatch},
		handle: typed(a, []string{event.TypeDispatch}, none(a.webhook.HandleDispatch))})
	//    CAP alert messages (预警) → the subscribers, through the same webhook path (alerts.go).
	add(a.cfg.Runs(CompDispatch) && len(a.cfg.CAPSubscribers) > 0, route{name: "alerts.push", topics: []string{event.TopicIncidents},
		handle: typed(a, []string{event.TypeIncidentChanged}, none(a.pushAlerts))})
	// 5. Storage: projections of events, incidents and dispatches, written in batches by the
	//    storage sinks below (storageSinks), not by stages.
	// 6. Cockpit: the changelog → websocket snapshot and deltas; events → KPIs (events per
	//    second, sensors online).
	add(a.cfg.Runs(CompCockpit), route{name: "cockpit", topics: []string{event.TopicIncidents}, perInstance: true,
		handle: typed(a, []string{event.TypeIncidentChanged}, none(a.cockpit.HandleIncidentChange))})
	//    The KPIs read little of an event, and decode only that (cockpit.Seen), unless this
	//    instance's own events sink (SQLite: every partition, storageSinks) runs here too: it
	//    decodes every event whole, and the KPIs share that decode (decoded.go).
	kpis := typed(a, eventTypes, none(a.cockpit.HandleSeen))
	if a.cfg.Runs(CompStorage) && a.cfg.Store == StoreSQLite {
		kpis = typed(a, eventTypes, none(a.cockpit.HandleEvent))
	}
	add(a.cfg.Runs(CompCockpit), route{name: "cockpit.events", topics: []string{event.TopicEvents}, perInstance: true, handle: kpis})
	//    Local accounts → every instance's directory, so a sign-in works on any node (accounts.go).
	add(a.cfg.Runs(CompAPI) || a.cfg.Runs(CompCockpit), route{name: "accounts", topics: []string{event.TopicAccounts}, perInstance: true,
		handle: typed(a, []string{event.TypeAccount}, none(a.applyAccount))})
	// 7. API: command outcomes → the waiting HTTP request.
	add(a.cfg.Runs(CompAPI), route{name: "api.results", topics: []string{event.TopicResults}, perInstance: true,
		handle: typed(a, []string{event.TypeCommandResult}, none(a.results.HandleResult))})
	return rs
}

// outputTopic binds every kind of output a handler returns to its topic and CloudEvents type.
// Handlers never choose topics; this is the one place that does.
func outputTopic(o event.Output) (topic, ceType string, err error) {
	switch d := o.Data.(type) {
	case event.Event:
		return event.TopicEvents, d.Type, nil // ingest
	case event.DeadLetter:
		return event.TopicDeadLetter, event.TypeDeadLetter, nil // ingest, every stage's undecodable input
	case event.Signal:
		return event.TopicSignals, event.TypeSignal, nil // rules
	case event.IncidentChange:
		return event.TopicIncidents, event.TypeIncidentChanged, nil // incidents
	case event.CommandResult:
		return event.TopicResults, event.TypeCommandResult, nil // incidents
	case event.AuditRecord:
		return event.TopicAudit, event.TypeAudit, nil // incidents, webhook
	case event.Command:
		return event.TopicCommands, event.TypeCommand, nil // dispatch, the SLA clock, HTTP
	case event.Dispatch:
		return event.TopicDispatch, event.TypeDispatch, nil // dispatch
	case auth.Account:
		return event.TopicAccounts, event.TypeAccount, nil // the accounts API
	}
	return "", "", fmt.Errorf("no topic for an output of type %T", o.Data)
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
		{name: "storage.events", topic: event.TopicEvents, write: batchOf(a, eventTypes, a.store.HandleEvents)},
		{name: "storage.incidents", topic: event.TopicIncidents, write: batchOf(a, []string{event.TypeIncidentChanged}, a.store.HandleIncidentChanges)},
		{name: "storage.dispatch", topic: event.TopicDispatch, write: batchOf(a, []string{event.TypeDispatch}, a.store.HandleDispatches)},
	}, a.auditSinks()...) // city.audit → the audit log (workflow.go)
}
