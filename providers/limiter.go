package providers

import (
	"context"
	"sync"
	"time"
)

// Limiter paces one provider in segments per second, shared by every worker. It is a
// GCRA token bucket: a burst of up to one second's worth goes at once, then each request
// waits its turn; a request larger than the burst (a long Arabic message) simply waits longer.
// A provider that answers 429 is paused, with or without a configured rate.
type Limiter struct {
	mu          sync.Mutex
	rate        float64 // segments per second; 0 means no limit on our side
	tat         time.Time
	pausedUntil time.Time
	strikes     int // consecutive 429s, for an escalating pause
	now         func() time.Time
}

// NewLimiter returns a limiter of rate segments per second (0: unlimited).
func NewLimiter(rate float64) *Limiter {
	return &Limiter{rate: rate, now: time.Now}
}

// Reserve books n segments and returns how long the caller must wait before sending them.
func (l *Limiter) Reserve(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	const burst = time.Second // one second's worth of segments may go at once
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	wait := l.pausedUntil.Sub(now)
	if l.rate > 0 {
		tat := l.tat // the theoretical time the bucket is next empty
		if tat.Before(now) {
			tat = now
		}
		if tat.Before(l.pausedUntil) {
			tat = l.pausedUntil
		}
		l.tat = tat.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
		wait = max(wait, tat.Sub(now)-burst)
	}
	return max(wait, 0)
}

// Wait blocks until n segments may be sent, or ctx ends.
func (l *Limiter) Wait(ctx context.Context, n int) error {
	d := l.Reserve(n)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Throttled records a 429 from the provider and returns how long it is paused: the
// provider's Retry-After if it gave one, else 1s doubling per consecutive 429 up to a minute.
func (l *Limiter) Throttled(retryAfter time.Duration) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.strikes++
	pause := retryAfter
	if pause <= 0 {
		pause = time.Second << min(l.strikes-1, 6)
	}
	until := l.now().Add(pause)
	if until.After(l.pausedUntil) {
		l.pausedUntil = until
	}
	return pause
}

// Accepted records a send the provider took, which ends an escalating 429 pause.
func (l *Limiter) Accepted() {
	l.mu.Lock()
	l.strikes = 0
	l.mu.Unlock()
}
