-- What the leadership report counts incidents by (issue 14 item 6): where an incident came from
-- (the event type of its first report, storage.IncidentSource) and the rule that opened it.
-- The writer fills both. For versions stored before this migration the server computes the
-- defaults from the document: the first "event_type" in it is the first report's, and the first
-- "rule_id" the first report's rule, the one whose signal opened the incident.
ALTER TABLE incidents ADD COLUMN source String DEFAULT visitParamExtractString(doc, 'event_type');
ALTER TABLE incidents ADD COLUMN rule_id String DEFAULT visitParamExtractString(doc, 'rule_id');
