package migrations

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
	"github.com/pocketbase/pocketbase/tools/types"
)

// Clinic workflows: campaign fan-out checkpoints, quiet-hour categories, patient replies,
// the WhatsApp 24-hour window and the outbound webhook to the clinic's app.
func init() {
	m.Register(func(app core.App) error {
		campaigns, err := app.FindCollectionByNameOrId("campaigns")
		if err != nil {
			return err
		}
		if f, ok := campaigns.Fields.GetByName("status").(*core.SelectField); ok {
			f.Values = []string{"draft", "scheduled", "running", "done", "canceled"}
		}
		campaigns.Fields.Add(
			// cursor is the fan-out checkpoint: recipients before it have their messages (or
			// their skip reason) committed in the same transaction that moved it.
			&core.NumberField{Name: "cursor", OnlyInt: true, Min: types.Pointer(0.0)},
			&core.JSONField{Name: "result", MaxSize: 4 << 20, Help: "skipped recipients with reasons"},
			&core.DateField{Name: "started_at"},
			&core.DateField{Name: "finished_at"},
		)
		campaigns.CreateRule = types.Pointer(createOwn + notSet("total", "queued", "sent", "delivered", "failed", "skipped", "cursor", "result", "started_at", "finished_at"))
		// Staff start a draft or cancel a campaign; nothing else changes after creation.
		campaigns.UpdateRule = types.Pointer(ownClinic + keepsClinic + notSet("total", "queued", "sent", "delivered", "failed", "skipped", "cursor", "result", "started_at", "finished_at", "recipients", "template", "body", "channel"))
		if err := app.Save(campaigns); err != nil {
			return err
		}

		clinics, err := app.FindCollectionByNameOrId("clinics")
		if err != nil {
			return err
		}
		clinics.Fields.Add(
			&core.JSONField{Name: "quiet_categories", MaxSize: 1024, Help: `categories held during quiet hours; empty: ["marketing","general","reminder"]`},
			&core.TextField{Name: "help_text_en", Max: 1000, Help: "answer to a patient's HELP"},
			&core.TextField{Name: "help_text_ar", Max: 1000},
		)
		if err := app.Save(clinics); err != nil {
			return err
		}

		prefs, err := app.FindCollectionByNameOrId("preferences")
		if err != nil {
			return err
		}
		prefs.Fields.Add(
			&core.DateField{Name: "last_inbound_sms"},
			&core.DateField{Name: "last_inbound_whatsapp"},
		)
		if err := app.Save(prefs); err != nil {
			return err
		}

		messages, err := app.FindCollectionByNameOrId("messages")
		if err != nil {
			return err
		}
		messages.Fields.Add(&core.SelectField{Name: "reply_intent", Values: []string{"confirm", "cancel"}, MaxSelect: 1,
			Help: "the patient's answer to this appointment message"})
		messages.CreateRule = types.Pointer(*messages.CreateRule + notSet("reply_intent"))
		// The duplicate guard looks up by patient; replies find the last message to a number.
		messages.AddIndex("idx_messages_patient", false, "clinic, patient_id, created", "patient_id != ''")
		messages.AddIndex("idx_messages_to_any_clinic", false, "[[to]], created", "")
		if err := app.Save(messages); err != nil {
			return err
		}

		replies := core.NewBaseCollection("replies")
		replies.ListRule = types.Pointer(ownClinic)
		replies.ViewRule = types.Pointer(ownClinic)
		replies.Fields.Add(
			&core.RelationField{Name: "clinic", CollectionId: clinics.Id, MaxSelect: 1, CascadeDelete: true, Help: "empty: matched no message"},
			&core.RelationField{Name: "message", CollectionId: messages.Id, MaxSelect: 1, Help: "the message this answers"},
			&core.SelectField{Name: "channel", Values: channels, MaxSelect: 1},
			&core.TextField{Name: "from", Max: 64},
			&core.TextField{Name: "to", Max: 64},
			&core.TextField{Name: "body", Max: 5000},
			&core.SelectField{Name: "intent", Values: []string{"stop", "start", "help", "confirm", "cancel"}, MaxSelect: 1},
			&core.TextField{Name: "provider", Max: 32},
			&core.TextField{Name: "provider_message_id", Max: 128},
			&core.AutodateField{Name: "created", OnCreate: true},
		)
		replies.AddIndex("idx_replies_provider_id", true, "provider, provider_message_id", "provider_message_id != ''")
		replies.AddIndex("idx_replies_clinic_created", false, "clinic, created", "")
		if err := app.Save(replies); err != nil {
			return err
		}

		events := core.NewBaseCollection("app_events")
		events.ListRule = types.Pointer(ownClinic)
		events.ViewRule = types.Pointer(ownClinic)
		events.Fields.Add(
			&core.RelationField{Name: "clinic", CollectionId: clinics.Id, MaxSelect: 1, CascadeDelete: true},
			&core.TextField{Name: "type", Required: true, Max: 64},
			&core.JSONField{Name: "payload", MaxSize: 64 << 10},
			&core.SelectField{Name: "status", Values: []string{"pending", "delivered", "failed"}, MaxSelect: 1},
			&core.NumberField{Name: "attempts", OnlyInt: true},
			&core.DateField{Name: "next_attempt_at"},
			&core.NumberField{Name: "last_status_code", OnlyInt: true},
			&core.TextField{Name: "last_error", Max: 500},
			&core.AutodateField{Name: "created", OnCreate: true},
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		events.AddIndex("idx_app_events_due", false, "status, next_attempt_at", "")
		return app.Save(events)
	}, func(app core.App) error {
		for _, name := range []string{"app_events", "replies"} {
			if c, err := app.FindCollectionByNameOrId(name); err == nil {
				if err := app.Delete(c); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
