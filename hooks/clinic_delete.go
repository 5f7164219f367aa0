package hooks

import (
	"fmt"

	"clinicmsg/internal/compose"
	"clinicmsg/internal/store"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
)

// onClinicDelete refuses to delete a clinic while any of its messages may still be sent:
// deleting it would delete them under the dispatcher's feet (messages cascade with their
// clinic). Its waiting messages can be canceled first, or left to finish.
func (s *Service) onClinicDelete(e *core.RecordEvent) error {
	var n int
	err := e.App.DB().Select("COUNT(*)").From("messages").
		Where(dbx.HashExp{"clinic": e.Record.Id}).
		AndWhere(dbx.In("status", toAny(append(append([]string{}, store.Waiting...), "sending"))...)).
		Row(&n)
	if err != nil {
		return fmt.Errorf("failed to count the clinic's unsent messages: %w", err)
	}
	if n > 0 {
		return compose.BadField("clinic", "validation_clinic_has_unsent_messages",
			fmt.Sprintf("the clinic has %d messages not yet sent; cancel them or let them finish before deleting the clinic", n))
	}
	if err := e.Next(); err != nil {
		return err
	}
	s.clinicCache.forget(e.Record.Id)
	return nil
}

// clinicsExist checks, inside the write transaction, that every clinic messages are about
// to be stored for still exists: the clinic cache may hold a clinic deleted a moment ago,
// and a message of no clinic would be sent and never purged. Each clinic is one
// primary-key lookup (a request's messages are almost always one clinic's) run as the
// writer group's cached query, not a query built for each list of ids.
func clinicsExist(tx core.App, ids []any) (map[string]bool, error) {
	out := make(map[string]bool, 1)
	checked := make(map[any]bool, 1)
	for _, id := range ids {
		if checked[id] {
			continue // one lookup per clinic, not per message
		}
		checked[id] = true
		var found []string
		if err := store.CachedQuery(tx, "SELECT [[id]] FROM {{clinics}} WHERE [[id]] = {:id}").Bind(dbx.Params{"id": id}).Column(&found); err != nil {
			return nil, fmt.Errorf("failed to check the messages' clinics: %w", err)
		}
		for _, f := range found {
			out[f] = true
		}
	}
	return out, nil
}
