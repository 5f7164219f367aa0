package hooks

import (
	"context"

	"golang.org/x/sync/semaphore"
)

// CacheSizes reports how many entries each in-memory cache holds and its bound, so a test
// can check that no request grows one without limit.
func CacheSizes(s *Service) map[string][2]int {
	s.templateCache.mu.Lock()
	tpl := [2]int{len(s.templateCache.entries), s.templateCache.max}
	s.templateCache.mu.Unlock()
	s.clinicCache.mu.Lock()
	cl := [2]int{len(s.clinicCache.entries), s.clinicCache.max}
	s.clinicCache.mu.Unlock()
	s.webhookIDs.mu.Lock()
	ids := [2]int{len(s.webhookIDs.keys), s.webhookIDs.n}
	s.webhookIDs.mu.Unlock()
	s.authCache.mu.Lock()
	auth := [2]int{len(s.authCache.entries), s.authCache.max}
	s.authCache.mu.Unlock()
	return map[string][2]int{"templates": tpl, "clinics": cl, "webhook_ids": ids, "auth_tokens": auth}
}

// SetCacheBounds lowers the caches' bounds, so a test reaches them with few requests.
func SetCacheBounds(s *Service, n int) {
	s.templateCache.mu.Lock()
	s.templateCache.max = n
	s.templateCache.mu.Unlock()
	s.clinicCache.mu.Lock()
	s.clinicCache.max = n
	s.clinicCache.mu.Unlock()
	s.webhookIDs.mu.Lock()
	s.webhookIDs.n = n
	s.webhookIDs.mu.Unlock()
	s.authCache.mu.Lock()
	s.authCache.max = n
	s.authCache.mu.Unlock()
}

// SetCreatingBound lowers how many messages all requests together may be creating at once.
func SetCreatingBound(s *Service, n int64) {
	s.creating, s.creatingMax = semaphore.NewWeighted(n), n
}

// HoldCreating takes n messages' worth of the bound on messages being created, as
// requests in work would, until release is called.
func HoldCreating(s *Service, n int64) (release func()) {
	if err := s.creating.Acquire(context.Background(), n); err != nil {
		panic(err)
	}
	return func() { s.creating.Release(n) }
}
