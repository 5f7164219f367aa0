package hooks

import (
	"sync"
	"time"

	"github.com/pocketbase/pocketbase/core"
)

// Caches are bounded: a template cache keyed by whatever name a caller sends would otherwise
// grow with every unknown name until memory ran out. Past the bound, expired entries are
// dropped and, if that is not enough, the cache starts over (a reload costs one query).
const (
	maxCachedClinics   = 4096
	maxCachedTemplates = 4096
	maxCachedTokens    = 4096 // an app sends with one token; a clinic's staff with one each
)

// pruneExpired makes room for one more entry in m: it drops the entries older than ttl and,
// if m is still at limit, all of them.
func pruneExpired[E any](m map[string]E, limit int, ttl time.Duration, at func(E) time.Time) map[string]E {
	if len(m) < limit {
		return m
	}
	for k, e := range m {
		if time.Since(at(e)) >= ttl {
			delete(m, k)
		}
	}
	if len(m) < limit {
		return m
	}
	return make(map[string]E, limit)
}

// clinicCache keeps clinic records for a few seconds: every send and every create reads
// its clinic, and clinics change rarely (an edit takes effect within the TTL).
type clinicCache struct {
	mu      sync.Mutex
	ttl     time.Duration
	max     int
	entries map[string]clinicEntry
	// load lets one caller at a time read a clinic from the database: when an entry
	// expires, every send in flight asks for it at once.
	load sync.Mutex
}

type clinicEntry struct {
	rec *core.Record
	at  time.Time
}

func newClinicCache(ttl time.Duration) *clinicCache {
	return &clinicCache{ttl: ttl, max: maxCachedClinics, entries: map[string]clinicEntry{}}
}

// get returns a copy of the clinic, from the cache or from app.
func (c *clinicCache) get(app core.App, id string) (*core.Record, error) {
	rec, err := c.shared(app, id)
	if err != nil {
		return nil, err
	}
	return rec.Fresh(), nil
}

// shared returns the cached clinic itself, for a caller that only reads it (a send reads
// its sender ids); get returns a copy to change.
func (c *clinicCache) shared(app core.App, id string) (*core.Record, error) {
	if rec := c.cached(id); rec != nil {
		return rec, nil
	}
	c.load.Lock()
	defer c.load.Unlock()
	if rec := c.cached(id); rec != nil {
		return rec, nil // loaded while this caller waited
	}
	rec, err := app.FindRecordById("clinics", id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.entries = pruneExpired(c.entries, c.max, c.ttl, func(e clinicEntry) time.Time { return e.at })
	c.entries[id] = clinicEntry{rec: rec, at: time.Now()}
	c.mu.Unlock()
	return rec, nil
}

func (c *clinicCache) cached(id string) *core.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[id]; ok && time.Since(e.at) < c.ttl {
		return e.rec
	}
	return nil
}

// forget drops a clinic that was just changed.
func (c *clinicCache) forget(id string) {
	c.mu.Lock()
	delete(c.entries, id)
	c.mu.Unlock()
}

// templateCache keeps template lookups (including "no such template") for a moment; any
// change to a template clears it, so an edit applies to the next message.
type templateCache struct {
	mu      sync.Mutex
	ttl     time.Duration
	max     int
	entries map[string]templateEntry
}

type templateEntry struct {
	rec *core.Record // nil: no such template
	at  time.Time
}

func newTemplateCache(ttl time.Duration) *templateCache {
	return &templateCache{ttl: ttl, max: maxCachedTemplates, entries: map[string]templateEntry{}}
}

func (c *templateCache) get(key string, load func() (*core.Record, error)) (*core.Record, error) {
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && time.Since(e.at) < c.ttl {
		if e.rec == nil {
			return nil, nil
		}
		return e.rec.Fresh(), nil
	}
	rec, err := load()
	if err != nil {
		return nil, err
	}
	entry := templateEntry{at: time.Now()}
	if rec != nil {
		entry.rec = rec.Fresh()
	}
	c.mu.Lock()
	c.entries = pruneExpired(c.entries, c.max, c.ttl, func(e templateEntry) time.Time { return e.at })
	c.entries[key] = entry
	c.mu.Unlock()
	return rec, nil
}

func (c *templateCache) clear() {
	c.mu.Lock()
	c.entries = map[string]templateEntry{}
	c.mu.Unlock()
}
