// Package stmtcache keeps SQLite's prepared statements per connection, across queries and
// transactions. PocketBase and dbx run most statements unprepared, so SQLite parses and
// plans the same few texts thousands of times a second on the hot path: parsing was 12 % of
// the appliance's CPU in the side-by-side benchmark (clinicmsg bench --peer --profile),
// more than any single query's execution.
//
// It wraps the database/sql driver connection: a query whose text is cached runs on the
// connection's prepared statement, which SQLite resets after use instead of finalising; a
// text in use (its rows still open, or held by a prepared *sql.Stmt) gets a statement of
// its own as before. A schema change is no concern: SQLite re-prepares a statement whose
// schema changed on its next step.
package stmtcache

import (
	"container/list"
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"reflect"
	"sync/atomic"
)

// MaxText is the longest statement text kept: a bulk insert's text grows with its rows,
// and its statement with it.
const MaxText = 8 << 10

// Stats counts, over all connections, the statements run from the cache and prepared.
type Stats struct{ Hits, Prepares atomic.Int64 }

// Connector opens connections through drv whose statements are cached, at most size per
// connection (least recently used dropped first).
type Connector struct {
	drv   driver.Driver
	dsn   string
	size  int
	Stats Stats
}

func NewConnector(drv driver.Driver, dsn string, size int) *Connector {
	return &Connector{drv: drv, dsn: dsn, size: size}
}

func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	inner, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &conn{inner: inner, size: c.size, stats: &c.Stats, entries: map[string]*entry{}}, nil
}

func (c *Connector) Driver() driver.Driver { return c.drv }

// conn is used by one goroutine at a time (database/sql's contract), so it needs no lock.
type conn struct {
	inner   driver.Conn
	size    int
	stats   *Stats
	entries map[string]*entry
	lru     list.List // of *entry, most recently used first
}

type entry struct {
	query string
	st    driver.Stmt
	busy  bool // rows open on it, or held by a prepared statement
	gone  bool // dropped from the cache while busy: closed on release
	elem  *list.Element
}

// acquire returns the cached statement for query, preparing and caching it if needed, or
// nil when the text is not cacheable or its statement is busy.
func (c *conn) acquire(ctx context.Context, query string) (*entry, error) {
	if len(query) > MaxText || c.size <= 0 {
		return nil, nil
	}
	if e, ok := c.entries[query]; ok {
		if e.busy {
			return nil, nil
		}
		e.busy = true
		c.lru.MoveToFront(e.elem)
		c.stats.Hits.Add(1)
		return e, nil
	}
	st, err := c.prepare(ctx, query)
	if err != nil {
		return nil, err
	}
	c.stats.Prepares.Add(1)
	e := &entry{query: query, st: st, busy: true}
	e.elem = c.lru.PushFront(e)
	c.entries[query] = e
	for c.lru.Len() > c.size {
		c.drop(c.lru.Back().Value.(*entry))
	}
	return e, nil
}

// release returns e to the cache; after a failure its statement is closed instead, so a
// statement SQLite may have left mid-step is never reused.
func (c *conn) release(e *entry, failed bool) {
	e.busy = false
	if failed && !e.gone {
		c.drop(e)
		return
	}
	if e.gone {
		e.st.Close()
	}
}

func (c *conn) drop(e *entry) {
	if e.gone {
		return
	}
	e.gone = true
	c.lru.Remove(e.elem)
	delete(c.entries, e.query)
	if !e.busy {
		e.st.Close()
	}
}

func (c *conn) prepare(ctx context.Context, query string) (driver.Stmt, error) {
	if p, ok := c.inner.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, query)
	}
	return c.inner.Prepare(query)
}

func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// PrepareContext hands out the cached statement until the caller closes it.
func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	e, err := c.acquire(ctx, query)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return c.prepare(ctx, query)
	}
	return &heldStmt{c: c, e: e}, nil
}

func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, err := c.acquire(ctx, query)
	if err != nil {
		return nil, err
	}
	if e == nil {
		if ex, ok := c.inner.(driver.ExecerContext); ok {
			return ex.ExecContext(ctx, query, args)
		}
		return nil, driver.ErrSkip
	}
	r, err := e.st.(driver.StmtExecContext).ExecContext(ctx, args)
	c.release(e, err != nil)
	return r, err
}

func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	e, err := c.acquire(ctx, query)
	if err != nil {
		return nil, err
	}
	if e == nil {
		if q, ok := c.inner.(driver.QueryerContext); ok {
			return q.QueryContext(ctx, query, args)
		}
		return nil, driver.ErrSkip
	}
	r, err := e.st.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		c.release(e, true)
		return nil, err
	}
	return &cachedRows{Rows: r, release: func(failed bool) { c.release(e, failed) }}, nil
}

// Close closes every cached statement before the connection: SQLite does not close a
// connection with statements still prepared on it.
func (c *conn) Close() error {
	for e := c.lru.Front(); e != nil; e = e.Next() {
		e.Value.(*entry).st.Close()
	}
	c.lru.Init()
	clear(c.entries)
	return c.inner.Close()
}

func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if b, ok := c.inner.(driver.ConnBeginTx); ok {
		return b.BeginTx(ctx, opts)
	}
	return c.inner.Begin() //nolint:staticcheck // only for a driver without BeginTx
}

func (c *conn) Ping(ctx context.Context) error {
	if p, ok := c.inner.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *conn) ResetSession(ctx context.Context) error {
	if r, ok := c.inner.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *conn) IsValid() bool {
	if v, ok := c.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// heldStmt is a cached statement lent to a prepared *sql.Stmt until it is closed.
type heldStmt struct {
	c      *conn
	e      *entry
	closed bool
	failed bool
}

func (s *heldStmt) Close() error {
	if !s.closed {
		s.closed = true
		s.c.release(s.e, s.failed)
	}
	return nil
}

func (s *heldStmt) NumInput() int { return s.e.st.NumInput() }

func (s *heldStmt) Exec(args []driver.Value) (driver.Result, error) {
	return nil, errors.New("stmtcache: Exec without a context is not supported")
}

func (s *heldStmt) Query(args []driver.Value) (driver.Rows, error) {
	return nil, errors.New("stmtcache: Query without a context is not supported")
}

func (s *heldStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	r, err := s.e.st.(driver.StmtExecContext).ExecContext(ctx, args)
	if err != nil {
		s.failed = true
	}
	return r, err
}

func (s *heldStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	r, err := s.e.st.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		s.failed = true
	}
	return r, err
}

// cachedRows releases its statement when closed, and passes on the column type methods
// database/sql looks for.
type cachedRows struct {
	driver.Rows
	release func(failed bool)
	failed  bool
	closed  bool
}

func (r *cachedRows) Next(dest []driver.Value) error {
	err := r.Rows.Next(dest)
	if err != nil && !errors.Is(err, io.EOF) {
		r.failed = true
	}
	return err
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	if !r.closed {
		r.closed = true
		r.release(r.failed || err != nil)
	}
	return err
}

func (r *cachedRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *cachedRows) ColumnTypeLength(i int) (int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeLength); ok {
		return t.ColumnTypeLength(i)
	}
	return 0, false
}

func (r *cachedRows) ColumnTypeNullable(i int) (bool, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return t.ColumnTypeNullable(i)
	}
	return false, false
}

func (r *cachedRows) ColumnTypePrecisionScale(i int) (int64, int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypePrecisionScale); ok {
		return t.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}

func (r *cachedRows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}
