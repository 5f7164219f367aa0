package store_test

import (
	"sync"
	"testing"
	"time"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tests"

	"clinicmsg/internal/store"
)

// groupRecorder runs writer ops that note the transaction each ran in, so a test can see
// which ops shared a group commit.
type groupRecorder struct {
	w  *store.Writer
	mu sync.Mutex
	tx map[int]core.App
}

// newGroupRecorder starts a writer with window whose usual group is usual ops (0: none yet).
func newGroupRecorder(t *testing.T, window time.Duration, usual int) *groupRecorder {
	t.Helper()
	app, err := tests.NewTestApp()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(app.Cleanup)
	w := store.NewWriter(app, 256, window)
	if usual > 0 {
		store.SeedGroupSizes(w, usual)
	}
	w.Start()
	t.Cleanup(w.Stop)
	return &groupRecorder{w: w, tx: map[int]core.App{}}
}

// do runs op i and returns once its group has committed.
func (g *groupRecorder) do(t *testing.T, i int, hold <-chan struct{}) {
	err := g.w.Do(func(tx core.App) error {
		g.mu.Lock()
		g.tx[i] = tx
		g.mu.Unlock()
		if hold != nil {
			<-hold
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func (g *groupRecorder) sameGroup(t *testing.T, from, to int) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := from + 1; i < to; i++ {
		if g.tx[i] != g.tx[from] {
			t.Fatalf("expected ops %d..%d to share one group commit; op %d ran in another", from, to-1, i)
		}
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}

// TestWriterCommitsALoneOpAtOnce: under a light load (groups of one) an op commits without
// waiting out the window for company that is not coming.
func TestWriterCommitsALoneOpAtOnce(t *testing.T) {
	g := newGroupRecorder(t, 5*time.Second, 0)
	start := time.Now()
	for i := range 3 {
		g.do(t, i, nil)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("expected three lone ops to commit at once, took %v (the window is 5s)", took)
	}
}

// TestWriterGathersWhatQueued: ops that queue while a group commits go together in the
// next group.
func TestWriterGathersWhatQueued(t *testing.T) {
	g := newGroupRecorder(t, 5*time.Second, 0)
	hold := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { g.do(t, 0, hold) })
	waitUntil(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.tx[0] != nil })
	for i := 1; i <= 4; i++ {
		wg.Go(func() { g.do(t, i, nil) })
	}
	time.Sleep(50 * time.Millisecond) // they queue behind the held op
	close(hold)
	wg.Wait()
	g.sameGroup(t, 1, 5)
}

// TestWriterWaitsForTheUsualGroup: once groups of five are usual, a group waits for
// latecomers until it has five, then commits without waiting out the window.
func TestWriterWaitsForTheUsualGroup(t *testing.T) {
	g := newGroupRecorder(t, 5*time.Second, 5)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() { g.do(t, i, nil) })
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("expected the group committed once it had its usual five ops, took %v (the window is 5s)", took)
	}
	g.sameGroup(t, 0, 5)
}
