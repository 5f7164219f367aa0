package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/tools/archive"
)

// litestreamVersion is the Litestream release docs/OPERATIONS.md documents and
// TestLitestreamRestore builds from the Go module proxy.
const litestreamVersion = "v0.5.18"

// TestBinaryBackupRestoreByHand follows docs/OPERATIONS.md "Restoring a backup on a new VM"
// with the built binary: a backup made over the API is downloaded, unzipped into an empty
// data folder, migrated and served, and the clinic's accounts and messages are all there.
func TestBinaryBackupRestoreByHand(t *testing.T) {
	a := startAppliance(t)
	tok := a.staffToken()
	var ids []string
	for i := range 5 {
		msg := a.call("POST", "/api/collections/messages/records", tok, map[string]any{"channel": "sms", "to": fmt.Sprintf("05012300%02d", i), "body": "Your results are ready."}, 200)
		ids = append(ids, msg["id"].(string))
	}
	a.waitStatus(tok, ids[len(ids)-1], "delivered", 10*time.Second)

	su := passwordToken(a, "_superusers", "admin@clinic.example", "a-long-password-1")
	noContent(t, a, "POST", "/api/backups", su, `{"name":"clinicmsg_manual.zip"}`)
	// A download needs a short-lived file token, not the auth token.
	fileTok := a.call("POST", "/api/files/token", su, nil, 200)["token"].(string)
	res, err := http.Get(a.client.base + "/api/backups/clinicmsg_manual.zip?token=" + url.QueryEscape(fileTok))
	if err != nil {
		t.Fatal(err)
	}
	zipped, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || len(zipped) == 0 {
		t.Fatalf("expected the backup zip, got %d (%d bytes)", res.StatusCode, len(zipped))
	}
	zipPath := filepath.Join(t.TempDir(), "clinicmsg_manual.zip")
	if err := os.WriteFile(zipPath, zipped, 0o600); err != nil {
		t.Fatal(err)
	}

	// The new VM: unzip, migrate, serve.
	dir := filepath.Join(t.TempDir(), "clinicmsg")
	if err := archive.Extract(zipPath, dir); err != nil {
		t.Fatalf("failed to unzip the backup: %v", err)
	}
	if out, err := exec.Command(buildBinary(t), "migrate", "up", "--dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("migrate up on the restored folder: %v: %s", err, out)
	}
	b := serveDataDir(t, dir)
	passwordToken(b, "_superusers", "admin@clinic.example", "a-long-password-1")
	// The token the clinic's app already holds still works: the signing keys are in the data.
	for _, id := range ids {
		b.waitStatus(tok, id, "delivered", 10*time.Second)
	}
	msg := b.call("POST", "/api/collections/messages/records", tok, map[string]any{"channel": "sms", "to": "0501239999", "body": "Sent after the restore."}, 200)
	b.waitStatus(tok, msg["id"].(string), "delivered", 10*time.Second)
}

// TestBinaryRestoreInPlace: PocketBase's own restore (Settings → Backups → Restore, or
// POST /api/backups/{key}/restore) replaces the data folder's content and restarts the
// process in place; what was created after the backup is gone, what was before is there.
func TestBinaryRestoreInPlace(t *testing.T) {
	a := startAppliance(t)
	tok := a.staffToken()
	before := a.call("POST", "/api/collections/messages/records", tok, map[string]any{"channel": "sms", "to": "0501230001", "body": "Before the backup."}, 200)
	a.waitStatus(tok, before["id"].(string), "delivered", 10*time.Second)
	su := passwordToken(a, "_superusers", "admin@clinic.example", "a-long-password-1")
	noContent(t, a, "POST", "/api/backups", su, `{"name":"before.zip"}`)
	after := a.call("POST", "/api/collections/messages/records", tok, map[string]any{"channel": "sms", "to": "0501230002", "body": "After the backup."}, 200)
	a.waitStatus(tok, after["id"].(string), "delivered", 10*time.Second)

	pid := a.cmd.Process.Pid
	noContent(t, a, "POST", "/api/backups/before.zip/restore", su, "")
	// The process re-executes itself (same pid) on the restored folder.
	gone := poll(30*time.Second, 100*time.Millisecond, func() bool {
		req, err := http.NewRequest("GET", a.client.base+"/api/collections/messages/records/"+after["id"].(string), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return false // the process is re-executing
		}
		res.Body.Close()
		return res.StatusCode == 404
	})
	if !gone {
		t.Fatalf("the message created after the backup is still there 30s after the restore\n%s", a.logs)
	}
	if a.cmd.ProcessState != nil || a.cmd.Process.Pid != pid {
		t.Fatalf("expected the same process to serve the restored data")
	}
	a.waitStatus(tok, before["id"].(string), "delivered", 10*time.Second)
	msg := a.call("POST", "/api/collections/messages/records", tok, map[string]any{"channel": "sms", "to": "0501230003", "body": "After the restore."}, 200)
	a.waitStatus(tok, msg["id"].(string), "delivered", 10*time.Second)
}

// TestLitestreamRestore replicates a serving appliance's data.db with Litestream to a file
// replica, kills the appliance mid-flow, restores the replica into an empty folder with
// `litestream restore` and serves it. It builds Litestream from the module proxy (minutes on
// a cold cache), so it runs only with CLINICMSG_TEST_LITESTREAM=1; LITESTREAM_BIN names a
// binary to use instead.
func TestLitestreamRestore(t *testing.T) {
	if os.Getenv("CLINICMSG_TEST_LITESTREAM") == "" {
		t.Skip("set CLINICMSG_TEST_LITESTREAM=1 to build Litestream " + litestreamVersion + " and run the replica drill")
	}
	ls := buildLitestream(t)
	bin := buildBinary(t)

	dir := filepath.Join(t.TempDir(), "clinicmsg")
	if out, err := exec.Command(bin, "superuser", "upsert", "admin@clinic.example", "a-long-password-1", "--dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("failed to create the superuser: %v: %s", err, out)
	}
	a := serveDataDir(t, dir)

	// The configuration docs/OPERATIONS.md shows, with a file replica instead of S3.
	replica := filepath.Join(t.TempDir(), "replica")
	config := filepath.Join(t.TempDir(), "litestream.yml")
	yml := fmt.Sprintf("dbs:\n  - path: %s\n    replica:\n      url: file://%s\n", filepath.Join(dir, "data.db"), replica)
	if err := os.WriteFile(config, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	lsLogs := &bytes.Buffer{}
	rep := exec.Command(ls, "replicate", "-config", config)
	rep.Stdout, rep.Stderr = lsLogs, lsLogs
	if err := rep.Start(); err != nil {
		t.Fatal(err)
	}
	repDone := make(chan error, 1)
	go func() { repDone <- rep.Wait() }()
	stopReplication := func() {
		if rep.ProcessState == nil {
			_ = rep.Process.Signal(syscall.SIGTERM)
			select {
			case <-repDone:
			case <-time.After(30 * time.Second):
				_ = rep.Process.Kill()
				<-repDone
			}
		}
	}
	t.Cleanup(stopReplication)

	// Messages flow for a while; a create that fails for a database lock is retried, as a
	// clinic's app would, and counted.
	tok := a.staffToken()
	var ids []string
	lockFailures := 0
	start := time.Now()
	for i := 0; time.Since(start) < 20*time.Second; i++ {
		id, err := tryCreate(a, tok, map[string]any{"channel": "sms", "to": fmt.Sprintf("0504%06d", i), "body": fmt.Sprintf("Replicated message %d", i)})
		if err != nil {
			lockFailures++
			t.Logf("create failed while replicating (retried): %v", err)
			continue
		}
		ids = append(ids, id)
		time.Sleep(20 * time.Millisecond) // the load: a clinic's app creating at its own pace for 20s
	}
	t.Logf("%d messages created in 20s with Litestream replicating; %d creates failed", len(ids), lockFailures)

	// The replica catches up within seconds: restore until the last message is in it.
	last := ids[len(ids)-1]
	acked := time.Now()
	caughtUp := poll(30*time.Second, 200*time.Millisecond, func() bool {
		out := filepath.Join(t.TempDir(), "probe.db")
		if o, err := exec.Command(ls, "restore", "-o", out, "file://"+replica).CombinedOutput(); err != nil {
			t.Fatalf("litestream restore: %v: %s", err, o)
		}
		return hasMessage(t, out, last)
	})
	if !caughtUp {
		t.Fatalf("the replica lacks the last message 30s after it was acknowledged\n%s", lsLogs)
	}
	t.Logf("the replica had the last message %v after it was acknowledged", time.Since(acked).Round(100*time.Millisecond))

	// The VM dies: no graceful stop, messages mid-send.
	_ = a.cmd.Process.Kill()
	<-a.exited
	stopReplication()

	// The new VM: restore the replica into an empty folder and serve it.
	restored := filepath.Join(t.TempDir(), "clinicmsg")
	if out, err := exec.Command(ls, "restore", "-o", filepath.Join(restored, "data.db"), "file://"+replica).CombinedOutput(); err != nil {
		t.Fatalf("litestream restore: %v: %s", err, out)
	}
	if out, err := exec.Command(bin, "migrate", "up", "--dir", restored).CombinedOutput(); err != nil {
		t.Fatalf("migrate up on the restored folder: %v: %s", err, out)
	}
	b := serveDataDir(t, restored)
	passwordToken(b, "_superusers", "admin@clinic.example", "a-long-password-1")
	staff := passwordToken(b, "users", "desk@alnoor.example", "desk-password-1")

	// Every message is there and reaches a final status. Delivery reports the dead process
	// was waiting for are gone with it; refresh asks the provider (the
	// update-message-statuses job does the same within minutes).
	var pending []string
	deadline := time.Now().Add(30 * time.Second)
	for _, id := range ids {
		var s string
		if !poll(time.Until(deadline), 50*time.Millisecond, func() bool {
			s = b.call("GET", "/api/collections/messages/records/"+id, staff, nil, 200)["status"].(string)
			return s == "delivered" || s == "sent"
		}) {
			t.Fatalf("message %s is %s after the restore\n%s", id, s, b.logs)
		}
		if s == "sent" {
			pending = append(pending, id)
		}
	}
	for _, id := range pending {
		b.call("POST", "/api/clinicmsg/messages/"+id+"/refresh", staff, nil, 200)
		b.waitStatus(staff, id, "delivered", 10*time.Second)
	}
	t.Logf("all %d messages delivered after the restore (%d brought up to date by refresh)", len(ids), len(pending))
	msg := b.call("POST", "/api/collections/messages/records", staff, map[string]any{"channel": "sms", "to": "0501239999", "body": "Sent after the restore."}, 200)
	b.waitStatus(staff, msg["id"].(string), "delivered", 10*time.Second)
}

// buildLitestream builds Litestream from the Go module proxy into bin/test, outside the
// temp folder like the appliance, or returns LITESTREAM_BIN.
func buildLitestream(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("LITESTREAM_BIN"); bin != "" {
		return bin
	}
	dir, err := filepath.Abs(filepath.Join("bin", "test"))
	if err != nil {
		t.Fatal(err)
	}
	install := exec.Command("go", "install", "github.com/benbjohnson/litestream/cmd/litestream@"+litestreamVersion)
	install.Env = append(os.Environ(), "GOBIN="+dir)
	install.Stdout, install.Stderr = os.Stderr, os.Stderr
	started := time.Now()
	if err := install.Run(); err != nil {
		t.Fatalf("failed to build Litestream %s: %v", litestreamVersion, err)
	}
	t.Logf("built Litestream %s in %v", litestreamVersion, time.Since(started).Round(time.Second))
	return filepath.Join(dir, "litestream")
}

// serveDataDir serves the binary on an existing data folder, as startAppliance does on a
// fresh one.
func serveDataDir(t *testing.T, dir string, env ...string) *appliance {
	t.Helper()
	return serveAt(t, freeAddr(t), dir, env...)
}

// noContent makes a superuser request that answers 204 (backup create and restore).
func noContent(t *testing.T, a *appliance, method, path, token, body string) {
	t.Helper()
	req, _ := http.NewRequest(method, a.client.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 204 {
		t.Fatalf("%s %s: expected 204, got %d: %s", method, path, res.StatusCode, raw)
	}
}

// passwordToken signs in to an auth collection and returns the token.
func passwordToken(a *appliance, collection, identity, password string) string {
	a.t.Helper()
	res := a.call("POST", "/api/collections/"+collection+"/auth-with-password", "", map[string]any{"identity": identity, "password": password}, 200)
	return res["token"].(string)
}

// tryCreate creates a message and returns an error instead of failing the test.
func tryCreate(a *appliance, tok string, body map[string]any) (string, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", a.client.base+"/api/collections/messages/records", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		return "", fmt.Errorf("%d: %s", res.StatusCode, raw)
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// hasMessage reports whether a restored data.db holds the message.
func hasMessage(t *testing.T, path, id string) bool {
	t.Helper()
	db, err := dbx.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.NewQuery("SELECT COUNT(*) FROM messages WHERE id = {:id}").Bind(dbx.Params{"id": id}).Row(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}
