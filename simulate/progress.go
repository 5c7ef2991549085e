package simulate

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Waiter is implemented by asynchronous sinks (KafkaSink, HTTPSink with Concurrency > 1):
// Wait returns once everything sent so far has been acknowledged or has failed.
type Waiter interface {
	Wait(ctx context.Context) error
}

// Delivery is what a sink knows of the fate of the records it was sent.
type Delivery struct {
	Acked    int64         // acknowledged by the broker or the API
	Failed   int64         // given up on (after the producer's retries)
	InFlight int64         // sent, not yet acknowledged or failed
	Blocked  time.Duration // total time Send or Flush waited for room (backpressure)
	Handoff  time.Duration // total time Send spent handing records to the producer, waits excluded
	LastErr  string        // the last failure, if any
}

// DeliveryReporter is implemented by sinks that count acknowledgements (KafkaSink, HTTPSink).
type DeliveryReporter interface {
	Delivery() Delivery
}

// Progress is a simulator's run so far: what it was asked for, what it produced and what
// the sink confirmed.
type Progress struct {
	Target    float64       // events per second asked for
	Limit     int           // Config.Limit
	Duration  time.Duration // Config.Duration
	Elapsed   time.Duration // since Run started (to its end, once it returned)
	Produced  int64         // events generated and handed to the sink, all sources
	Skipped   int64         // events dropped from the schedule because the generator was too far behind
	Behind    int64         // events due but not produced at the last burst
	SendErrs  int64         // Stats.Errors: sends the sink refused
	Delivery  Delivery      // from the sink, if it reports it
	Confirmed bool          // the sink reports deliveries (else Acked is Produced − SendErrs)
	Done      bool          // Run has returned
}

// Progress returns the run's progress. It may be called while Run runs.
func (s *Simulator) Progress() Progress {
	st := s.Stats()
	p := Progress{
		Target: s.cfg.Rate, Limit: s.cfg.Limit, Duration: s.cfg.Duration,
		Produced: st.Sensor + st.Hotline + st.Video + st.Invalid - s.unsent.Load(),
		Skipped:  s.skipped.Load(), Behind: s.behind.Load(), SendErrs: st.Errors,
	}
	if start := s.started.Load(); start != 0 {
		end := time.Now().UnixNano()
		if stop := s.stopped.Load(); stop != 0 {
			end, p.Done = stop, true
		}
		p.Elapsed = time.Duration(end - start)
	}
	if d, ok := s.sink.(DeliveryReporter); ok {
		p.Delivery, p.Confirmed = d.Delivery(), true
	} else {
		p.Delivery.Acked = max(0, p.Produced-p.SendErrs)
		p.Delivery.Failed = p.SendErrs
	}
	return p
}

// Rate is the achieved rate: acknowledged events per second of the run.
func (p Progress) Rate() float64 {
	d := p.Elapsed
	if p.Duration > 0 {
		d = min(d, p.Duration)
	}
	if d <= 0 {
		return 0
	}
	return float64(p.Delivery.Acked) / d.Seconds()
}

// Expected is how many events the schedule asked for by now (capped by Limit).
func (p Progress) Expected() int64 {
	d := p.Elapsed
	if p.Duration > 0 {
		d = min(d, p.Duration)
	}
	n := int64(p.Target * d.Seconds())
	if p.Limit > 0 {
		n = min(n, int64(p.Limit))
	}
	return n
}

// Shortfall says why the run is below its target rate, or "" when it is within 5 % of it
// (acknowledged events against the schedule). The reasons, most telling first: records
// failed; the sink made the generator wait (backpressure: the broker or API acknowledges
// slower than the rate, or MaxInFlight is too small for its latency); the generator itself
// could not keep up (CPU).
func (p Progress) Shortfall() string {
	want := p.Expected()
	if want == 0 || float64(p.Delivery.Acked) >= 0.95*float64(want) {
		return ""
	}
	var why []string
	if p.Delivery.Failed > 0 {
		r := fmt.Sprintf("%d records failed", p.Delivery.Failed)
		if p.Delivery.LastErr != "" {
			r += " (last: " + p.Delivery.LastErr + ")"
		}
		why = append(why, r)
	}
	if p.Elapsed > 0 && p.Delivery.Blocked > p.Elapsed/10 {
		why = append(why, fmt.Sprintf("producer backpressure: sending waited %.1fs of %.1fs for acknowledgements of earlier records (the broker or API acknowledges slower than the rate)",
			p.Delivery.Blocked.Seconds(), p.Elapsed.Seconds()))
	}
	if p.Delivery.InFlight > 0 && !p.Done {
		why = append(why, fmt.Sprintf("%d records still awaiting acknowledgement", p.Delivery.InFlight))
	}
	if len(why) == 0 && (p.Skipped > 0 || p.Behind > 0 || p.Produced < want) {
		r := fmt.Sprintf("the generator could not keep up (CPU): %d events produced of %d scheduled, %d dropped from the schedule",
			p.Produced, want, p.Skipped)
		if p.Delivery.Handoff > 0 {
			r += fmt.Sprintf("; handing records to the producer took %.1fs of %.1fs", p.Delivery.Handoff.Seconds(), p.Elapsed.Seconds())
		}
		why = append(why, r)
	}
	if len(why) == 0 {
		why = append(why, fmt.Sprintf("%d acknowledged of %d scheduled", p.Delivery.Acked, want))
	}
	return fmt.Sprintf("achieved %.0f/s of %.0f/s: %s", p.Rate(), p.Target, strings.Join(why, "; "))
}

// String is a one-line progress report.
func (p Progress) String() string {
	s := fmt.Sprintf("%5.0fs  target %.0f/s  achieved %.0f/s  sent %d  acked %d  failed %d  in flight %d",
		p.Elapsed.Seconds(), p.Target, p.Rate(), p.Produced, p.Delivery.Acked, p.Delivery.Failed, p.Delivery.InFlight)
	if p.Delivery.Blocked > 0 {
		s += fmt.Sprintf("  waited for acks %.1fs", p.Delivery.Blocked.Seconds())
	}
	if p.Skipped > 0 {
		s += fmt.Sprintf("  behind schedule: dropped %d", p.Skipped)
	}
	return s
}
