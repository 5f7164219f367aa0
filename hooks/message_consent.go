package hooks

import (
	"fmt"

	"clinicmsg/internal/compose"
	"clinicmsg/internal/store"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
)

// Consent is checked where a message is created, again where it is claimed for sending
// (consentAtSend), and here, where a patient's preferences change: a STOP reply, a
// carrier's opt-out or a person's edit skips, in the same transaction, every message of
// the clinic still waiting for that patient that the new preferences refuse, so staff see
// it at once.

// onPreferenceSaved saves the preference and, in the same transaction, skips the waiting
// messages it now refuses.
func (s *Service) onPreferenceSaved(e *core.RecordEvent) error {
	return saveWith(e, func(tx core.App) error {
		return s.skipRefusedWaiting(tx, e.Record)
	})
}

// skipRefusedWaiting skips the clinic's scheduled and queued messages (retries waiting
// for their next attempt included) addressed to pref's patient, by patient id, phone or
// email, that consent refuses now.
func (s *Service) skipRefusedWaiting(tx core.App, pref *core.Record) error {
	var conds []dbx.Expression
	for col, v := range map[string]string{"patient_id": pref.GetString("patient_id"), "to": pref.GetString("phone")} {
		if v != "" {
			conds = append(conds, dbx.HashExp{col: v})
		}
	}
	if em := pref.GetString("email"); em != "" {
		conds = append(conds, dbx.HashExp{"to": em})
	}
	if len(conds) == 0 {
		return nil
	}
	var waiting []*core.Record
	err := tx.RecordQuery("messages").
		AndWhere(dbx.HashExp{"clinic": pref.GetString("clinic")}).
		AndWhere(dbx.In("status", toAny(store.Waiting)...)).
		AndWhere(dbx.Or(conds...)).
		Limit(10000).All(&waiting)
	if err != nil {
		return fmt.Errorf("failed to find the patient's waiting messages: %w", err)
	}
	for _, m := range waiting {
		ch := m.GetString("channel")
		prefs, err := findPreferences(tx, m.GetString("clinic"), m.GetString("patient_id"), ch, m.GetString("to"))
		if err != nil {
			return err
		}
		if reason := compose.ConsentReason(prefs, ch, m.GetString("category")); reason != "" {
			if err := s.Dispatcher.Skip(tx, m, reason, "preferences_changed"); err != nil {
				return err
			}
		}
	}
	return nil
}

func toAny(list []string) []any {
	out := make([]any, len(list))
	for i, v := range list {
		out[i] = v
	}
	return out
}
