package providers

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// Route names the providers that carry a channel.
type Route struct {
	Primary  string
	Fallback string // empty: no fallback
}

// Router chooses the provider for a channel, fails over to the channel's fallback while
// the primary keeps failing retryably, and holds each provider's send-rate limiter.
// Providers are registered once by name.
type Router struct {
	providers map[string]Provider
	routes    map[string]Route
	breakers  map[string]*breaker
	limiters  map[string]*Limiter

	// FailureThreshold consecutive retryable failures open a provider's breaker (default 5);
	// after Cooldown (default 30s) one probe tries the primary again.
	FailureThreshold int
	Cooldown         time.Duration
	now              func() time.Time
}

// NewRouter returns an empty router.
func NewRouter() *Router {
	return &Router{
		providers: map[string]Provider{}, routes: map[string]Route{},
		breakers: map[string]*breaker{}, limiters: map[string]*Limiter{},
		FailureThreshold: 5, Cooldown: 30 * time.Second, now: time.Now,
	}
}

// Register adds a provider under name. A second registration of a name is a programming
// error, as with database/sql drivers.
func (r *Router) Register(name string, p Provider) {
	if p == nil {
		panic("providers: Register provider is nil")
	}
	if _, dup := r.providers[name]; dup {
		panic("providers: Register called twice for " + name)
	}
	r.providers[name] = p
	r.breakers[name] = &breaker{threshold: max(r.FailureThreshold, 1), cooldown: r.Cooldown}
	r.limiters[name] = NewLimiter(0)
}

// SetRate limits a registered provider to segmentsPerSecond (0: no limit on our side).
func (r *Router) SetRate(name string, segmentsPerSecond float64) {
	r.limiters[name] = NewLimiter(segmentsPerSecond)
}

// Limiter returns the send-rate limiter of a registered provider.
func (r *Router) Limiter(name string) *Limiter {
	if l, ok := r.limiters[name]; ok {
		return l
	}
	return NewLimiter(0)
}

// Report records the outcome of one send through name. Retryable and unknown outcomes
// count against the provider; a permanent error is about the message, and it proves the
// provider answered, so it counts as a success.
func (r *Router) Report(name string, err error) {
	b, ok := r.breakers[name]
	if !ok {
		return
	}
	failed := err != nil && !errors.Is(err, ErrPermanent)
	b.record(!failed, r.now())
}

// Degraded reports whether name's breaker is open (it keeps failing retryably).
func (r *Router) Degraded(name string) bool {
	b, ok := r.breakers[name]
	return ok && b.open()
}

// SetRoute sets which registered providers carry channel.
func (r *Router) SetRoute(channel string, route Route) error {
	if _, ok := r.providers[route.Primary]; !ok {
		return fmt.Errorf("failed to route %s: provider %q is not configured", channel, route.Primary)
	}
	if route.Fallback != "" {
		if _, ok := r.providers[route.Fallback]; !ok {
			return fmt.Errorf("failed to route %s: fallback provider %q is not configured", channel, route.Fallback)
		}
	}
	r.routes[channel] = route
	return nil
}

// Route returns the route of channel.
func (r *Router) Route(channel string) (Route, bool) {
	rt, ok := r.routes[channel]
	return rt, ok
}

// For returns the provider that should carry the next attempt on channel: the primary,
// or the fallback while the primary's breaker is open.
func (r *Router) For(channel string) (string, Provider, error) {
	rt, ok := r.routes[channel]
	if !ok {
		return "", nil, fmt.Errorf("no provider configured for channel %q", channel)
	}
	if rt.Fallback != "" && !r.breakers[rt.Primary].allow(r.now()) {
		return rt.Fallback, r.providers[rt.Fallback], nil
	}
	return rt.Primary, r.providers[rt.Primary], nil
}

// Settled returns the provider that carries every attempt on channel for now, when the
// choice does not depend on the attempt: the channel has no fallback, or its primary's
// breaker is closed. It reports false while the primary is failing over or being probed
// (For then decides attempt by attempt) and for an unrouted channel. Unlike For, it never
// takes the one probe of a half-open breaker.
func (r *Router) Settled(channel string) (string, bool) {
	rt, ok := r.routes[channel]
	if !ok {
		return "", false
	}
	if rt.Fallback != "" && r.breakers[rt.Primary].open() {
		return "", false
	}
	return rt.Primary, true
}

// Provider returns the provider registered under name.
func (r *Router) Provider(name string) (Provider, bool) {
	p, ok := r.providers[name]
	return p, ok
}

// Names lists the registered providers, sorted.
func (r *Router) Names() []string {
	names := make([]string, 0, len(r.providers))
	for n := range r.providers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
