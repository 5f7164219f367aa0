// Package worker runs the appliance's background loops (the dispatcher, the campaign
// runner, the app-event sender) the same way: one pass at start, on every Wake and at every
// interval, with a context that ends at Stop, and a Stop bounded by a grace period so a
// pass that hangs cannot hold the shutdown.
package worker

import (
	"context"
	"sync"
	"time"
)

// Worker runs one background pass now, on every Wake and at every interval, until stopped.
// Its zero value is not usable; make one with New.
type Worker struct {
	wake chan struct{}

	mu      sync.Mutex
	started bool
	stopped bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// New returns a worker that has not started.
func New() *Worker {
	return &Worker{wake: make(chan struct{}, 1)}
}

// Wake asks for a pass now instead of at the next interval.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Start runs pass in its own goroutine: at once and at every interval with tick true, and
// on every Wake with tick false. A second Start, or one after Stop, does nothing.
func (w *Worker) Start(interval time.Duration, pass func(ctx context.Context, tick bool)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started || w.stopped {
		return
	}
	w.started = true
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel, w.done = cancel, make(chan struct{})
	go func() {
		defer close(w.done)
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		tick := true
		for {
			pass(ctx, tick)
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
				tick = false
			case <-ticker.C:
				tick = true
			}
		}
	}()
}

// Stop ends the worker: the pass in progress sees its context end, and Stop waits for it
// at most grace (0: as long as it takes). It reports whether the pass ended in time.
func (w *Worker) Stop(grace time.Duration) bool {
	w.mu.Lock()
	if !w.started || w.stopped {
		w.stopped = true
		w.mu.Unlock()
		return true
	}
	w.stopped = true
	w.mu.Unlock()
	w.cancel()
	if grace <= 0 {
		<-w.done
		return true
	}
	select {
	case <-w.done:
		return true
	case <-time.After(grace):
		return false
	}
}
