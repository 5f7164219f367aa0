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
