package store

import (
	"database/sql"
	"fmt"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
)

// InsertRecipients stores a campaign's recipient list as its parts (JSON arrays of up to
// a thousand recipients each), in tx with the campaign.
func InsertRecipients(tx core.App, campaign string, parts [][]byte) error {
	for n, b := range parts {
		_, err := tx.DB().Insert("campaign_recipients", dbx.Params{
			"id": core.GenerateDefaultRandomId(), "campaign": campaign, "part": n, "recipients": string(b),
		}).Execute()
		if err != nil {
			return fmt.Errorf("failed to store the recipients of campaign %s: %w", campaign, err)
		}
	}
	return nil
}

// StartJobRun records that job started (by trigger, in the process owner) and returns the
// run's id.
func StartJobRun(tx core.App, job, trigger, owner string, started time.Time) (string, error) {
	col, err := tx.FindCachedCollectionByNameOrId("job_runs")
	if err != nil {
		return "", fmt.Errorf("failed to find job_runs: %w", err)
	}
	rec := core.NewRecord(col)
	rec.Set("job", job)
	rec.Set("trigger", trigger)
	rec.Set("outcome", "running")
	rec.Set("started", started)
	rec.Set("owner", owner)
	if err := tx.Save(rec); err != nil {
		return "", fmt.Errorf("failed to record the job's start: %w", err)
	}
	return rec.Id, nil
}

// FinishJobRun records how a job's run ended.
func FinishJobRun(app core.App, id, outcome string, finished time.Time, took time.Duration, detail any, errText string) error {
	rec, err := app.FindRecordById("job_runs", id)
	if err != nil {
		return fmt.Errorf("failed to find the job's run: %w", err)
	}
	rec.Set("outcome", outcome)
	rec.Set("finished", finished)
	rec.Set("duration_ms", took.Milliseconds())
	rec.Set("detail", detail)
	rec.Set("error", Truncate(errText, 2000))
	return app.Save(rec)
}

// AbandonJobRun closes a run whose process stopped without finishing it.
func AbandonJobRun(tx core.App, id string) error {
	_, err := tx.DB().Update("job_runs", dbx.Params{"outcome": "failed", "error": "abandoned: the process running it stopped"}, dbx.HashExp{"id": id}).Execute()
	if err != nil {
		return fmt.Errorf("failed to close an abandoned run: %w", err)
	}
	return nil
}

// PruneJobRuns deletes the finished runs started before before; it reports how many.
func PruneJobRuns(app core.App, before time.Time) (int, error) {
	res, err := app.DB().NewQuery("DELETE FROM job_runs WHERE started < {:before} AND outcome != 'running'").
		Bind(dbx.Params{"before": FormatTime(before)}).Execute()
	if err != nil {
		return 0, fmt.Errorf("failed to prune job_runs: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// ScanRecords reads rows (all columns of col's table) into records, as PocketBase's own
// record queries do.
func ScanRecords(col *core.Collection, rows *sql.Rows) ([]*core.Record, error) {
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	vals := make([]sql.NullString, len(names))
	ptrs := make([]any, len(names))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var out []*core.Record
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		rec := core.NewRecord(col)
		for i, name := range names {
			f := col.Fields.GetByName(name)
			if f == nil {
				continue
			}
			var raw any
			if vals[i].Valid {
				raw = vals[i].String
			}
			v, err := f.PrepareValue(rec, raw)
			if err != nil {
				return nil, err
			}
			rec.SetRaw(name, v)
		}
		rec.Id = rec.GetString(core.FieldNameId)
		// As loaded from the database: not new, and its original data the row.
		if err := rec.PostScan(); err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, rows.Err()
}
