package providers

import (
	"fmt"
	"sort"
)

// Route names the providers that carry a channel.
type Route struct {
	Primary  string
	Fallback string // empty: no fallback
}

// Router chooses the provider for a channel. Providers are registered once by name.
type Router struct {
	providers map[string]Provider
	routes    map[string]Route
}

// NewRouter returns an empty router.
func NewRouter() *Router {
	return &Router{providers: map[string]Provider{}, routes: map[string]Route{}}
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

// For returns the provider that should carry the next attempt on channel.
func (r *Router) For(channel string) (string, Provider, error) {
	rt, ok := r.routes[channel]
	if !ok {
		return "", nil, fmt.Errorf("no provider configured for channel %q", channel)
	}
	return rt.Primary, r.providers[rt.Primary], nil
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
