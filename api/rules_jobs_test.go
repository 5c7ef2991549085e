package api

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/auth"
)

// The job limits: one running job per author, two in all; a finished job frees its place;
// cancelling a job cancels its context.
func TestRuleJobsLimitsAndCancel(t *testing.T) {
	var jobs ruleJobs
	jobs.bind(context.Background())
	alice := auth.Claims{Subject: "alice", Role: auth.RoleRuleAuthor}
	a1, ctx1, err := jobs.start(context.Background(), "alice", "backtest", 10, time.Minute, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := jobs.start(context.Background(), "alice", "dry_run", 1, time.Minute, false); !errors.Is(err, errTooManyJobs) {
		t.Errorf("a second job of one author: %v, want refused", err)
	}
	b1, ctxB, err := jobs.start(context.Background(), "bob", "dry_run", 1, time.Minute, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := jobs.start(context.Background(), "carol", "dry_run", 1, time.Minute, false); !errors.Is(err, errTooManyJobs) {
		t.Errorf("a third job on the instance: %v, want refused", err)
	}
	jobs.finish(ctxB, b1, "ok", nil)
	if !jobs.cancelJob(a1.ID, alice) {
		t.Fatal("alice could not cancel her job")
	}
	select {
	case <-ctx1.Done():
	case <-time.After(time.Second):
		t.Fatal("a cancelled job's context is not done")
	}
	jobs.finish(ctx1, a1, nil, ctx1.Err())
	if v, ok := jobs.view(a1.ID, alice); !ok || v.State != JobCancelled {
		t.Errorf("cancelled job %+v", v)
	}
	c1, ctxC, err := jobs.start(context.Background(), "carol", "dry_run", 1, time.Minute, false)
	if err != nil {
		t.Fatalf("after both finished: %v", err)
	}
	jobs.finish(ctxC, c1, "ok", nil)
	jobs.wait()
}
