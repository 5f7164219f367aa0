package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestBinaryEndToEnd builds the clinicmsg binary, serves it on a fresh data folder as
// `make run` does, and drives it over HTTP knowing only the public contract: a staff
// user's message reaches "delivered" on the mock provider.
func TestBinaryEndToEnd(t *testing.T) {
	// Outside the temp folder: PocketBase treats binaries under it as `go run` (dev mode).
	bin, err := filepath.Abs(filepath.Join("bin", "test", "clinicmsg"))
	if err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("failed to build: %v", err)
	}

	dir := t.TempDir()
	if out, err := exec.Command(bin, "superuser", "upsert", "admin@clinic.example", "a-long-password-1", "--dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("failed to create the superuser: %v: %s", err, out)
	}

	addr := freeAddr(t)
	var logs bytes.Buffer
	srv := exec.Command(bin, "serve", "--http", addr, "--dir", dir)
	srv.Env = append(os.Environ(), "CLINICMSG_MOCK_DELIVER_AFTER=200ms")
	srv.Stdout, srv.Stderr = &logs, &logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	defer func() {
		if srv.ProcessState == nil {
			_ = srv.Process.Kill()
		}
	}()

	c := &client{base: "http://" + addr, t: t}
	c.waitHealthy()

	su := c.call("POST", "/api/collections/_superusers/auth-with-password", "", map[string]any{"identity": "admin@clinic.example", "password": "a-long-password-1"}, 200)
	suTok := su["token"].(string)
	clinic := c.call("POST", "/api/collections/clinics/records", suTok, map[string]any{"name": "Al Noor Clinic"}, 200)
	c.call("POST", "/api/collections/users/records", suTok, map[string]any{
		"email": "desk@alnoor.example", "password": "desk-password-1", "passwordConfirm": "desk-password-1",
		"clinic": clinic["id"], "role": "staff"}, 200)
	staff := c.call("POST", "/api/collections/users/auth-with-password", "", map[string]any{"identity": "desk@alnoor.example", "password": "desk-password-1"}, 200)
	tok := staff["token"].(string)

	msg := c.call("POST", "/api/collections/messages/records", tok, map[string]any{"channel": "sms", "to": "0501234567", "body": "Your appointment is tomorrow at 10:00."}, 200)
	if msg["status"] != "queued" || msg["to"] != "+966501234567" {
		t.Fatalf("expected a queued message to +966501234567, got %v", msg)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := c.call("GET", "/api/collections/messages/records/"+msg["id"].(string), tok, nil, 200)
		if got["status"] == "delivered" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("expected delivered within 10s, got %v\n%s", got["status"], logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	trail := c.call("GET", "/api/collections/message_logs/records?sort=created&filter=message='"+msg["id"].(string)+"'", tok, nil, 200)
	if n := trail["totalItems"].(float64); n != 4 {
		t.Fatalf("expected 4 audit rows, got %v", n)
	}

	// A graceful stop exits promptly.
	start := time.Now()
	_ = srv.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if time.Since(start) > 10*time.Second {
			t.Fatalf("shutdown took %v", time.Since(start))
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("clinicmsg did not exit within 10s of SIGTERM")
	}
	if bytes.Contains(logs.Bytes(), []byte("0501234567")) || bytes.Contains(logs.Bytes(), []byte("appointment is tomorrow")) {
		t.Fatalf("the process log must not contain phone numbers or message bodies")
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type client struct {
	base string
	t    *testing.T
}

func (c *client) waitHealthy() {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get(c.base + "/api/health")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatal("clinicmsg did not become healthy within 20s")
}

func (c *client) call(method, path, token string, body any, want int) map[string]any {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		c.t.Fatalf("%s %s: expected %d, got %d: %s", method, path, want, res.StatusCode, raw)
	}
	out := map[string]any{}
	if err := json.Unmarshal(raw, &out); err != nil {
		c.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
	}
	return out
}

var _ = fmt.Sprint
