package hooks

import (
	"database/sql"

	"clinicmsg/internal/stmtcache"

	"github.com/pocketbase/dbx"
	"modernc.org/sqlite"
)

// stmtsPerConnection bounds each connection's prepared statements (internal/stmtcache):
// the hot path runs a few dozen texts, and a statement holds a few kilobytes.
const stmtsPerConnection = 64

// DBConnect opens clinicmsg's SQLite files with PocketBase's pragmas and immediate write
// transactions. A deferred transaction that reads, and then finds that another process (a
// `clinicmsg jobs run`, Litestream's checkpoint) committed in between, cannot take the write
// lock at all (SQLITE_BUSY_SNAPSHOT) and fails after retrying for seconds; an immediate one
// waits for the lock before it reads. PocketBase runs transactions only on its single write
// connection, so reads are not affected. Each connection caches up to 8 MB of pages
// (PocketBase's own default is 32 MB): several connections fill their caches under load,
// and on a small VM that memory counts more than the last few percent of read speed
// (`clinicmsg bench`: B6's statistics over 1,000,000 messages are as fast either way).
// The write-ahead log is copied back into the database every 10,000 pages (about 40 MB)
// instead of SQLite's 1,000: a burst (a campaign's fan-out, a morning's delivery reports)
// rewrites the same index pages in many commits, and a page is copied back once per
// checkpoint however often it changed (`clinicmsg bench` B2: 15 → 12–14 s for 100,000
// recipients, CPU per message 210 → 190 µs). Each connection keeps its prepared statements
// (internal/stmtcache) instead of parsing every query again.
func DBConnect(dbPath string) (*dbx.DB, error) {
	pragmas := "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=journal_size_limit(200000000)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(ON)&_pragma=temp_store(MEMORY)&_pragma=cache_size(-8000)&_pragma=wal_autocheckpoint(10000)&_defensive=1&_txlock=immediate"
	return dbx.NewFromDB(sql.OpenDB(stmtcache.NewConnector(&sqlite.Driver{}, dbPath+pragmas, stmtsPerConnection)), "sqlite"), nil
}
