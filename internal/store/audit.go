package store

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"
)

// Entry is one row of a message's audit trail (message_logs).
type Entry struct {
	Message   string
	Event     string
	Status    string
	Provider  string
	Detail    map[string]any
	ErrorCode string
	IP        string
	UserAgent string
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// idSeq orders the ids GrowingID makes in this process.
var idSeq atomic.Int64

// GrowingID returns a new record id for the rows clinicmsg inserts in volume (messages of
// bulk creates, audit rows): 10 base-36 digits of a per-process sequence that starts at
// the clock in microseconds, then 5 random characters. A random id lands anywhere in the
// table's id index, so every row dirtied one more page of it per commit; ids that grow
// append to its last page. The id needs to be unique, not unguessable (API rules guard
// the rows), and the random tail keeps another process's ids (jobs run from the command
// line) apart.
func GrowingID() string {
	now := time.Now().UnixMicro()
	n := idSeq.Add(1)
	for n < now {
		if idSeq.CompareAndSwap(n, now) {
			n = now
			break
		}
		n = idSeq.Add(1)
	}
	var b [15]byte
	for i := 9; i >= 0; i-- {
		b[i] = base36[n%36]
		n /= 36
	}
	for i := 10; i < 15; i++ {
		b[i] = idAlphabet[rand.IntN(len(idAlphabet))]
	}
	return string(b[:])
}

// base36 are the digits of GrowingID's sequence, in the order that sorts as the numbers do.
const base36 = "0123456789abcdefghijklmnopqrstuvwxyz"

// LogColumns are message_logs' columns in the order of LogRow.
var LogColumns = []string{"id", "message", "event", "status", "provider", "detail", "error_code", "ip", "user_agent", "created"}

// WriteLog appends one row to a message's audit trail.
func WriteLog(app core.App, l Entry) error {
	return WriteLogs(app, []Entry{l})
}

// WriteLogs appends rows to message audit trails.
func WriteLogs(app core.App, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	now := FormatTime(time.Now().UTC())
	rows := make([][]any, len(entries))
	for i, l := range entries {
		row, err := LogRow(l)
		if err != nil {
			return err
		}
		row[len(row)-1] = now
		rows[i] = row
	}
	if err := insertRows(app, "message_logs", LogColumns, rows); err != nil {
		return fmt.Errorf("failed to write message log: %w", err)
	}
	return nil
}

// LogRow is l's audit row in LogColumns order; created, the last, is left for the caller.
func LogRow(l Entry) ([]any, error) {
	detail := "null"
	if l.Detail != nil {
		b, err := json.Marshal(l.Detail)
		if err != nil {
			return nil, fmt.Errorf("failed to encode message log detail: %w", err)
		}
		detail = string(b)
	}
	if len(l.UserAgent) > 300 {
		l.UserAgent = l.UserAgent[:300]
	}
	return []any{GrowingID(), l.Message, l.Event, l.Status, l.Provider, detail, l.ErrorCode, l.IP, l.UserAgent, nil}, nil
}

// FormatTime writes t the way PocketBase stores dates, so string comparison orders them.
func FormatTime(t time.Time) string {
	return t.UTC().Format(types.DefaultDateLayout)
}

// paramNames are insertRows' parameter names, made once: a log row binds ten of them.
var paramNames = func() []string {
	names := make([]string, 64)
	for i := range names {
		names[i] = "p" + strconv.Itoa(i)
	}
	return names
}()

func paramName(i int) string {
	if i < len(paramNames) {
		return paramNames[i]
	}
	return "p" + strconv.Itoa(i)
}

// insertRows inserts rows (values in the order of columns) with one single-row statement,
// prepared once and run per row. A multi-row INSERT would cost more than it saves: the
// SQLite driver matches every bound value to its placeholder by a linear search (quadratic
// in the values per statement), and SQLite keeps a statement journal for a statement that
// writes many rows.
func insertRows(app core.App, table string, columns []string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	var sb strings.Builder
	sb.WriteString("INSERT INTO {{" + table + "}} (")
	for i, c := range columns {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("[[" + c + "]]")
	}
	sb.WriteString(") VALUES (")
	for i := range columns {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("{:" + paramName(i) + "}")
	}
	sb.WriteString(")")
	q := CachedQuery(app, sb.String())
	if _, grouped := groupStmts.Load(app); !grouped && len(rows) > 1 {
		q = q.Prepare()
		defer q.Close()
	}
	params := make(dbx.Params, len(columns))
	for _, row := range rows {
		for i, v := range row {
			params[paramName(i)] = v
		}
		if _, err := q.Bind(params).Execute(); err != nil {
			return fmt.Errorf("failed to insert into %s: %w", table, err)
		}
	}
	return nil
}

// InsertMessages inserts new messages (values in the order of columns, each with its
// first status decided by the create checks) and their first audit rows (LogRow order,
// created filled in) in tx.
func InsertMessages(tx core.App, columns []string, values, logs [][]any) error {
	if err := insertRows(tx, "messages", columns, values); err != nil {
		return err
	}
	if err := insertRows(tx, "message_logs", LogColumns, logs); err != nil {
		return fmt.Errorf("failed to write message log: %w", err)
	}
	return nil
}

// Truncate cuts s to n characters, for the columns that keep a provider's or a person's
// text (error messages, status reasons).
func Truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}

// FindOne returns the first record of collection matching a plain SQL condition, or
// sql.ErrNoRows. Lookups on partial indexes use it: SQLite uses a partial index only when
// the query repeats the index's own WHERE term, which PocketBase's filter syntax rewrites.
// In a writer group (delivery reports) the statement is prepared once for the group.
func FindOne(app core.App, collection, where string, params dbx.Params) (*core.Record, error) {
	rec := &core.Record{}
	q := CachedBuild(app, "findOne "+collection+" "+where, func() *dbx.Query {
		return app.RecordQuery(collection).AndWhere(dbx.NewExp(where, params)).Limit(1).Build()
	})
	if err := q.Bind(params).One(rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// Purge deletes messages past their clinic's retention, with their audit rows, in tx; it
// reports how many of each went.
func Purge(tx core.App, ids []any) (messages, logs int, err error) {
	res, err := tx.DB().Delete("message_logs", dbx.In("message", ids...)).Execute()
	if err != nil {
		return 0, 0, fmt.Errorf("failed to delete old message logs: %w", err)
	}
	l, _ := res.RowsAffected()
	res, err = tx.DB().Delete("messages", dbx.In("id", ids...)).Execute()
	if err != nil {
		return 0, 0, fmt.Errorf("failed to delete old messages: %w", err)
	}
	m, _ := res.RowsAffected()
	return int(m), int(l), nil
}
