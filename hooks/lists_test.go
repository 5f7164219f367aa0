package hooks_test

import (
	"fmt"
	"testing"

	"clinicmsg/internal/store"

	"github.com/pocketbase/pocketbase/core"
)

// TestSchemaDeclaresTheSharedLists: the statuses, channels and categories the migrations
// declare are the store's shared lists, and GET /api/clinicmsg/lists answers them.
func TestSchemaDeclaresTheSharedLists(t *testing.T) {
	e := newEnv(t)
	values := func(collection, field string) []string {
		col, err := e.app.FindCollectionByNameOrId(collection)
		must(t, err == nil, "collection %s: %v", collection, err)
		f, ok := col.Fields.GetByName(field).(*core.SelectField)
		must(t, ok, "%s.%s is not a select field", collection, field)
		return f.Values
	}
	scenarios := []struct {
		collection, field string
		want              []string
	}{
		{"messages", "status", store.Statuses},
		{"message_logs", "status", store.Statuses},
		{"messages", "channel", store.Channels},
		{"messages", "category", store.Categories},
		{"campaigns", "channel", store.Channels},
		{"campaigns", "category", store.Categories},
		{"templates", "category", store.Categories},
		{"templates", "channel", append([]string{"any"}, store.Channels...)},
	}
	for _, s := range scenarios {
		got := values(s.collection, s.field)
		must(t, fmt.Sprint(got) == fmt.Sprint(s.want), "%s.%s: expected %v, got %v", s.collection, s.field, s.want, got)
	}
	res := e.do("GET", "/api/clinicmsg/lists", "", nil)
	must(t, res.Status == 200 && fmt.Sprint(res.Body["statuses"]) == fmt.Sprint(store.Statuses), "lists: %s", res.Raw)
}
