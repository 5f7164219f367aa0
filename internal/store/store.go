// Package store is the only code that writes the message tables (messages, message_logs,
// campaign_recipients, job_runs and the statistics roll-ups): the group-commit writer, the
// growing ids, inserts, the claim and Transition, which applies the status ordering rule
// and writes the audit row of every status change. Keeping every write here means a rule
// about a message's state is written once and every path obeys it.
package store

import (
	"context"
	"fmt"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"
)

// The hot path (claims, send outcomes, delivery reports) writes messages and their log rows
// with plain SQL instead of app.Save: a Save runs the whole hook and validation chain
// (relation lookups included) while holding SQLite's only write connection, and that chain
// costs several times the write itself. Only values clinicmsg computed itself are written
// this way. Realtime subscribers and the record hooks still hear of each change: after the
// transaction commits, the change is announced as PocketBase announces a Save.

// Store writes the message tables of one app.
type Store struct {
	app core.App
}

// New returns the store of app (the root app, not a transaction: announcements run on it).
func New(app core.App) *Store {
	return &Store{app: app}
}

// Change is one change of a message row.
type Change struct {
	// To is the status the message moves to; "" keeps its status (a change of other
	// columns only, such as billing details or a message left in doubt).
	To string
	// Set are the other columns written, by name.
	Set map[string]any
	// Guard are columns the row must still hold for the change to apply (a lease's
	// attempt number); the row's status as read is always guarded.
	Guard map[string]any
	// Audit is the audit row; its Message and Status are filled in. An empty Event writes
	// none (a change that is not a step of the message's life, such as billing).
	Audit Entry
}

// Transition applies c to rec inside tx, if the ordering rule allows the move from rec's
// status (as the caller read it) and the row still holds that status and c.Guard. It
// updates rec in place, announces the change once tx commits and appends the audit row.
// It reports false, having changed nothing, when the move is not allowed or the row has
// moved on meanwhile.
func (s *Store) Transition(tx core.App, rec *core.Record, c Change) (bool, error) {
	from := rec.GetString("status")
	to := c.To
	if to == "" {
		to = from
	}
	if to != from && !CanMove(from, to) {
		return false, nil
	}
	now := FormatTime(time.Now().UTC())
	set := make(dbx.Params, len(c.Set)+2)
	for k, v := range c.Set {
		set[k] = v
	}
	if to != from {
		set["status"] = to
	}
	set["updated"] = now
	match := dbx.Params{"id": rec.Id, "status": from}
	for k, v := range c.Guard {
		match[k] = v
	}
	res, err := updateWhere(tx, "messages", set, match)
	if err != nil {
		return false, fmt.Errorf("failed to update message %s (%s → %s): %w", rec.Id, from, to, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return false, err
	}
	moved := Moved{From: from, To: to}
	for _, t := range []struct {
		field string
		flag  *bool
	}{{"sent_at", &moved.Sent}, {"delivered_at", &moved.Delivered}, {"read_at", &moved.Read}} {
		if v, ok := set[t.field]; ok && nonZeroTime(v) && rec.GetDateTime(t.field).IsZero() {
			*t.flag = true
		}
	}
	for k, v := range set {
		setField(rec, k, v)
	}
	s.announce(tx, rec, &moved)
	if c.Audit.Event == "" {
		return true, nil
	}
	c.Audit.Message, c.Audit.Status = rec.Id, to
	if err := WriteLog(tx, c.Audit); err != nil {
		return false, err
	}
	return true, nil
}

// Initial sets the first status of a message being created (not yet stored); the create
// checks decide it, and the insert and its first audit row commit together.
func Initial(rec *core.Record, status, reason string) {
	rec.Set("status", status)
	rec.Set("status_reason", reason)
}

// setField sets rec's field k to v as rec.Set does, asking only that field for its setter:
// Set asks every field of the collection, and the hot path sets a dozen fields per change.
// An autodate field (updated) refuses Set, so it is set raw: the record then says when the
// row was last written, as the row does.
func setField(rec *core.Record, k string, v any) {
	f := rec.Collection().Fields.GetByName(k)
	if _, ok := f.(*core.AutodateField); ok {
		if dt, err := types.ParseDateTime(v); err == nil {
			rec.SetRaw(k, dt)
		}
		return
	}
	if sf, ok := f.(core.SetterFinder); ok {
		if setter := sf.FindSetter(k); setter != nil {
			setter(rec, v)
			return
		}
	}
	rec.Set(k, v)
}

// Moved is what one Transition changed: the status it left and the one it reached, and
// which of the timestamps it set for the first time. It rides on the announcement's
// context, so observers (the metrics) need not rebuild the record as it was loaded.
type Moved struct {
	From, To              string
	Sent, Delivered, Read bool
}

type movedKey struct{}

func nonZeroTime(v any) bool {
	switch t := v.(type) {
	case string:
		return t != ""
	case types.DateTime:
		return !t.IsZero()
	case time.Time:
		return !t.IsZero()
	}
	return v != nil
}

// MovedBy returns what the Transition announced on ctx changed, if ctx is the context of
// a Transition's announcement.
func MovedBy(ctx context.Context) (Moved, bool) {
	m, ok := ctx.Value(movedKey{}).(*Moved)
	if !ok {
		return Moved{}, false
	}
	return *m, true
}

// Announce fires PocketBase's after-update events for rec (realtime broadcast, metrics)
// once tx commits, and never if it rolls back.
func (s *Store) Announce(tx core.App, rec *core.Record) {
	s.announce(tx, rec, nil)
}

func (s *Store) announce(tx core.App, rec *core.Record, moved *Moved) {
	AfterCommit(tx, func() {
		rec.MarkAsNotNew()
		ctx := context.Background()
		if moved != nil {
			ctx = context.WithValue(ctx, movedKey{}, moved)
		}
		ev := &core.ModelEvent{App: s.app, Context: ctx, Type: core.ModelEventTypeUpdate, Model: rec}
		if err := s.app.OnModelAfterUpdateSuccess().Trigger(ev); err != nil {
			s.app.Logger().Warn("failed to announce a message change", "message", rec.Id, "error", err)
		}
	})
}

// AfterCommit runs fn once tx commits (at once when tx is no transaction), never if it
// rolls back.
func AfterCommit(tx core.App, fn func()) {
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
