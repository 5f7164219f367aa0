package migrations

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
	"github.com/pocketbase/pocketbase/tools/types"
)

// recipientsPerPart is how many recipients one campaign_recipients row holds.
const recipientsPerPart = 1000

// A campaign's recipient list (up to 100,000 entries, several megabytes) moves out of the
// campaigns row into parts of its own. SQLite keeps a large value in a chain of overflow
// pages: with the list in the row, reading the columns stored after it (the fan-out cursor,
// the counters) walked the whole chain, and every counter or checkpoint update rewrote it.
func init() {
	m.Register(func(app core.App) error {
		campaigns, err := app.FindCollectionByNameOrId("campaigns")
		if err != nil {
			return err
		}
		parts := core.NewBaseCollection("campaign_recipients")
		// No API rules: only superusers read the parts; clinics see their campaign's
		// total, counters and skipped recipients on the campaign itself.
		parts.Fields.Add(
			&core.RelationField{Name: "campaign", CollectionId: campaigns.Id, MaxSelect: 1, Required: true, CascadeDelete: true},
			&core.NumberField{Name: "part", OnlyInt: true, Min: types.Pointer(0.0)},
			&core.JSONField{Name: "recipients", MaxSize: 32 << 20},
		)
		parts.AddIndex("idx_campaign_recipients_part", true, "campaign, part", "")
		if err := app.Save(parts); err != nil {
			return err
		}

		// Move the lists of campaigns created before this version.
		var rows []struct {
			ID         string `db:"id"`
			Recipients string `db:"recipients"`
		}
		err = app.DB().NewQuery("SELECT id, recipients FROM campaigns WHERE recipients IS NOT NULL AND recipients NOT IN ('', 'null')").All(&rows)
		if err != nil {
			return fmt.Errorf("failed to read campaign recipients: %w", err)
		}
		for _, r := range rows {
			var list []json.RawMessage
			if err := json.Unmarshal([]byte(r.Recipients), &list); err != nil {
				continue // never accepted by the create hook; nothing to fan out
			}
			part := 0
			for chunk := range slices.Chunk(list, recipientsPerPart) {
				b, err := json.Marshal(chunk)
				if err != nil {
					return err
				}
				_, err = app.DB().Insert("campaign_recipients", dbx.Params{
					"id": core.GenerateDefaultRandomId(), "campaign": r.ID, "part": part, "recipients": string(b),
				}).Execute()
				if err != nil {
					return fmt.Errorf("failed to move the recipients of campaign %s: %w", r.ID, err)
				}
				part++
			}
			if _, err := app.DB().Update("campaigns", dbx.Params{"recipients": nil}, dbx.HashExp{"id": r.ID}).Execute(); err != nil {
				return fmt.Errorf("failed to move the recipients of campaign %s: %w", r.ID, err)
			}
		}
		return nil
	}, func(app core.App) error {
		c, err := app.FindCollectionByNameOrId("campaign_recipients")
		if err != nil {
			return nil
		}
		// Put the lists back into their campaigns before the parts go.
		var ids []string
		if err := app.DB().NewQuery("SELECT DISTINCT campaign FROM campaign_recipients").Column(&ids); err != nil {
			return err
		}
		for _, id := range ids {
			var parts []string
			if err := app.DB().NewQuery("SELECT recipients FROM campaign_recipients WHERE campaign = {:c} ORDER BY part").Bind(dbx.Params{"c": id}).Column(&parts); err != nil {
				return err
			}
			var all []json.RawMessage
			for _, p := range parts {
				var list []json.RawMessage
				if err := json.Unmarshal([]byte(p), &list); err != nil {
					return fmt.Errorf("failed to read the recipients of campaign %s: %w", id, err)
				}
				all = append(all, list...)
			}
			b, err := json.Marshal(all)
			if err != nil {
				return err
			}
			if _, err := app.DB().Update("campaigns", dbx.Params{"recipients": string(b)}, dbx.HashExp{"id": id}).Execute(); err != nil {
				return err
			}
		}
		return app.Delete(c)
	})
}
