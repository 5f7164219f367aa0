package hooks

import (
	"github.com/pocketbase/pocketbase/core"

	"clinicmsg/internal/compose"
)

// onUserValidate refuses a clinic account without its clinic or role: such an account
// could sign in but do nothing, and the failure would surface only then.
func (s *Service) onUserValidate(e *core.RecordEvent) error {
	if e.Record.GetString("clinic") == "" {
		return compose.BadField("clinic", "validation_required", "a user belongs to a clinic: set clinic")
	}
	if e.Record.GetString("role") == "" {
		return compose.BadField("role", "validation_required", "a user has a role: set role to admin, staff or app")
	}
	return e.Next()
}
