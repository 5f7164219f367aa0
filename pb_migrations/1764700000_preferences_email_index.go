package migrations

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// Email messages look up the patient's preferences by address, as SMS and WhatsApp do by
// phone number; without an index that lookup read every preference of every clinic.
func init() {
	m.Register(func(app core.App) error {
		preferences, err := app.FindCollectionByNameOrId("preferences")
		if err != nil {
			return err
		}
		preferences.AddIndex("idx_preferences_email", false, "clinic, email", "email != ''")
		return app.Save(preferences)
	}, func(app core.App) error {
		preferences, err := app.FindCollectionByNameOrId("preferences")
		if err != nil {
			return err
		}
		preferences.RemoveIndex("idx_preferences_email")
		return app.Save(preferences)
	})
}
