package cockpit

// Flush ends a coalescing tick now, as Run does every FlushInterval, so tests decide when
// frames go out instead of waiting for a timer.
func Flush(h *Hub) { h.flush() }

// PublishKPIs sends the KPI frames now, as Run does every KPIInterval.
func PublishKPIs(h *Hub) { h.publishKPIs() }
