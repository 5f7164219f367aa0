package hooks_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"clinicmsg/hooks"
	"clinicmsg/providers/providertest"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/archive"
)

// finalStatuses are the statuses a message never leaves on its own.
var finalStatuses = []string{"delivered", "read", "failed", "undelivered", "canceled", "skipped"}

// TestBackupRestoreDrill is the restore drill of docs/OPERATIONS.md: a backup taken while
// messages flow (queued, sending and sent rows in it) is unzipped into a fresh data folder,
// as an admin would on a new VM, and an appliance started on it serves and finishes the
// queue. What the restore loses is exactly what happened after the backup: messages created
// later are gone, and messages queued in the backup but sent after it are sent again.
func TestBackupRestoreDrill(t *testing.T) {
	// One vendor outlives both appliances, as Twilio outlives a VM.
	fake := providertest.NewTwilio(t)
	fake.SetLatency(40 * time.Millisecond)
	fake.SetAutoCallbacks(100 * time.Millisecond)
	// Two send slots, so that a queue builds up behind the sends in flight.
	src := newEnv(t, withTwilio(fake), func(c *hooks.Config) { c.Workers = 2 })

	// Two reminders scheduled a few seconds ahead travel in the backup too.
	sendAt := time.Now().UTC().Add(3 * time.Second).Format("2006-01-02 15:04:05.000Z")
	var scheduled []string
	for i := range 2 {
		res := src.do("POST", "/api/collections/messages/records", "appA", map[string]any{
			"channel": "sms", "to": fmt.Sprintf("05020000%02d", i), "body": fmt.Sprintf("Drill reminder %d", i), "send_at": sendAt})
		must(t, res.Status == 200 && res.str("status") == "scheduled", "scheduled create: %d %s", res.Status, res.Raw)
		scheduled = append(scheduled, res.str("id"))
	}

	// The clinic's app sends a batch, then creates messages one after another.
	var batch []map[string]any
	for i := range 20 {
		batch = append(batch, map[string]any{"channel": "sms", "to": fmt.Sprintf("05040000%02d", i), "body": fmt.Sprintf("Drill batch %d", i)})
	}
	res := src.do("POST", "/api/clinicmsg/send", "appA", batch)
	must(t, res.Status == 200 && res.Body["accepted"] == float64(20), "batch: %d %s", res.Status, res.Raw)
	var early []string
	for _, it := range res.Body["items"].([]any) {
		early = append(early, it.(map[string]any)["body"].(map[string]any)["id"].(string))
	}
	p := startProducer(src)
	defer p.stop()

	// Back up once the queue holds every state in flight.
	var c map[string]int
	inFlight := poll(20*time.Second, func() bool {
		c = statusCounts(t, src)
		return c["queued"] >= 3 && c["sending"] >= 1 && c["sent"]+c["delivered"] >= 3
	})
	if !inFlight {
		t.Fatalf("the queue never held queued, sending and sent messages at once: %v", c)
	}
	backupStart := time.Now()
	err := src.app.CreateBackup(context.Background(), "drill.zip")
	backupEnd := time.Now()
	must(t, err == nil, "backup: %v", err)
	t.Logf("backup taken in %v while sending", backupEnd.Sub(backupStart).Round(time.Millisecond))

	// Work goes on after the backup: this is what the restore will lose.
	p.waitAcked(p.acked() + 5)
	p.stop()
	zipPath := filepath.Join(src.app.DataDir(), "backups", "drill.zip")
	restoredDir := t.TempDir()
	checkBackupZip(t, zipPath)
	must(t, archive.Extract(zipPath, restoredDir) == nil, "failed to unzip the backup")

	// The old VM is gone. Whatever it sent after the backup, the vendor has.
	src.close()
	sentByOld := len(sendsTo(fake))

	inBackup := backupStatuses(t, filepath.Join(restoredDir, "data.db"))
	held := countValues(inBackup)
	must(t, held["queued"] > 0 && held["sending"] > 0 && held["sent"]+held["delivered"] > 0,
		"expected queued, sending and sent messages in the backup, got %v", held)
	t.Logf("the backup holds %d messages: %v", len(inBackup), held)

	// The new VM: an appliance on the unzipped folder.
	dst := newEnvFrom(t, restoredDir, withTwilio(fake))
	must(t, dst.do("GET", "/api/health", "", nil).Status == 200, "the restored appliance does not serve")

	// Nothing acknowledged before the backup started is missing; nothing created after it
	// ended is there.
	lost := 0
	for _, m := range p.messages() {
		_, there := inBackup[m.id]
		switch {
		case m.ackedAt.Before(backupStart):
			must(t, there, "message %s, created before the backup, is missing from it", m.id)
		case m.sentAt.After(backupEnd):
			must(t, !there, "message %s, created after the backup, is in it", m.id)
			lost++
		}
	}
	must(t, lost >= 5, "expected the messages created after the backup to be lost, lost %d", lost)
	for _, id := range append(early, scheduled...) {
		_, there := inBackup[id]
		must(t, there, "message %s, created before the backup, is missing from it", id)
	}

	// The restored appliance works through the queue: every message reaches a final
	// status. Delivery reports for what the old VM sent went to the old VM, so those
	// messages are brought up to date with refresh (the update-message-statuses job does
	// the same on its own within minutes).
	waitQueueDrained(t, dst, 20*time.Second)
	for id := range inBackup {
		if dst.message(id).GetString("status") == "sent" {
			res := dst.do("POST", "/api/clinicmsg/messages/"+id+"/refresh", "staffA", nil)
			must(t, res.Status == 200, "refresh %s: %d %s", id, res.Status, res.Raw)
		}
	}
	for id := range inBackup {
		rec := waitFinal(t, dst, id, 10*time.Second)
		must(t, rec.GetString("status") == "delivered", "message %s ended %s (backup: %s, log %v)", id, rec.GetString("status"), inBackup[id], dst.logEvents(id))
	}

	// What reached the vendor: a message the backup held as sending or sent is never sent
	// again (a sending row is looked up at Twilio first); one it held as queued or scheduled
	// is sent by the restored appliance, a second time if the old VM had sent it after the
	// backup.
	bodies := map[string]string{}
	for id := range inBackup {
		bodies[id] = dst.message(id).GetString("body")
	}
	all := sendsTo(fake)
	oldSends, newSends := countBodies(all[:sentByOld]), countBodies(all[sentByOld:])
	resent := 0
	for id, status := range inBackup {
		b := bodies[id]
		switch status {
		case "queued", "scheduled":
			must(t, newSends[b] == 1, "message %s (%s in the backup) was sent %d times after the restore", id, status, newSends[b])
			if oldSends[b] > 0 {
				resent++
			}
		default:
			must(t, newSends[b] == 0, "message %s (%s in the backup) was sent again after the restore", id, status)
			must(t, oldSends[b] == 1, "message %s (%s in the backup) reached the vendor %d times before the restore", id, status, oldSends[b])
		}
		if status == "sending" {
			must(t, slices.Contains(dst.logEvents(id), "lease_expired:sending"), "a sending row must be reconciled on start: %v", dst.logEvents(id))
		}
	}
	t.Logf("sent again after the restore (queued in the backup, sent by the old VM after it): %d", resent)

	// And the restored appliance takes new work.
	res = dst.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": "0503000001", "body": "After the restore"})
	must(t, res.Status == 200, "create after restore: %d %s", res.Status, res.Raw)
	dst.waitStatus(res.str("id"), "delivered", 10*time.Second)
}

// TestScheduledBackupsKeepTheNewest: Settings → Backups schedules PocketBase's backup job
// on clinicmsg's data, and CronMaxKeep prunes only the automatic backups.
func TestScheduledBackupsKeepTheNewest(t *testing.T) {
	e := newEnv(t)
	s := e.app.Settings()
	s.Backups.Cron, s.Backups.CronMaxKeep = "0 1 * * *", 2
	must(t, e.app.Save(s) == nil, "failed to save the backup schedule")
	var job interface {
		Run()
		Expression() string
	}
	for _, j := range e.app.Cron().Jobs() {
		if j.Id() == "__pbAutoBackup__" {
			job = j
		}
	}
	must(t, job != nil && job.Expression() == "0 1 * * *", "the backup job is not scheduled")

	dir := filepath.Join(e.app.DataDir(), "backups")
	must(t, os.MkdirAll(dir, 0o755) == nil, "mkdir")
	old := []string{"@auto_pb_backup_clinicmsg_20260101010000.zip", "@auto_pb_backup_clinicmsg_20260102010000.zip"}
	for i, name := range old {
		path := filepath.Join(dir, name)
		must(t, os.WriteFile(path, []byte("old"), 0o600) == nil, "write %s", name)
		at := time.Now().Add(time.Duration(i-3) * 24 * time.Hour)
		must(t, os.Chtimes(path, at, at) == nil, "chtimes %s", name)
	}
	must(t, e.app.CreateBackup(context.Background(), "before-upgrade.zip") == nil, "manual backup failed")
	job.Run()

	var names []string
	entries, err := os.ReadDir(dir)
	must(t, err == nil, "read %s: %v", dir, err)
	for _, en := range entries {
		if !strings.HasSuffix(en.Name(), ".attrs") { // the local store's metadata beside each file
			names = append(names, en.Name())
		}
	}
	must(t, len(names) == 3 && slices.Contains(names, "before-upgrade.zip") && slices.Contains(names, old[1]) && !slices.Contains(names, old[0]),
		"expected the manual backup and the 2 newest automatic ones, got %v", names)
	for _, n := range names {
		if n != "before-upgrade.zip" && n != old[1] {
			checkBackupZip(t, filepath.Join(dir, n))
		}
	}
}

// checkBackupZip checks that a backup holds both databases and nothing a restore must not
// bring back (older backups, WAL files).
func checkBackupZip(t *testing.T, path string) {
	t.Helper()
	r, err := zip.OpenReader(path)
	must(t, err == nil, "open %s: %v", path, err)
	defer r.Close()
	var names []string
	for _, f := range r.File {
		names = append(names, f.Name)
		must(t, !strings.HasPrefix(f.Name, "backups/") && !strings.HasSuffix(f.Name, "-wal") && !strings.HasSuffix(f.Name, "-shm"),
			"the backup must not hold %s", f.Name)
	}
	must(t, slices.Contains(names, "data.db") && slices.Contains(names, "auxiliary.db"), "the backup lacks a database: %v", names)
}

// backupStatuses reads every message's status from an unzipped data.db, read-only.
func backupStatuses(t *testing.T, path string) map[string]string {
	t.Helper()
	db, err := dbx.Open("sqlite", "file:"+path+"?mode=ro")
	must(t, err == nil, "open %s: %v", path, err)
	defer db.Close()
	var rows []struct {
		ID     string `db:"id"`
		Status string `db:"status"`
	}
	must(t, db.NewQuery("SELECT id, status FROM messages").All(&rows) == nil, "read the backup's messages")
	out := map[string]string{}
	for _, r := range rows {
		out[r.ID] = r.Status
	}
	return out
}

func statusCounts(t *testing.T, e *env) map[string]int {
	t.Helper()
	var rows []struct {
		Status string `db:"status"`
		N      int    `db:"n"`
	}
	must(t, e.app.DB().NewQuery("SELECT status, COUNT(*) AS n FROM messages GROUP BY status").All(&rows) == nil, "count statuses")
	out := map[string]int{}
	for _, r := range rows {
		out[r.Status] = r.N
	}
	return out
}

// waitQueueDrained waits until no message is queued, sending or scheduled.
func waitQueueDrained(t *testing.T, e *env, within time.Duration) {
	t.Helper()
	var c map[string]int
	if !poll(within, func() bool { c = statusCounts(t, e); return c["queued"]+c["sending"]+c["scheduled"] == 0 }) {
		t.Fatalf("the restored queue did not drain within %v: %v", within, c)
	}
}

// waitFinal waits until the message reaches a final status, and returns it either way.
func waitFinal(t *testing.T, e *env, id string, within time.Duration) *core.Record {
	t.Helper()
	var rec *core.Record
	poll(within, func() bool { rec = e.message(id); return slices.Contains(finalStatuses, rec.GetString("status")) })
	return rec
}

func countBodies(reqs []providertest.Request) map[string]int {
	out := map[string]int{}
	for _, r := range reqs {
		out[r.Form.Get("Body")]++
	}
	return out
}

func countValues(m map[string]string) map[string]int {
	out := map[string]int{}
	for _, v := range m {
		out[v]++
	}
	return out
}

// producer is a clinic's app creating messages over HTTP, one after another, until stopped.
type producer struct {
	e    *env
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	mu   sync.Mutex
	made []produced
	err  error
}

// produced is one create: when its request was sent and when it was acknowledged.
type produced struct {
	id              string
	sentAt, ackedAt time.Time
}

func startProducer(e *env) *producer {
	p := &producer{e: e, done: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-p.done:
				return
			default:
			}
			sentAt := time.Now()
			id, err := createMessage(e, "appA", map[string]any{"channel": "sms", "to": fmt.Sprintf("0501%06d", i), "body": fmt.Sprintf("Drill message %d", i)})
			p.mu.Lock()
			if err != nil {
				p.err = err
				p.mu.Unlock()
				return
			}
			p.made = append(p.made, produced{id: id, sentAt: sentAt, ackedAt: time.Now()})
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *producer) stop() {
	p.once.Do(func() { close(p.done) })
	p.wg.Wait()
	if p.err != nil {
		p.e.t.Fatalf("the producer failed: %v", p.err)
	}
}

func (p *producer) acked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.made)
}

func (p *producer) messages() []produced {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.made)
}

func (p *producer) waitAcked(n int) {
	p.e.t.Helper()
	waitFor(p.e.t, 10*time.Second, fmt.Sprintf("%d creates acknowledged", n), func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.made) >= n || p.err != nil // stop reports a producer that failed
	})
}

// createMessage is env.do for another goroutine: it returns errors instead of failing.
func createMessage(e *env, who string, body map[string]any) (string, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequest("POST", e.srv.URL+"/api/collections/messages/records", bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", e.tokens[who])
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var out struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != 200 || out.ID == "" {
		return "", fmt.Errorf("create answered %d: %v", res.StatusCode, err)
	}
	return out.ID, nil
}
