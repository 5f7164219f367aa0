package hooks

import (
	"context"
	"sync"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/hook"
)

// opsState is the operations side of one Service: metrics, jobs, the health cache.
type opsState struct {
	metrics *metrics
	jobs    *jobRunner
	health  *healthChecker

	// ctx ends when the app terminates, so that a running job stops instead of holding the
	// database open underneath PocketBase's shutdown.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// ops returns the operations state bound by bindOps, or nil before it.
func (s *Service) ops() *opsState {
	return s.opsState
}

// bindOps binds the operations side (statistics, jobs, health, metrics).
func (s *Service) bindOps() {
	o := &opsState{}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	o.metrics = newMetrics(s)
	o.health = newHealthChecker(s)
	o.jobs = newJobRunner(s, o)
	s.opsState = o

	s.ObserveSends(o.metrics.observeSend)
	s.ObserveWebhooks(o.metrics.countWebhook)
	s.app.OnRecordAfterCreateSuccess("messages").BindFunc(func(e *core.RecordEvent) error {
		o.metrics.messageCreated(e.Record)
		return e.Next()
	})
	s.app.OnRecordAfterUpdateSuccess("messages").BindFunc(func(e *core.RecordEvent) error {
		o.metrics.messageUpdated(e)
		s.markStatsDirty(e.App, e.Record)
		return e.Next()
	})
	s.app.OnRecordAfterDeleteSuccess("messages").BindFunc(func(e *core.RecordEvent) error {
		s.markStatsDirty(e.App, e.Record)
		return e.Next()
	})

	o.jobs.schedule()

	// Before the dispatcher stops (priority -100) and long before PocketBase closes the
	// database: running jobs see their context end and finish their current batch.
	s.app.OnTerminate().Bind(&hook.Handler[*core.TerminateEvent]{
		Func: func(e *core.TerminateEvent) error {
			o.cancel()
			o.wg.Wait()
			return e.Next()
		},
		Priority: -101,
	})
}
