package hooks

import "github.com/pocketbase/pocketbase/core"

// bindOps binds the operations side (statistics, jobs, health, metrics).
func (s *Service) bindOps() {}

// registerOpsRoutes adds the operations routes when the app serves.
func (s *Service) registerOpsRoutes(se *core.ServeEvent) {}
