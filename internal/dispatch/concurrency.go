package dispatch

import (
	"math"
	"sync"
	"time"
)

// Concurrency bounds the sends in flight. A clinic that sets nothing gets what its provider
// allows: the bound grows while the provider answers (doubling per round trip at first,
// then by one per round trip once the provider has pushed back) and halves as soon as it
// says too many (Twilio's 20429, any 429). With a configured rate (TWILIO_MPS,
// UNIFONIC_MPS) more sends in flight than rate × latency only wait in the rate limiter, so
// the bound follows Little's law from the latency observed. CLINICMSG_WORKERS fixes it.
type Concurrency struct {
	mu       sync.Mutex
	fixed    bool
	cur      float64
	min, max float64
	rate     float64       // segments per second the provider allows; 0: unknown
	latency  time.Duration // moving average of a provider request
	slowed   bool          // the provider has pushed back: grow by one per round trip
}

// Concurrency bounds when nothing is set.
const (
	startConcurrency = 32
	minConcurrency   = 4
	maxConcurrency   = 1024
)

// NewConcurrency returns a fixed bound of workers, or (workers 0) an adaptive one that
// knows rate (segments per second; 0 when none is configured).
func NewConcurrency(workers int, rate float64) *Concurrency {
	if workers > 0 {
		return &Concurrency{fixed: true, cur: float64(workers), min: float64(workers), max: float64(workers)}
	}
	return &Concurrency{cur: startConcurrency, min: minConcurrency, max: maxConcurrency, rate: rate}
}

// Limit is the number of sends that may be in flight now.
func (c *Concurrency) Limit() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int(c.cur)
}

// Latency is the moving average of the provider's answers (0 before the first).
func (c *Concurrency) Latency() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.latency
}

// Answered records a provider request that was answered (sent, or refused for a reason of
// the message's own) after took.
func (c *Concurrency) Answered(took time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.latency == 0 {
		c.latency = took
	} else {
		c.latency += (took - c.latency) / 16
	}
	if c.fixed {
		return
	}
	step := 1.0 // per answer: the bound doubles per round trip
	if c.slowed {
		step = 1 / c.cur // one per round trip
	}
	c.cur = math.Min(c.max, c.cur+step)
	if c.rate > 0 {
		// Little's law, with room for the latency's spread: more in flight would only
		// queue in the rate limiter.
		need := math.Ceil(c.rate * c.latency.Seconds() * 1.5)
		c.cur = math.Max(c.min, math.Min(c.cur, math.Max(need, minConcurrency)))
	}
}

// Throttled records the provider saying it has too many requests: the bound halves.
func (c *Concurrency) Throttled() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fixed {
		return
	}
	c.slowed = true
	c.cur = math.Max(c.min, c.cur/2)
}
