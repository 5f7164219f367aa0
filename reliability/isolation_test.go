package reliability

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
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
