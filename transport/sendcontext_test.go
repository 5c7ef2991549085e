package transport

import (
	"context"
	"runtime/pprof"
	"testing"
	"time"
)

// The context a partition hands outputs to the producer with outlives the partition's own,
// keeps its profile labels, serves many records, and is made afresh, the old one released,
// once less than nine tenths of the timeout is left.
func TestSendContextIsSharedAndRenewed(t *testing.T) {
	parent, cancelParent := context.WithCancel(pprof.WithLabels(context.Background(), pprof.Labels("stage", "rules")))
	const timeout = 200 * time.Millisecond
	var c sendContext
	first := c.get(parent, timeout)
	if again := c.get(parent, timeout); again != first {
		t.Fatal("a second record within a tenth of the timeout got a context of its own")
	}
	if v, ok := pprof.Label(first, "stage"); !ok || v != "rules" {
		t.Fatalf("label stage = %q, %v; want the partition's (rules)", v, ok)
	}
	cancelParent()
	if first.Err() != nil {
		t.Fatalf("the partition's end ended the send context: %v", first.Err())
	}

	time.Sleep(timeout / 5)
	made := time.Now()
	second := c.get(parent, timeout)
	if second == first {
		t.Fatal("no new context after a fifth of the timeout")
	}
	if first.Err() == nil {
		t.Error("the context it replaced was not released")
	}
	if d, ok := second.Deadline(); !ok || d.Sub(made) < timeout*9/10 {
		t.Errorf("new context's deadline %v after it was made, want at least %v", d.Sub(made), timeout*9/10)
	}
	c.stop()
	if second.Err() == nil {
		t.Error("stop did not release the context")
	}
	if third := c.get(parent, timeout); third.Err() != nil {
		t.Errorf("a context after stop is already done: %v", third.Err())
	}
	c.stop()
}
