package providers

import (
	"testing"
	"time"
)

// fakeClock lets the limiter's arithmetic be checked without sleeping.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestLimiterPacesSegments(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	l := NewLimiter(5)
	l.now = clock.now
	// A burst of 15 one-segment messages at 5 segments/s: one second's worth (plus the
	// first) goes at once, the rest at 200ms intervals.
	var last time.Duration
	for i := range 15 {
		last = l.Reserve(1)
		if i <= 5 && last != 0 {
			t.Fatalf("message %d: expected no wait inside the burst, got %v", i, last)
		}
	}
	if want := 1800 * time.Millisecond; last != want {
		t.Fatalf("expected the 15th message to wait %v, got %v", want, last)
	}
	// A 4-segment Arabic message uses 4 tokens.
	clock.t = clock.t.Add(time.Hour)
	l.Reserve(4)
	l.Reserve(4)
	if got := l.Reserve(1); got != 600*time.Millisecond {
		t.Fatalf("expected 8 segments to push the next send 600ms out, got %v", got)
	}
}

func TestLimiterPausesOn429(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	l := NewLimiter(0) // no configured rate: the provider queues, but a 429 still pauses
	l.now = clock.now
	if got := l.Reserve(1); got != 0 {
		t.Fatalf("expected no wait, got %v", got)
	}
	if p := l.Throttled(0); p != time.Second {
		t.Fatalf("expected a 1s pause, got %v", p)
	}
	if p := l.Throttled(0); p != 2*time.Second {
		t.Fatalf("expected the pause to double, got %v", p)
	}
	if got := l.Reserve(1); got != 2*time.Second {
		t.Fatalf("expected to wait out the pause, got %v", got)
	}
	if p := l.Throttled(10 * time.Second); p != 10*time.Second {
		t.Fatalf("expected Retry-After to win, got %v", p)
	}
	l.Accepted()
	if p := l.Throttled(0); p != time.Second {
		t.Fatalf("expected an accepted send to reset the escalation, got %v", p)
	}
}

func TestRouterFailsOverAndBack(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	r := NewRouter()
	r.FailureThreshold, r.Cooldown, r.now = 3, 10*time.Second, clock.now
	r.Register("primary", &Mock{})
	r.Register("fallback", &Mock{})
	if err := r.SetRoute(ChannelSMS, Route{Primary: "primary", Fallback: "fallback"}); err != nil {
		t.Fatal(err)
	}
	pick := func() string { n, _, _ := r.For(ChannelSMS); return n }
	retryable := &Error{Provider: "primary", Class: ErrRetryable}
	for range 2 {
		r.Report("primary", retryable)
	}
	// A permanent error is about the message; the provider answered, so it is up.
	r.Report("primary", &Error{Provider: "primary", Class: ErrPermanent})
	if got := pick(); got != "primary" {
		t.Fatalf("a permanent error must not count against the provider, got %s", got)
	}
	for range 3 {
		r.Report("primary", retryable)
	}
	if got := pick(); got != "fallback" || !r.Degraded("primary") {
		t.Fatalf("expected the fallback after 3 retryable failures, got %s", got)
	}
	clock.t = clock.t.Add(11 * time.Second)
	if got := pick(); got != "primary" {
		t.Fatalf("expected one half-open probe to the primary, got %s", got)
	}
	if got := pick(); got != "fallback" {
		t.Fatalf("expected other sends to stay on the fallback during the probe, got %s", got)
	}
	r.Report("primary", nil)
	if got := pick(); got != "primary" || r.Degraded("primary") {
		t.Fatalf("expected the primary back after a good probe, got %s", got)
	}
}
