package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"clinicmsg/providers/providertest"
)

// The isolation and abuse suite runs one appliance with two clinics and checks every
// collection and every custom route for each kind of caller, then the tricks: filters and
// expands that reach into another clinic, realtime subscriptions to another clinic's
// records, writes to fields only clinicmsg may write, and forged, replayed, oversized and
// malformed webhooks. At the end, nothing it logged may hold a token, a secret, a phone
// number or a message body.

// callers, in the order of each expectation row.
var callers = []string{"anonymous", "staffA", "appA", "adminA", "staffB", "superuser"}

// Expectations per cell: "see" (200 and clinic A's record listed), "hide" (200 and not
// listed), or an HTTP status.
type row [6]string

const (
	see  = "see"
	hide = "hide"
)

func codes(s ...string) row { return row(s) }

// access is the expected answer of one collection for each caller and operation, from the
// API rules (pb_migrations) and docs/API.md "Who sees what".
type access struct {
	list, view, create, update, delete row
}

var (
	all403 = codes("403", "403", "403", "403", "403", "200")
	del403 = codes("403", "403", "403", "403", "403", "204")
)

var matrix = map[string]access{
	"clinics": {
		list: codes(hide, see, see, see, hide, see), view: codes("404", "200", "200", "200", "404", "200"),
		create: all403, update: codes("404", "404", "404", "200", "404", "200"), delete: del403},
	"users": {
		list: codes(hide, see, hide, see, hide, see), view: codes("404", "200", "404", "200", "404", "200"),
		create: all403, update: codes("404", "200", "404", "404", "404", "200"), delete: del403},
	"templates": {
		list: codes(hide, see, see, see, hide, see), view: codes("404", "200", "200", "200", "404", "200"),
		create: codes("401", "403", "403", "200", "403", "200"), update: codes("404", "404", "404", "200", "404", "200"),
		delete: codes("404", "404", "404", "204", "404", "204")},
	"preferences": {
		list: codes(hide, see, see, see, hide, see), view: codes("404", "200", "200", "200", "404", "200"),
		create: codes("401", "200", "200", "200", "403", "200"), update: codes("404", "404", "404", "200", "404", "200"),
		delete: codes("404", "404", "404", "204", "404", "204")},
	"messages": {
		list: codes(hide, see, see, see, hide, see), view: codes("404", "200", "200", "200", "404", "200"),
		create: codes("401", "200", "200", "200", "403", "200"), update: all403, delete: del403},
	"message_logs": {
		list: codes(hide, see, see, see, hide, see), view: codes("404", "200", "200", "200", "404", "200"),
		create: all403, update: all403, delete: del403},
	"campaigns": {
		list: codes(hide, see, see, see, hide, see), view: codes("404", "200", "200", "200", "404", "200"),
		create: codes("401", "200", "200", "200", "403", "200"), update: codes("404", "200", "200", "200", "404", "200"), delete: del403},
	"replies": {
		list: codes(hide, see, see, see, hide, see), view: codes("404", "200", "200", "200", "404", "200"),
		create: all403, update: all403, delete: del403},
	"app_events": {
		list: codes(hide, see, see, see, hide, see), view: codes("404", "200", "200", "200", "404", "200"),
		create: all403, update: all403, delete: del403},
	"job_runs": {
		list: codes("403", "403", "403", "403", "403", see), view: all403,
		create: all403, update: all403, delete: del403},
}

// isoEnv is the appliance and fixtures of the isolation suite.
type isoEnv struct {
	t        *testing.T
	c        *checks
	a        *appliance
	fake     *providertest.Twilio
	uni      *providertest.Unifonic
	clinicA  string
	clinicB  string
	tokens   map[string]string // caller -> Authorization header value ("" for anonymous)
	fixtures map[string]string // collection -> id of clinic A's record
	msgB     string
	phoneA   string // the number clinic A's message went to
	sec      *secrets
	seq      int
	mu       sync.Mutex
}

func (e *isoEnv) next() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seq++
	return e.seq
}

func (e *isoEnv) phone() string {
	n := fmt.Sprintf("+96653%07d", 1000000+e.next())
	e.sec.phone(n)
	return n
}

// createBody is a valid create of collection in clinic A, marked with mark.
func (e *isoEnv) createBody(collection, mark string) map[string]any {
	switch collection {
	case "clinics":
		return map[string]any{"name": "Clinic " + mark}
	case "users":
		return map[string]any{"email": mark + "@clinic.example", "password": "user-password-1", "passwordConfirm": "user-password-1", "clinic": e.clinicA, "role": "staff", "name": mark}
	case "templates":
		return map[string]any{"clinic": e.clinicA, "code": mark, "channel": "sms", "body_en": "Kestrel template " + mark}
	case "preferences":
		return map[string]any{"clinic": e.clinicA, "patient_id": mark, "phone": e.phone()}
	case "messages":
		return map[string]any{"clinic": e.clinicA, "channel": "sms", "to": e.phone(), "body": "Kestrel isolation " + mark, "idempotency_key": mark}
	case "message_logs":
		return map[string]any{"message": e.fixtures["messages"], "event": mark, "status": "sent"}
	case "campaigns":
		return map[string]any{"clinic": e.clinicA, "name": mark, "channel": "sms", "body": "Kestrel campaign " + mark, "recipients": []string{e.phone()}, "status": "draft"}
	case "replies":
		return map[string]any{"clinic": e.clinicA, "channel": "sms", "from": e.phone(), "body": "Kestrel reply " + mark, "provider": "test", "provider_message_id": mark}
	case "app_events":
		return map[string]any{"clinic": e.clinicA, "type": mark, "status": "failed"}
	case "job_runs":
		return map[string]any{"job": mark, "trigger": "test", "outcome": "ok"}
	}
	panic(collection)
}

// markFilter finds the record createBody(collection, mark) made.
func markFilter(collection, mark string) string {
	field := map[string]string{"clinics": "name", "users": "name", "templates": "code", "preferences": "patient_id", "messages": "idempotency_key",
		"message_logs": "event", "campaigns": "name", "replies": "provider_message_id", "app_events": "type", "job_runs": "job"}[collection]
	v := mark
	if collection == "clinics" {
		v = "Clinic " + mark
	}
	return fmt.Sprintf("%s=%q", field, v)
}

// updateField is a harmless field of each collection that an update sets to a marker.
var updateField = map[string]string{"clinics": "help_text_en", "users": "name", "templates": "body_en", "preferences": "opt_out_source",
	"messages": "patient_id", "message_logs": "error_code", "campaigns": "name", "replies": "to", "app_events": "last_error", "job_runs": "error"}

func TestIsolationAndAbuse(t *testing.T) {
	t.Parallel()
	e := setupIsolation(t)
	byKind := map[string]int{}
	t.Run("collections", func(t *testing.T) { byKind["collection_cells"] = e.collectionMatrix(t) })
	t.Run("routes", func(t *testing.T) { byKind["route_cells"] = e.routeMatrix(t) })
	t.Run("tricks", func(t *testing.T) { byKind["tricks"] = e.tricks(t) })
	t.Run("protected fields", func(t *testing.T) { byKind["protected_field_writes"] = e.protectedFields(t) })
	t.Run("realtime", func(t *testing.T) { byKind["realtime_subscriptions"] = e.realtime(t) })
	t.Run("webhooks", func(t *testing.T) { byKind["webhook_abuses"] = e.webhooks(t) })
	// Last: its health cells leave failing messages in the outbox, which the webhook
	// snapshots above would see change.
	t.Run("create rules", func(t *testing.T) { byKind["create_rule_cells"] = e.createRules(t) })
	cells := 0
	for _, n := range byKind {
		cells += n
	}

	_, err := e.a.stop(15 * time.Second)
	e.c.check(err == nil, "stop: %v", err)
	scanned, leaks := scanLogs(t, e.c, e.a, e.sec)
	e.c.record(map[string]any{"cells_checked": cells, "cells_by_kind": byKind, "collections": len(matrix), "callers": len(callers),
		"log_bytes_scanned": scanned, "log_leaks": len(leaks)})
}

func setupIsolation(t *testing.T) *isoEnv {
	fake := providertest.NewTwilio(t)
	fake.SetAutoCallbacks(50 * time.Millisecond)
	uni := providertest.NewUnifonic(t)
	appHook := http.NewServeMux()
	appHook.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	appSrv := &http.Server{Handler: appHook}
	appURL := "http://" + listen(t, appSrv)

	a := newAppliance(t, "")
	e := &isoEnv{t: t, c: newChecks(t, "isolation"), a: a, fake: fake, uni: uni, tokens: map[string]string{"anonymous": ""},
		fixtures: map[string]string{}, sec: newSecrets()}
	a.env = append(twilioEnv(fake, fake.URL, "http://"+a.addr),
		"SMS_FALLBACK_PROVIDER=unifonic", "UNIFONIC_APP_SID="+providertest.UnifonicAppSID, "UNIFONIC_SENDER_ID=ClinicA", "UNIFONIC_API_URL="+uni.URL,
		"CLINICMSG_WEBHOOK_SECRET=dlr-s3cret-0123456789", "CLINICMSG_APP_WEBHOOK_URL="+appURL, "CLINICMSG_APP_WEBHOOK_SECRET=app-s3cret-0123456789",
		"CLINICMSG_METRICS_TOKEN=metrics-s3cret-0123456789")
	e.sec.add("provider secret", fake.AuthToken, providertest.UnifonicAppSID)
	e.sec.add("webhook secret", "dlr-s3cret-0123456789", "app-s3cret-0123456789", "metrics-s3cret-0123456789")

	// A job run before serving, as an operator would.
	if out, err := a.command("jobs", "run", "check-integration-health").CombinedOutput(); err != nil {
		t.Fatalf("jobs run: %v: %s", err, out)
	}
	a.startHealthy()
	su := a.superuserToken()
	e.tokens["superuser"] = su
	// Batch requests are off by default; an operator may turn them on, and then every rule
	// must hold through them too (the batch tricks and the create rules rely on this).
	a.api.must(t, "PATCH", "/api/settings", su, map[string]any{"batch": map[string]any{"enabled": true, "maxRequests": 50}}, 200)
	var usersA, usersB map[string]clinicUser
	e.clinicA, usersA = a.addClinic(su, "Isolation A", "staff", "app", "admin")
	e.clinicB, usersB = a.addClinic(su, "Isolation B", "staff")
	e.tokens["staffA"], e.tokens["appA"], e.tokens["adminA"] = usersA["staff"].Token, usersA["app"].Token, usersA["admin"].Token
	e.tokens["staffB"] = usersB["staff"].Token
	for _, tok := range e.tokens {
		e.sec.add("auth token", tok)
	}
	api := a.api

	e.fixtures["clinics"] = e.clinicA
	e.fixtures["users"] = usersA["staff"].ID
	e.fixtures["templates"] = api.must(t, "POST", "/api/collections/templates/records", e.tokens["adminA"],
		map[string]any{"code": "a_reminder", "channel": "sms", "body_en": "Kestrel {{name}}, see you tomorrow"}, 200)["id"].(string)
	api.must(t, "POST", "/api/collections/templates/records", su, map[string]any{"code": "shared", "channel": "sms", "body_en": "Kestrel shared"}, 200)
	e.fixtures["preferences"] = api.must(t, "POST", "/api/collections/preferences/records", e.tokens["staffA"],
		map[string]any{"patient_id": "PA-1", "phone": e.phone()}, 200)["id"].(string)
	to := e.phone()
	e.phoneA = to
	msg := api.must(t, "POST", "/api/collections/messages/records", e.tokens["staffA"],
		map[string]any{"channel": "sms", "to": to, "body": "Kestrel A: your visit is tomorrow at 10:00", "category": "reminder"}, 200)
	e.fixtures["messages"] = msg["id"].(string)
	e.msgB = api.must(t, "POST", "/api/collections/messages/records", e.tokens["staffB"],
		map[string]any{"channel": "sms", "to": e.phone(), "body": "Kestrel B: your results are ready"}, 200)["id"].(string)
	e.fixtures["campaigns"] = api.must(t, "POST", "/api/collections/campaigns/records", e.tokens["staffA"],
		map[string]any{"name": "A draft", "channel": "sms", "body": "Kestrel draft", "recipients": []string{e.phone()}, "status": "draft"}, 200)["id"].(string)
	poll(20*time.Second, 50*time.Millisecond, func() bool {
		return api.must(t, "GET", "/api/collections/messages/records/"+e.fixtures["messages"], su, nil, 200)["status"] == "delivered"
	})
	logs := api.records(t, su, "message_logs", "message='"+e.fixtures["messages"]+"'", "id")
	e.fixtures["message_logs"] = logs[0]["id"].(string)
	// The patient answers the reminder: a reply, and an app event for the clinic's app.
	st := e.twilioPost(inboundPath, url.Values{"From": {to}, "To": {twilioFrom}, "Body": {"Kestrel yes"}, "MessageSid": {"SMin0001"}, "AccountSid": {fake.AccountSID}}, "sign", "")
	if st != 200 {
		t.Fatalf("inbound reply: %d", st)
	}
	e.fixtures["replies"] = api.records(t, su, "replies", "", "id")[0]["id"].(string)
	evs := api.records(t, su, "app_events", "", "id")
	if len(evs) == 0 {
		t.Fatal("expected an app event for the reply")
	}
	e.fixtures["app_events"] = evs[0]["id"].(string)
	e.fixtures["job_runs"] = api.records(t, su, "job_runs", "", "id")[0]["id"].(string)
	return e
}

// listen serves srv on a loopback port and returns its address.
func listen(t *testing.T, srv *http.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// get answers status and the decoded JSON object of a request.
func (e *isoEnv) call(method, path, caller string, body any) (int, map[string]any) {
	st, raw, err := e.a.api.do(method, path, e.tokens[caller], body)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	out := map[string]any{}
	_ = json.Unmarshal(raw, &out)
	return st, out
}

func itemIDs(res map[string]any) []string {
	var ids []string
	items, _ := res["items"].([]any)
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			ids = append(ids, fmt.Sprint(m["id"]))
		}
	}
	return ids
}

// exists asks as the superuser whether a record exists.
func (e *isoEnv) exists(collection, id string) bool {
	st, _, err := e.a.api.do("GET", "/api/collections/"+collection+"/records/"+id, e.tokens["superuser"], nil)
	if err != nil {
		// Not an answer: taken for "gone", it would pass a delete that was refused.
		e.t.Fatalf("failed to look %s %s up: %v", collection, id, err)
	}
	return st == 200
}

func (e *isoEnv) field(collection, id, name string) string {
	_, res := e.call("GET", "/api/collections/"+collection+"/records/"+id, "superuser", nil)
	return fmt.Sprint(res[name])
}

// collectionMatrix checks list, view, create, update and delete of every collection for
// every caller against matrix, and that a refused write changed nothing.
func (e *isoEnv) collectionMatrix(t *testing.T) int {
	cells := 0
	names := make([]string, 0, len(matrix))
	for n := range matrix {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, col := range names {
		exp := matrix[col]
		fixture := e.fixtures[col]
		for i, who := range callers {
			base := "/api/collections/" + col + "/records"
			// list
			st, res := e.call("GET", base+"?perPage=500", who, nil)
			switch want := exp.list[i]; want {
			case see, hide:
				listed := slices.Contains(itemIDs(res), fixture)
				e.c.check(st == 200 && listed == (want == see), "list %s as %s: expected 200 and %s clinic A's record, got %d (listed %v)", col, who, want, st, listed)
			default:
				e.c.check(fmt.Sprint(st) == want && len(itemIDs(res)) == 0, "list %s as %s: expected %s, got %d", col, who, want, st)
			}
			// view
			st, _ = e.call("GET", base+"/"+fixture, who, nil)
			e.c.check(fmt.Sprint(st) == exp.view[i], "view %s as %s: expected %s, got %d", col, who, exp.view[i], st)
			// create
			mark := fmt.Sprintf("iso-%s-%s-%d", strings.ReplaceAll(col, "_", ""), strings.ToLower(who), e.next())
			st, _ = e.call("POST", base, who, e.createBody(col, mark))
			made := e.a.api.count(t, e.tokens["superuser"], col, markFilter(col, mark))
			e.c.check(fmt.Sprint(st) == exp.create[i] && (made == 1) == (st == 200), "create %s as %s: expected %s, got %d (%d stored)", col, who, exp.create[i], st, made)
			// update a harmless field of clinic A's record
			f := updateField[col]
			before := e.field(col, fixture, f)
			st, _ = e.call("PATCH", base+"/"+fixture, who, map[string]any{f: mark})
			after := e.field(col, fixture, f)
			changed := after == mark
			e.c.check(fmt.Sprint(st) == exp.update[i] && changed == (st == 200), "update %s as %s: expected %s, got %d (changed %v)", col, who, exp.update[i], st, changed)
			if changed {
				e.call("PATCH", base+"/"+fixture, "superuser", map[string]any{f: before})
			}
			// delete a record of clinic A made for the purpose
			_, made2 := e.call("POST", base, "superuser", e.createBody(col, mark+"-del"))
			victim, _ := made2["id"].(string)
			if victim == "" {
				e.c.check(false, "failed to make a %s record to delete: %v", col, made2)
				continue
			}
			st, _ = e.call("DELETE", base+"/"+victim, who, nil)
			gone := !e.exists(col, victim)
			e.c.check(fmt.Sprint(st) == exp.delete[i] && gone == (st == 204), "delete %s as %s: expected %s, got %d (deleted %v)", col, who, exp.delete[i], st, gone)
			cells += 5
		}
	}
	return cells
}

// routeMatrix checks each custom route for each caller.
func (e *isoEnv) routeMatrix(t *testing.T) int {
	msgA, campA := e.fixtures["messages"], e.fixtures["campaigns"]
	routes := []struct {
		method, path string
		body         func() any
		want         row
		check        func(who string, res map[string]any) bool
	}{
		{"POST", "/api/clinicmsg/messages/" + msgA + "/retry", nil, codes("401", "400", "400", "400", "404", "400"), nil},
		{"POST", "/api/clinicmsg/messages/" + msgA + "/refresh", nil, codes("401", "200", "200", "200", "404", "200"), nil},
		{"POST", "/api/clinicmsg/messages/" + e.msgB + "/refresh", nil, codes("401", "404", "404", "404", "200", "200"), nil},
		{"POST", "/api/clinicmsg/preview", func() any { return map[string]any{"clinic": e.clinicA, "channel": "sms", "body": "Kestrel preview"} },
			codes("401", "200", "200", "200", "403", "200"), nil},
		{"POST", "/api/clinicmsg/send", func() any {
			return map[string]any{"clinic": e.clinicA, "channel": "sms", "to": e.phone(), "body": "Kestrel send route"}
		}, codes("401", "200", "200", "200", "403", "200"), nil},
		{"GET", "/api/clinicmsg/campaigns/" + campA + "/summary", nil, codes("401", "200", "200", "200", "404", "200"), nil},
		{"GET", "/api/clinicmsg/stats?clinic=" + e.clinicA, nil, codes("401", "200", "200", "200", "403", "200"), nil},
		{"GET", "/api/clinicmsg/stats", nil, codes("401", "200", "200", "200", "200", "400"), func(who string, res map[string]any) bool {
			return who == "superuser" || res["total"] != nil
		}},
		{"GET", "/api/clinicmsg/health", nil, codes("200", "200", "200", "200", "200", "200"), func(who string, res map[string]any) bool {
			_, detail := res["channels"]
			return detail == (who != "anonymous")
		}},
		{"GET", "/metrics", nil, codes("401", "401", "401", "401", "401", "200"), nil},
	}
	cells := 0
	for _, r := range routes {
		for i, who := range callers {
			var body any
			if r.body != nil {
				body = r.body()
			}
			st, res := e.call(r.method, r.path, who, body)
			ok := fmt.Sprint(st) == r.want[i]
			if ok && st == 200 && r.check != nil {
				ok = r.check(who, res)
			}
			e.c.check(ok, "%s %s as %s: expected %s, got %d: %v", r.method, r.path, who, r.want[i], st, res)
			cells++
		}
	}
	// The stats of clinic B's staff are clinic B's: A's message is not counted.
	_, res := e.call("GET", "/api/clinicmsg/stats", "staffB", nil)
	e.c.check(res["total"] == float64(1), "staff B's stats must count only clinic B's one message, got %v", res["total"])
	// The metrics token opens /metrics and nothing else.
	req, _ := http.NewRequest("GET", e.a.api.base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer metrics-s3cret-0123456789")
	resp, err := http.DefaultClient.Do(req)
	e.c.check(err == nil && resp.StatusCode == 200, "/metrics with the token: %v %v", resp, err)
	if resp != nil {
		resp.Body.Close()
	}
	st, _ := e.call("GET", "/api/collections/messages/records", "anonymous", nil)
	req, _ = http.NewRequest("GET", e.a.api.base+"/api/collections/messages/records", nil)
	req.Header.Set("Authorization", "Bearer metrics-s3cret-0123456789")
	resp, err = http.DefaultClient.Do(req)
	if err == nil {
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		e.c.check(st == 200 && len(itemIDs(out)) == 0, "the metrics token must not open the records API, got %d items", len(itemIDs(out)))
	}
	return cells + 3
}

// tricks tries to reach clinic A's records from clinic B (and as a guest) through list
// filters, relation paths, expands, field selection, hidden fields and the batch API.
func (e *isoEnv) tricks(t *testing.T) int {
	a := e.clinicA
	msgA := e.fixtures["messages"]
	aBody := "your visit is tomorrow" // a part of clinic A's message body, without the canary
	count := func(who, col, query string) (int, int, []string) {
		st, res := e.call("GET", "/api/collections/"+col+"/records?"+query, who, nil)
		raw, _ := json.Marshal(res)
		n := -1
		if v, ok := res["totalItems"].(float64); ok {
			n = int(v)
		}
		return st, n, []string{string(raw)}
	}
	q := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	noA := func(raw []string) bool {
		s := strings.Join(raw, "")
		return !strings.Contains(s, a) && !strings.Contains(s, msgA) && !strings.Contains(s, aBody)
	}
	cells := 0
	for _, who := range []string{"staffB", "anonymous"} {
		scenarios := []struct{ col, query string }{
			{"messages", q("filter", "clinic='"+a+"'")},
			{"messages", q("filter", "clinic='"+a+"' || clinic!=''")},
			{"messages", q("filter", "id='"+msgA+"'")},
			{"messages", q("expand", "clinic,campaign")},
			{"messages", q("fields", "*,expand.clinic.*", "expand", "clinic")},
			{"messages", q("filter", "clinic.name~'Isolation A'")},
			{"message_logs", q("filter", "message.clinic='"+a+"'")},
			{"message_logs", q("expand", "message,message.clinic")},
			{"message_logs", q("filter", "message='"+msgA+"'")},
			{"replies", q("expand", "message,clinic")},
			{"replies", q("filter", "message.body~'"+aBody+"'")},
			{"campaigns", q("filter", "clinic='"+a+"'")},
			{"preferences", q("filter", "clinic='"+a+"'")},
			{"templates", q("filter", "clinic='"+a+"'")},
			{"users", q("filter", "clinic='"+a+"'")},
			{"users", q("expand", "clinic")},
			{"app_events", q("filter", "clinic='"+a+"'")},
			{"clinics", q("filter", "id='"+a+"'")},
		}
		for _, s := range scenarios {
			st, _, raw := count(who, s.col, s.query)
			e.c.check(st < 500 && noA(raw), "%s lists %s?%s: got %d with clinic A's data: %.300s", who, s.col, s.query, st, raw[0])
			cells++
		}
	}
	// @collection joins in a filter: no side channel on another clinic's rows. The answer
	// must be the same whether or not clinic A has a message with that body.
	for _, who := range []string{"staffB", "anonymous"} {
		for _, col := range []string{"templates", "messages", "campaigns"} {
			_, hit, _ := count(who, col, q("filter", "@collection.messages.body~'"+aBody+"'"))
			_, miss, _ := count(who, col, q("filter", "@collection.messages.body~'no such body at all'"))
			_, hit2, _ := count(who, col, q("filter", "@collection.messages.clinic='"+a+"'"))
			e.c.check(hit == miss && hit2 <= 0, "%s: an @collection filter on %s tells clinic A's rows apart (%d vs %d, %d)", who, col, hit, miss, hit2)
			cells++
		}
	}
	// An app looks its patient's messages up by number, as the API allows.
	st0, _ := e.call("GET", "/api/collections/messages/records?"+q("filter", "to='"+e.phoneA+"'"), "appA", nil)
	e.c.check(st0 == 200, "appA searching messages by number: %d", st0)
	// Hidden fields of users: never shown, never filterable or sortable by clinic users.
	_, res := e.call("GET", "/api/collections/users/records?"+q("fields", "*,password,tokenKey,passwordHash"), "adminA", nil)
	raw, _ := json.Marshal(res)
	e.c.check(!strings.Contains(string(raw), "tokenKey") && !strings.Contains(string(raw), "password"), "hidden user fields shown: %.300s", raw)
	for _, query := range []string{q("filter", "tokenKey!=''"), q("filter", "password!=''"), q("sort", "tokenKey")} {
		st, n, _ := count("adminA", "users", query)
		e.c.check(st == 400 || n <= 1, "users?%s as adminA must not filter on a hidden field: %d (%d items)", query, st, n)
		cells++
	}
	// Another clinic's users are not even countable.
	_, n, _ := count("adminA", "users", q("filter", "clinic='"+e.clinicB+"'"))
	e.c.check(n == 0, "admin A counts clinic B's users: %d", n)
	// The batch API cannot create in another clinic either.
	st, bres := e.call("POST", "/api/batch", "staffB", map[string]any{"requests": []any{map[string]any{
		"method": "POST", "url": "/api/collections/messages/records", "body": map[string]any{"clinic": a, "channel": "sms", "to": e.phone(), "body": "Kestrel batch", "idempotency_key": "iso-batch"}}}})
	made := e.a.api.count(t, e.tokens["superuser"], "messages", "idempotency_key='iso-batch'")
	e.c.check(st >= 400 && made == 0, "staff B's batch create in clinic A: %d %v (%d stored)", st, bres, made)
	return cells + 5
}

// protectedFields tries to write what only clinicmsg (or a superuser) may write.
func (e *isoEnv) protectedFields(t *testing.T) int {
	cells := 0
	serverOnly := map[string]any{"status": "delivered", "status_reason": "x", "provider": "twilio", "provider_message_id": "SMx", "attempts": 0,
		"next_attempt_at": "2030-01-01 00:00:00.000Z", "error_code": "1", "error_message": "x", "encoding": "gsm7", "segments": 1,
		"cost": 0, "currency": "USD", "sent_at": "2030-01-01 00:00:00.000Z", "delivered_at": "2030-01-01 00:00:00.000Z",
		"read_at": "2030-01-01 00:00:00.000Z", "reply_intent": "confirm"}
	for field, v := range serverOnly {
		for _, who := range []string{"staffA", "appA"} {
			mark := fmt.Sprintf("prot-%s-%d", field, e.next())
			body := map[string]any{"channel": "sms", "to": e.phone(), "body": "Kestrel protected", "idempotency_key": mark, field: v}
			st, res := e.call("POST", "/api/collections/messages/records", who, body)
			made := e.a.api.count(t, e.tokens["superuser"], "messages", "idempotency_key='"+mark+"'")
			data, _ := res["data"].(map[string]any)
			_, named := data[field]
			e.c.check(st == 400 && named && made == 0, "message create with %s as %s: expected 400 naming it, got %d %v (%d stored)", field, who, st, res, made)
			cells++
		}
	}
	campA := e.fixtures["campaigns"]
	for field, v := range map[string]any{"total": 9, "sent": 9, "delivered": 9, "cursor": 9, "result": map[string]any{}, "started_at": "2030-01-01 00:00:00.000Z",
		"recipients": []string{"+966500000000"}, "body": "changed", "channel": "whatsapp", "template": "x", "clinic": e.clinicB, "status": "done"} {
		before := e.field("campaigns", campA, field)
		st, _ := e.call("PATCH", "/api/collections/campaigns/records/"+campA, "staffA", map[string]any{field: v})
		after := e.field("campaigns", campA, field)
		e.c.check(st >= 400 && st < 500 && before == after, "campaign update of %s by staff A: expected a 4xx and no change, got %d (%s -> %s)", field, st, before, after)
		cells++
	}
	staffA := e.fixtures["users"]
	for field, v := range map[string]any{"role": "admin", "clinic": e.clinicB, "verified": true} {
		before := e.field("users", staffA, field)
		st, _ := e.call("PATCH", "/api/collections/users/records/"+staffA, "staffA", map[string]any{field: v})
		after := e.field("users", staffA, field)
		e.c.check(before == after && (st >= 400 || field == "verified"), "staff A sets own %s: %d (%s -> %s)", field, st, before, after)
		cells++
	}
	tplA, prefA := e.fixtures["templates"], e.fixtures["preferences"]
	for _, s := range []struct{ col, id string }{{"templates", tplA}, {"preferences", prefA}} {
		for _, clinic := range []string{e.clinicB, ""} {
			st, _ := e.call("PATCH", "/api/collections/"+s.col+"/records/"+s.id, "adminA", map[string]any{"clinic": clinic})
			after := e.field(s.col, s.id, "clinic")
			e.c.check(st >= 400 && st < 500 && after == e.clinicA, "admin A moves %s to clinic %q: %d, now in %s", s.col, clinic, st, after)
			cells++
		}
	}
	return cells
}

// sseStream is a realtime connection and the events it got.
type sseStream struct {
	clientID string
	mu       sync.Mutex
	events   []string
	cancel   context.CancelFunc
}

func (e *isoEnv) connect(t *testing.T, who string, topics []string) *sseStream {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", e.a.api.base+"/api/realtime", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	s := &sseStream{cancel: cancel}
	connected := make(chan string, 1)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var name, data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event:"):
				name = strings.TrimSpace(line[6:])
			case strings.HasPrefix(line, "data:"):
				data += strings.TrimSpace(line[5:])
			case line == "":
				if name == "PB_CONNECT" {
					var v struct{ ClientID string }
					_ = json.Unmarshal([]byte(data), &v)
					connected <- v.ClientID
				} else if name != "" {
					s.mu.Lock()
					s.events = append(s.events, name+" "+data)
					s.mu.Unlock()
				}
				name, data = "", ""
			}
		}
	}()
	select {
	case s.clientID = <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("no PB_CONNECT")
	}
	st, raw, err := e.a.api.do("POST", "/api/realtime", e.tokens[who], map[string]any{"clientId": s.clientID, "subscriptions": topics})
	e.c.check(err == nil && st == 204, "subscribe as %s: %d %v %s", who, st, err, raw)
	return s
}

func (s *sseStream) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string{}, s.events...)
}

// realtime subscribes clinic B's staff, and a guest, to everything of clinic A they can
// name, then makes clinic A's records change: nothing may arrive, while clinic A's own
// subscriber (the control) sees the changes.
func (e *isoEnv) realtime(t *testing.T) int {
	var topics []string
	for col, id := range e.fixtures {
		topics = append(topics, col, col+"/"+id)
	}
	topics = append(topics, "messages/*", "message_logs/*")
	spyB := e.connect(t, "staffB", topics)
	spyGuest := e.connect(t, "anonymous", topics)
	control := e.connect(t, "staffA", []string{"messages", "campaigns"})

	res := e.a.api.must(t, "POST", "/api/collections/messages/records", e.tokens["staffA"], map[string]any{"channel": "sms", "to": e.phone(), "body": "Kestrel realtime A"}, 200)
	newID := res["id"].(string)
	e.call("PATCH", "/api/collections/campaigns/records/"+e.fixtures["campaigns"], "staffA", map[string]any{"name": "A draft renamed"})
	e.call("PATCH", "/api/collections/messages/records/"+e.fixtures["messages"], "superuser", map[string]any{"patient_id": "P-realtime"})
	e.call("PATCH", "/api/collections/preferences/records/"+e.fixtures["preferences"], "adminA", map[string]any{"language": "ar"})
	poll(5*time.Second, 50*time.Millisecond, func() bool {
		return strings.Contains(strings.Join(control.got(), "\n"), newID) && len(control.got()) >= 3
	})
	// What proves the spies got nothing is time: the control has its events, and a second
	// more gives any event sent to a spy as long again to arrive.
	time.Sleep(time.Second)
	e.c.check(strings.Contains(strings.Join(control.got(), "\n"), newID), "the control subscriber (staff A) saw no event for its new message: %v", control.got())
	for name, s := range map[string]*sseStream{"staffB": spyB, "anonymous": spyGuest} {
		e.c.check(len(s.got()) == 0, "%s received clinic A's realtime events: %.500v", name, s.got())
	}
	return 2 * len(topics)
}

const (
	inboundPath = "/api/clinicmsg/webhooks/twilio/inbound"
	unifonicDLR = "/api/clinicmsg/webhooks/unifonic/"
)

// twilioPost posts a Twilio webhook: sign is "sign" (correct), "forge", "none" or "other"
// (correct for signedPath instead of path).
func (e *isoEnv) twilioPost(path string, params url.Values, sign, signedPath string) int {
	return e.rawPost(path, "application/x-www-form-urlencoded", params.Encode(), e.signature(path, params, sign, signedPath))
}

func (e *isoEnv) signature(path string, params url.Values, sign, signedPath string) string {
	base := "http://" + e.a.addr
	switch sign {
	case "sign":
		return providertest.TwilioSignature(e.fake.AuthToken, base+path, params)
	case "other":
		return providertest.TwilioSignature(e.fake.AuthToken, base+signedPath, params)
	case "forge":
		return providertest.TwilioSignature("0123456789abcdef0123456789abcdef", base+path, params)
	}
	return ""
}

func (e *isoEnv) rawPost(path, contentType, body, sig string) int {
	req, _ := http.NewRequest("POST", e.a.api.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if sig != "" {
		req.Header.Set("X-Twilio-Signature", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// webhooks sends forged, replayed, oversized and malformed callbacks: each is refused with a
// 4xx and changes nothing; a correctly signed callback for an unknown message is
// acknowledged and changes nothing.
func (e *isoEnv) webhooks(t *testing.T) int {
	msgB := e.msgB
	m := e.a.api.must(t, "GET", "/api/collections/messages/records/"+msgB, e.tokens["superuser"], nil, 200)
	sid := m["provider_message_id"].(string)
	poll(20*time.Second, 100*time.Millisecond, func() bool {
		return e.a.api.count(t, e.tokens["superuser"], "messages", "status='queued'||status='sending'||status='sent'") == 0
	})
	snapshot := func() string {
		msgs := e.a.api.records(t, e.tokens["superuser"], "messages", "", "id,status,updated")
		replies := e.a.api.count(t, e.tokens["superuser"], "replies", "")
		logs := e.a.api.count(t, e.tokens["superuser"], "message_logs", "")
		raw, _ := json.Marshal(msgs)
		return fmt.Sprintf("%s|%d|%d", raw, replies, logs)
	}
	// A status that would move the message back ("sent") or forward ("read") if accepted.
	read := url.Values{"MessageSid": {sid}, "MessageStatus": {"read"}, "AccountSid": {e.fake.AccountSID}, "To": {"+966500000000"}}
	big := url.Values{"MessageSid": {sid}, "MessageStatus": {"read"}, "Pad": {strings.Repeat("x", 100<<10)}}
	inbound := url.Values{"From": {"+966530000001"}, "Body": {"Kestrel STOP"}, "MessageSid": {"SMin-abuse"}}
	uniDLR := `{"MessageID":"999","CorrelationID":"` + msgB + `","DLR":"Undeliverable"}`
	scenarios := []struct {
		name string
		send func() int
		want func(int) bool
	}{
		{"status, no signature", func() int { return e.twilioPost(statusPath, read, "none", "") }, is4xx},
		{"status, forged signature", func() int { return e.twilioPost(statusPath, read, "forge", "") }, is4xx},
		{"status, signed for the inbound URL", func() int { return e.twilioPost(statusPath, read, "other", inboundPath) }, is4xx},
		{"status, signed for another host", func() int {
			return e.rawPost(statusPath, "application/x-www-form-urlencoded", read.Encode(), providertest.TwilioSignature(e.fake.AuthToken, "https://evil.example"+statusPath, read))
		}, is4xx},
		{"status, signed, replayed to another query", func() int {
			return e.rawPost(statusPath+"?replay=1", "application/x-www-form-urlencoded", read.Encode(), e.signature(statusPath, read, "sign", ""))
		}, is4xx},
		{"status, signed, one parameter changed", func() int {
			sig := e.signature(statusPath, read, "sign", "")
			changed := url.Values{"MessageSid": {sid}, "MessageStatus": {"failed"}, "AccountSid": {e.fake.AccountSID}, "To": {"+966500000000"}}
			return e.rawPost(statusPath, "application/x-www-form-urlencoded", changed.Encode(), sig)
		}, is4xx},
		{"status, signed, oversized body", func() int { return e.twilioPost(statusPath, big, "sign", "") }, is4xx},
		{"status, bad percent-encoding", func() int {
			return e.rawPost(statusPath, "application/x-www-form-urlencoded", "MessageSid=%zz&MessageStatus=read", "c2lnbmF0dXJl")
		}, is4xx},
		{"status, semicolons", func() int {
			return e.rawPost(statusPath, "application/x-www-form-urlencoded", "MessageSid="+sid+";MessageStatus=read", "c2lnbmF0dXJl")
		}, is4xx},
		{"status, JSON instead of a form", func() int {
			return e.rawPost(statusPath, "application/json", `{"MessageSid":"`+sid+`","MessageStatus":"read"}`, e.signature(statusPath, url.Values{}, "sign", ""))
		}, is4xx},
		{"status, invalid UTF-8, forged", func() int {
			return e.rawPost(statusPath, "application/x-www-form-urlencoded", "MessageSid=%ff%fe&MessageStatus=read", "c2lnbmF0dXJl")
		}, is4xx},
		{"inbound, forged signature", func() int { return e.twilioPost(inboundPath, inbound, "forge", "") }, is4xx},
		{"inbound, signed for the status URL", func() int { return e.twilioPost(inboundPath, inbound, "other", statusPath) }, is4xx},
		{"unifonic, wrong secret", func() int { return e.rawPost(unifonicDLR+"wrong-secret", "application/json", uniDLR, "") }, is4xx},
		{"unifonic, no secret", func() int { return e.rawPost(unifonicDLR, "application/json", uniDLR, "") }, is4xx},
		{"unifonic, secret prefix only", func() int { return e.rawPost(unifonicDLR+"dlr-s3cret", "application/json", uniDLR, "") }, is4xx},
		{"unifonic, malformed JSON", func() int {
			return e.rawPost(unifonicDLR+"dlr-s3cret-0123456789", "application/json", `{"MessageID":`, "")
		}, is4xx},
		{"unifonic, names no message", func() int {
			return e.rawPost(unifonicDLR+"dlr-s3cret-0123456789", "application/json", `{"DLR":"Delivered"}`, "")
		}, is4xx},
		{"status, signed, unknown sid", func() int {
			return e.twilioPost(statusPath, url.Values{"MessageSid": {"SM00000000000000000000000000000000"}, "MessageStatus": {"undelivered"}, "ErrorCode": {"30003"}}, "sign", "")
		}, is2xx},
		{"unifonic, right secret, unknown message", func() int {
			return e.rawPost(unifonicDLR+"dlr-s3cret-0123456789", "application/json", `{"MessageID":"424242","DLR":"Undeliverable"}`, "")
		}, is2xx},
	}
	cells := 0
	for _, s := range scenarios {
		before := snapshot()
		st := s.send()
		after := snapshot()
		e.c.check(s.want(st) && before == after, "webhook %s: got %d, changed %v", s.name, st, before != after)
		cells++
	}
	return cells
}

func is4xx(st int) bool { return st >= 400 && st < 500 }
func is2xx(st int) bool { return st >= 200 && st < 300 }

// answer is what a create path answered: the status (for /api/batch and the send route,
// the status of the one request inside), the error's data or the stored record, and the
// raw answer.
type answer struct {
	status int
	body   map[string]any
	raw    string
}

// names reports whether a refusal named field: the error's data holds it (PocketBase's
// error shape), or, for /api/batch, whose refusal nests the request's answer, the answer
// mentions it.
func (a answer) names(field string, batch bool) bool {
	if batch {
		return strings.Contains(a.raw, `"`+field+`"`)
	}
	data, _ := a.body["data"].(map[string]any)
	_, ok := data[field]
	return ok
}

// form sends body as a multipart form, as the admin UI does: every field in @jsonPayload.
func (e *isoEnv) form(method, path, caller string, body map[string]any) answer {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	payload, _ := json.Marshal(body)
	_ = w.WriteField("@jsonPayload", string(payload))
	_ = w.Close()
	req, _ := http.NewRequest(method, e.a.api.base+path, &buf)
	req.Header.Set("Content-Type", w.FormDataContentType())
	if tok := e.tokens[caller]; tok != "" {
		req.Header.Set("Authorization", tok)
	}
	resp, err := e.a.api.http.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s (form): %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	_ = json.Unmarshal(raw, &out)
	return answer{resp.StatusCode, out, string(raw)}
}

// batch sends one request through /api/batch and answers that request's status: a refused
// batch nests it in data.requests.
func (e *isoEnv) batch(method, path, caller string, body map[string]any) answer {
	st, raw, err := e.a.api.do("POST", "/api/batch", e.tokens[caller], map[string]any{"requests": []any{
		map[string]any{"method": method, "url": path, "body": body}}})
	if err != nil {
		e.t.Fatalf("batch %s %s: %v", method, path, err)
	}
	if st == 200 {
		var items []map[string]any
		_ = json.Unmarshal(raw, &items)
		if len(items) == 1 {
			rec, _ := items[0]["body"].(map[string]any)
			return answer{int(items[0]["status"].(float64)), rec, string(raw)}
		}
		return answer{st, nil, string(raw)}
	}
	out := map[string]any{}
	_ = json.Unmarshal(raw, &out)
	data, _ := out["data"].(map[string]any)
	reqs, _ := data["requests"].(map[string]any)
	if first, ok := reqs["0"].(map[string]any); ok {
		if inner, ok := first["response"].(map[string]any); ok {
			if s, ok := inner["status"].(float64); ok {
				return answer{int(s), inner, string(raw)}
			}
		}
	}
	return answer{st, out, string(raw)}
}

// recordPath is one way a client writes a record: method and path come from the caller of
// send (a record route, /records or /records/{id}).
type recordPath struct {
	name string
	send func(e *isoEnv, method, path, caller string, body map[string]any) answer
}

var recordPaths = []recordPath{
	{"json", func(e *isoEnv, m, p, who string, b map[string]any) answer {
		st, res := e.call(m, p, who, b)
		raw, _ := json.Marshal(res)
		return answer{st, res, string(raw)}
	}},
	{"multipart", func(e *isoEnv, m, p, who string, b map[string]any) answer { return e.form(m, p, who, b) }},
	{"expand", func(e *isoEnv, m, p, who string, b map[string]any) answer {
		st, res := e.call(m, p+"?expand=clinic", who, b)
		raw, _ := json.Marshal(res)
		return answer{st, res, string(raw)}
	}},
	{"fields", func(e *isoEnv, m, p, who string, b map[string]any) answer {
		st, res := e.call(m, p+"?fields=id", who, b)
		raw, _ := json.Marshal(res)
		return answer{st, res, string(raw)}
	}},
	{"batch", func(e *isoEnv, m, p, who string, b map[string]any) answer { return e.batch(m, p, who, b) }},
}

// sendRoute creates one message through POST /api/clinicmsg/send, as an array of one, and
// answers that item's status and body.
func (e *isoEnv) sendRoute(who string, msg map[string]any) answer {
	st, raw, err := e.a.api.do("POST", "/api/clinicmsg/send", e.tokens[who], []any{msg})
	if err != nil {
		e.t.Fatalf("send: %v", err)
	}
	out := map[string]any{}
	_ = json.Unmarshal(raw, &out)
	items, _ := out["items"].([]any)
	if st != 200 || len(items) != 1 {
		return answer{st, out, string(raw)}
	}
	item := items[0].(map[string]any)
	body, _ := item["body"].(map[string]any)
	return answer{int(item["status"].(float64)), body, string(raw)}
}

// createRules runs the create rules of docs/SECURITY.md through every create path and
// every caller that matters: a message may not join another clinic's campaign and a
// template code resolves to the caller's clinic's own or a shared template (rows 13, 14),
// an unreadable send_at is a 400 naming it (row 16), a guest's create is a 401, only a
// superuser sets a clinic's senders and app webhook (rows 4, 5), only a clinic admin
// creates templates, and preview's prices and health's error rates are the caller's
// clinic's own (rows 8, 9). Each refusal must name its field (where the rule has one) and
// store or change nothing; each rule has an accepted control beside it.
func (e *isoEnv) createRules(t *testing.T) int {
	su := e.tokens["superuser"]
	api := e.a.api
	cells := 0
	stored := func(col, filter string) int { return api.count(t, su, col, filter) }

	// Fixtures: a draft campaign of clinic B; a template only clinic B has; one code both
	// clinics have, with different bodies.
	campA := e.fixtures["campaigns"]
	campB := api.must(t, "POST", "/api/collections/campaigns/records", e.tokens["staffB"],
		map[string]any{"name": "B draft", "channel": "sms", "body": "Kestrel B draft", "recipients": []string{e.phone()}, "status": "draft"}, 200)["id"].(string)
	api.must(t, "POST", "/api/collections/templates/records", su, map[string]any{"clinic": e.clinicB, "code": "iso_b_only", "channel": "sms", "body_en": "Kestrel B only"}, 200)
	api.must(t, "POST", "/api/collections/templates/records", su, map[string]any{"clinic": e.clinicB, "code": "iso_both", "channel": "sms", "body_en": "Kestrel B version"}, 200)
	api.must(t, "POST", "/api/collections/templates/records", e.tokens["adminA"], map[string]any{"code": "iso_both", "channel": "sms", "body_en": "Kestrel A version"}, 200)
	// The batch path is on: a valid batch create is stored (else every batch refusal
	// below would prove nothing).
	ctl := fmt.Sprintf("iso-rule-batchon-%d", e.next())
	res := e.batch("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": e.phone(), "body": "Kestrel batch control", "idempotency_key": ctl})
	e.c.check(res.status == 200 && stored("messages", "idempotency_key='"+ctl+"'") == 1, "a valid batch create by staff A must be stored: %d %.300s", res.status, res.raw)
	cells++

	// Messages: every path × every caller × every rule.
	msgPaths := append([]recordPath{}, recordPaths...)
	msgPaths = append(msgPaths, recordPath{"send", func(e *isoEnv, _, _, who string, b map[string]any) answer { return e.sendRoute(who, b) }})
	type msgCaller struct {
		who, clinic, otherCampaign, otherTemplate, ownVersion string
	}
	msgCallers := []msgCaller{
		{"staffA", "", campB, "iso_b_only", "Kestrel A version"},
		{"appA", "", campB, "iso_b_only", "Kestrel A version"},
		{"adminA", "", campB, "iso_b_only", "Kestrel A version"},
		{"staffB", "", campA, "a_reminder", "Kestrel B version"},
		{"superuser", e.clinicA, campB, "iso_b_only", "Kestrel A version"},
	}
	later := "2030-12-03T09:00:00+03:00" // a readable send_at: the accepted messages wait
	for _, c := range msgCallers {
		rules := []struct {
			name  string
			msg   map[string]any
			field string // "" for the accepted control
		}{
			{"another clinic's campaign", map[string]any{"body": "Kestrel rule", "campaign": c.otherCampaign}, "campaign"},
			{"another clinic's template", map[string]any{"template": c.otherTemplate, "context": map[string]any{"name": "x"}}, "template"},
			{"send_at in words", map[string]any{"body": "Kestrel rule", "send_at": "tomorrow"}, "send_at"},
			{"send_at without a zone", map[string]any{"body": "Kestrel rule", "send_at": "2030-12-03 09:00"}, "send_at"},
			{"a code both clinics have", map[string]any{"template": "iso_both", "send_at": later}, ""},
		}
		for _, r := range rules {
			for _, p := range msgPaths {
				mark := fmt.Sprintf("iso-rule-%s-%s-%d", strings.ToLower(c.who), p.name, e.next())
				msg := map[string]any{"channel": "sms", "to": e.phone(), "idempotency_key": mark}
				if c.clinic != "" {
					msg["clinic"] = c.clinic
				}
				for k, v := range r.msg {
					msg[k] = v
				}
				a := p.send(e, "POST", "/api/collections/messages/records", c.who, msg)
				filter := "idempotency_key='" + mark + "'"
				if r.field != "" {
					n := stored("messages", filter)
					e.c.check(a.status == 400 && a.names(r.field, p.name == "batch") && n == 0,
						"%s via %s as %s: expected 400 naming %s and nothing stored, got %d (%d stored): %.300s", r.name, p.name, c.who, r.field, a.status, n, a.raw)
				} else {
					recs := api.records(t, su, "messages", filter, "body,clinic,status")
					ok := a.status == 200 && len(recs) == 1 && recs[0]["body"] == c.ownVersion
					e.c.check(ok, "%s via %s as %s: expected 200 and %q stored, got %d %v: %.300s", r.name, p.name, c.who, c.ownVersion, a.status, recs, a.raw)
				}
				cells++
			}
		}
	}
	// A guest's create is a 401 on every path (batch: refused), and stores nothing.
	for _, p := range msgPaths {
		mark := fmt.Sprintf("iso-rule-anonymous-%s-%d", p.name, e.next())
		a := p.send(e, "POST", "/api/collections/messages/records", "anonymous",
			map[string]any{"clinic": e.clinicA, "channel": "sms", "to": e.phone(), "body": "Kestrel guest", "idempotency_key": mark})
		n := stored("messages", "idempotency_key='"+mark+"'")
		want := a.status == 401
		if p.name == "batch" {
			want = is4xx(a.status)
		}
		e.c.check(want && n == 0, "a guest's message create via %s: expected 401 and nothing stored, got %d (%d stored): %.300s", p.name, a.status, n, a.raw)
		cells++
	}
	// No message of clinic A joined clinic B's campaign, nor of B clinic A's.
	n := stored("messages", "campaign='"+campB+"' || campaign='"+campA+"'")
	e.c.check(n == 0, "campaigns of one clinic hold %d messages of the other", n)
	cells++

	// Templates: only a clinic admin (and a superuser) creates them; a guest is a 401.
	tplWant := map[string]int{"anonymous": 401, "staffA": 403, "appA": 403, "adminA": 200, "staffB": 403, "superuser": 200}
	for _, who := range callers {
		for _, p := range recordPaths {
			mark := fmt.Sprintf("iso-rule-tpl-%s-%s-%d", strings.ToLower(who), p.name, e.next())
			body := map[string]any{"code": mark, "channel": "sms", "body_en": "Kestrel template"}
			if who == "superuser" {
				body["clinic"] = e.clinicA
			}
			a := p.send(e, "POST", "/api/collections/templates/records", who, body)
			n := stored("templates", "code='"+mark+"'")
			want := tplWant[who]
			ok := a.status == want
			if p.name == "batch" && want != 200 {
				ok = is4xx(a.status)
			}
			if want == 403 && p.name != "batch" {
				msg, _ := a.body["message"].(string)
				ok = ok && strings.Contains(msg, "clinic admin")
			}
			e.c.check(ok && (n == 1) == (want == 200), "template create via %s as %s: expected %d, got %d (%d stored): %.300s", p.name, who, want, a.status, n, a.raw)
			cells++
		}
	}

	// A clinic's senders and app webhook: a superuser's alone, on every path, for create
	// and update, whoever of the clinics asks.
	assigned := map[string]any{"sms_sender": "+15005550199", "whatsapp_sender": "whatsapp:+15005550199",
		"app_webhook_url": "https://evil.example/hook", "app_webhook_secret": "iso-guessed-secret"}
	// Clinic A as a superuser reads it: the hidden secret included (a state without it
	// would prove nothing about the secret).
	clinicState := func() string {
		rec := api.must(t, "GET", "/api/collections/clinics/records/"+e.clinicA, su, nil, 200)
		if _, ok := rec["app_webhook_secret"]; !ok {
			t.Fatalf("a superuser's view of clinic A lacks app_webhook_secret: %v", rec)
		}
		return fmt.Sprintf("%q %q %q %q %q", rec["name"], rec["sms_sender"], rec["whatsapp_sender"], rec["app_webhook_url"], rec["app_webhook_secret"])
	}
	before := clinicState()
	// restore undoes what a write that should have been refused changed, so that one
	// failure does not fail every cell after it.
	restore := func() {
		api.must(t, "PATCH", "/api/collections/clinics/records/"+e.clinicA, su, map[string]any{"name": "Isolation A",
			"sms_sender": "", "whatsapp_sender": "", "app_webhook_url": "", "app_webhook_secret": ""}, 200)
	}
	clinicPath := "/api/collections/clinics/records"
	for _, field := range []string{"sms_sender", "whatsapp_sender", "app_webhook_url", "app_webhook_secret"} {
		for _, who := range []string{"anonymous", "staffA", "appA", "adminA", "staffB"} {
			for _, p := range recordPaths {
				// Update clinic A: the field alone, and with a harmless change beside it
				// (which must not pass either).
				for _, body := range []map[string]any{{field: assigned[field]}, {field: assigned[field], "name": "Isolation A renamed"}} {
					a := p.send(e, "PATCH", clinicPath+"/"+e.clinicA, who, body)
					after := clinicState()
					ok := is4xx(a.status) && after == before
					if who != "anonymous" && p.name != "batch" {
						ok = ok && a.status == 403 && a.names(field, false)
					}
					e.c.check(ok, "clinic update of %s via %s as %s: expected 403 naming it and no change, got %d (%s -> %s): %.300s", field, p.name, who, a.status, before, after, a.raw)
					if after != before {
						restore()
					}
					cells++
				}
				// Create a clinic with it.
				mark := fmt.Sprintf("iso-rule-clinic-%s-%d", strings.ToLower(who), e.next())
				a := p.send(e, "POST", clinicPath, who, map[string]any{"name": mark, field: assigned[field]})
				n := stored("clinics", fmt.Sprintf("name=%q", mark))
				ok := is4xx(a.status) && n == 0
				if who != "anonymous" && p.name != "batch" {
					ok = ok && a.status == 403 && a.names(field, false)
				}
				e.c.check(ok, "clinic create with %s via %s as %s: expected 403 naming it and nothing stored, got %d (%d stored): %.300s", field, p.name, who, a.status, n, a.raw)
				cells++
			}
		}
	}
	// The control: a superuser assigns (and clears) clinic B's WhatsApp sender.
	st, _ := e.call("PATCH", clinicPath+"/"+e.clinicB, "superuser", map[string]any{"whatsapp_sender": "whatsapp:+15005550199"})
	got := e.field("clinics", e.clinicB, "whatsapp_sender")
	e.call("PATCH", clinicPath+"/"+e.clinicB, "superuser", map[string]any{"whatsapp_sender": ""})
	e.c.check(st == 200 && got == "whatsapp:+15005550199", "a superuser assigns clinic B's sender: %d, now %q", st, got)
	cells++

	cells += e.previewPrices(t)
	cells += e.healthRates(t)
	return cells
}

// previewPrices gives clinic B's message a price no other message has, then asks each
// caller for an estimate: only clinic B's callers (and a superuser asking for clinic B)
// may see it. A template code resolves there as on a create.
func (e *isoEnv) previewPrices(t *testing.T) int {
	api, su := e.a.api, e.tokens["superuser"]
	api.must(t, "PATCH", "/api/collections/messages/records/"+e.msgB, su, map[string]any{"cost": 0.37, "currency": "SAR", "segments": 1}, 200)
	cells := 0
	scenarios := []struct {
		who, clinic string
		wantB       bool // the estimate must be clinic B's price (else it must not be)
		version     string
	}{
		{"staffA", "", false, "Kestrel A version"},
		{"appA", "", false, "Kestrel A version"},
		{"adminA", "", false, "Kestrel A version"},
		{"staffB", "", true, "Kestrel B version"},
		{"superuser", e.clinicA, false, "Kestrel A version"},
		{"superuser", e.clinicB, true, "Kestrel B version"},
	}
	for _, s := range scenarios {
		body := map[string]any{"channel": "sms", "template": "iso_both"}
		if s.clinic != "" {
			body["clinic"] = s.clinic
		}
		st, res := e.call("POST", "/api/clinicmsg/preview", s.who, body)
		cost, _ := res["cost_estimate"].(map[string]any)
		isB := cost != nil && cost["per_segment"] == 0.37 && cost["currency"] == "SAR"
		e.c.check(st == 200 && isB == s.wantB && res["body"] == s.version, "preview as %s (clinic %q): expected B's price %v and %q, got %d %v", s.who, s.clinic, s.wantB, s.version, st, res)
		cells++
	}
	for _, who := range []string{"staffA", "appA", "adminA"} {
		st, res := e.call("POST", "/api/clinicmsg/preview", who, map[string]any{"channel": "sms", "template": "iso_b_only"})
		data, _ := res["data"].(map[string]any)
		_, named := data["template"]
		e.c.check(st == 400 && named, "preview of clinic B's template as %s: expected 400 naming template, got %d %v", who, st, res)
		cells++
	}
	st, _ := e.call("POST", "/api/clinicmsg/preview", "anonymous", map[string]any{"channel": "sms", "body": "Kestrel"})
	e.c.check(st == 401, "a guest's preview: %d", st)
	return cells + 1
}

// healthRates makes one clinic's messages fail on both SMS providers and asks /health as
// that clinic's staff and as another's. Two new clinics: health caches each clinic's
// figures for 30 s, and clinics A and B were asked moments ago.
func (e *isoEnv) healthRates(t *testing.T) int {
	api, su := e.a.api, e.tokens["superuser"]
	failing, usersF := e.a.addClinic(su, "Isolation Failing", "staff")
	_, usersQ := e.a.addClinic(su, "Isolation Quiet", "staff")
	e.tokens["staffF"], e.tokens["staffQ"] = usersF["staff"].Token, usersQ["staff"].Token
	e.sec.add("auth token", e.tokens["staffF"], e.tokens["staffQ"])
	var batch []any
	for range 6 {
		to := e.phone()
		e.fake.ReplyToNumber(to, providertest.TwilioServerError())
		e.uni.ReplyToNumber(to, providertest.HTMLUnavailable())
		batch = append(batch, map[string]any{"channel": "sms", "to": to, "body": "Kestrel failing"})
	}
	api.must(t, "POST", "/api/clinicmsg/send", e.tokens["staffF"], batch, 200)
	filter := "clinic='" + failing + "' && attempts>0 && error_code!=''"
	tried := poll(20*time.Second, 100*time.Millisecond, func() bool { return api.count(t, su, "messages", filter) >= 6 })
	e.c.check(tried, "the failing clinic's messages were not tried: %d of 6", api.count(t, su, "messages", filter))
	worst := func(who string) (float64, map[string]any) {
		st, res := e.call("GET", "/api/clinicmsg/health", who, nil)
		if st != 200 {
			return -1, res
		}
		top := 0.0
		chs, _ := res["channels"].(map[string]any)
		for _, v := range chs {
			ch, _ := v.(map[string]any)
			for _, c := range []map[string]any{ch, func() map[string]any { fb, _ := ch["fallback"].(map[string]any); return fb }()} {
				if r, ok := c["error_rate"].(float64); ok && r > top {
					top = r
				}
			}
		}
		return top, res
	}
	rate, res := worst("staffF")
	e.c.check(rate > 0, "the failing clinic's staff must see its own error rate, got %v: %v", rate, res)
	rate, res = worst("staffQ")
	e.c.check(rate == 0, "another clinic's staff must not see the failing clinic's error rate, got %v: %v", rate, res)
	return 3
}
