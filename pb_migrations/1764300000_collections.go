// Package migrations creates clinicmsg's collections, indexes and API rules. The API rules
// are the tenant boundary: a user sees and writes only its own clinic's rows.
package migrations

import (
	"strings"

	"clinicmsg/internal/store"

	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
	"github.com/pocketbase/pocketbase/tools/types"
)

// Fields on messages that only the appliance writes.
var serverOnlyMessageFields = []string{
	"status", "status_reason", "provider", "provider_message_id", "attempts", "next_attempt_at",
	"error_code", "error_message", "encoding", "segments", "cost", "currency",
	"sent_at", "delivered_at", "read_at",
}

const (
	// A signed-in clinic user (not a superuser, which bypasses rules anyway).
	clinicUser = `@request.auth.collectionName = "users" && @request.auth.clinic != ""`
	ownClinic  = clinicUser + ` && clinic = @request.auth.clinic`
	// Creates may omit clinic; the create hook fills it from the caller.
	createOwn   = clinicUser + ` && (clinic = "" || clinic = @request.auth.clinic)`
	adminOwn    = ownClinic + ` && @request.auth.role = "admin"`
	keepsClinic = ` && (@request.body.clinic:isset = false || @request.body.clinic = @request.auth.clinic)`
)

func notSet(fields ...string) string {
	var b strings.Builder
	for _, f := range fields {
		b.WriteString(" && @request.body." + f + ":isset = false")
	}
	return b.String()
}

var (
	languages = []string{"en", "ar"}
	// The shared lists are defined once, in the store; the schema declares them from there.
	channels   = store.Channels
	categories = store.Categories
	statuses   = store.Statuses
)

func timestamps() []core.Field {
	return []core.Field{
		&core.AutodateField{Name: "created", OnCreate: true},
		&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
	}
}

func init() {
	m.Register(func(app core.App) error {
		clinics := core.NewBaseCollection("clinics")
		clinics.ListRule = types.Pointer(`@request.auth.clinic = id`)
		clinics.ViewRule = types.Pointer(`@request.auth.clinic = id`)
		clinics.UpdateRule = types.Pointer(`@request.auth.clinic = id && @request.auth.role = "admin"`)
		clinics.Fields.Add(
			&core.TextField{Name: "name", Required: true, Max: 200, Presentable: true},
			&core.TextField{Name: "timezone", Max: 64, Help: "IANA zone, e.g. Asia/Riyadh (the default)"},
			&core.TextField{Name: "country", Max: 2, Pattern: `^[A-Z]{2}$`, Help: "default region for phone numbers, e.g. SA (the default)"},
			&core.SelectField{Name: "default_language", Values: languages, MaxSelect: 1},
			&core.TextField{Name: "sms_sender", Max: 32},
			&core.TextField{Name: "whatsapp_sender", Max: 32},
			&core.TextField{Name: "quiet_start", Pattern: `^([01]\d|2[0-3]):[0-5]\d$`},
			&core.TextField{Name: "quiet_end", Pattern: `^([01]\d|2[0-3]):[0-5]\d$`},
			&core.NumberField{Name: "retention_days", OnlyInt: true, Min: types.Pointer(0.0)},
		)
		clinics.Fields.Add(timestamps()...)
		if err := app.Save(clinics); err != nil {
			return err
		}

		users, err := app.FindCollectionByNameOrId("users")
		if err != nil {
			return err
		}
		users.Fields.Add(
			&core.RelationField{Name: "clinic", CollectionId: clinics.Id, MaxSelect: 1},
			&core.SelectField{Name: "role", Values: []string{"admin", "staff", "app"}, MaxSelect: 1},
		)
		users.ListRule = types.Pointer(`id = @request.auth.id || (@request.auth.role = "admin" && clinic = @request.auth.clinic)`)
		users.ViewRule = users.ListRule
		users.CreateRule = nil // accounts are made by a superuser
		users.UpdateRule = types.Pointer(`id = @request.auth.id` + notSet("clinic", "role"))
		users.DeleteRule = nil
		if err := app.Save(users); err != nil {
			return err
		}

		templates := core.NewBaseCollection("templates")
		sharedOrOwn := clinicUser + ` && (clinic = "" || clinic = @request.auth.clinic)`
		templates.ListRule = types.Pointer(sharedOrOwn)
		templates.ViewRule = types.Pointer(sharedOrOwn)
		templates.CreateRule = types.Pointer(createOwn)
		templates.UpdateRule = types.Pointer(adminOwn + keepsClinic)
		templates.DeleteRule = types.Pointer(adminOwn)
		templates.Fields.Add(
			&core.TextField{Name: "code", Required: true, Max: 100, Pattern: `^[a-z0-9][a-z0-9_.-]*$`, Presentable: true},
			&core.RelationField{Name: "clinic", CollectionId: clinics.Id, MaxSelect: 1, CascadeDelete: true, Help: "empty: shared by all clinics"},
			&core.SelectField{Name: "channel", Values: append([]string{"any"}, channels...), MaxSelect: 1, Required: true},
			&core.SelectField{Name: "category", Values: categories, MaxSelect: 1},
			&core.TextField{Name: "body_en", Max: 20000},
			&core.TextField{Name: "body_ar", Max: 20000},
			&core.TextField{Name: "subject_en", Max: 998},
			&core.TextField{Name: "subject_ar", Max: 998},
			&core.TextField{Name: "whatsapp_content_sid_en", Max: 64},
			&core.TextField{Name: "whatsapp_content_sid_ar", Max: 64},
			&core.BoolField{Name: "active"},
		)
		templates.Fields.Add(timestamps()...)
		templates.AddIndex("idx_templates_clinic_code", true, "clinic, code", "")
		if err := app.Save(templates); err != nil {
			return err
		}

		preferences := core.NewBaseCollection("preferences")
		preferences.ListRule = types.Pointer(ownClinic)
		preferences.ViewRule = types.Pointer(ownClinic)
		preferences.CreateRule = types.Pointer(createOwn)
		preferences.UpdateRule = types.Pointer(adminOwn + keepsClinic)
		preferences.DeleteRule = types.Pointer(adminOwn)
		preferences.Fields.Add(
			&core.RelationField{Name: "clinic", CollectionId: clinics.Id, MaxSelect: 1, Required: true, CascadeDelete: true},
			&core.TextField{Name: "patient_id", Max: 100},
			&core.TextField{Name: "phone", Max: 32},
			&core.EmailField{Name: "email"},
			&core.SelectField{Name: "language", Values: languages, MaxSelect: 1},
			&core.BoolField{Name: "sms"},
			&core.BoolField{Name: "whatsapp"},
			&core.BoolField{Name: "email_enabled"},
			&core.JSONField{Name: "categories", MaxSize: 4096},
			&core.BoolField{Name: "opted_out"},
			&core.DateField{Name: "opted_out_at"},
			&core.TextField{Name: "opt_out_source", Max: 100},
		)
		preferences.Fields.Add(timestamps()...)
		preferences.AddIndex("idx_preferences_patient", true, "clinic, patient_id", "patient_id != ''")
		preferences.AddIndex("idx_preferences_phone", false, "clinic, phone", "phone != ''")
		if err := app.Save(preferences); err != nil {
			return err
		}

		campaigns := core.NewBaseCollection("campaigns")
		campaigns.ListRule = types.Pointer(ownClinic)
		campaigns.ViewRule = types.Pointer(ownClinic)
		campaigns.CreateRule = types.Pointer(createOwn + notSet("total", "queued", "sent", "delivered", "failed", "skipped"))
		campaigns.Fields.Add(
			&core.RelationField{Name: "clinic", CollectionId: clinics.Id, MaxSelect: 1, Required: true, CascadeDelete: true},
			&core.TextField{Name: "name", Max: 200, Presentable: true},
			&core.SelectField{Name: "channel", Values: channels, MaxSelect: 1, Required: true},
			&core.TextField{Name: "template", Max: 100},
			&core.TextField{Name: "body", Max: 20000},
			&core.JSONField{Name: "context", MaxSize: 64 << 10},
			&core.SelectField{Name: "language", Values: languages, MaxSelect: 1},
			&core.SelectField{Name: "category", Values: categories, MaxSelect: 1},
			&core.JSONField{Name: "recipients", MaxSize: 32 << 20},
			&core.DateField{Name: "send_at"},
			&core.SelectField{Name: "status", Values: []string{"draft", "running", "done", "canceled"}, MaxSelect: 1},
		)
		for _, n := range []string{"total", "queued", "sent", "delivered", "failed", "skipped"} {
			campaigns.Fields.Add(&core.NumberField{Name: n, OnlyInt: true, Min: types.Pointer(0.0)})
		}
		campaigns.Fields.Add(timestamps()...)
		if err := app.Save(campaigns); err != nil {
			return err
		}

		messages := core.NewBaseCollection("messages")
		messages.ListRule = types.Pointer(ownClinic)
		messages.ViewRule = types.Pointer(ownClinic)
		messages.CreateRule = types.Pointer(createOwn + notSet(serverOnlyMessageFields...))
		messages.Fields.Add(
			&core.RelationField{Name: "clinic", CollectionId: clinics.Id, MaxSelect: 1, Required: true, CascadeDelete: true},
			&core.SelectField{Name: "channel", Values: channels, MaxSelect: 1, Required: true},
			&core.TextField{Name: "to", Required: true, Max: 320},
			&core.TextField{Name: "body", Max: 20000},
			&core.TextField{Name: "subject", Max: 998},
			&core.TextField{Name: "template", Max: 100},
			&core.JSONField{Name: "context", MaxSize: 64 << 10},
			&core.SelectField{Name: "language", Values: languages, MaxSelect: 1},
			&core.TextField{Name: "patient_id", Max: 100},
			&core.SelectField{Name: "category", Values: categories, MaxSelect: 1},
			&core.RelationField{Name: "campaign", CollectionId: campaigns.Id, MaxSelect: 1},
			&core.TextField{Name: "idempotency_key", Max: 255},
			&core.DateField{Name: "send_at"},
			&core.SelectField{Name: "status", Values: statuses, MaxSelect: 1},
			&core.TextField{Name: "status_reason", Max: 500},
			&core.TextField{Name: "provider", Max: 32},
			&core.TextField{Name: "provider_message_id", Max: 128},
			&core.NumberField{Name: "attempts", OnlyInt: true, Min: types.Pointer(0.0)},
			&core.DateField{Name: "next_attempt_at"},
			&core.TextField{Name: "error_code", Max: 64},
			&core.TextField{Name: "error_message", Max: 1000},
			&core.SelectField{Name: "encoding", Values: []string{"gsm7", "ucs2"}, MaxSelect: 1},
			&core.NumberField{Name: "segments", OnlyInt: true, Min: types.Pointer(0.0)},
			&core.NumberField{Name: "cost", Min: types.Pointer(0.0)},
			&core.TextField{Name: "currency", Max: 8},
			&core.DateField{Name: "sent_at"},
			&core.DateField{Name: "delivered_at"},
			&core.DateField{Name: "read_at"},
		)
		messages.Fields.Add(timestamps()...)
		messages.AddIndex("idx_messages_due", false, "status, next_attempt_at", "")
		messages.AddIndex("idx_messages_provider_id", false, "provider_message_id", "provider_message_id != ''")
		messages.AddIndex("idx_messages_clinic_created", false, "clinic, created", "")
		messages.AddIndex("idx_messages_idempotency", true, "clinic, idempotency_key", "idempotency_key != ''")
		messages.AddIndex("idx_messages_campaign", false, "campaign, status", "campaign != ''")
		messages.AddIndex("idx_messages_to", false, "clinic, [[to]], created", "")
		if err := app.Save(messages); err != nil {
			return err
		}

		logs := core.NewBaseCollection("message_logs")
		logRule := clinicUser + ` && message.clinic = @request.auth.clinic`
		logs.ListRule = types.Pointer(logRule)
		logs.ViewRule = types.Pointer(logRule)
		logs.Fields.Add(
			&core.RelationField{Name: "message", CollectionId: messages.Id, MaxSelect: 1, Required: true, CascadeDelete: true},
			&core.TextField{Name: "event", Required: true, Max: 64},
			&core.SelectField{Name: "status", Values: statuses, MaxSelect: 1},
			&core.TextField{Name: "provider", Max: 32},
			&core.JSONField{Name: "detail", MaxSize: 16 << 10},
			&core.TextField{Name: "error_code", Max: 64},
			&core.TextField{Name: "ip", Max: 64},
			&core.TextField{Name: "user_agent", Max: 300},
			&core.AutodateField{Name: "created", OnCreate: true},
		)
		logs.AddIndex("idx_message_logs_message", false, "message, created", "")
		if err := app.Save(logs); err != nil {
			return err
		}

		settings := app.Settings()
		settings.Meta.AppName = "clinicmsg"
		return app.Save(settings)
	}, func(app core.App) error {
		for _, name := range []string{"message_logs", "messages", "campaigns", "preferences", "templates"} {
			c, err := app.FindCollectionByNameOrId(name)
			if err != nil {
				continue
			}
			if err := app.Delete(c); err != nil {
				return err
			}
		}
		users, err := app.FindCollectionByNameOrId("users")
		if err == nil {
			users.Fields.RemoveByName("clinic")
			users.Fields.RemoveByName("role")
			if err := app.Save(users); err != nil {
				return err
			}
		}
		if c, err := app.FindCollectionByNameOrId("clinics"); err == nil {
			return app.Delete(c)
		}
		return nil
	})
}
