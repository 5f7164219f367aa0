package reliability

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"clinicmsg/internal/loopback"

	_ "modernc.org/sqlite" // the driver PocketBase itself uses, to check the data files
)

// The harness runs the real clinicmsg binary as a child process on a data folder that
// outlives the process, so that a test can kill it (SIGKILL or SIGTERM) and start it again
// on the same folder, as systemd would. It knows only the public contract: HTTP, the CLI
// and the environment variables.

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// binary builds clinicmsg once per test run into bin/reliability/ at the module root: not
// under the temp folder, where PocketBase would take it for `go run` and turn dev mode on.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		bin := filepath.Join(root, "bin", "reliability", "clinicmsg")
		cmd := exec.Command("go", "build", "-o", bin, ".")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("failed to build clinicmsg: %v\n%s", err, out)
			return
		}
		builtBin = bin
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

const (
	suEmail    = "ops@clinic.example"
	suPassword = "a-long-password-1"
)

// appliance is one data folder and the clinicmsg process serving it, if any.
type appliance struct {
	t    testing.TB
	bin  string
	dir  string
	addr string
	env  []string
	api  *client

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan error
	logs    *lockedBuffer // every run's stdout and stderr, in order
	logFrom int           // where the current run's output starts in logs
	starts  int
}

// newAppliance prepares a data folder (dir, or a fresh temp folder when empty) with a
// superuser, on a fixed loopback address so that restarts keep the public URL.
func newAppliance(t testing.TB, dir string, env ...string) *appliance {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	a := &appliance{t: t, bin: binary(t), dir: dir, addr: freeAddr(t), env: env, logs: &lockedBuffer{}}
	a.api = &client{base: "http://" + a.addr, http: &http.Client{Timeout: 30 * time.Second}}
	if out, err := a.command("superuser", "upsert", suEmail, suPassword).CombinedOutput(); err != nil {
		t.Fatalf("failed to create the superuser: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if a.running() {
			a.kill()
		}
	})
	return a
}

// command is a clinicmsg CLI command on the appliance's data folder and environment.
func (a *appliance) command(args ...string) *exec.Cmd {
	cmd := exec.Command(a.bin, append(args, "--dir", a.dir)...)
	cmd.Env = append(os.Environ(), a.env...)
	return cmd
}

// start starts `clinicmsg serve` and returns at once; use waitHealthy or probe to wait.
func (a *appliance) start() {
	a.t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd != nil {
		a.t.Fatal("the appliance is already running")
	}
	a.starts++
	fmt.Fprintf(a.logs, "\n=== start %d at %s ===\n", a.starts, time.Now().UTC().Format(time.RFC3339Nano))
	a.logFrom = a.logs.Len()
	cmd := a.command("serve", "--http", a.addr)
	cmd.Stdout, cmd.Stderr = a.logs, a.logs
	if err := cmd.Start(); err != nil {
		a.t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	a.cmd, a.exited = cmd, exited
}

func (a *appliance) running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cmd != nil
}

// poll checks cond every interval until it holds or within has passed, and reports whether
// it held. It is the one place these suites sleep while they wait for something to happen;
// the interval suits what is asked: an atomic counter in this process can be read every few
// milliseconds, a request to the appliance every 100 or so.
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

// startHealthy starts the process and waits for /api/health.
func (a *appliance) startHealthy() {
	a.t.Helper()
	a.start()
	a.waitHealthy(20 * time.Second)
}

func (a *appliance) waitHealthy(within time.Duration) {
	a.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		// Only a process that printed its banner holds the port; before that, a health
		// answer could come from anyone else on the address.
		if a.logs.hasSince(a.logFrom, loopback.StartedBanner) {
			if st, _, err := a.api.do("GET", "/api/health", "", nil); err == nil && st == 200 {
				return
			}
		}
		select {
		case err := <-a.exited:
			a.t.Fatalf("clinicmsg exited while starting: %v\n%s", err, a.logs.tail(4000))
		case <-time.After(20 * time.Millisecond):
		}
	}
	a.t.Fatalf("clinicmsg did not become healthy within %v\n%s", within, a.logs.tail(4000))
}

// kill ends the process with SIGKILL, as a power cut to the process would.
func (a *appliance) kill() {
	a.t.Helper()
	a.mu.Lock()
	cmd, exited := a.cmd, a.exited
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	fmt.Fprintf(a.logs, "\n=== killed (SIGKILL) at %s ===\n", time.Now().UTC().Format(time.RFC3339Nano))
}

// stop sends SIGTERM and waits up to within for the process to exit; it returns how long
// the exit took and the process's exit error. A process still running after within is killed.
func (a *appliance) stop(within time.Duration) (time.Duration, error) {
	a.t.Helper()
	a.mu.Lock()
	cmd, exited := a.cmd, a.exited
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		return 0, nil
	}
	start := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		fmt.Fprintf(a.logs, "\n=== stopped (SIGTERM) in %v ===\n", time.Since(start))
		return time.Since(start), err
	case <-time.After(within):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		return time.Since(start), fmt.Errorf("clinicmsg did not exit within %v of SIGTERM", within)
	}
}

// superuserToken signs the superuser in.
func (a *appliance) superuserToken() string {
	a.t.Helper()
	res := a.api.must(a.t, "POST", "/api/collections/_superusers/auth-with-password", "", map[string]any{"identity": suEmail, "password": suPassword}, 200)
	return res["token"].(string)
}

// appClinic signs the superuser in, creates a clinic with one app user, and returns both
// tokens with the secrets a log scan must not find: the tokens and the provider's token.
func (a *appliance) appClinic(name, providerSecret string) (su, app string, sec *secrets) {
	a.t.Helper()
	su = a.superuserToken()
	_, users := a.addClinic(su, name, "app")
	app = users["app"].Token
	sec = newSecrets()
	sec.add("auth token", su, app)
	sec.add("provider secret", providerSecret)
	return su, app, sec
}

// clinicUser is a signed-in user of a clinic.
type clinicUser struct {
	ID, Email, Token string
}

// addClinic creates a clinic and one user per role given, and signs them in.
func (a *appliance) addClinic(suToken, name string, roles ...string) (string, map[string]clinicUser) {
	a.t.Helper()
	clinic := a.api.must(a.t, "POST", "/api/collections/clinics/records", suToken, map[string]any{"name": name}, 200)
	id := clinic["id"].(string)
	users := map[string]clinicUser{}
	for _, role := range roles {
		email := fmt.Sprintf("%s.%s@clinic.example", role, strings.ToLower(strings.ReplaceAll(name, " ", "")))
		u := a.api.must(a.t, "POST", "/api/collections/users/records", suToken, map[string]any{
			"email": email, "password": "user-password-1", "passwordConfirm": "user-password-1", "clinic": id, "role": role}, 200)
		auth := a.api.must(a.t, "POST", "/api/collections/users/auth-with-password", "", map[string]any{"identity": email, "password": "user-password-1"}, 200)
		users[role] = clinicUser{ID: u["id"].(string), Email: email, Token: auth["token"].(string)}
	}
	return id, users
}

// client speaks HTTP to the appliance.
type client struct {
	base string
	http *http.Client
}

// do sends a JSON request and returns the status and body; err is a transport error.
func (c *client) do(method, path, token string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	return res.StatusCode, raw, err
}

// must sends a request that has to answer want, and decodes the JSON object it answers.
func (c *client) must(t testing.TB, method, path, token string, body any, want int) map[string]any {
	t.Helper()
	st, raw, err := c.do(method, path, token, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if st != want {
		t.Fatalf("%s %s: expected %d, got %d: %.500s", method, path, want, st, raw)
	}
	out := map[string]any{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: %v: %.200s", method, path, err, raw)
		}
	}
	return out
}

// records lists every record of a collection matching filter (as the superuser), fields
// limited to fields, page by page.
func (c *client) records(t testing.TB, token, collection, filter, fields string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for page := 1; ; page++ {
		q := url.Values{"page": {fmt.Sprint(page)}, "perPage": {"1000"}, "skipTotal": {"1"}, "sort": {"created,id"}}
		if filter != "" {
			q.Set("filter", filter)
		}
		if fields != "" {
			q.Set("fields", fields)
		}
		res := c.must(t, "GET", "/api/collections/"+collection+"/records?"+q.Encode(), token, nil, 200)
		items, _ := res["items"].([]any)
		for _, it := range items {
			out = append(out, it.(map[string]any))
		}
		if len(items) < 1000 {
			return out
		}
	}
}

// count answers how many records of collection match filter.
func (c *client) count(t testing.TB, token, collection, filter string) int {
	t.Helper()
	q := url.Values{"perPage": {"1"}, "fields": {"id"}}
	if filter != "" {
		q.Set("filter", filter)
	}
	res := c.must(t, "GET", "/api/collections/"+collection+"/records?"+q.Encode(), token, nil, 200)
	return int(res["totalItems"].(float64))
}

func freeAddr(t testing.TB) string {
	t.Helper()
	return loopback.MustFreeAddr(t)
}

// lockedBuffer collects a process's output from two pipes at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

// hasSince reports whether s was written at or after offset from.
func (b *lockedBuffer) hasSince(from int, s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return from <= b.buf.Len() && bytes.Contains(b.buf.Bytes()[from:], []byte(s))
}

func (b *lockedBuffer) tail(n int) string {
	s := b.String()
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// proxy forwards HTTP to a target and counts what passes: the requests in flight, and how
// many got an answer or failed. drop, when set, answers 503 without forwarding (a webhook
// blackout). It sits between clinicmsg and the fake Twilio (sends in flight at a kill) and
// between the fake and clinicmsg (status callbacks lost while clinicmsg is down).
type proxy struct {
	URL      string
	srv      *http.Server
	inflight atomic.Int64
	served   atomic.Int64
	failed   atomic.Int64
	dropped  atomic.Int64
	drop     atomic.Bool
	last     atomic.Int64 // unix nanos of the last request seen
	match    func(*http.Request) bool
}

// newProxy starts a proxy to target on loopback; match picks the requests that are counted
// (nil: all).
func newProxy(t testing.TB, target string, match func(*http.Request) bool) *proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, ResponseHeaderTimeout: time.Minute}
	p := &proxy{match: match}
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		w.WriteHeader(http.StatusBadGateway)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.URL = "http://" + ln.Addr().String()
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		counted := p.match == nil || p.match(r)
		if !counted {
			rp.ServeHTTP(w, r)
			return
		}
		p.last.Store(time.Now().UnixNano())
		if p.drop.Load() {
			p.dropped.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		p.inflight.Add(1)
		defer p.inflight.Add(-1)
		sw := &statusWriter{ResponseWriter: w}
		rp.ServeHTTP(sw, r)
		if sw.status >= 200 && sw.status < 300 {
			p.served.Add(1)
		} else {
			p.failed.Add(1)
		}
	})}
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(func() { _ = p.srv.Close() })
	return p
}

// activeWithin reports whether a counted request arrived in the last d or is in flight.
func (p *proxy) activeWithin(d time.Duration) bool {
	return p.inflight.Load() > 0 || time.Since(time.Unix(0, p.last.Load())) < d
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// openDB opens one of the appliance's SQLite files read-only.
func openDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// integrityCheck runs PRAGMA integrity_check on a data file and returns its answer.
func integrityCheck(t testing.TB, path string) string {
	t.Helper()
	db := openDB(t, path)
	rows, err := db.Query("PRAGMA integrity_check")
	if err != nil {
		return "error: " + err.Error()
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return "error: " + err.Error()
		}
		lines = append(lines, s)
	}
	return strings.Join(lines, "; ")
}

// checks counts a suite's assertions, so that each suite reports "N passed, N failed".
type checks struct {
	t      testing.TB
	suite  string
	passed int
	failed int
}

func newChecks(t testing.TB, suite string) *checks {
	return &checks{t: t, suite: suite}
}

// check records one assertion; a failed one fails the test (and the run goes on).
func (c *checks) check(ok bool, format string, args ...any) bool {
	c.t.Helper()
	if ok {
		c.passed++
		return true
	}
	c.failed++
	c.t.Errorf("%s: "+format, append([]any{c.suite}, args...)...)
	return false
}

func (c *checks) summary() string {
	return fmt.Sprintf("%s: %d passed, %d failed", c.suite, c.passed, c.failed)
}

// record files the suite's figures with its check counts, and prints its summary.
func (c *checks) record(figures map[string]any) {
	c.t.Helper()
	figures["checks_passed"] = c.passed
	figures["checks_failed"] = c.failed
	if err := Record(c.suite, figures); err != nil {
		c.t.Errorf("failed to record figures: %v", err)
	}
	c.t.Log(c.summary())
	fmt.Println(c.summary())
}
