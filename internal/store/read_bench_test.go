package store_test

import (
	"testing"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tests"

	"clinicmsg/internal/store"
)

// BenchmarkReadMessage measures reading one message row inside a writer group, as a
// delivery report does: into a whole PocketBase record (what announcing a change needs),
// against its id and status alone. The difference is what building a record costs.
// Run: go test -run '^$' -bench ReadMessage -benchmem ./internal/store/
func BenchmarkReadMessage(b *testing.B) {
	app, err := tests.NewTestApp()
	if err != nil {
		b.Fatal(err)
	}
	defer app.Cleanup()
	clinics, err := app.FindCollectionByNameOrId("clinics")
	if err != nil {
		b.Fatal(err)
	}
	clinic := core.NewRecord(clinics)
	clinic.Set("name", "Clinic A")
	if err := app.Save(clinic); err != nil {
		b.Fatal(err)
	}
	messages, err := app.FindCollectionByNameOrId("messages")
	if err != nil {
		b.Fatal(err)
	}
	msg := core.NewRecord(messages)
	msg.Load(map[string]any{"clinic": clinic.Id, "channel": "sms", "to": "+966501234567",
		"body": "Dear Sara, your appointment is on 1 Dec at 10:00.", "status": "sent", "provider_message_id": "SM0123456789abcdef"})
	if err := app.SaveNoValidate(msg); err != nil {
		b.Fatal(err)
	}
	where := "provider_message_id = {:id} AND provider_message_id != ''"
	params := dbx.Params{"id": "SM0123456789abcdef"}
	w := store.NewWriter(app, 1, 0)
	w.Start()
	defer w.Stop()

	b.Run("record", func(b *testing.B) {
		err := w.Do(func(tx core.App) error {
			for b.Loop() {
				if _, err := store.FindOne(tx, "messages", where, params); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	})
	b.Run("id_and_status", func(b *testing.B) {
		err := w.Do(func(tx core.App) error {
			for b.Loop() {
				var row struct {
					ID     string `db:"id"`
					Status string `db:"status"`
				}
				if err := store.CachedQuery(tx, "SELECT id, status FROM messages WHERE "+where+" LIMIT 1").Bind(params).One(&row); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	})
}
