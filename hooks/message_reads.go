package hooks

import (
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
)

// Reads on the create path (a request's preferences and duplicate-window messages) run for
// every request, and parsing their SQL cost as much as running it. These statements are
// prepared once per database; they take one value, or a list of them as one JSON array
// (json_each), so that a few texts serve any number of values.

// preparedRead is a statement prepared on one database handle; a handle replaced (a restore
// reopens the database) is prepared on again.
type preparedRead struct {
	db   *sql.DB
	stmt *sql.Stmt
}

// readRows runs text (with ? placeholders) on app's read pool as a statement prepared once.
func readRows(app core.App, text string, args ...any) (*sql.Rows, error) {
	pool, ok := app.ConcurrentDB().(*dbx.DB)
	if !ok {
		return nil, fmt.Errorf("failed to prepare a read: unexpected database handle %T", app.ConcurrentDB())
	}
	db := pool.DB()
	key := "clinicmsg.read:" + text
	p, _ := app.Store().Get(key).(*preparedRead)
	if p == nil || p.db != db {
		stmt, err := db.Prepare(text)
		if err != nil {
			return nil, fmt.Errorf("failed to prepare a read: %w", err)
		}
		p = &preparedRead{db: db, stmt: stmt}
		app.Store().Set(key, p)
	}
	return p.stmt.Query(args...)
}

// jsonList is values as the JSON array a json_each(?) placeholder takes.
func jsonList(values []any) (string, error) {
	b, err := json.Marshal(values)
	if err != nil {
		return "", fmt.Errorf("failed to encode lookup values: %w", err)
	}
	return string(b), nil
}

// scanRecords reads rows (all columns of col's table) into records, as PocketBase's own
// record queries do.
func scanRecords(col *core.Collection, rows *sql.Rows) ([]*core.Record, error) {
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	vals := make([]sql.NullString, len(names))
	ptrs := make([]any, len(names))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var out []*core.Record
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		rec := core.NewRecord(col)
		for i, name := range names {
			f := col.Fields.GetByName(name)
			if f == nil {
				continue
			}
			var raw any
			if vals[i].Valid {
				raw = vals[i].String
			}
			v, err := f.PrepareValue(rec, raw)
			if err != nil {
				return nil, err
			}
			rec.SetRaw(name, v)
		}
		rec.Id = rec.GetString(core.FieldNameId)
		rec.MarkAsNotNew()
		out = append(out, rec)
	}
	return out, rows.Err()
}
