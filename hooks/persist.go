package hooks

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/security"
)

// The hot path (claims, send outcomes, delivery reports) writes messages and their log rows
// with plain SQL instead of app.Save: a Save runs the whole hook and validation chain
// (relation lookups included) while holding SQLite's only write connection, and that chain
// costs several times the write itself. Only values clinicmsg computed itself are written
// this way. Realtime subscribers and the record hooks still hear of each change: after the
// transaction commits, the change is announced as PocketBase announces a Save.

// persistMessage writes rec's changed columns.
func (s *Service) persistMessage(tx core.App, rec *core.Record) error {
	now := formatTime(time.Now().UTC())
	rec.IgnoreUnchangedFields(true)
	data, err := rec.DBExport(tx)
	if err != nil {
		return fmt.Errorf("failed to export message %s: %w", rec.Id, err)
	}
	delete(data, "id")
	data["updated"] = now
	if _, err := tx.DB().Update("messages", dbx.Params(data), dbx.HashExp{"id": rec.Id}).Execute(); err != nil {
		return fmt.Errorf("failed to update message %s: %w", rec.Id, err)
	}
	rec.Set("updated", now)
	s.announceAfterCommit(tx, rec)
	return nil
}

// announceAfterCommit fires PocketBase's after-update events for rec (realtime broadcast,
// metrics) once tx commits, and never if it rolls back.
func (s *Service) announceAfterCommit(tx core.App, rec *core.Record) {
	announce := func() {
		rec.MarkAsNotNew()
		ev := &core.ModelEvent{App: s.app, Context: context.Background(), Type: core.ModelEventTypeUpdate, Model: rec}
		if err := s.app.OnModelAfterUpdateSuccess().Trigger(ev); err != nil {
			s.app.Logger().Warn("failed to announce a message change", "message", rec.Id, "error", err)
		}
	}
	if info := tx.TxInfo(); info != nil {
		info.OnComplete(func(txErr error) error {
			if txErr == nil {
				announce()
			}
			return nil
		})
		return
	}
	announce()
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

var logColumns = []string{"id", "message", "event", "status", "provider", "detail", "error_code", "ip", "user_agent", "created"}

// writeLog appends one row to a message's audit trail.
func writeLog(app core.App, l logEntry) error {
	return writeLogs(app, []logEntry{l})
}

// writeLogs appends rows to message audit trails with one statement.
func writeLogs(app core.App, entries []logEntry) error {
	if len(entries) == 0 {
		return nil
	}
	now := formatTime(time.Now().UTC())
	params := make(dbx.Params, len(entries)*len(logColumns))
	var sb strings.Builder
	sb.WriteString("INSERT INTO message_logs (" + strings.Join(logColumns, ", ") + ") VALUES ")
	for i, l := range entries {
		detail := "null"
		if l.Detail != nil {
			b, err := json.Marshal(l.Detail)
			if err != nil {
				return fmt.Errorf("failed to encode message log detail: %w", err)
			}
			detail = string(b)
		}
		if len(l.UserAgent) > 300 {
			l.UserAgent = l.UserAgent[:300]
		}
		values := []any{security.RandomStringWithAlphabet(15, idAlphabet), l.Message, l.Event, l.Status, l.Provider, detail, l.ErrorCode, l.IP, l.UserAgent, now}
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(")
		for j, v := range values {
			key := fmt.Sprintf("l%d_%d", i, j)
			params[key] = v
			if j > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString("{:" + key + "}")
		}
		sb.WriteString(")")
	}
	if _, err := app.DB().NewQuery(sb.String()).Bind(params).Execute(); err != nil {
		return fmt.Errorf("failed to write message log: %w", err)
	}
	return nil
}
