package migrations

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
	"github.com/pocketbase/pocketbase/tools/types"
)

// assignedClinicFields decide who a clinic's messages appear to come from and where its
// patients' replies go; a superuser assigns them, a clinic admin may not claim them (a
// clinic admin who set another clinic's number would receive that clinic's replies).
var assignedClinicFields = []string{"sms_sender", "whatsapp_sender", "app_webhook_url", "app_webhook_secret"}

const clinicAdminOwn = `@request.auth.clinic = id && @request.auth.role = "admin"`

// Each clinic's own app webhook, used in preference to CLINICMSG_APP_WEBHOOK_URL so that a
// clinic's system receives only its own events. The secret is hidden: only superusers read
// it, and only superusers write either field.
func init() {
	m.Register(func(app core.App) error {
		clinics, err := app.FindCollectionByNameOrId("clinics")
		if err != nil {
			return err
		}
		clinics.Fields.Add(
			&core.URLField{Name: "app_webhook_url", Help: "this clinic's app receives its patient replies here; empty: CLINICMSG_APP_WEBHOOK_URL"},
			&core.TextField{Name: "app_webhook_secret", Max: 200, Hidden: true, Help: "signs this clinic's app events (X-Clinicmsg-Signature); required with app_webhook_url"},
		)
		clinics.UpdateRule = types.Pointer(clinicAdminOwn + notSet(assignedClinicFields...))
		return app.Save(clinics)
	}, func(app core.App) error {
		clinics, err := app.FindCollectionByNameOrId("clinics")
		if err != nil {
			return err
		}
		clinics.Fields.RemoveByName("app_webhook_url")
		clinics.Fields.RemoveByName("app_webhook_secret")
		clinics.UpdateRule = types.Pointer(clinicAdminOwn)
		return app.Save(clinics)
	})
}
