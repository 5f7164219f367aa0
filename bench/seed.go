package bench

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "clinicmsg/pb_migrations" // the baseline app gets the appliance's schema

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
)

// renderedBody is what clinicmsg renders messageItem's template to; raw rows carry it.
const renderedBody = "Dear Sara, your appointment at Bench Clinic is on 1 Dec at 10:00. Reply 1 to confirm, 2 to cancel."

const messageContext = `{"date":"1 Dec","patient_name":"Sara","time":"10:00"}`

// openData opens the data.db of a stopped appliance's data folder with PocketBase's own
// connection settings.
func openData(dir string) (*sql.DB, func(), error) {
	db, err := core.DefaultDBConnect(filepath.Join(dir, "data.db"))
	if err != nil {
		return nil, nil, fmt.Errorf("failed to open %s: %w", dir, err)
	}
	var once sync.Once
	return db.DB(), func() { once.Do(func() { db.Close() }) }, nil
}

// insertRows runs one INSERT statement for n rows in transactions of perTx rows; row(i)
// returns the values of row i.
func insertRows(db *sql.DB, query string, n, perTx int, row func(i int) []any) error {
	for done := 0; done < n; {
		tx, err := db.Begin()
		if err != nil {
			return fmt.Errorf("failed to begin: %w", err)
		}
		stmt, err := tx.Prepare(query)
		if err != nil {
			tx.Rollback()
			return fmt.Errorf("failed to prepare %q: %w", query, err)
		}
		for i := 0; i < perTx && done < n; i, done = i+1, done+1 {
			if _, err := stmt.Exec(row(done)...); err != nil {
				stmt.Close()
				tx.Rollback()
				return fmt.Errorf("failed to insert row %d: %w", done, err)
			}
		}
		stmt.Close()
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("failed to commit: %w", err)
		}
	}
	return nil
}

func insertSQL(table string, cols ...string) string {
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = `"` + c + `"`
	}
	return "INSERT INTO " + table + " (" + strings.Join(quoted, ", ") + ") VALUES (" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
}

var queuedColumns = []string{"clinic", "channel", "to", "body", "template", "context", "patient_id", "category",
	"status", "next_attempt_at", "encoding", "segments", "created", "updated"}

// seedQueued stores n due messages (B4's queue) directly in a stopped appliance's data
// folder: the rows a create would have stored, numbered from phone 0.
func seedQueued(dir, clinicID string, n int) error {
	db, closeDB, err := openData(dir)
	if err != nil {
		return err
	}
	defer closeDB()
	now := since(time.Now().Add(-time.Second))
	return insertRows(db, insertSQL("messages", queuedColumns...), n, 5000, func(i int) []any {
		return []any{clinicID, "sms", phoneE164(i), renderedBody, templateCode, messageContext, patientID(i), "reminder",
			"queued", now, "gsm7", 1, now, now}
	})
}

// twilioSid is the i-th seeded Twilio message sid (SM + 32 hex digits).
func twilioSid(i int) string { return fmt.Sprintf("SM%032x", i+1) }

// plainID is the id of the i-th seeded bench_plain record.
func plainID(i int) string { return fmt.Sprintf("bp%013d", i) }

// seedSent stores n messages already accepted by Twilio (B5 posts their delivery
// reports) and n bench_plain records (B5's baseline updates them).
func seedSent(dir, clinicID string, n int) error {
	db, closeDB, err := openData(dir)
	if err != nil {
		return err
	}
	defer closeDB()
	now := since(time.Now().Add(-time.Second))
	cols := append(append([]string{}, queuedColumns...), "provider", "provider_message_id", "attempts", "sent_at")
	if err := insertRows(db, insertSQL("messages", cols...), n, 5000, func(i int) []any {
		return []any{clinicID, "sms", phoneE164(i), renderedBody, templateCode, messageContext, patientID(i), "reminder",
			"sent", "", "gsm7", 1, now, now, "twilio", twilioSid(i), 1, now}
	}); err != nil {
		return err
	}
	return insertRows(db, insertSQL(plainCollection, "id", "channel", "to", "template", "context", "patient_id", "body", "status", "created", "updated"), n, 5000, func(i int) []any {
		return []any{plainID(i), "sms", phoneE164(i), templateCode, messageContext, patientID(i), renderedBody, "sent", now, now}
	})
}

// rawInsert is B2's baseline: a PocketBase app bootstrapped in this process on a fresh
// data folder with clinicmsg's migrations, and the rows a campaign fan-out commits for n
// recipients (each message and, unless messagesOnly, its "created" audit row) inserted
// with raw SQL in transactions of 1,000 recipients. It returns the insert time.
func rawInsert(dir, clinicID string, n int, messagesOnly bool) (time.Duration, error) {
	app := core.NewBaseApp(core.BaseAppConfig{DataDir: dir, IsDev: false})
	if err := app.Bootstrap(); err != nil {
		return 0, fmt.Errorf("failed to bootstrap the baseline app: %w", err)
	}
	defer app.ClearBootstrap()
	if err := app.RunAllMigrations(); err != nil {
		return 0, fmt.Errorf("failed to migrate the baseline app: %w", err)
	}
	db := app.NonconcurrentDB().(*dbx.DB).DB()
	campaign := core.GenerateDefaultRandomId()
	msgCols := []string{"id", "clinic", "channel", "to", "body", "template", "context", "patient_id", "category", "campaign",
		"idempotency_key", "status", "next_attempt_at", "encoding", "segments", "attempts", "cost", "created", "updated"}
	msgSQL := insertSQL("messages", msgCols...)
	logSQL := insertSQL("message_logs", "id", "message", "event", "status", "detail", "created")
	const detail = `{"channel":"sms","segments":1,"template":"bench_reminder"}`

	start := time.Now()
	for done := 0; done < n; {
		tx, err := db.Begin()
		if err != nil {
			return 0, err
		}
		msgStmt, err := tx.Prepare(msgSQL)
		if err != nil {
			tx.Rollback()
			return 0, err
		}
		logStmt, err := tx.Prepare(logSQL)
		if err != nil {
			tx.Rollback()
			return 0, err
		}
		for i := 0; i < 1000 && done < n; i, done = i+1, done+1 {
			now := since(time.Now())
			id := core.GenerateDefaultRandomId()
			if _, err := msgStmt.Exec(id, clinicID, "sms", phoneE164(done), renderedBody, templateCode, messageContext, patientID(done),
				"reminder", campaign, fmt.Sprintf("campaign:%s:%d", campaign, done), "queued", now, "gsm7", 1, 0, 0, now, now); err != nil {
				tx.Rollback()
				return 0, fmt.Errorf("failed to insert message %d: %w", done, err)
			}
			if messagesOnly {
				continue
			}
			if _, err := logStmt.Exec(core.GenerateDefaultRandomId(), id, "created", "queued", detail, now); err != nil {
				tx.Rollback()
				return 0, fmt.Errorf("failed to insert log %d: %w", done, err)
			}
		}
		msgStmt.Close()
		logStmt.Close()
		if err := tx.Commit(); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// seedStats stores n messages of clinic, created evenly over the last 365 days with a
// plausible mix of channels, providers and outcomes, plus n/10 of another clinic that
// must not be counted (the set-up of hooks/stats_bench_test.go). The messages indexes
// are dropped during the load and rebuilt after it, which is much faster than inserting
// into them and gives the same indexes.
func seedStats(dir, clinic string, n int) error {
	db, closeDB, err := openData(dir)
	if err != nil {
		return err
	}
	defer closeDB()
	db.SetMaxOpenConns(1) // the pragma holds for the one connection
	if _, err := db.Exec("PRAGMA cache_size = -262144"); err != nil {
		return err
	}
	var indexes []string
	rows, err := db.Query("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages' AND sql IS NOT NULL")
	if err != nil {
		return fmt.Errorf("failed to list the messages indexes: %w", err)
	}
	var names []string
	for rows.Next() {
		var name, q string
		if err := rows.Scan(&name, &q); err != nil {
			rows.Close()
			return err
		}
		names = append(names, name)
		indexes = append(indexes, q)
	}
	rows.Close()
	for _, name := range names {
		if _, err := db.Exec(`DROP INDEX "` + name + `"`); err != nil {
			return fmt.Errorf("failed to drop %s: %w", name, err)
		}
	}

	// The few seeded "queued" messages are due far in the future: the appliance serving
	// this folder must answer statistics, not start sending them.
	const notDue = "2100-01-01 00:00:00.000Z"
	end := time.Now().UTC()
	const span = 365 * 24 * time.Hour
	for _, c := range []struct {
		clinic, idPrefix string
		n                int
	}{{clinic, "sa", n}, {"benchotherclnc", "sb", n / 10}} {
		step := span.Seconds() / float64(c.n)
		t0 := float64(end.Add(-span).UnixMilli()) / 1000
		for from := 0; from < c.n; from += 100_000 {
			_, err := db.Exec(statsSeedSQL, sql.Named("from", from), sql.Named("to", min(from+100_000, c.n)),
				sql.Named("t0", t0), sql.Named("step", step), sql.Named("clinic", c.clinic), sql.Named("notDue", notDue), sql.Named("idPrefix", c.idPrefix))
			if err != nil {
				return fmt.Errorf("failed to seed messages: %w", err)
			}
		}
	}
	for _, q := range indexes {
		if _, err := db.Exec(q); err != nil {
			return fmt.Errorf("failed to rebuild an index (%s): %w", q, err)
		}
	}
	return nil
}

// statsSeedSQL inserts the messages :from to :to (exclusive) of a clinic's year, created
// every :step seconds from :t0 (Unix seconds), drawn inside SQLite (a row at a time through
// the driver takes minutes for a million): 70% SMS (a third of them by Unifonic), 20%
// WhatsApp, 10% email; 70% delivered, 5% read (WhatsApp), 7% sent, 8% failed with vendor
// codes, 3% undelivered, 4% skipped, a few canceled and queued; 10% with retries; costs in
// USD and SAR. The draws are materialised first, so that each random() is taken once. Ids
// are :idPrefix and the row number, in insertion order, so the primary key grows at its end.
const statsSeedSQL = `
INSERT INTO messages (id, clinic, channel, "to", body, status, status_reason, provider, provider_message_id, attempts,
	error_code, encoding, segments, cost, currency, sent_at, delivered_at, read_at, created, updated, next_attempt_at)
WITH RECURSIVE seq(i) AS (SELECT :from UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < :to),
draw AS MATERIALIZED (
	SELECT i, :t0 + i * :step AS at, abs(random()) % 100 AS ch, abs(random()) % 10 AS rt, abs(random()) % 2 AS rt2,
		abs(random()) % 100 AS st, abs(random()) % 3 AS ec3, abs(random()) % 2 AS ec2,
		(200 + abs(random()) % 5000) / 1000.0 AS sent, (500 + abs(random()) % 20000) / 1000.0 AS dlv,
		abs(random()) % 5 AS c5, abs(random()) % 100000000 AS phone
	FROM seq),
msg AS (
	SELECT *,
		CASE WHEN ch < 20 THEN 'whatsapp' WHEN ch < 30 THEN 'email' ELSE 'sms' END AS channel,
		CASE WHEN ch < 20 THEN 'twilio' WHEN ch < 30 THEN 'email' WHEN ch < 45 THEN 'unifonic' ELSE 'twilio' END AS prov,
		CASE WHEN ch >= 20 AND ch < 30 THEN '' ELSE 'gsm7' END AS enc,
		CASE WHEN ch >= 20 AND ch < 30 THEN '' WHEN ch >= 30 AND ch < 45 THEN 'SAR' ELSE 'USD' END AS cur,
		CASE WHEN st < 70 THEN 'delivered' WHEN st < 75 THEN (CASE WHEN ch < 20 THEN 'read' ELSE 'delivered' END)
			WHEN st < 82 THEN 'sent' WHEN st < 90 THEN 'failed' WHEN st < 93 THEN 'undelivered'
			WHEN st < 97 THEN 'skipped' WHEN st < 98 THEN 'canceled' ELSE 'queued' END AS status
	FROM draw),
out AS (
	SELECT *, status IN ('sent', 'delivered', 'read', 'undelivered') AS went, status IN ('skipped', 'canceled', 'queued') AS held
	FROM msg)
SELECT :idPrefix || printf('%013d', i), :clinic, channel, '+9665' || printf('%08d', phone), 'Your appointment is tomorrow at 10:00.', status,
	CASE WHEN st >= 82 AND st < 87 THEN 'permanent' WHEN st >= 87 AND st < 90 THEN 'attempts_exhausted'
		WHEN st >= 93 AND st < 97 THEN 'opted_out' ELSE '' END,
	CASE WHEN held THEN '' ELSE prov END,
	CASE WHEN went THEN 'SM' || lower(hex(randomblob(16))) ELSE '' END,
	CASE WHEN held THEN 0 WHEN st >= 87 AND st < 90 THEN 3 WHEN rt = 0 THEN 2 + rt2 ELSE 1 END,
	CASE WHEN st >= 82 AND st < 87 THEN (CASE ec3 WHEN 0 THEN '21211' WHEN 1 THEN '21614' ELSE '30007' END)
		WHEN st >= 87 AND st < 90 THEN '30001' WHEN st >= 90 AND st < 93 THEN (CASE ec2 WHEN 0 THEN '30003' ELSE '30005' END)
		ELSE '' END,
	enc, 1,
	CASE WHEN went AND cur != '' THEN (5 + c5) / 100.0 ELSE 0 END,
	CASE WHEN held THEN '' ELSE cur END,
	CASE WHEN went THEN strftime('%Y-%m-%d %H:%M:%f', at + sent, 'unixepoch') || 'Z' ELSE '' END,
	CASE WHEN status IN ('delivered', 'read') THEN strftime('%Y-%m-%d %H:%M:%f', at + sent + dlv, 'unixepoch') || 'Z' ELSE '' END,
	CASE WHEN status = 'read' THEN strftime('%Y-%m-%d %H:%M:%f', at + sent + dlv + 60, 'unixepoch') || 'Z' ELSE '' END,
	strftime('%Y-%m-%d %H:%M:%f', at, 'unixepoch') || 'Z',
	strftime('%Y-%m-%d %H:%M:%f', at, 'unixepoch') || 'Z',
	CASE WHEN status = 'queued' THEN :notDue ELSE '' END
FROM out`

// messageRow is one message as verification reads it back.
type messageRow struct {
	To          string
	Status      string
	Created     time.Time
	DeliveredAt time.Time
}

// readMessages reads every message of a stopped appliance's data folder.
func readMessages(dir string) ([]messageRow, error) {
	db, closeDB, err := openData(dir)
	if err != nil {
		return nil, err
	}
	defer closeDB()
	rows, err := db.Query(`SELECT "to", status, created, delivered_at FROM messages`)
	if err != nil {
		return nil, fmt.Errorf("failed to read messages: %w", err)
	}
	defer rows.Close()
	var out []messageRow
	for rows.Next() {
		var to, status, created, delivered string
		if err := rows.Scan(&to, &status, &created, &delivered); err != nil {
			return nil, err
		}
		r := messageRow{To: to, Status: status}
		r.Created, _ = time.Parse("2006-01-02 15:04:05.000Z", created)
		r.DeliveredAt, _ = time.Parse("2006-01-02 15:04:05.000Z", delivered)
		out = append(out, r)
	}
	return out, rows.Err()
}

// statusCounts counts a stopped appliance's messages by status, for the notes.
func statusCounts(dir string) string {
	db, closeDB, err := openData(dir)
	if err != nil {
		return err.Error()
	}
	defer closeDB()
	rows, err := db.Query("SELECT status, COUNT(*) FROM messages GROUP BY status ORDER BY status")
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var s string
		var n int
		if rows.Scan(&s, &n) == nil {
			parts = append(parts, fmt.Sprintf("%s %d", s, n))
		}
	}
	return strings.Join(parts, ", ")
}

// countRows counts the rows of table matching where in a stopped appliance's data folder.
func countRows(dir, table, where string) (int, error) {
	db, closeDB, err := openData(dir)
	if err != nil {
		return 0, err
	}
	defer closeDB()
	var n int
	q := "SELECT COUNT(*) FROM " + table
	if where != "" {
		q += " WHERE " + where
	}
	if err := db.QueryRow(q).Scan(&n); err != nil {
		return 0, fmt.Errorf("failed to count %s: %w", table, err)
	}
	return n, nil
}
