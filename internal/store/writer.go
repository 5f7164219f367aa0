package store

import (
	"database/sql"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
)

// Writer commits the hot path's small writes in groups: SQLite has one write connection,
// and a transaction per send outcome or delivery report spends most of its time beginning
// and committing. Each caller still waits for its own commit, so a webhook is answered only
// once its change is durable.
type Writer struct {
	app      core.App
	ops      chan *writeOp
	maxBatch int
	window   time.Duration
	sizes    groupSizes // only the loop's goroutine uses it

	mu      sync.Mutex
	started bool
	stopped bool
	done    chan struct{}
}

type writeOp struct {
	fn   func(tx core.App) error
	done chan error
}

func NewWriter(app core.App, maxBatch int, window time.Duration) *Writer {
	return &Writer{app: app, ops: make(chan *writeOp, maxBatch*4), maxBatch: maxBatch, window: window}
}

// Do runs fn in a group transaction and returns once it is committed (or failed). When the
// writer is not running, fn gets a transaction of its own.
func (w *Writer) Do(fn func(tx core.App) error) error {
	w.mu.Lock()
	running := w.started && !w.stopped
	if !running {
		w.mu.Unlock()
		return w.app.RunInTransaction(fn)
	}
	op := &writeOp{fn: fn, done: make(chan error, 1)}
	w.ops <- op // under the lock, so Stop cannot close the channel underneath
	w.mu.Unlock()
	return <-op.done
}

func (w *Writer) Start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started || w.stopped {
		return
	}
	w.started = true
	w.done = make(chan struct{})
	go w.loop()
}

// Stop commits what is queued and stops; later writes get their own transactions.
func (w *Writer) Stop() {
	w.mu.Lock()
	if !w.started || w.stopped {
		w.stopped = true
		w.mu.Unlock()
		return
	}
	w.stopped = true
	close(w.ops)
	w.mu.Unlock()
	<-w.done
}

func (w *Writer) loop() {
	defer close(w.done)
	batch := make([]*writeOp, 0, w.maxBatch)
	timer := time.NewTimer(w.window)
	timer.Stop()
	for op := range w.ops {
		batch = append(batch[:0], op)
		usual := w.sizes.usual()
		deadline := time.Now().Add(w.window)
	gather:
		for len(batch) < w.maxBatch {
			// Take what is already waiting, then wait for latecomers only while the group
			// is smaller than usual (see groupSizes), and never past the window.
			select {
			case next, ok := <-w.ops:
				if !ok {
					break gather
				}
				batch = append(batch, next)
				continue
			default:
			}
			wait := time.Until(deadline)
			if len(batch) >= usual || wait <= 0 {
				break
			}
			timer.Reset(wait)
			select {
			case next, ok := <-w.ops:
				timer.Stop()
				if !ok {
					break gather
				}
				batch = append(batch, next)
			case <-timer.C:
				break gather
			}
		}
		w.sizes.add(len(batch))
		w.commit(batch)
	}
}

// groupSizes remembers the sizes of the last groups. A group stops waiting for latecomers
// once it is as large as the median of them: apps that wait for each answer before
// sending again (16 clients each sending one message at a time) arrive together, and once
// they are all in, the rest of the window only delays every one of them (clinicmsg bench
// B1b/1@16: 0.74 → 0.82–0.85 of bare PocketBase's create). Under a light load the usual
// group is one op, which commits at once; a burst still fills its groups, as ops queue
// while the previous group commits. The price: under steady traffic below saturation,
// commits are smaller and more frequent, 8–40 % more CPU per message (spare at that load)
// for half the answer time (BENCHMARKS.md, "the group rule under steady traffic").
type groupSizes struct {
	last [8]int
	n    int
}

func (g *groupSizes) add(size int) {
	g.last[g.n%len(g.last)] = size
	g.n++
}

// usual is the median of the last sizes (1 before any group).
func (g *groupSizes) usual() int {
	s := g.last
	slices.Sort(s[:])
	return max(1, s[len(s)/2])
}

// commit runs a batch in one transaction; if any op fails, the batch is rolled back and
// each op is run again alone, so one bad write never fails its neighbours.
func (w *Writer) commit(batch []*writeOp) {
	if len(batch) > 1 {
		err := w.run(func(tx core.App) error {
			for _, op := range batch {
				if err := op.fn(tx); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			for _, op := range batch {
				op.done <- nil
			}
			return
		}
	}
	for _, op := range batch {
		op.done <- w.run(op.fn)
	}
}

// run runs fn in a transaction whose statements are prepared once (groupStmts).
func (w *Writer) run(fn func(tx core.App) error) error {
	return w.app.RunInTransaction(func(tx core.App) error {
		groupStmts.Store(tx, map[string]*dbx.Query{})
		defer groupStmts.Delete(tx)
		return fn(tx)
	})
}

// groupStmts holds, for each open group transaction, the queries built on it. The ops of a
// group run the same few statements hundreds of times; dbx would otherwise build each
// query's text and placeholders every time (SQLite's own parse is saved for every query by
// the connection's statement cache, internal/stmtcache). Only the writer's goroutine runs a
// group's ops, so a group's map needs no lock; the queries close with their transaction.
var groupStmts sync.Map // core.App (the transaction) → map[string]*dbx.Query

// CachedQuery returns text as a query on tx, prepared once per group transaction.
func CachedQuery(tx core.App, text string) *dbx.Query {
	return CachedBuild(tx, text, func() *dbx.Query { return tx.DB().NewQuery(text) })
}

// CachedBuild returns build()'s query, prepared once per group transaction under key.
// The query must take the same parameter names every time.
func CachedBuild(tx core.App, key string, build func() *dbx.Query) *dbx.Query {
	v, ok := groupStmts.Load(tx)
	if !ok {
		return build()
	}
	stmts := v.(map[string]*dbx.Query)
	if q, ok := stmts[key]; ok {
		return q
	}
	q := build().Prepare()
	if q.LastError == nil {
		stmts[key] = q
	}
	return q
}

// updateWhere runs UPDATE table SET set WHERE every column of match equals its value, as
// one statement text per set of column names (so that groups reuse it).
func updateWhere(tx core.App, table string, set, match dbx.Params) (sql.Result, error) {
	params := make(dbx.Params, len(set)+len(match))
	var sb strings.Builder
	sb.WriteString("UPDATE {{" + table + "}} SET ")
	for i, k := range slices.Sorted(maps.Keys(set)) {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("[[" + k + "]] = {:s_" + k + "}")
		params["s_"+k] = set[k]
	}
	sb.WriteString(" WHERE ")
	for i, k := range slices.Sorted(maps.Keys(match)) {
		if i > 0 {
			sb.WriteString(" AND ")
		}
		sb.WriteString("[[" + k + "]] = {:w_" + k + "}")
		params["w_"+k] = match[k]
	}
	return CachedQuery(tx, sb.String()).Bind(params).Execute()
}
