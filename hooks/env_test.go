package hooks_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"clinicmsg/hooks"
	_ "clinicmsg/pb_migrations"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/apis"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tests"
	"github.com/pocketbase/pocketbase/tools/logger"
)

// templateDir is a data folder migrated once; every test app starts from a copy of it.
var templateDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "clinicmsg-template-")
	if err != nil {
		panic(err)
	}
	app, err := tests.NewTestAppWithConfig(core.BaseAppConfig{DataDir: dir, DBConnect: hooks.DBConnect})
	if err != nil {
		panic(err)
	}
	// NewTestAppWithConfig migrated a clone; seed it once (password hashing is slow) and
	// keep it as the template.
	templateDir = app.DataDir()
	if _, err := hooks.Register(app, testConfig()); err != nil {
		panic(err)
	}
	seedData(app)
	if err := app.ClearBootstrap(); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.RemoveAll(templateDir)
	os.Exit(code)
}

// testConfig makes every timer of the appliance short enough for tests.
func testConfig() hooks.Config {
	return hooks.Config{
		SweepInterval: 50 * time.Millisecond,
		RetryBackoff:  10 * time.Millisecond,
		// Long enough that a delivery report never overtakes the write of "sent" on a busy
		// machine, so audit trails have one order to assert.
		MockDeliverAfter: 250 * time.Millisecond,
		Lease:            2 * time.Second,
		SendTimeout:      2 * time.Second,
		ShutdownGrace:    2 * time.Second,
		// Most tests send the same text to the same number again and again; the duplicate
		// guard has its own test.
		DuplicateWindow: -1,
	}
}

// env is one appliance under test: a PocketBase test app with clinicmsg registered, served
// over real HTTP on loopback, with two clinics and their users.
type env struct {
	t       testing.TB
	app     *tests.TestApp
	svc     *hooks.Service
	srv     *httptest.Server
	clinicA *core.Record
	clinicB *core.Record
	tokens  map[string]string // staffA, adminA, appA, staffB, adminB, superuser
}

type envOption func(*hooks.Config)

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	return newEnvFrom(t, templateDir, opts...)
}

// newEnvFrom starts an appliance on a copy of dataDir, which holds the seeded clinics.
func newEnvFrom(t testing.TB, dataDir string, opts ...envOption) *env {
	t.Helper()
	return startEnv(t, dataDir, nil, opts...)
}

// newEnvLoggingQueries is newEnv with every SELECT the appliance runs passed to logQuery,
// installed before anything runs.
func newEnvLoggingQueries(t testing.TB, logQuery func(sql string)) *env {
	t.Helper()
	return startEnv(t, templateDir, func(app core.App) {
		for _, db := range []dbx.Builder{app.ConcurrentDB(), app.NonconcurrentDB()} {
			db.(*dbx.DB).QueryLogFunc = func(_ context.Context, _ time.Duration, q string, _ *sql.Rows, _ error) {
				logQuery(q)
			}
		}
	})
}

func startEnv(t testing.TB, dataDir string, before func(core.App), opts ...envOption) *env {
	t.Helper()
	app, err := tests.NewTestAppWithConfig(core.BaseAppConfig{DataDir: dataDir, DBConnect: hooks.DBConnect})
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(app)
	}
	// Listen first, so that providers can be told the public URL they call back on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.PublicURL = "http://" + ln.Addr().String()
	for _, o := range opts {
		o(&cfg)
	}
	svc, err := hooks.Register(app, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, app: app, svc: svc, tokens: map[string]string{}}
	e.loadSeed()
	e.serve(ln)
	// Maintenance jobs have their own tests; a cron tick must not change another test's data.
	app.Cron().Stop()
	t.Cleanup(e.close)
	return e
}

func (e *env) close() {
	if e.srv != nil {
		e.srv.Close()
		e.srv = nil
	}
	if e.app != nil {
		e.app.Cleanup() // fires OnTerminate: the dispatcher stops before the database closes
		e.app = nil
	}
}

// serve triggers OnServe as `clinicmsg serve` does (routes, middleware, dispatcher) and
// serves the router on a loopback port.
func (e *env) serve(ln net.Listener) {
	r, err := apis.NewRouter(e.app)
	if err != nil {
		e.t.Fatal(err)
	}
	se := &core.ServeEvent{App: e.app, Router: r}
	err = e.app.OnServe().Trigger(se, func(se *core.ServeEvent) error {
		mux, err := se.Router.BuildMux()
		if err != nil {
			return err
		}
		e.srv = httptest.NewUnstartedServer(mux)
		e.srv.Listener.Close()
		e.srv.Listener = ln
		e.srv.Start()
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

var seedUsers = []struct{ name, clinic, role string }{
	{"staffA", "Clinic A", "staff"}, {"adminA", "Clinic A", "admin"}, {"appA", "Clinic A", "app"},
	{"staffB", "Clinic B", "staff"}, {"adminB", "Clinic B", "admin"}, {"nobody", "", "staff"},
}

// seedData adds two clinics, their users and a superuser to a fresh data folder.
func seedData(app core.App) {
	// Email is refused until SMTP is set up; the test app's mailer records what is sent
	// instead of reaching this server.
	settings := app.Settings()
	settings.SMTP.Enabled, settings.SMTP.Host, settings.SMTP.Port = true, "127.0.0.1", 2525
	if err := app.Save(settings); err != nil {
		panic(err)
	}
	clinics := map[string]string{}
	for _, c := range []map[string]any{{"name": "Clinic A"}, {"name": "Clinic B", "default_language": "ar"}} {
		col, _ := app.FindCollectionByNameOrId("clinics")
		rec := core.NewRecord(col)
		rec.Load(c)
		if err := app.Save(rec); err != nil {
			panic(err)
		}
		clinics[rec.GetString("name")] = rec.Id
	}
	users, _ := app.FindCollectionByNameOrId("users")
	for _, u := range seedUsers {
		rec := core.NewRecord(users)
		rec.SetEmail(strings.ToLower(u.name) + "@example.com")
		rec.SetPassword("password123456")
		rec.Set("clinic", clinics[u.clinic])
		rec.Set("role", u.role)
		save := app.Save
		if u.clinic == "" {
			// An account of no clinic can no longer be saved (users are validated); it
			// stands for one left from before, which every route must still refuse.
			save = app.SaveNoValidate
		}
		if err := save(rec); err != nil {
			panic(err)
		}
	}
	if _, err := app.FindAuthRecordByEmail(core.CollectionNameSuperusers, "test@example.com"); err != nil {
		col, _ := app.FindCollectionByNameOrId(core.CollectionNameSuperusers)
		su := core.NewRecord(col)
		su.SetEmail("test@example.com")
		su.SetPassword("password123456")
		if err := app.Save(su); err != nil {
			panic(err)
		}
	}
}

// loadSeed finds the seeded clinics and signs every user in.
func (e *env) loadSeed() {
	e.t.Helper()
	var err error
	if e.clinicA, err = e.app.FindFirstRecordByData("clinics", "name", "Clinic A"); err != nil {
		e.t.Fatal(err)
	}
	if e.clinicB, err = e.app.FindFirstRecordByData("clinics", "name", "Clinic B"); err != nil {
		e.t.Fatal(err)
	}
	for _, u := range seedUsers {
		rec, err := e.app.FindAuthRecordByEmail("users", strings.ToLower(u.name)+"@example.com")
		if err != nil {
			e.t.Fatal(err)
		}
		if e.tokens[u.name], err = rec.NewAuthToken(); err != nil {
			e.t.Fatal(err)
		}
	}
	su, err := e.app.FindAuthRecordByEmail(core.CollectionNameSuperusers, "test@example.com")
	if err != nil {
		e.t.Fatal(err)
	}
	if e.tokens["superuser"], err = su.NewAuthToken(); err != nil {
		e.t.Fatal(err)
	}
}

// save creates a record through the app (hooks included), failing the test on error.
func (e *env) save(collection string, data map[string]any) *core.Record {
	e.t.Helper()
	rec, err := e.create(collection, data)
	if err != nil {
		e.t.Fatalf("failed to create %s: %v", collection, err)
	}
	return rec
}

func (e *env) create(collection string, data map[string]any) (*core.Record, error) {
	col, err := e.app.FindCollectionByNameOrId(collection)
	if err != nil {
		return nil, err
	}
	rec := core.NewRecord(col)
	rec.Load(data)
	if p, ok := data["password"].(string); ok {
		rec.SetPassword(p)
	}
	return rec, e.app.Save(rec)
}

// response is a decoded JSON answer.
type response struct {
	Status int
	Body   map[string]any
	Raw    string
}

func (r response) str(key string) string {
	v, _ := r.Body[key].(string)
	return v
}

// errorField returns the data key of a PocketBase error answer, if exactly one.
func (r response) errorFields() []string {
	data, _ := r.Body["data"].(map[string]any)
	var keys []string
	for k := range data {
		keys = append(keys, k)
	}
	return keys
}

func (e *env) do(method, path, who string, body any) response {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return e.roundTrip(req, who)
}

// roundTrip sends req as who (no token for "") and reads the JSON answer.
func (e *env) roundTrip(req *http.Request, who string) response {
	e.t.Helper()
	req.Header.Set("User-Agent", "clinicmsg-test/1.0")
	if who != "" {
		req.Header.Set("Authorization", e.tokens[who])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := response{Status: res.StatusCode, Raw: string(raw)}
	_ = json.Unmarshal(raw, &out.Body)
	return out
}

// requestLog waits until the log holds at least n entries whose URL contains one of
// paths, or 10 s have passed, and returns them as "status url", oldest first. The log must
// have been turned on. PocketBase writes its log in batches, a few seconds after the last
// entry; each check writes the batch at once instead of waiting for that.
func (e *env) requestLog(n int, paths ...string) []string {
	e.t.Helper()
	batch, ok := e.app.Logger().Handler().(*logger.BatchHandler)
	if !ok {
		e.t.Fatalf("expected PocketBase's batched log, got %T", e.app.Logger().Handler())
	}
	var got []string
	poll(10*time.Second, func() bool {
		// Blocking: the write is done when WriteAll returns, so the rows below are read after it.
		if err := batch.WriteAll(context.WithValue(context.Background(), logger.BlockKey, true)); err != nil {
			e.t.Fatalf("failed to write the request log: %v", err)
		}
		got = nil
		var rows []string
		if err := e.app.AuxDB().NewQuery("SELECT data FROM _logs ORDER BY created").Column(&rows); err != nil {
			e.t.Fatalf("failed to read the request log: %v", err)
		}
		for _, r := range rows {
			var d struct {
				URL    string `json:"url"`
				Status int    `json:"status"`
			}
			_ = json.Unmarshal([]byte(r), &d)
			for _, p := range paths {
				if strings.Contains(d.URL, p) {
					got = append(got, fmt.Sprint(d.Status, " ", d.URL))
					break
				}
			}
		}
		return len(got) >= n
	})
	return got
}

// doForm creates a record with a multipart form (as the admin UI does), its fields in
// PocketBase's @jsonPayload part.
func (e *env) doForm(path, who string, body any) response {
	e.t.Helper()
	payload, err := json.Marshal(body)
	if err != nil {
		e.t.Fatal(err)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if err := mw.WriteField("@jsonPayload", string(payload)); err != nil {
		e.t.Fatal(err)
	}
	mw.Close()
	req, err := http.NewRequest("POST", e.srv.URL+path, &buf)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return e.roundTrip(req, who)
}

// seedQueued stores n SMS messages of Clinic A, each to its own number, in one transaction
// through the create hooks, so that they are queued for the dispatcher.
func (e *env) seedQueued(n int) error {
	col, err := e.app.FindCollectionByNameOrId("messages")
	if err != nil {
		return err
	}
	return e.app.RunInTransaction(func(tx core.App) error {
		for i := range n {
			rec := core.NewRecord(col)
			rec.Load(map[string]any{"clinic": e.clinicA.Id, "channel": "sms", "to": fmt.Sprintf("0501%06d", i), "body": "x"})
			if err := tx.Save(rec); err != nil {
				return err
			}
		}
		return nil
	})
}

func (e *env) countMessages(filter string) int {
	e.t.Helper()
	n, err := e.app.CountRecords("messages")
	if filter != "" {
		recs, ferr := e.app.FindRecordsByFilter("messages", filter, "", 0, 0)
		n, err = int64(len(recs)), ferr
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return int(n)
}

func (e *env) message(id string) *core.Record {
	e.t.Helper()
	rec, err := e.app.FindRecordById("messages", id)
	if err != nil {
		e.t.Fatalf("message %s: %v", id, err)
	}
	return rec
}

// logEvents lists a message's audit trail in insertion order as "event:status".
func (e *env) logEvents(id string) []string {
	e.t.Helper()
	var rows []struct {
		Event  string `db:"event"`
		Status string `db:"status"`
	}
	err := e.app.DB().NewQuery("SELECT event, status FROM message_logs WHERE message = {:m} ORDER BY rowid").Bind(map[string]any{"m": id}).All(&rows)
	if err != nil {
		e.t.Fatal(err)
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Event + ":" + r.Status
	}
	return out
}

// waitStatus waits until the message reaches status.
func (e *env) waitStatus(id, status string, within time.Duration) *core.Record {
	e.t.Helper()
	var rec *core.Record
	if !poll(within, func() bool { rec = e.message(id); return rec.GetString("status") == status }) {
		e.t.Fatalf("message %s: expected status %s within %v, got %s (log %v)", id, status, within, rec.GetString("status"), e.logEvents(id))
	}
	return rec
}

// waitFor waits until cond holds, and fails the test naming what it waited for if it does
// not within the given time.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(within, cond) {
		t.Fatalf("waited %v for %s", within, what)
	}
}

// poll checks cond until it holds or within has passed, and reports whether it held. It is
// the one place the package's tests sleep while they wait for something to happen; a
// caller that has more to say than waitFor about a condition that never held (the last
// values it saw) uses poll and fails on its own.
func poll(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

func must(t testing.TB, cond bool, format string, args ...any) {
	t.Helper()
	if !cond {
		t.Fatalf(format, args...)
	}
}

var _ = fmt.Sprint

func mustFind(t testing.TB, e *env, filter string) []*core.Record {
	t.Helper()
	recs, err := e.app.FindRecordsByFilter("messages", filter, "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}
