package hooks

import (
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
)

// Reads on the create path (a request's preferences and duplicate-window messages) run for
// every request. They take one value, or a list of them as one JSON array (json_each), so
// that a few texts serve any number of values and each connection's prepared statement
// (internal/stmtcache) serves every request.

// readRows runs text (with ? placeholders) on app's read pool.
func readRows(app core.App, text string, args ...any) (*sql.Rows, error) {
	pool, ok := app.ConcurrentDB().(*dbx.DB)
	if !ok {
		return nil, fmt.Errorf("failed to read: unexpected database handle %T", app.ConcurrentDB())
	}
	return pool.DB().Query(text, args...)
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
