package hooks

import (
	"clinicmsg/internal/compose"
	"fmt"
	"unicode/utf8"

	"github.com/pocketbase/pocketbase/core"
)

// onTemplateSave bounds a template's texts: a body longer than any channel carries can
// never be sent, and rendering it would only cost memory.
func (s *Service) onTemplateSave(e *core.RecordEvent) error {
	for _, f := range []string{"body_en", "body_ar"} {
		if n := utf8.RuneCountInString(e.Record.GetString(f)); n > compose.MaxTemplateBody {
			return compose.BadField(f, "validation_template_too_long", fmt.Sprintf("%s has %d characters; the limit is %d", f, n, compose.MaxTemplateBody))
		}
	}
	for _, f := range []string{"subject_en", "subject_ar"} {
		if n := utf8.RuneCountInString(e.Record.GetString(f)); n > compose.MaxSubject {
			return compose.BadField(f, "validation_template_too_long", fmt.Sprintf("%s has %d characters; the limit is %d", f, n, compose.MaxSubject))
		}
	}
	return e.Next()
}
