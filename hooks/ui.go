package hooks

import "github.com/pocketbase/pocketbase/core"

// registerUI serves the staff dashboard.
func (s *Service) registerUI(se *core.ServeEvent) {}
