package store

import (
	"fmt"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
)

// statsTables are the statistics roll-ups: a marker per clinic day, and its counts and
// latency buckets.
var statsTables = []string{"clinicmsg_stats_days", "clinicmsg_stats_counts", "clinicmsg_stats_latency"}

// The SQL that counts one clinic's messages created in [start, end). The roll-up stores
// exactly what the statistics route reads live for the recent days.
const (
	StatsCountSQL = `SELECT channel, status, provider, currency, (attempts > 1) AS retried, error_code,
			COUNT(*) AS n, TOTAL(cost) AS cost
		FROM messages WHERE clinic = {:clinic} AND created >= {:start} AND created < {:end}
		GROUP BY channel, status, provider, currency, retried, error_code`
	// Latencies go into buckets of about 10% width (bucket b ≈ e^(b/10) ms), so that a year
	// of them rolls up into a few hundred rows per day. "queue" runs from when the message
	// was due (created, or send_at if later) to sent; "delivery" from sent to delivered.
	StatsLatencySQL = `SELECT 'queue' AS kind, CAST(round(ln(max(ms, 1)) * 10) AS INTEGER) AS bucket, COUNT(*) AS n
		FROM (SELECT (julianday(sent_at) - julianday(CASE WHEN send_at > created THEN send_at ELSE created END)) * 86400000.0 AS ms
			FROM messages WHERE clinic = {:clinic} AND created >= {:start} AND created < {:end} AND sent_at != '')
		GROUP BY bucket
		UNION ALL
		SELECT 'delivery' AS kind, CAST(round(ln(max(ms, 1)) * 10) AS INTEGER) AS bucket, COUNT(*) AS n
		FROM (SELECT (julianday(delivered_at) - julianday(sent_at)) * 86400000.0 AS ms
			FROM messages WHERE clinic = {:clinic} AND created >= {:start} AND created < {:end} AND sent_at != '' AND delivered_at != '')
		GROUP BY bucket`
)

// RollupDay replaces one clinic day's roll-up ([start, end) in UTC, named day in the
// clinic's zone tz) in one transaction.
func RollupDay(app core.App, clinic, day, tz string, start, end time.Time) error {
	params := dbx.Params{"clinic": clinic, "day": day, "start": FormatTime(start), "end": FormatTime(end),
		"tz": tz, "computed": FormatTime(time.Now())}
	return app.RunInTransaction(func(tx core.App) error {
		for _, q := range []string{
			"DELETE FROM clinicmsg_stats_counts WHERE clinic = {:clinic} AND day = {:day}",
			"DELETE FROM clinicmsg_stats_latency WHERE clinic = {:clinic} AND day = {:day}",
			`INSERT INTO clinicmsg_stats_counts (clinic, day, channel, status, provider, currency, retried, error_code, n, cost)
				SELECT {:clinic}, {:day}, channel, status, provider, currency, retried, error_code, n, cost FROM (` + StatsCountSQL + `)`,
			`INSERT INTO clinicmsg_stats_latency (clinic, day, kind, bucket, n)
				SELECT {:clinic}, {:day}, kind, bucket, n FROM (` + StatsLatencySQL + `)`,
			`INSERT OR REPLACE INTO clinicmsg_stats_days (clinic, day, tz, computed) VALUES ({:clinic}, {:day}, {:tz}, {:computed})`,
		} {
			if _, err := tx.DB().NewQuery(q).Bind(params).Execute(); err != nil {
				return err
			}
		}
		return nil
	})
}

// MarkStatsDayDirty drops a clinic day's roll-up marker, so the day is counted live until
// the next roll-up rebuilds it.
func MarkStatsDayDirty(app core.App, clinic, day string) error {
	_, err := app.DB().NewQuery("DELETE FROM clinicmsg_stats_days WHERE clinic = {:clinic} AND day = {:day}").
		Bind(dbx.Params{"clinic": clinic, "day": day}).Execute()
	return err
}

// PruneStats drops a clinic's roll-up before cutoffDay, whose messages are gone, and the
// marker of cutoffDay itself, which is now partly deleted.
func PruneStats(app core.App, clinic, cutoffDay string) error {
	params := dbx.Params{"clinic": clinic, "day": cutoffDay}
	for _, t := range statsTables {
		if _, err := app.DB().NewQuery("DELETE FROM " + t + " WHERE clinic = {:clinic} AND day < {:day}").Bind(params).Execute(); err != nil {
			return fmt.Errorf("failed to prune old statistics: %w", err)
		}
	}
	if err := MarkStatsDayDirty(app, clinic, cutoffDay); err != nil {
		return fmt.Errorf("failed to prune old statistics: %w", err)
	}
	return nil
}

// PruneStatsOfDeletedClinics drops the roll-ups of clinics that no longer exist.
func PruneStatsOfDeletedClinics(app core.App) error {
	for _, t := range statsTables {
		if _, err := app.DB().NewQuery("DELETE FROM " + t + " WHERE clinic NOT IN (SELECT id FROM clinics)").Execute(); err != nil {
			return fmt.Errorf("failed to prune statistics of deleted clinics: %w", err)
		}
	}
	return nil
}
