package hooks

import (
	"context"
	"time"
)

// Test-only access to the operations internals for the tests in package hooks_test.

// AddTestJob adds a job that runs fn, so that the runner's guard, panics and failures can
// be tested without the real jobs' side effects.
func (s *Service) AddTestJob(name string, fn func(ctx context.Context) error) {
	s.ops().jobs.specs = append(s.ops().jobs.specs, &jobSpec{
		name: name, schedule: "0 0 1 1 *", timeout: time.Minute,
		run: func(ctx context.Context, _ *jobRun) error { return fn(ctx) },
	})
}

// CountWebhook is countWebhook, which the webhook handlers call.
func (s *Service) CountWebhook(provider, result string) { s.countWebhook(provider, result) }

// CleanupDue is cleanupDue.
var CleanupDue = cleanupDue
