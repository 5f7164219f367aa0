package hooks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	validation "github.com/pocketbase/ozzo-validation/v4"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"
	"github.com/pocketbase/pocketbase/tools/types"

	"clinicmsg/internal/compose"
	"clinicmsg/internal/store"
	"clinicmsg/providers"
)

// Bulk creates (POST /api/clinicmsg/send and campaign fan-out) give every message the same
// checks, first status, audit row and realtime announcement as a record create, but store
// them with one prepared INSERT per table (insertRows): a Save per message runs PocketBase's
// whole hook and validation chain while holding SQLite's only write connection, and that
// chain costs several times the insert itself. The checks run before the write transaction,
// so that requests check their messages in parallel and hold the writer only to insert.

// newMessage is one message of a bulk create: the record and its first audit row, both
// already turned into column values, so that the write transaction (one at a time) only
// stamps and inserts them.
type newMessage struct {
	rec  *core.Record
	data map[string]any // the record's columns, created and updated stamped at insert
	log  []any          // the first audit row (store.LogColumns), created stamped at insert
}

// prepareNew checks and renders recs for a bulk create, exactly as a record create would,
// and answers for each either the prepared message or why it is refused. seen carries the
// earlier messages of the same request, which the database cannot see yet. The patients'
// preferences and the duplicate window's messages are read once for all of recs instead of
// once per message.
func (s *Service) prepareNew(recs []*core.Record, seen *batchSeen) ([]*newMessage, []error) {
	out := make([]*newMessage, len(recs))
	errs := make([]error, len(recs))
	clinics := make([]*core.Record, len(recs))
	for i, rec := range recs {
		clinics[i], errs[i] = s.checkAddress(s.app, rec, seen)
	}
	err := seen.loadPreferences(s.app, recs, errs)
	if err == nil {
		err = seen.loadRecent(s.app, recs, errs)
	}
	if err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return out, errs
	}
	for i, rec := range recs {
		if errs[i] != nil {
			continue
		}
		rec.Id = store.GrowingID()
		first, err := s.prepareAddressed(s.app, rec, clinics[i], seen)
		if err == nil {
			err = s.validateFields(rec, seen)
		}
		if err != nil {
			errs[i] = err
			continue
		}
		seen.add(rec)
		first.Message = rec.Id
		m := &newMessage{rec: rec}
		if m.data, err = rec.DBExport(s.app); err == nil {
			m.log, err = store.LogRow(first)
		}
		if err != nil {
			errs[i] = fmt.Errorf("failed to export message: %w", err)
			continue
		}
		out[i] = m
	}
	return out, errs
}

// validateFields runs the collection's field validators, as Save would. Relations are
// checked here with the clinic cache and one lookup, instead of a query per field.
func (s *Service) validateFields(rec *core.Record, seen *batchSeen) error {
	fieldErrs := validation.Errors{}
	ctx := context.Background()
	for _, f := range rec.Collection().Fields {
		switch f.(type) {
		case *core.RelationField, *core.AutodateField:
			continue
		}
		if f.GetName() == core.FieldNameId {
			continue
		}
		if err := f.ValidateValue(ctx, s.app, rec); err != nil {
			fieldErrs[f.GetName()] = err
		}
	}
	if len(fieldErrs) > 0 {
		return router.NewBadRequestError("Failed to create the message.", fieldErrs)
	}
	return nil
}

// insertMessages stores prepared messages and their first audit rows in tx, and announces
// each create once tx commits. An idempotency key taken since the message was prepared
// (by a concurrent request) refuses that message alone: its index in msgs maps to the
// answer.
func (s *Service) insertMessages(tx core.App, msgs []*newMessage) (map[int]error, error) {
	refused, err := takenKeys(tx, msgs)
	if err != nil {
		return nil, err
	}
	var clinics []any
	for _, m := range msgs {
		clinics = append(clinics, m.rec.GetString("clinic"))
	}
	exist, err := clinicsExist(tx, clinics)
	if err != nil {
		return nil, err
	}
	for i, m := range msgs {
		if c := m.rec.GetString("clinic"); !exist[c] && refused[i] == nil {
			refused[i] = compose.BadField("clinic", "validation_invalid_clinic", fmt.Sprintf("clinic %q does not exist", c))
		}
	}
	rows := make([]*newMessage, 0, len(msgs))
	for i, m := range msgs {
		if refused[i] == nil {
			rows = append(rows, m)
		}
	}
	if len(rows) == 0 {
		return refused, nil
	}

	// Autodate fields ignore Set; a Save fills them in its own hooks.
	now := types.NowDateTime()
	stamp := now.String()
	columns := slices.Sorted(maps.Keys(rows[0].data))
	values := make([][]any, len(rows))
	logs := make([][]any, len(rows))
	for i, m := range rows {
		m.rec.SetRaw("created", now)
		m.rec.SetRaw("updated", now)
		m.data["created"], m.data["updated"] = stamp, stamp
		values[i] = make([]any, len(columns))
		for j, c := range columns {
			values[i][j] = m.data[c]
		}
		m.log[len(m.log)-1] = stamp
		logs[i] = m.log
	}
	if err := store.InsertMessages(tx, columns, values, logs); err != nil {
		return nil, err
	}
	s.announceCreatedAfterCommit(tx, rows)
	return refused, nil
}

const takenKeysQuery = `SELECT id, idempotency_key FROM messages WHERE clinic = {:clinic}
	AND idempotency_key IN (SELECT value FROM json_each({:keys})) AND idempotency_key != ''`

// takenKeys finds the messages whose idempotency key is already stored, with one query per
// clinic (on the clinic's unique index).
func takenKeys(tx core.App, msgs []*newMessage) (map[int]error, error) {
	byKey := map[string]int{}
	keys := map[string][]any{} // clinic → keys
	for i, m := range msgs {
		if k := m.rec.GetString("idempotency_key"); k != "" {
			c := m.rec.GetString("clinic")
			byKey[c+"\x00"+k] = i
			keys[c] = append(keys[c], k)
		}
	}
	refused := map[int]error{}
	for clinic, list := range keys {
		values, err := jsonList(list)
		if err != nil {
			return nil, err
		}
		var found []struct {
			ID  string `db:"id"`
			Key string `db:"idempotency_key"`
		}
		// The keys as one JSON array: a statement with a placeholder per key costs more to
		// parse than the lookup takes.
		err = store.CachedQuery(tx, takenKeysQuery).Bind(dbx.Params{"clinic": clinic, "keys": values}).All(&found)
		if err != nil {
			return nil, fmt.Errorf("failed to check idempotency keys: %w", err)
		}
		for _, f := range found {
			if i, ok := byKey[clinic+"\x00"+f.Key]; ok {
				refused[i] = compose.IdempotencyConflict(f.ID)
			}
		}
	}
	return refused, nil
}

// announceCreatedAfterCommit fires PocketBase's after-create events for each message
// (realtime broadcast, the dispatcher's wake-up) once tx commits, and never if it rolls back.
func (s *Service) announceCreatedAfterCommit(tx core.App, rows []*newMessage) {
	store.AfterCommit(tx, func() {
		for _, m := range rows {
			m.rec.MarkAsNotNew()
			ev := &core.ModelEvent{App: s.app, Context: context.Background(), Type: core.ModelEventTypeCreate, Model: m.rec}
			if err := s.app.OnModelAfterCreateSuccess().Trigger(ev); err != nil {
				s.app.Logger().Warn("failed to announce a new message", "message", m.rec.Id, "error", err)
			}
		}
	})
}

// batchSeen remembers the messages accepted earlier in one bulk create, for the checks a
// record create makes against the database: a repeated idempotency key and the duplicate
// guard. A nil *batchSeen remembers nothing.
type batchSeen struct {
	keys      map[string]string // clinic, idempotency key → message id
	sent      map[string]string // duplicate-guard key → message id
	campaigns map[string]string // campaign id → its clinic
	window    time.Duration

	prefsByPatient map[string]*core.Record   // clinic + patient id → preferences
	prefsByContact map[string][]*core.Record // clinic + phone or email → preferences
	prefsLoaded    map[string]bool           // clinics whose preferences are loaded

	recent       map[string][]recentMessage // clinic + address or patient id → messages in the duplicate window
	recentLoaded map[string]bool            // clinics whose window recent holds
}

func newBatchSeen(window time.Duration) *batchSeen {
	return &batchSeen{keys: map[string]string{}, sent: map[string]string{}, campaigns: map[string]string{}, window: window}
}

// loadPreferences reads, with one query per clinic, the preferences of every
// patient that recs (already addressed, unless errs says otherwise) may match: by patient
// id, phone number or email address.
func (b *batchSeen) loadPreferences(app core.App, recs []*core.Record, errs []error) error {
	if b == nil {
		return nil
	}
	if b.prefsLoaded == nil {
		b.prefsByPatient = map[string]*core.Record{}
		b.prefsByContact = map[string][]*core.Record{}
		b.prefsLoaded = map[string]bool{}
	}
	return lookupByClinic(recs, errs, func(rec *core.Record) map[string]string {
		address := "phone"
		if rec.GetString("channel") == providers.ChannelEmail {
			address = "email"
		}
		return map[string]string{address: rec.GetString("to"), "patient_id": rec.GetString("patient_id")}
	}, func(clinic string, cols []columnValues) error {
		col, err := app.FindCachedCollectionByNameOrId("preferences")
		if err != nil {
			return fmt.Errorf("failed to look up preferences: %w", err)
		}
		text, args, err := unionQuery(cols, preferencesPart, clinic)
		if err != nil {
			return err
		}
		rows, err := readRows(app, text, args...)
		var found []*core.Record
		if err == nil {
			found, err = store.ScanRecords(col, rows)
		}
		if err != nil {
			return fmt.Errorf("failed to look up preferences: %w", err)
		}
		seen := map[string]bool{} // a preference found by two columns is kept once
		for _, p := range found {
			if seen[p.Id] {
				continue
			}
			seen[p.Id] = true
			if id := p.GetString("patient_id"); id != "" {
				b.prefsByPatient[clinic+"\x00"+id] = p
			}
			for _, c := range []string{p.GetString("phone"), p.GetString("email")} {
				if c != "" {
					k := clinic + "\x00" + c
					b.prefsByContact[k] = append(b.prefsByContact[k], p)
				}
			}
		}
		b.prefsLoaded[clinic] = true
		return nil
	})
}

// columnValues are the values one lookup compares a column with.
type columnValues struct {
	column string
	values []any
}

// lookupByClinic runs lookup once per clinic with the values recs (those errs does not
// refuse) bring for each column, the columns in name order. values maps a record to its
// column values; empty ones are left out, and a nil map leaves the record out.
func lookupByClinic(recs []*core.Record, errs []error, values func(*core.Record) map[string]string,
	lookup func(clinic string, cols []columnValues) error) error {
	byClinic := map[string]map[string][]any{}
	var clinics []string
	for i, rec := range recs {
		if errs[i] != nil {
			continue
		}
		vals := values(rec)
		if vals == nil {
			continue
		}
		c := rec.GetString("clinic")
		if byClinic[c] == nil {
			byClinic[c] = map[string][]any{}
			clinics = append(clinics, c)
		}
		for col, v := range vals {
			if v != "" {
				byClinic[c][col] = append(byClinic[c][col], v)
			}
		}
	}
	for _, c := range clinics {
		var cols []columnValues
		for _, col := range slices.Sorted(maps.Keys(byClinic[c])) {
			cols = append(cols, columnValues{col, byClinic[c][col]})
		}
		if len(cols) == 0 {
			continue
		}
		if err := lookup(c, cols); err != nil {
			return err
		}
	}
	return nil
}

// unionQuery joins one SELECT per column, part(column, n), with UNION ALL: SQLite uses a
// column's partial index only when the query repeats its condition, and not for an OR of
// columns, but it does within each SELECT of a compound. Each part takes the clinic, the
// column's values (lookupValues) and then extra as arguments.
func unionQuery(cols []columnValues, part func(column string, n int) string, clinic string, extra ...any) (string, []any, error) {
	texts := make([]string, len(cols))
	var args []any
	for i, c := range cols {
		texts[i] = part(c.column, len(c.values))
		list, err := lookupValues(c.values)
		if err != nil {
			return "", nil, err
		}
		args = append(append(args, clinic, list), extra...)
	}
	return strings.Join(texts, " UNION ALL "), args, nil
}

// preferences answers from the preferences loaded for the request, as findPreferences
// does: the patient's own by id first, then every one matching the address the message
// goes to. found is false when nothing was loaded for the clinic, and the caller must look
// in the database.
func (b *batchSeen) preferences(clinic, patientID, channel, to string) (prefs []*core.Record, found bool) {
	if b == nil || !b.prefsLoaded[clinic] {
		return nil, false
	}
	var own *core.Record
	if patientID != "" {
		if own = b.prefsByPatient[clinic+"\x00"+patientID]; own != nil {
			prefs = append(prefs, own)
		}
	}
	for _, p := range b.prefsByContact[clinic+"\x00"+to] {
		// A phone number never matches an email address, nor the other way round.
		if p == own || (channel == providers.ChannelEmail) != (p.GetString("email") == to) {
			continue
		}
		prefs = append(prefs, p)
	}
	return prefs, true
}

// recentMessage is a message the duplicate guard compares new ones with.
type recentMessage struct {
	ID       string         `db:"id"`
	Created  types.DateTime `db:"created"`
	To       string         `db:"to"`
	Patient  string         `db:"patient_id"`
	Channel  string         `db:"channel"`
	Template string         `db:"template"`
	Body     string         `db:"body"`
	matched  string         // the column the lookup found it by
}

// loadRecent reads, with one query per clinic (on the same indexes as the
// single-message guard), the messages of the duplicate window that recs could repeat.
func (b *batchSeen) loadRecent(app core.App, recs []*core.Record, errs []error) error {
	if b == nil || b.window <= 0 {
		return nil
	}
	if b.recent == nil {
		b.recent = map[string][]recentMessage{}
		b.recentLoaded = map[string]bool{}
	}
	since := store.FormatTime(time.Now().UTC().Add(-b.window))
	return lookupByClinic(recs, errs, func(rec *core.Record) map[string]string {
		if len(b.guardKeys(rec)) == 0 {
			return nil
		}
		return map[string]string{"to": rec.GetString("to"), "patient_id": rec.GetString("patient_id")}
	}, func(clinic string, cols []columnValues) error {
		text, args, err := unionQuery(cols, recentPart, clinic, since)
		if err != nil {
			return err
		}
		rows, err := readRows(app, text, args...)
		var found []recentMessage
		if err == nil {
			found, err = scanRecent(rows)
		}
		if err != nil {
			return fmt.Errorf("failed to look for duplicates: %w", err)
		}
		for _, m := range found {
			key := clinic + "\x00to:" + m.To
			if m.matched == "patient_id" {
				key = clinic + "\x00patient:" + m.Patient
			}
			b.recent[key] = append(b.recent[key], m)
		}
		b.recentLoaded[clinic] = true
		return nil
	})
}

// preferencesPart finds a clinic's preferences by n values of one column.
func preferencesPart(column string, n int) string {
	return `SELECT * FROM preferences WHERE clinic = ? AND ` + matchAny(column, n) + ` AND "` + column + `" != ''`
}

// recentPart finds a clinic's messages in the duplicate window by n values of one column.
func recentPart(column string, n int) string {
	return `SELECT '` + column + `', id, created, "to", patient_id, channel, template, body FROM messages
		WHERE clinic = ? AND ` + matchAny(column, n) + ` AND "` + column + `" != ''
		AND created >= ? AND status NOT IN ('failed','undelivered','canceled','skipped')`
}

// matchAny compares column with one value, or with a JSON array of several: a request of
// one message (most of them) is spared the temporary table SQLite builds for an IN list.
func matchAny(column string, n int) string {
	if n == 1 {
		return `"` + column + `" = ?`
	}
	return `"` + column + `" IN (SELECT value FROM json_each(?))`
}

// lookupValues is the argument matchAny's placeholder takes for values.
func lookupValues(values []any) (any, error) {
	if len(values) == 1 {
		return values[0], nil
	}
	return jsonList(values)
}

func scanRecent(rows *sql.Rows) ([]recentMessage, error) {
	defer rows.Close()
	var out []recentMessage
	for rows.Next() {
		var m recentMessage
		var created string
		if err := rows.Scan(&m.matched, &m.ID, &created, &m.To, &m.Patient, &m.Channel, &m.Template, &m.Body); err != nil {
			return nil, err
		}
		if err := m.Created.Scan(created); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// recentDuplicate answers the duplicate guard from the messages loaded for the request:
// the earlier message rec repeats, or nil. loaded is false when nothing was loaded for
// the clinic, and the caller must look in the database.
func (b *batchSeen) recentDuplicate(rec *core.Record) (prev *recentMessage, loaded bool) {
	clinic := rec.GetString("clinic")
	if b == nil || !b.recentLoaded[clinic] {
		return nil, false
	}
	keys := []string{clinic + "\x00to:" + rec.GetString("to")}
	if p := rec.GetString("patient_id"); p != "" {
		keys = append(keys, clinic+"\x00patient:"+p)
	}
	for _, k := range keys {
		for i, m := range b.recent[k] {
			if m.Channel == rec.GetString("channel") && m.Template == rec.GetString("template") &&
				(m.Template != "" || m.Body == rec.GetString("body")) {
				return &b.recent[k][i], true
			}
		}
	}
	return nil, true
}

func (b *batchSeen) keyOwner(clinic, key string) string {
	if b == nil {
		return ""
	}
	return b.keys[clinic+"\x00"+key]
}

// guardKeys are the duplicate guard's ways of matching rec: by number, and by patient.
func (b *batchSeen) guardKeys(rec *core.Record) []string {
	if b.window <= 0 || rec.GetString("idempotency_key") != "" || rec.GetString("campaign") != "" {
		return nil
	}
	content := "t:" + rec.GetString("template")
	if rec.GetString("template") == "" {
		content = "b:" + rec.GetString("body")
	}
	base := rec.GetString("clinic") + "\x00" + rec.GetString("channel") + "\x00" + content + "\x00"
	out := []string{base + "to:" + rec.GetString("to")}
	if p := rec.GetString("patient_id"); p != "" {
		out = append(out, base+"patient:"+p)
	}
	return out
}

func (b *batchSeen) duplicateOf(rec *core.Record) string {
	if b == nil {
		return ""
	}
	for _, k := range b.guardKeys(rec) {
		if id, ok := b.sent[k]; ok {
			return id
		}
	}
	return ""
}

func (b *batchSeen) add(rec *core.Record) {
	if b == nil {
		return
	}
	if k := rec.GetString("idempotency_key"); k != "" {
		b.keys[rec.GetString("clinic")+"\x00"+k] = rec.Id
	}
	switch rec.GetString("status") {
	case providers.StatusSkipped, providers.StatusFailed, providers.StatusCanceled:
		return
	}
	for _, k := range b.guardKeys(rec) {
		if _, ok := b.sent[k]; !ok {
			b.sent[k] = rec.Id
		}
	}
}

// asAPIError is err as the 4xx answer a record create would give, or nil for a failure of
// the appliance itself.
func asAPIError(err error) *router.ApiError {
	var apiErr *router.ApiError
	if errors.As(err, &apiErr) {
		return apiErr
	}
	var fieldErrs validation.Errors
	if errors.As(err, &fieldErrs) {
		return router.NewApiError(http.StatusBadRequest, "Failed to create the message.", fieldErrs)
	}
	return nil
}
