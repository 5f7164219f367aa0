package hooks

import (
	"context"
	"sync"
	"time"
)

// worker runs one background pass now, on every Wake and at every interval, until stopped:
// the shape of the campaign runner and the app-event sender.
type worker struct {
	wake chan struct{}

	mu      sync.Mutex
	started bool
	stopped bool
	cancel  context.CancelFunc
	done    chan struct{}
}

func newWorker() worker {
	return worker{wake: make(chan struct{}, 1)}
}

// Wake asks for a pass now instead of at the next interval.
func (w *worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// start runs pass in its own goroutine; a second start, or one after stop, does nothing.
func (w *worker) start(interval time.Duration, pass func(ctx context.Context)) {
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
		for {
			pass(ctx)
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
			case <-ticker.C:
			}
		}
	}()
}

// Stop ends the worker after the pass in progress sees its context end.
func (w *worker) Stop() {
	w.mu.Lock()
	if !w.started || w.stopped {
		w.stopped = true
		w.mu.Unlock()
		return
	}
	w.stopped = true
	w.mu.Unlock()
	w.cancel()
	<-w.done
}
