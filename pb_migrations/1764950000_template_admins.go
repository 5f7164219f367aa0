package migrations

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
	"github.com/pocketbase/pocketbase/tools/types"
)

// Templates are written by clinic admins only, on every route: a template decides what
// every message of the clinic says, and the dashboard and DASHBOARD.md already said so
// while the API let staff and apps create them.
func init() {
	m.Register(func(app core.App) error {
		templates, err := app.FindCollectionByNameOrId("templates")
		if err != nil {
			return err
		}
		templates.CreateRule = types.Pointer(createOwn + ` && @request.auth.role = "admin"`)
		return app.Save(templates)
	}, func(app core.App) error {
		templates, err := app.FindCollectionByNameOrId("templates")
		if err != nil {
			return err
		}
		templates.CreateRule = types.Pointer(createOwn)
		return app.Save(templates)
	})
}
