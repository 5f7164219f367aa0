package migrations

import (
	"fmt"

	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// statsTables hold the daily roll-up behind GET /api/clinicmsg/stats: one row per clinic,
// local day and combination of the grouped columns, so a year of a busy clinic's statistics
// reads a few thousand small rows instead of aggregating a million messages. They are
// derived data (the "rollup-message-stats" job rebuilds any day whose marker is missing),
// plain tables rather than collections: no API, no admin UI, composite keys.
var statsTables = []string{
	// A day's marker: the day was rolled up in time zone tz at computed. A missing or
	// other-zone marker makes the day count live from messages.
	`CREATE TABLE IF NOT EXISTS clinicmsg_stats_days (
		clinic   TEXT NOT NULL,
		day      TEXT NOT NULL,
		tz       TEXT NOT NULL,
		computed TEXT NOT NULL,
		PRIMARY KEY (clinic, day)
	) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS clinicmsg_stats_counts (
		clinic     TEXT NOT NULL,
		day        TEXT NOT NULL,
		channel    TEXT NOT NULL,
		status     TEXT NOT NULL,
		provider   TEXT NOT NULL,
		currency   TEXT NOT NULL,
		retried    INTEGER NOT NULL,
		error_code TEXT NOT NULL,
		n          INTEGER NOT NULL,
		cost       REAL NOT NULL,
		PRIMARY KEY (clinic, day, channel, status, provider, currency, retried, error_code)
	) WITHOUT ROWID`,
	// Latency histograms: bucket b counts latencies of about e^(b/10) milliseconds.
	`CREATE TABLE IF NOT EXISTS clinicmsg_stats_latency (
		clinic TEXT NOT NULL,
		day    TEXT NOT NULL,
		kind   TEXT NOT NULL,
		bucket INTEGER NOT NULL,
		n      INTEGER NOT NULL,
		PRIMARY KEY (clinic, day, kind, bucket)
	) WITHOUT ROWID`,
}

// job_runs is the history of the maintenance jobs (`clinicmsg jobs list` reads it) and their
// cross-process overlap guard: a run starts by inserting a "running" row, which no second
// run of the same job may do while it is fresh. Superusers only (nil rules): it holds no
// patient data, but it is operations' business, not the clinics'.
func init() {
	m.Register(func(app core.App) error {
		runs := core.NewBaseCollection("job_runs")
		runs.Fields.Add(
			&core.TextField{Name: "job", Required: true, Max: 64, Presentable: true},
			&core.TextField{Name: "trigger", Max: 16, Help: "cron, cli or test"},
			&core.SelectField{Name: "outcome", Values: []string{"running", "ok", "failed", "panicked"}, MaxSelect: 1},
			&core.DateField{Name: "started"},
			&core.DateField{Name: "finished"},
			&core.NumberField{Name: "duration_ms", OnlyInt: true},
			&core.JSONField{Name: "detail", MaxSize: 16 << 10},
			&core.TextField{Name: "error", Max: 2000},
			&core.TextField{Name: "owner", Max: 200, Help: "host and process that ran the job"},
			&core.AutodateField{Name: "created", OnCreate: true},
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		runs.AddIndex("idx_job_runs_job_started", false, "job, started", "")
		if err := app.Save(runs); err != nil {
			return err
		}
		for _, q := range statsTables {
			if _, err := app.DB().NewQuery(q).Execute(); err != nil {
				return fmt.Errorf("failed to create the statistics tables: %w", err)
			}
		}
		return nil
	}, func(app core.App) error {
		for _, t := range []string{"clinicmsg_stats_latency", "clinicmsg_stats_counts", "clinicmsg_stats_days"} {
			if _, err := app.DB().NewQuery("DROP TABLE IF EXISTS " + t).Execute(); err != nil {
				return err
			}
		}
		c, err := app.FindCollectionByNameOrId("job_runs")
		if err != nil {
			return nil
		}
		return app.Delete(c)
	})
}
