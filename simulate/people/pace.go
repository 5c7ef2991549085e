package people

import (
	"math"
	"math/rand/v2"
	"time"
)

// humanDelay is how long a person takes for something, in their own (human) time: a
// log-normal around Median, which has the long right tail people's response times have (most
// sign within minutes, a few an hour later).
type humanDelay struct {
	Median time.Duration
	Sigma  float64 // spread of the log; 0.5 puts 90 % within 0.44–2.3× the median
}

// Delays of the loop, in human time. They are a demo's guess at a working city, not data.
var (
	signFor        = humanDelay{4 * time.Minute, 0.6}  // 签收: the phone buzzes, the worker looks
	travel         = humanDelay{8 * time.Minute, 0.5}  // to the site before 处置 starts
	handling       = humanDelay{35 * time.Minute, 0.6} // 处置, on site
	decideExtend   = humanDelay{5 * time.Minute, 0.5}  // a supervisor reads a 延期 request
	triage         = humanDelay{3 * time.Minute, 0.5}  // an operator places an ungridded report
	verifyDelay    = humanDelay{10 * time.Minute, 0.6} // 核查: the operator checks the evidence
	closeDelay     = humanDelay{2 * time.Minute, 0.4}  // 结案 after the check
	callbackDelay  = humanDelay{20 * time.Minute, 0.6} // 回访: the caller is rung back
	onDutyCheck    = 5 * time.Minute                   // how often an on-duty worker looks at the app
	offDutyCheck   = time.Hour                         // and one off duty, to finish what they hold
	officeCheck    = time.Minute                       // how often the office looks at its queues
	minWallBetween = time.Second                       // nobody polls faster than this, whatever the pace
)

// pace turns human time into wall time: Pace human seconds pass in one wall second.
type pace float64

// wall is d of human time in wall time, never below min.
func (p pace) wall(d, min time.Duration) time.Duration {
	w := time.Duration(float64(d) / float64(p))
	if w < min {
		return min
	}
	return w
}

// draw is one person's delay in wall time: the log-normal, cut at 6× the median so a demo
// never waits for an outlier, then scaled by the pace.
func (p pace) draw(rng *rand.Rand, h humanDelay) time.Duration {
	f := math.Exp(h.Sigma * rng.NormFloat64())
	if f > 6 {
		f = 6
	}
	return p.wall(time.Duration(float64(h.Median)*f), 50*time.Millisecond)
}
