package hooks

import (
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"
)

// markOptedOut records in the patient's preferences that the provider refused them as
// opted out (they replied STOP to the carrier), so clinicmsg skips them from now on.
func (s *Service) markOptedOut(tx core.App, msg *core.Record, source string) error {
	return s.upsertPreference(tx, msg, func(p *core.Record) bool {
		if p.GetBool("opted_out") {
			return false
		}
		p.Set("opted_out", true)
		p.Set("opted_out_at", types.NowDateTime())
		p.Set("opt_out_source", source)
		return true
	})
}
