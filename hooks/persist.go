package hooks

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
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
	if _, err := updateWhere(tx, "messages", dbx.Params(data), dbx.Params{"id": rec.Id}); err != nil {
		return fmt.Errorf("failed to update message %s: %w", rec.Id, err)
	}
	rec.Set("updated", now)
	s.announceAfterCommit(tx, rec)
	return nil
}

// persistFields writes the columns keys of rec, for a caller that knows which it changed:
// finding them is what most of persistMessage's cost goes to (it exports every field).
func (s *Service) persistFields(tx core.App, rec *core.Record, keys []string) error {
	now := formatTime(time.Now().UTC())
	set := make(dbx.Params, len(keys)+1)
	for _, k := range keys {
		set[k] = rec.GetRaw(k)
	}
	set["updated"] = now
	if _, err := updateWhere(tx, "messages", set, dbx.Params{"id": rec.Id}); err != nil {
		return fmt.Errorf("failed to update message %s: %w", rec.Id, err)
	}
	setField(rec, "updated", now)
	s.announceAfterCommit(tx, rec)
	return nil
}

// setField sets rec's field k to v as rec.Set does, asking only that field for its setter:
// Set asks every field of the collection, and the hot path sets a dozen fields per change.
func setField(rec *core.Record, k string, v any) {
	if sf, ok := rec.Collection().Fields.GetByName(k).(core.SetterFinder); ok {
		if setter := sf.FindSetter(k); setter != nil {
			setter(rec, v)
			return
		}
	}
	rec.Set(k, v)
}

// announceAfterCommit fires PocketBase's after-update events for rec (realtime broadcast,
// metrics) once tx commits, and never if it rolls back.
func (s *Service) announceAfterCommit(tx core.App, rec *core.Record) {
	afterCommit(tx, func() {
		rec.MarkAsNotNew()
		ev := &core.ModelEvent{App: s.app, Context: context.Background(), Type: core.ModelEventTypeUpdate, Model: rec}
		if err := s.app.OnModelAfterUpdateSuccess().Trigger(ev); err != nil {
			s.app.Logger().Warn("failed to announce a message change", "message", rec.Id, "error", err)
		}
	})
}

// afterCommit runs fn once tx commits (at once when tx is no transaction), never if it
// rolls back.
func afterCommit(tx core.App, fn func()) {
	if info := tx.TxInfo(); info != nil {
		info.OnComplete(func(txErr error) error {
			if txErr == nil {
				fn()
			}
			return nil
		})
		return
	}
	fn()
}

// saveWith runs the rest of a create hook chain (PocketBase's insert) and then also, in the
// same transaction, so that both commit or neither does. e.App is put back afterwards:
// PocketBase announces the create (realtime) with it, and the transaction is over by then.
func saveWith(e *core.RecordEvent, also func(tx core.App) error) error {
	orig := e.App
	defer func() { e.App = orig }()
	return orig.RunInTransaction(func(tx core.App) error {
		e.App = tx
		if err := e.Next(); err != nil {
			return err
		}
		return also(tx)
	})
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// idSeq orders the ids growingID makes in this process.
var idSeq atomic.Int64

// growingID returns a new record id for the rows clinicmsg inserts in volume (messages of
// bulk creates, audit rows): 10 base-36 digits of a per-process sequence that starts at
// the clock in microseconds, then 5 random characters. A random id lands anywhere in the
// table's id index, so every row dirtied one more page of it per commit; ids that grow
// append to its last page. The id needs to be unique, not unguessable (API rules guard
// the rows), and the random tail keeps another process's ids (jobs run from the command
// line) apart.
func growingID() string {
	now := time.Now().UnixMicro()
	n := idSeq.Add(1)
	for n < now {
		if idSeq.CompareAndSwap(n, now) {
			n = now
			break
		}
		n = idSeq.Add(1)
	}
	var b [15]byte
	for i := 9; i >= 0; i-- {
		b[i] = base36[n%36]
		n /= 36
	}
	for i := 10; i < 15; i++ {
		b[i] = idAlphabet[rand.IntN(len(idAlphabet))]
	}
	return string(b[:])
}

// base36 are the digits of growingID's sequence, in the order that sorts as the numbers do.
const base36 = "0123456789abcdefghijklmnopqrstuvwxyz"

var logColumns = []string{"id", "message", "event", "status", "provider", "detail", "error_code", "ip", "user_agent", "created"}

// writeLog appends one row to a message's audit trail.
func writeLog(app core.App, l logEntry) error {
	return writeLogs(app, []logEntry{l})
}

// writeLogs appends rows to message audit trails.
func writeLogs(app core.App, entries []logEntry) error {
	if len(entries) == 0 {
		return nil
	}
	now := formatTime(time.Now().UTC())
	rows := make([][]any, len(entries))
	for i, l := range entries {
		row, err := logRow(l)
		if err != nil {
			return err
		}
		row[len(row)-1] = now
		rows[i] = row
	}
	if err := insertRows(app, "message_logs", logColumns, rows); err != nil {
		return fmt.Errorf("failed to write message log: %w", err)
	}
	return nil
}

// logRow is l's audit row in logColumns order; created, the last, is left for the caller.
func logRow(l logEntry) ([]any, error) {
	detail := "null"
	if l.Detail != nil {
		b, err := json.Marshal(l.Detail)
		if err != nil {
			return nil, fmt.Errorf("failed to encode message log detail: %w", err)
		}
		detail = string(b)
	}
	if len(l.UserAgent) > 300 {
		l.UserAgent = l.UserAgent[:300]
	}
	return []any{growingID(), l.Message, l.Event, l.Status, l.Provider, detail, l.ErrorCode, l.IP, l.UserAgent, nil}, nil
}

// paramNames are insertRows' parameter names, made once: a log row binds ten of them.
var paramNames = func() []string {
	names := make([]string, 64)
	for i := range names {
		names[i] = "p" + strconv.Itoa(i)
	}
	return names
}()

func paramName(i int) string {
	if i < len(paramNames) {
		return paramNames[i]
	}
	return "p" + strconv.Itoa(i)
}

// insertRows inserts rows (values in the order of columns) with one single-row statement,
// prepared once and run per row. A multi-row INSERT would cost more than it saves: the
// SQLite driver matches every bound value to its placeholder by a linear search (quadratic
// in the values per statement), and SQLite keeps a statement journal for a statement that
// writes many rows.
func insertRows(app core.App, table string, columns []string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	var sb strings.Builder
	sb.WriteString("INSERT INTO {{" + table + "}} (")
	for i, c := range columns {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("[[" + c + "]]")
	}
	sb.WriteString(") VALUES (")
	for i := range columns {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("{:" + paramName(i) + "}")
	}
	sb.WriteString(")")
	q := cachedQuery(app, sb.String())
	if _, grouped := groupStmts.Load(app); !grouped && len(rows) > 1 {
		q = q.Prepare()
		defer q.Close()
	}
	params := make(dbx.Params, len(columns))
	for _, row := range rows {
		for i, v := range row {
			params[paramName(i)] = v
		}
		if _, err := q.Bind(params).Execute(); err != nil {
			return fmt.Errorf("failed to insert into %s: %w", table, err)
		}
	}
	return nil
}
