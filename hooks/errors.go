package hooks

import (
	"net/http"

	validation "github.com/pocketbase/ozzo-validation/v4"
	"github.com/pocketbase/pocketbase/tools/router"
)

// fieldError is an API error in PocketBase's shape whose data names the offending field:
// {"status":400,"message":"…","data":{"to":{"code":"…","message":"…"}}}.
func fieldError(status int, field, code, message string) *router.ApiError {
	return router.NewApiError(status, message, validation.Errors{field: validation.NewError(code, message)})
}

func badField(field, code, message string) *router.ApiError {
	return fieldError(http.StatusBadRequest, field, code, message)
}
