package migrations

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// The claim takes single messages (no campaign) ahead of campaign messages, and campaign
// messages clinic by clinic in turn. Each half reads its own partial index, so a clinic's
// appointment change is found at once even with a campaign of thousands of rows due ahead of
// it, and one clinic's backlog is never walked to reach another's.
func init() {
	m.Register(func(app core.App) error {
		messages, err := app.FindCollectionByNameOrId("messages")
		if err != nil {
			return err
		}
		messages.AddIndex("idx_messages_due_single", false, "next_attempt_at", "status = 'queued' AND campaign = ''")
		// By clinic first: the claim takes campaign messages clinic by clinic in turn.
		messages.AddIndex("idx_messages_due_campaign", false, "clinic, next_attempt_at", "status = 'queued' AND campaign != ''")
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
