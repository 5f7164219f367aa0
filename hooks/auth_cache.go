package hooks

import (
	"strings"
	"sync"
	"time"

	"github.com/pocketbase/pocketbase/apis"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/hook"
	"github.com/pocketbase/pocketbase/tools/security"
)

// authCache keeps the auth record behind a verified token for a few seconds. PocketBase
// reads the record from the database and checks the token's signature on every request:
// about 60 µs of CPU, an eighth of a single-message create. Any change to an auth record
// or an auth collection made through the appliance (a password change, a new role or
// clinic, a deleted user, new token secrets) clears the cache at once; a change made by
// another process on the same data folder (`clinicmsg superuser upsert` while `serve`
// runs) takes effect within the TTL, as a clinic's settings do (clinicCache).
type authCache struct {
	mu      sync.Mutex
	ttl     time.Duration
	max     int
	entries map[string]authEntry
}

type authEntry struct {
	rec   *core.Record
	until time.Time // the TTL or the token's own expiry, whichever is sooner
}

func newAuthCache(ttl time.Duration) *authCache {
	return &authCache{ttl: ttl, max: maxCachedTokens, entries: map[string]authEntry{}}
}

// middleware loads e.Auth as PocketBase's loadAuthToken does (which then leaves it be),
// from the cache when it can. Each request gets its own copy of the record.
func (c *authCache) middleware() *hook.Handler[*core.RequestEvent] {
	return &hook.Handler[*core.RequestEvent]{
		Id:       "clinicmsgAuthCache",
		Priority: apis.DefaultLoadAuthTokenMiddlewarePriority - 1,
		Func: func(e *core.RequestEvent) error {
			if e.Auth != nil {
				return e.Next()
			}
			token := e.Request.Header.Get("Authorization")
			if len(token) > 7 && strings.EqualFold(token[:7], "Bearer ") {
				token = token[7:]
			}
			if token == "" {
				return e.Next()
			}
			if rec := c.get(token); rec != nil {
				e.Auth = rec
				return e.Next()
			}
			rec, err := e.App.FindAuthRecordByToken(token, core.TokenTypeAuth)
			if err != nil || rec == nil {
				return e.Next() // PocketBase's own loader tries again and logs why
			}
			c.put(token, rec)
			e.Auth = rec.Clone()
			return e.Next()
		},
	}
}

func (c *authCache) get(token string) *core.Record {
	c.mu.Lock()
	e, ok := c.entries[token]
	c.mu.Unlock()
	if !ok || !time.Now().Before(e.until) {
		return nil
	}
	return e.rec.Clone()
}

func (c *authCache) put(token string, rec *core.Record) {
	until := time.Now().Add(c.ttl)
	// The signature and expiry were just checked; the entry must not outlive the token.
	if claims, err := security.ParseUnverifiedJWT(token); err == nil {
		if exp, ok := claims["exp"].(float64); ok {
			if t := time.Unix(int64(exp), 0); t.Before(until) {
				until = t
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// An entry is due when its until passes: measured from until−ttl, pruneExpired's age.
	c.entries = pruneExpired(c.entries, c.max, c.ttl, func(e authEntry) time.Time { return e.until.Add(-c.ttl) })
	c.entries[token] = authEntry{rec: rec, until: until}
}

func (c *authCache) clear() {
	c.mu.Lock()
	c.entries = map[string]authEntry{}
	c.mu.Unlock()
}

// bind clears the cache on every change to an auth record or auth collection.
func (c *authCache) bind(app core.App) {
	onRecord := func(e *core.RecordEvent) error {
		if e.Record.Collection().IsAuth() {
			c.clear()
		}
		return e.Next()
	}
	app.OnRecordAfterUpdateSuccess().BindFunc(onRecord)
	app.OnRecordAfterDeleteSuccess().BindFunc(onRecord)
	onCollection := func(e *core.CollectionEvent) error {
		if e.Collection.IsAuth() {
			c.clear()
		}
		return e.Next()
	}
	app.OnCollectionAfterUpdateSuccess().BindFunc(onCollection)
	app.OnCollectionAfterDeleteSuccess().BindFunc(onCollection)
}
