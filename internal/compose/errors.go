package compose

import (
	"net/http"

	validation "github.com/pocketbase/ozzo-validation/v4"
	"github.com/pocketbase/pocketbase/tools/router"
)

// FieldError is an API error in PocketBase's shape whose data names the offending field:
// {"status":400,"message":"…","data":{"to":{"code":"…","message":"…"}}}.
func FieldError(status int, field, code, message string) *router.ApiError {
	return router.NewApiError(status, message, validation.Errors{field: validation.NewError(code, message)})
}

func BadField(field, code, message string) *router.ApiError {
	return FieldError(http.StatusBadRequest, field, code, message)
}
