package migrations

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// The claim takes single messages (no campaign) ahead of campaign messages. Each half reads
// its own partial index, so a clinic's appointment change is found at once even with a
// campaign of thousands of rows due ahead of it.
func init() {
	m.Register(func(app core.App) error {
		messages, err := app.FindCollectionByNameOrId("messages")
		if err != nil {
			return err
		}
		messages.AddIndex("idx_messages_due_single", false, "next_attempt_at", "status = 'queued' AND campaign = ''")
		messages.AddIndex("idx_messages_due_campaign", false, "next_attempt_at", "status = 'queued' AND campaign != ''")
		return app.Save(messages)
	}, func(app core.App) error {
		messages, err := app.FindCollectionByNameOrId("messages")
		if err != nil {
			return err
		}
		messages.RemoveIndex("idx_messages_due_single")
		messages.RemoveIndex("idx_messages_due_campaign")
		return app.Save(messages)
	})
}
