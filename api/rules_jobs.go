package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/urbanbrain/urbanbrain/auth"
)

// Dry runs and backtests are jobs: each one counts against a limit of jobs running at once,
// in all and per author, has a deadline, reports its progress, and stops when cancelled —
// by its request's client going away (the synchronous calls) or by DELETE (an async job).
// A rule author's test run cannot take the rules instance's CPU from the live pipeline for
// long, nor can one author starve the others.

// CodeTooManyJobs is the answer to a dry run or backtest over the limit of jobs running.
const CodeTooManyJobs = "too_many_jobs" // 429

const (
	maxRuleJobs          = 2 // running at once on this instance, all authors: the CPUs of a small node
	maxRuleJobsPerAuthor = 1
	dryRunDeadline       = 30 * time.Second
	backtestDeadline     = 2 * time.Minute
	keepRuleJobs         = 10 * time.Minute // a finished async job's result stays readable this long
	maxKeptRuleJobs      = 100
)

// Job states.
const (
	JobRunning   = "running"
	JobDone      = "done"
	JobFailed    = "failed"
	JobCancelled = "cancelled"
)

// RuleJob is one dry run or backtest.
type RuleJob struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"` // dry_run or backtest
	Owner string `json:"owner"`
	// Events is how many events the job handles in all (a backtest counts each event twice:
	// through the candidate and the current version); Done how many it has handled.
	Events   int       `json:"events"`
	Done     int64     `json:"done"`
	State    string    `json:"state"`
	Started  time.Time `json:"started"`
	Deadline time.Time `json:"deadline"`
	Finished time.Time `json:"finished,omitzero"`
	Error    string    `json:"error,omitempty"`
	Result   any       `json:"result,omitempty"`

	counts *jobCounts // nil in the copies view returns
	async  bool
	cancel context.CancelFunc
}

// jobCounts are a running job's totals, updated while it runs.
type jobCounts struct{ events, done atomic.Int64 }

// ruleJobs are this instance's jobs. The zero value is ready; bind gives async jobs the
// context Server.Run is given, so that they stop on shutdown.
type ruleJobs struct {
	mu      sync.Mutex
	base    context.Context
	running int
	byOwner map[string]int
	kept    map[string]*RuleJob // async jobs, running or finished
}

var errTooManyJobs = errors.New("too many dry runs and backtests running")

// bind sets the context async jobs run under; wait waits for them after it is cancelled.
func (j *ruleJobs) bind(ctx context.Context) {
	j.mu.Lock()
	j.base = ctx
	j.mu.Unlock()
}

func (j *ruleJobs) wait() {
	for {
		j.mu.Lock()
		n := j.running
		j.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond) // cancelled jobs stop within a few dozen events
	}
}

// start admits a job for owner, or refuses it over the limits. The job's context is parent
// (the request's, for a synchronous job) with the deadline; async jobs run under the bound
// context (Server.Run's) instead and are kept for GET and DELETE.
func (j *ruleJobs) start(parent context.Context, owner, kind string, events int, deadline time.Duration, async bool) (*RuleJob, context.Context, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.byOwner == nil {
		j.byOwner = map[string]int{}
		j.kept = map[string]*RuleJob{}
	}
	if j.running >= maxRuleJobs || j.byOwner[owner] >= maxRuleJobsPerAuthor {
		return nil, nil, errTooManyJobs
	}
	if async {
		parent = j.base
		if parent == nil {
			parent = context.Background()
		}
	}
	now := time.Now()
	ctx, cancel := context.WithDeadline(parent, now.Add(deadline))
	job := &RuleJob{ID: newJobID(), Kind: kind, Owner: owner, State: JobRunning,
		Started: now, Deadline: now.Add(deadline), async: async, cancel: cancel, counts: &jobCounts{}}
	job.counts.events.Store(int64(events))
	j.running++
	j.byOwner[owner]++
	if async {
		j.prune(now)
		j.kept[job.ID] = job
	}
	return job, ctx, nil
}

// finish records a job's outcome and frees its place.
func (j *ruleJobs) finish(ctx context.Context, job *RuleJob, result any, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	job.cancel()
	job.Finished = time.Now()
	switch {
	case err == nil:
		job.State, job.Result = JobDone, result
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		job.State, job.Error = JobFailed, "stopped at its deadline of "+job.Deadline.Sub(job.Started).String()
	case ctx.Err() != nil:
		job.State, job.Error = JobCancelled, "cancelled"
	default:
		job.State, job.Error = JobFailed, err.Error()
	}
	j.running--
	j.byOwner[job.Owner]--
	if j.byOwner[job.Owner] == 0 {
		delete(j.byOwner, job.Owner)
	}
}

// prune drops finished jobs past keepRuleJobs, and the oldest finished ones over
// maxKeptRuleJobs. Called with mu held.
func (j *ruleJobs) prune(now time.Time) {
	var finished []*RuleJob
	for id, job := range j.kept {
		if job.State == JobRunning {
			continue
		}
		if now.Sub(job.Finished) > keepRuleJobs {
			delete(j.kept, id)
			continue
		}
		finished = append(finished, job)
	}
	if len(finished) >= maxKeptRuleJobs {
		sort.Slice(finished, func(a, b int) bool { return finished[a].Finished.Before(finished[b].Finished) })
		for _, job := range finished[:len(finished)-maxKeptRuleJobs+1] {
			delete(j.kept, job.ID)
		}
	}
}

// view returns a copy of a kept job the holder of c may see: their own, or any for admin.
func (j *ruleJobs) view(id string, c auth.Claims) (RuleJob, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	job, ok := j.kept[id]
	if !ok || job.Owner != c.Subject && c.Role != auth.RoleAdmin {
		return RuleJob{}, false
	}
	return RuleJob{ID: job.ID, Kind: job.Kind, Owner: job.Owner, Events: int(job.counts.events.Load()), Done: job.counts.done.Load(),
		State: job.State, Started: job.Started, Deadline: job.Deadline, Finished: job.Finished,
		Error: job.Error, Result: job.Result}, true
}

// cancelJob cancels a kept job the holder of c may see.
func (j *ruleJobs) cancelJob(id string, c auth.Claims) bool {
	j.mu.Lock()
	job, ok := j.kept[id]
	j.mu.Unlock()
	if !ok || job.Owner != c.Subject && c.Role != auth.RoleAdmin {
		return false
	}
	job.cancel()
	return true
}

func newJobID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "job-" + hex.EncodeToString(b[:])
}

// runRuleJob runs fn as a job of the caller: synchronously, answering its result (a client
// that goes away cancels it), or with ?async=true in the background, answering 202 with the
// job to follow at GET /api/v1/rule-jobs/{id}.
func (s *Server) runRuleJob(w http.ResponseWriter, r *http.Request, kind string, events int, deadline time.Duration,
	fn func(ctx context.Context, job *RuleJob) (any, error)) {
	claims, _ := auth.FromContext(r.Context())
	async := r.URL.Query().Get("async") == "true"
	job, ctx, err := s.jobs.start(r.Context(), claims.Subject, kind, events, deadline, async)
	if err != nil {
		writeError(w, http.StatusTooManyRequests, CodeTooManyJobs,
			"a dry run or backtest of yours is running, or this instance runs as many as it may: wait for it, or cancel it")
		return
	}
	run := func() (any, error) {
		res, err := fn(ctx, job)
		s.jobs.finish(ctx, job, res, err)
		return res, err
	}
	if async {
		go func() { _, _ = run() }()
		v, _ := s.jobs.view(job.ID, claims)
		writeJSON(w, http.StatusAccepted, v)
		return
	}
	res, err := run()
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, res)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, CodeTimeout, kind+" stopped at its deadline of "+deadline.String()+": narrow it, or run it with ?async=true")
	case ctx.Err() != nil:
		// The client went away: nobody reads the answer.
	default:
		s.internalError(w, kind, err)
	}
}

// getRuleJob answers GET /api/v1/rule-jobs/{id}: the job's state and progress, and its result
// once done.
func (s *Server) getRuleJob(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	job, ok := s.jobs.view(r.PathValue("id"), claims)
	if !ok {
		writeError(w, http.StatusNotFound, CodeNotFound, "no job "+r.PathValue("id"))
		return
	}
	writeJSON(w, http.StatusOK, job)
}

// cancelRuleJob answers DELETE /api/v1/rule-jobs/{id}: the job stops within a few events.
func (s *Server) cancelRuleJob(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	if !s.jobs.cancelJob(r.PathValue("id"), claims) {
		writeError(w, http.StatusNotFound, CodeNotFound, "no job "+r.PathValue("id"))
		return
	}
	job, _ := s.jobs.view(r.PathValue("id"), claims)
	writeJSON(w, http.StatusOK, job)
}

// setEvents sets how many events the job handles in all, once it knows.
func (job *RuleJob) setEvents(n int) { job.counts.events.Store(int64(n)) }

// progress records how many events the job has handled (engine.Config.Progress).
func (job *RuleJob) progress(n int) { job.counts.done.Store(int64(n)) }
