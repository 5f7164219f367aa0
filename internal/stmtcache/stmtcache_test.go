package stmtcache_test

import (
	"database/sql"
	"path/filepath"
	"testing"

	"clinicmsg/internal/stmtcache"

	"modernc.org/sqlite"
)

// open is a file database on one connection, as PocketBase's write connection is.
func open(t *testing.T, size int) (*sql.DB, *stmtcache.Connector) {
	t.Helper()
	c := stmtcache.NewConnector(&sqlite.Driver{}, filepath.Join(t.TempDir(), "data.db")+"?_pragma=journal_mode(WAL)", size)
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	mustExec(t, db, "CREATE TABLE m (id INTEGER PRIMARY KEY, status TEXT NOT NULL, body TEXT UNIQUE)")
	return db, c
}

func mustExec(t *testing.T, db interface {
	Exec(string, ...any) (sql.Result, error)
}, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func count(t *testing.T, db *sql.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// TestStatementsOutliveTransactions: the same text in 50 transactions is prepared once.
func TestStatementsOutliveTransactions(t *testing.T) {
	db, c := open(t, 8)
	before := c.Stats.Prepares.Load()
	for i := range 50 {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, tx, "INSERT INTO m (status, body) VALUES (?, ?)", "queued", i)
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Stats.Prepares.Load() - before; got != 1 {
		t.Fatalf("the insert was prepared %d times in 50 transactions, want 1", got)
	}
	if got := count(t, db, "SELECT COUNT(*) FROM m WHERE status = ?", "queued"); got != 50 {
		t.Fatalf("%d rows, want 50", got)
	}
}

// TestSameTextWhileRowsOpen: a text whose rows are still being read runs again on a
// statement of its own, and both answer correctly.
func TestSameTextWhileRowsOpen(t *testing.T) {
	db, _ := open(t, 8)
	for i := range 3 {
		mustExec(t, db, "INSERT INTO m (status, body) VALUES ('queued', ?)", i)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	const q = "SELECT id FROM m WHERE id >= ? ORDER BY id"
	outer, err := tx.Query(q, 1)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for outer.Next() {
		var id int
		if err := outer.Scan(&id); err != nil {
			t.Fatal(err)
		}
		var inner int
		if err := tx.QueryRow("SELECT COUNT(*) FROM ("+q+")", id).Scan(&inner); err != nil {
			t.Fatal(err)
		}
		rows, err := tx.Query(q, id)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			n++
		}
		rows.Close()
		if n != 3-id+1 || inner != n {
			t.Fatalf("id %d: inner query saw %d rows (count %d), want %d", id, n, inner, 3-id+1)
		}
		seen++
	}
	if err := outer.Err(); err != nil {
		t.Fatal(err)
	}
	outer.Close()
	if seen != 3 {
		t.Fatalf("the outer query saw %d rows, want 3", seen)
	}
}

// TestBoundedPerConnection: beyond size texts the least recently used is closed and
// prepared again when it comes back.
func TestBoundedPerConnection(t *testing.T) {
	db, c := open(t, 2)
	texts := []string{"SELECT 1 FROM m WHERE id = ?", "SELECT 2 FROM m WHERE id = ?", "SELECT 3 FROM m WHERE id = ?"}
	run := func(q string) {
		rows, err := db.Query(q, 1)
		if err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	for _, q := range texts {
		run(q)
	}
	before := c.Stats.Prepares.Load()
	run(texts[2]) // still cached
	if got := c.Stats.Prepares.Load() - before; got != 0 {
		t.Fatalf("a cached text was prepared again (%d)", got)
	}
	run(texts[0]) // dropped when the third came in
	if got := c.Stats.Prepares.Load() - before; got != 1 {
		t.Fatalf("a dropped text was prepared %d times, want 1", got)
	}
}

// TestFailedStatementIsNotReused: a statement that failed (a unique constraint) is closed,
// and the same text works on the next call.
func TestFailedStatementIsNotReused(t *testing.T) {
	db, _ := open(t, 8)
	const ins = "INSERT INTO m (status, body) VALUES (?, ?)"
	mustExec(t, db, ins, "queued", "a")
	if _, err := db.Exec(ins, "queued", "a"); err == nil {
		t.Fatal("a duplicate body was inserted")
	}
	mustExec(t, db, ins, "queued", "b")
	if got := count(t, db, "SELECT COUNT(*) FROM m"); got != 2 {
		t.Fatalf("%d rows, want 2", got)
	}
}

// TestSchemaChange: a cached statement sees a column added after it was prepared.
func TestSchemaChange(t *testing.T) {
	db, _ := open(t, 8)
	mustExec(t, db, "INSERT INTO m (status, body) VALUES ('queued', 'a')")
	cols := func() int {
		rows, err := db.Query("SELECT * FROM m WHERE id > ?", 0)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		c, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		return len(c)
	}
	if n := cols(); n != 3 {
		t.Fatalf("%d columns, want 3", n)
	}
	mustExec(t, db, "ALTER TABLE m ADD COLUMN extra TEXT DEFAULT ''")
	if n := cols(); n != 4 {
		t.Fatalf("%d columns after ALTER TABLE, want 4", n)
	}
}

// TestPreparedStatementHeld: a *sql.Stmt holds the cached statement; the same text run
// meanwhile gets its own, and after Close the cache serves it again.
func TestPreparedStatementHeld(t *testing.T) {
	db, c := open(t, 8)
	const q = "SELECT COUNT(*) FROM m WHERE status = ?"
	st, err := db.Prepare(q)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "INSERT INTO m (status, body) VALUES ('queued', 'a')")
	var a int
	if err := st.QueryRow("queued").Scan(&a); err != nil {
		t.Fatal(err)
	}
	if b := count(t, db, q, "queued"); a != 1 || b != 1 {
		t.Fatalf("counts %d and %d, want 1 and 1", a, b)
	}
	st.Close()
	before := c.Stats.Hits.Load()
	count(t, db, q, "queued")
	if c.Stats.Hits.Load() == before {
		t.Fatal("the text was not served from the cache after the prepared statement closed")
	}
}
