package worker_test

import (
	"context"
	"testing"
	"time"

	"clinicmsg/internal/worker"
)

// TestWorkerPasses: a pass at start (a tick), one per Wake (not a tick), and Stop ends the
// loop; a pass that ignores its context does not hold Stop past the grace period.
func TestWorkerPasses(t *testing.T) {
	w := worker.New()
	passes := make(chan bool, 10)
	w.Start(time.Hour, func(ctx context.Context, tick bool) { passes <- tick })
	if tick := <-passes; !tick {
		t.Fatalf("expected the first pass to be a tick")
	}
	w.Wake()
	if tick := <-passes; tick {
		t.Fatalf("expected a woken pass not to be a tick")
	}
	if !w.Stop(time.Second) {
		t.Fatalf("expected the worker to stop in time")
	}

	stuck := worker.New()
	release := make(chan struct{})
	started := make(chan struct{})
	stuck.Start(time.Hour, func(ctx context.Context, tick bool) { close(started); <-release })
	<-started
	if stuck.Stop(20 * time.Millisecond) {
		t.Fatalf("expected a hung pass to be reported")
	}
	close(release)
}
