package dispatch_test

import (
	"testing"
	"time"

	"clinicmsg/internal/dispatch"
)

// TestConcurrencyFollowsTheProvider: a bound nobody set grows while the provider answers,
// halves when it says too many, then grows by one per round trip; with a configured rate it
// settles at Little's law; a set bound never moves.
func TestConcurrencyFollowsTheProvider(t *testing.T) {
	c := dispatch.NewConcurrency(0, 0)
	if c.Limit() != 32 {
		t.Fatalf("expected a start at 32, got %d", c.Limit())
	}
	for range 32 {
		c.Answered(100 * time.Millisecond)
	}
	if c.Limit() != 64 {
		t.Fatalf("expected the bound to double in a round trip, got %d", c.Limit())
	}
	c.Throttled()
	if c.Limit() != 32 {
		t.Fatalf("expected the bound halved, got %d", c.Limit())
	}
	for range 40 {
		c.Answered(100 * time.Millisecond)
	}
	if got := c.Limit(); got != 33 {
		t.Fatalf("expected one more per round trip after a push-back, got %d", got)
	}
	for range 100_000 {
		c.Answered(time.Millisecond)
	}
	if c.Limit() > 1024 {
		t.Fatalf("expected at most 1024, got %d", c.Limit())
	}

	paced := dispatch.NewConcurrency(0, 100) // 100 segments/s
	for range 1000 {
		paced.Answered(200 * time.Millisecond)
	}
	if got := paced.Limit(); got != 30 { // 100/s × 0.2 s × 1.5
		t.Fatalf("expected Little's law (30), got %d", got)
	}

	fixed := dispatch.NewConcurrency(16, 0)
	fixed.Throttled()
	fixed.Answered(time.Millisecond)
	if fixed.Limit() != 16 {
		t.Fatalf("expected a set bound to stay, got %d", fixed.Limit())
	}
}
