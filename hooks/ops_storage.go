package hooks

import (
	"errors"
	"net/http"
	"strings"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"
)

// storageFailures are SQLite's words for "the write could not be stored, through no fault
// of the request": the client must retry, not give up.
var storageFailures = []string{"database or disk is full", "disk I/O error", "database is locked", "SQLITE_FULL", "SQLITE_IOERR"}

// answerStorageFailures turns a record write that failed in storage into 507 (disk full) or
// 503, where PocketBase would answer 400 "Failed to create record" and tell the app its
// request was wrong. Nothing was stored either way.
func answerStorageFailures(e *core.RecordRequestEvent) error {
	err := e.Next()
	if err == nil {
		return nil
	}
	text := err.Error()
	var apiErr *router.ApiError
	if errors.As(err, &apiErr) {
		if raw, ok := apiErr.RawData().(error); ok {
			text += " " + raw.Error()
		}
	}
	for _, f := range storageFailures {
		if strings.Contains(text, f) {
			status := http.StatusServiceUnavailable
			if strings.Contains(text, "full") {
				status = http.StatusInsufficientStorage
			}
			return router.NewApiError(status, "The record could not be stored (the server's storage failed); nothing was saved. Retry later.", nil)
		}
	}
	return err
}
