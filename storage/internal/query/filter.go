package query

import (
	"time"

	"github.com/urbanbrain/urbanbrain/storage"
)

// Incidents is the condition of an incident filter, over the incidents table's columns.
// Limit and Offset are the caller's: backends page differently.
func (d *Dialect) Incidents(f storage.IncidentFilter) *Where {
	w := d.New()
	if len(f.Status) > 0 {
		vs := make([]string, len(f.Status))
		for i, st := range f.Status {
			vs[i] = string(st)
		}
		w.AnyOf(Coarse, "status", vs)
	}
	w.Eq("category", f.Category)
	w.EqCoarse("severity", f.Severity)
	w.Eq("district", f.District)
	w.Eq("street", f.Street)
	w.Eq("grid", f.Grid)
	w.Eq("assignee_worker_id", f.AssigneeWorker)
	if f.OpenOnly {
		w.open()
	}
	if f.Ungridded {
		w.Add(Coarse, "grid", " = ''")
	}
	w.Between("updated_ms", f.Since, f.Until)
	w.AnyOf(Selective, "grid", f.Grids)
	if f.Text != "" {
		// The title, or the summary of any report (which carries the 12345 ticket's text).
		needle := storage.LowerASCII(f.Text)
		title, args := d.Contains("title", f.TextMasked, needle)
		summary, summaryArgs := d.Contains(d.ReportSummary, f.TextMasked, needle)
		w.Add(Computed, "", "("+title+" OR "+d.AnyReport(summary)+")", append(args, summaryArgs...)...)
	}
	return w
}

// Events is the condition of an event filter, over the events table's columns. Limit and
// Offset are the caller's.
func (d *Dialect) Events(f storage.EventFilter) *Where {
	w := d.New()
	w.EqCoarse("type", f.Type)
	w.Eq("district", f.District)
	w.Eq("street", f.Street)
	w.Eq("grid", f.Grid)
	w.Eq("device", f.DeviceID)
	d.eventTime(w, f.Since, f.Until)
	w.AnyOf(Selective, "grid", f.Grids)
	if c := f.Near; c != nil {
		// The same arithmetic as storage.Circle.Contains, so every backend draws one boundary.
		kx, ky := c.Scales()
		w.Add(Computed, "", "("+d.HasLocation+" AND ((lon - ?) * ?) * ((lon - ?) * ?) + ((lat - ?) * ?) * ((lat - ?) * ?) <= ?)",
			c.Lon, kx, c.Lon, kx, c.Lat, ky, c.Lat, ky, c.RadiusM*c.RadiusM)
	}
	if f.Text != "" {
		needle := storage.LowerASCII(f.Text)
		content, args := d.Contains(d.HotlineContent, f.TextMasked, needle)
		address, addressArgs := d.Contains(d.HotlineAddress, f.TextMasked, needle)
		w.Add(Computed, "", "("+content+" OR "+address+")", append(args, addressArgs...)...)
	}
	return w
}

// KPIScope narrows a KPI query to the caller's district and grids.
func (d *Dialect) KPIScope(f storage.KPIFilter) *Where {
	w := d.New()
	w.Eq("district", f.District)
	w.AnyOf(Selective, "grid", f.Grids)
	return w
}

// KPIOpen is the condition of a KPI over the incidents open now.
func (d *Dialect) KPIOpen(f storage.KPIFilter) *Where {
	w := d.KPIScope(f)
	w.open()
	return w
}

// open keeps the incidents whose status is open: the column holds event.Status.Open().
func (w *Where) open() { w.Add(Coarse, "open", " = 1") }

// KPIEvents is the condition of a KPI over events: the scope and the events' time range.
func (d *Dialect) KPIEvents(f storage.KPIFilter) *Where {
	w := d.KPIScope(f)
	d.eventTime(w, f.Since, f.Until)
	return w
}

// KPIIncidents is the condition of a KPI over the incidents created in f's range.
func (d *Dialect) KPIIncidents(f storage.KPIFilter) *Where {
	w := d.KPIScope(f)
	w.Between("created_ms", f.Since, f.Until)
	return w
}

func (d *Dialect) eventTime(w *Where, since, until time.Time) {
	w.Between("time_ms", since, until)
	if d.EventPartition != nil {
		d.EventPartition(w, since, until)
	}
}
