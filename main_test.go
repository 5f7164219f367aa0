package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"clinicmsg/internal/loopback"
	"clinicmsg/providers/providertest"
)

// appliance is the clinicmsg binary serving a fresh data folder, as `make run` does.
type appliance struct {
	*client
	addr   string
	dir    string
	logs   *syncBuffer
	cmd    *exec.Cmd
	exited chan error
}

var builtBinary string

// testBuild is what buildBinary injects with -ldflags, as `make release` does, so that
// TestBinaryVersion finds each value where `--version` prints it.
var testBuild = struct{ version, commit, date string }{"v0.0.0-test", "0123456789ab", "2000-01-02T03:04:05Z"}

// buildBinary builds clinicmsg once per test run, outside the temp folder: PocketBase
// treats binaries under it as `go run`. CLINICMSG_BIN names a binary to test instead
// (`make test` passes the release binary from dist/).
func buildBinary(t *testing.T) string {
	t.Helper()
	if builtBinary != "" {
		return builtBinary
	}
	if release := os.Getenv("CLINICMSG_BIN"); release != "" {
		bin, err := filepath.Abs(release)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("CLINICMSG_BIN: %v", err)
		}
		builtBinary = bin
		return bin
	}
	bin, err := filepath.Abs(filepath.Join("bin", "test", "clinicmsg"))
	if err != nil {
		t.Fatal(err)
	}
	ldflags := "-X main.version=" + testBuild.version + " -X main.commit=" + testBuild.commit + " -X main.date=" + testBuild.date
	build := exec.Command("go", "build", "-ldflags", ldflags, "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("failed to build: %v", err)
	}
	builtBinary = bin
	return bin
}

// startAppliance serves the binary on a fresh data folder with a superuser, and returns a
// client that knows only the public contract.
func startAppliance(t *testing.T, env ...string) *appliance {
	return startApplianceAt(t, freeAddr(t), env...)
}

func startApplianceAt(t *testing.T, addr string, env ...string) *appliance {
	bin := buildBinary(t)
	dir := t.TempDir()
	if out, err := exec.Command(bin, "superuser", "upsert", "admin@clinic.example", "a-long-password-1", "--dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("failed to create the superuser: %v: %s", err, out)
	}
	return serveAt(t, addr, dir, env...)
}

// serveAt serves the binary on addr with the data folder dir.
func serveAt(t *testing.T, addr, dir string, env ...string) *appliance {
	t.Helper()
	return serveArgsAt(t, addr, dir, nil, env...)
}

// serveArgsAt is serveAt with more arguments for serve.
func serveArgsAt(t *testing.T, addr, dir string, args []string, env ...string) *appliance {
	t.Helper()
	a := &appliance{addr: addr, dir: dir, logs: &syncBuffer{}, exited: make(chan error, 1)}
	a.cmd = exec.Command(buildBinary(t), append([]string{"serve", "--http", addr, "--dir", dir}, args...)...)
	a.cmd.Env = append(append(os.Environ(), "CLINICMSG_MOCK_DELIVER_AFTER=200ms"), env...)
	a.cmd.Stdout, a.cmd.Stderr = a.logs, a.logs
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.exited <- a.cmd.Wait() }()
	t.Cleanup(func() {
		if a.cmd.ProcessState == nil {
			_ = a.cmd.Process.Kill()
			<-a.exited
		}
	})
	a.client = &client{base: "http://" + addr, t: t}
	// Only a process that printed its banner holds the port; before that, a health answer
	// could come from another test's server on the address.
	deadline := time.Now().Add(20 * time.Second)
	for !bytes.Contains(a.logs.Bytes(), []byte(loopback.StartedBanner)) {
		select {
		case err := <-a.exited:
			a.exited <- err
			t.Fatalf("clinicmsg exited while starting: %v\n%s", err, a.logs)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("clinicmsg did not start within 20s\n%s", a.logs)
		}
	}
	a.waitHealthy()
	return a
}

// syncBuffer collects a child's output while tests read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Bytes returns a copy of what was written so far.
func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func (b *syncBuffer) String() string { return string(b.Bytes()) }

// staffToken sets up a clinic and a staff user as a clinic's admin would, and signs in.
func (a *appliance) staffToken() string {
	su := a.call("POST", "/api/collections/_superusers/auth-with-password", "", map[string]any{"identity": "admin@clinic.example", "password": "a-long-password-1"}, 200)
	suTok := su["token"].(string)
	clinic := a.call("POST", "/api/collections/clinics/records", suTok, map[string]any{"name": "Al Noor Clinic"}, 200)
	a.call("POST", "/api/collections/users/records", suTok, map[string]any{
		"email": "desk@alnoor.example", "password": "desk-password-1", "passwordConfirm": "desk-password-1",
		"clinic": clinic["id"], "role": "staff"}, 200)
	staff := a.call("POST", "/api/collections/users/auth-with-password", "", map[string]any{"identity": "desk@alnoor.example", "password": "desk-password-1"}, 200)
	return staff["token"].(string)
}

func (a *appliance) waitStatus(tok, id, status string, within time.Duration) map[string]any {
	var got map[string]any
	if !poll(within, 50*time.Millisecond, func() bool {
		got = a.call("GET", "/api/collections/messages/records/"+id, tok, nil, 200)
		return got["status"] == status
	}) {
		a.t.Fatalf("expected %s within %v, got %v\n%s", status, within, got["status"], a.logs.String())
	}
	return got
}

// poll checks cond every interval until it holds or within has passed, and reports whether
// it held: the one place these tests sleep while they wait for the appliance.
func poll(within, every time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(every)
	}
	return true
}

// TestBinaryEndToEnd drives the built binary over HTTP knowing only the public contract:
// a staff user's message reaches "delivered" on the mock provider.
func TestBinaryEndToEnd(t *testing.T) {
	a := startAppliance(t)
	// The banner names the staff dashboard beside PocketBase's own addresses.
	if want := "Staff dashboard: http://" + a.addr + "/app/"; !strings.Contains(a.logs.String(), want) {
		t.Fatalf("expected the start-up banner to contain %q, got\n%s", want, a.logs)
	}
	health := "http://" + a.addr + "/api/health"
	if out, err := exec.Command(buildBinary(t), "healthcheck", "--url", health).CombinedOutput(); err != nil {
		t.Fatalf("expected healthcheck to pass on a serving appliance, got %v: %s", err, out)
	}
	tok := a.staffToken()
	msg := a.call("POST", "/api/collections/messages/records", tok, map[string]any{"channel": "sms", "to": "0501234567", "body": "Your appointment is tomorrow at 10:00."}, 200)
	if msg["status"] != "queued" || msg["to"] != "+966501234567" {
		t.Fatalf("expected a queued message to +966501234567, got %v", msg)
	}
	a.waitStatus(tok, msg["id"].(string), "delivered", 10*time.Second)
	trail := a.call("GET", "/api/collections/message_logs/records?sort=created&filter=message='"+msg["id"].(string)+"'", tok, nil, 200)
	if n := trail["totalItems"].(float64); n != 4 {
		t.Fatalf("expected 4 audit rows, got %v", n)
	}

	// A graceful stop exits promptly.
	start := time.Now()
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
		if time.Since(start) > 10*time.Second {
			t.Fatalf("shutdown took %v", time.Since(start))
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("clinicmsg did not exit within 10s of SIGTERM")
	}
	if bytes.Contains(a.logs.Bytes(), []byte("0501234567")) || bytes.Contains(a.logs.Bytes(), []byte("appointment is tomorrow")) {
		t.Fatalf("the process log must not contain phone numbers or message bodies")
	}
	if err := exec.Command(buildBinary(t), "healthcheck", "--url", health, "--timeout", "2s").Run(); exitCode(err) != 1 {
		t.Fatalf("expected healthcheck to exit 1 once the appliance stopped, got %v", err)
	}
}

// TestBinaryVersion: `--version` prints the version, commit and date that the build
// injected with -ldflags (`make release`), without a data folder.
func TestBinaryVersion(t *testing.T) {
	bin := buildBinary(t)
	cmd := exec.Command(bin, "--version")
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("--version: %v: %s", err, out)
	}
	m := regexp.MustCompile(`version (\S+) \(commit (\S+), built (\S+)\)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("expected version, commit and date, got %q", out)
	}
	if os.Getenv("CLINICMSG_BIN") == "" {
		if m[1] != testBuild.version || m[2] != testBuild.commit || m[3] != testBuild.date {
			t.Fatalf("expected %v, got %q", testBuild, out)
		}
	} else if m[1] == "dev" || m[2] == "unknown" || m[3] == "unknown" {
		t.Fatalf("expected a release binary to name its version, commit and date, got %q", out)
	}
	if entries, _ := os.ReadDir(cmd.Dir); len(entries) != 0 {
		t.Fatalf("--version must not create a data folder, found %v", entries)
	}
}

// TestBinaryRefusesToStart: serve exits 1 with the reason, and creates nothing, on a
// mistyped --dir or on Twilio credentials that twilio-go would refuse.
func TestBinaryRefusesToStart(t *testing.T) {
	scenarios := []struct {
		name string
		dir  func(t *testing.T) string
		env  []string
		want string
	}{
		{
			name: "a --dir that does not exist",
			dir:  func(t *testing.T) string { return filepath.Join(t.TempDir(), "pb_dta") },
			want: "data folder does not exist",
		},
		{
			name: "Twilio credentials that are not alphanumeric",
			dir:  func(t *testing.T) string { return t.TempDir() },
			env:  []string{"SMS_PROVIDER=twilio", "TWILIO_ACCOUNT_SID=AC-0123", "TWILIO_AUTH_TOKEN=secret", "TWILIO_FROM_NUMBER=+15005550006"},
			want: "account SID and auth token must be alphanumeric",
		},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			dir := s.dir(t)
			cmd := exec.Command(buildBinary(t), "serve", "--http", freeAddr(t), "--dir", dir)
			cmd.Env = append(os.Environ(), s.env...)
			done := make(chan struct{})
			timer := time.AfterFunc(20*time.Second, func() {
				select {
				case <-done:
				default:
					_ = cmd.Process.Kill()
				}
			})
			out, err := cmd.CombinedOutput()
			close(done)
			timer.Stop()
			if exitCode(err) != 1 || !strings.Contains(string(out), s.want) {
				t.Fatalf("expected exit code 1 and %q, got %v: %s", s.want, err, out)
			}
			if _, err := os.Stat(filepath.Join(dir, "data.db")); err == nil {
				t.Fatalf("serve must not create a database when it refuses to start")
			}
		})
	}
}

// TestBinaryServeInit: --init, or CLINICMSG_INIT=1, starts a new appliance in a folder
// that does not exist yet.
func TestBinaryServeInit(t *testing.T) {
	scenarios := []struct {
		name string
		args []string
		env  []string
	}{
		{name: "--init", args: []string{"--init"}},
		{name: "CLINICMSG_INIT=1", env: []string{"CLINICMSG_INIT=1"}},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "new", "pb_data")
			a := serveArgsAt(t, freeAddr(t), dir, s.args, s.env...)
			if _, err := os.Stat(filepath.Join(dir, "data.db")); err != nil {
				t.Fatalf("expected a new data folder: %v\n%s", err, a.logs)
			}
		})
	}
}

// TestBinaryDoctor: `clinicmsg doctor` reports each item as OK or MISSING with its fix,
// exits 1 while an essential item is missing, and never creates the data folder.
func TestBinaryDoctor(t *testing.T) {
	// Settings the test does not name are the defaults, whatever the environment holds.
	base := append(os.Environ(), "SMS_PROVIDER=", "WHATSAPP_PROVIDER=", "SMS_FALLBACK_PROVIDER=", "CLINICMSG_PUBLIC_URL=")
	scenarios := []struct {
		name     string
		dir      func(t *testing.T) string
		env      []string
		wantCode int
		want     []string // lines (regular expressions) the report must have
	}{
		{
			name:     "a folder that does not exist",
			dir:      func(t *testing.T) string { return filepath.Join(t.TempDir(), "pb_dta") },
			wantCode: 1,
			want:     []string{`MISSING\s+data folder\s+.*pb_dta does not exist`, `fix: .*serve --init --dir .*pb_dta`},
		},
		{
			name:     "a new, empty folder",
			dir:      func(t *testing.T) string { return t.TempDir() },
			wantCode: 1,
			want: []string{`OK\s+data folder\s+.*\(new`, `MISSING\s+superuser`, `fix: clinicmsg superuser upsert`,
				`MISSING\s+clinic\s`, `OK\s+SMS provider\s+mock`, `MISSING\s+public URL \(optional\)`,
				`MISSING\s+email \(SMTP\) \(optional\)`, `^2 essential item\(s\) missing`},
		},
		{
			name:     "Twilio credentials that are not alphanumeric",
			dir:      func(t *testing.T) string { return t.TempDir() },
			env:      []string{"SMS_PROVIDER=twilio", "TWILIO_ACCOUNT_SID=AC-0123", "TWILIO_AUTH_TOKEN=secret", "TWILIO_FROM_NUMBER=+15005550006"},
			wantCode: 1,
			want: []string{`OK\s+SMS provider\s+twilio`, `MISSING\s+Twilio credentials\s+.*must be alphanumeric`,
				`fix: .*letters and digits only`, `MISSING\s+serve starts\s+no: .*alphanumeric`},
		},
		{
			name: "an appliance with a superuser and a clinic",
			dir: func(t *testing.T) string {
				a := startAppliance(t)
				a.staffToken()
				return a.dir
			},
			env:      []string{"CLINICMSG_PUBLIC_URL=https://msg.clinic.example"},
			wantCode: 0,
			want: []string{`OK\s+data folder\s+.*\(existing\)`, `OK\s+superuser\s+1$`, `OK\s+clinic\s+1$`,
				`OK\s+public URL\s+https://msg.clinic.example`, `^Nothing essential is missing`},
		},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			dir := s.dir(t)
			_, statErr := os.Stat(dir)
			cmd := exec.Command(buildBinary(t), "doctor", "--dir", dir)
			cmd.Env = append(append([]string{}, base...), s.env...)
			out, err := cmd.Output()
			if code := exitCode(err); code != s.wantCode {
				t.Fatalf("expected exit code %d, got %d (%v)\n%s", s.wantCode, code, err, out)
			}
			for _, w := range s.want {
				if !regexp.MustCompile(`(?m)` + w).Match(out) {
					t.Fatalf("expected a line matching %q, got\n%s", w, out)
				}
			}
			if _, err := os.Stat(dir); (err == nil) != (statErr == nil) {
				t.Fatalf("doctor must not create or remove the data folder")
			}
			if statErr == nil && s.wantCode == 1 {
				if _, err := os.Stat(filepath.Join(dir, "data.db")); err == nil {
					t.Fatalf("doctor must not create a database in a new folder")
				}
			}
		})
	}
}

// exitCode is a finished command's exit code (-1 when it did not run or was killed).
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	return -1
}

// TestBinaryWithTwilio: configured by environment variables only, the binary sends through
// a Twilio fake on loopback with exactly one correct request, and a signed status callback
// moves the message to "delivered".
func TestBinaryWithTwilio(t *testing.T) {
	fake := providertest.NewTwilio(t)
	fake.SetAutoCallbacks(100 * time.Millisecond)
	addr := freeAddr(t)
	a := startApplianceAt(t, addr,
		"SMS_PROVIDER=twilio",
		"TWILIO_ACCOUNT_SID="+fake.AccountSID,
		"TWILIO_AUTH_TOKEN="+fake.AuthToken,
		"TWILIO_FROM_NUMBER=+15005550006",
		"TWILIO_API_URL="+fake.URL,
		"CLINICMSG_PUBLIC_URL=http://"+addr,
	)
	tok := a.staffToken()
	msg := a.call("POST", "/api/collections/messages/records", tok, map[string]any{"channel": "sms", "to": "+966 50 123 4567", "body": "Your results are ready."}, 200)
	got := a.waitStatus(tok, msg["id"].(string), "delivered", 10*time.Second)

	var sends []providertest.Request
	for _, r := range fake.Requests() {
		if r.Method == "POST" {
			sends = append(sends, r)
		}
	}
	if len(sends) != 1 {
		t.Fatalf("expected exactly one request to Twilio, got %d", len(sends))
	}
	f := sends[0].Form
	if f.Get("To") != "+966501234567" || f.Get("From") != "+15005550006" || f.Get("Body") != "Your results are ready." ||
		f.Get("StatusCallback") != "http://"+addr+"/api/clinicmsg/webhooks/twilio/status" {
		t.Fatalf("wrong request to Twilio: %v", f)
	}
	if got["provider"] != "twilio" || got["provider_message_id"] != fake.Messages()[0].Sid {
		t.Fatalf("expected the Twilio sid on the message, got %v", got)
	}
}

func freeAddr(t *testing.T) string {
	return loopback.MustFreeAddr(t)
}

type client struct {
	base string
	t    *testing.T
}

func (c *client) waitHealthy() {
	healthy := poll(20*time.Second, 50*time.Millisecond, func() bool {
		res, err := http.Get(c.base + "/api/health")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	if !healthy {
		c.t.Fatal("clinicmsg did not become healthy within 20s")
	}
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
