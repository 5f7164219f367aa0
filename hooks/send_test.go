package hooks_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"clinicmsg/hooks"

	"github.com/pocketbase/dbx"
)

func TestSendRoute(t *testing.T) {
	e := newEnv(t)

	t.Run("one message answers like a record create", func(t *testing.T) {
		res := e.do("POST", "/api/clinicmsg/send", "appA", map[string]any{"channel": "sms", "to": "0501234567", "body": "Hello"})
		must(t, res.Status == 200 && res.str("status") == "queued" && res.str("to") == "+966501234567" && res.str("clinic") == e.clinicA.Id, "expected a queued message: %s", res.Raw)
		e.waitStatus(res.str("id"), "delivered", 5*time.Second)
		bad := e.do("POST", "/api/clinicmsg/send", "appA", map[string]any{"channel": "sms", "to": "12", "body": "Hello"})
		must(t, bad.Status == 400 && slices.Equal(bad.errorFields(), []string{"to"}), "expected 400 naming to: %s", bad.Raw)
	})

	t.Run("an oversized body is a 413 and stores nothing", func(t *testing.T) {
		before := e.countMessages("")
		huge := map[string]any{"channel": "sms", "to": "0501234567", "body": strings.Repeat("x", 17<<20)}
		for _, path := range []string{"/api/clinicmsg/send", "/api/collections/messages/records"} {
			res := e.do("POST", path, "appA", huge)
			must(t, res.Status == 413 && strings.Contains(res.Raw, "larger than"), "%s: expected 413, got %d %.200s", path, res.Status, res.Raw)
		}
		must(t, e.countMessages("") == before, "nothing may be stored")
	})

	t.Run("an array answers per message", func(t *testing.T) {
		before := e.countMessages("")
		batch := []map[string]any{}
		for i := range 5 {
			batch = append(batch, map[string]any{"channel": "sms", "to": fmt.Sprintf("05012345%02d", i), "body": "Batch"})
		}
		batch = append(batch,
			map[string]any{"channel": "sms", "to": "bad", "body": "x"},
			map[string]any{"channel": "sms", "to": "0501234567", "body": "x", "status": "sent"},
			map[string]any{"channel": "sms", "to": "0501234567", "body": "x", "clinic": e.clinicB.Id},
			map[string]any{"channel": "sms", "body": "x"},
		)
		res := e.do("POST", "/api/clinicmsg/send", "appA", batch)
		must(t, res.Status == 200 && res.Body["accepted"] == 5.0 && res.Body["rejected"] == 4.0, "expected 5 accepted and 4 rejected: %.400s", res.Raw)
		items := res.Body["items"].([]any)
		want := []float64{200, 200, 200, 200, 200, 400, 400, 403, 400}
		for i, w := range want {
			got := items[i].(map[string]any)["status"].(float64)
			must(t, got == w, "item %d: expected %v, got %v (%v)", i, w, got, items[i])
		}
		must(t, e.countMessages("")-before == 5, "expected 5 stored messages, got %d", e.countMessages("")-before)
		// Ids grow, so that each insert appends to the id index (internal/store, GrowingID).
		prev := ""
		for i := range 5 {
			id := items[i].(map[string]any)["body"].(map[string]any)["id"].(string)
			must(t, len(id) == 15 && id > prev, "item %d: expected an id after %q, got %q", i, prev, id)
			prev = id
		}
	})

	t.Run("limits and access", func(t *testing.T) {
		big := make([]map[string]any, 1001)
		for i := range big {
			big[i] = map[string]any{"channel": "sms", "to": "0501234567", "body": "x"}
		}
		res := e.do("POST", "/api/clinicmsg/send", "appA", big)
		must(t, res.Status == 400 && slices.Equal(res.errorFields(), []string{"messages"}), "expected 400 for 1001 messages: %.300s", res.Raw)
		res = e.do("POST", "/api/clinicmsg/send", "", map[string]any{"channel": "sms", "to": "0501234567", "body": "x"})
		must(t, res.Status == 401, "expected 401 unauthenticated, got %d", res.Status)
		res = e.do("POST", "/api/clinicmsg/send", "appA", "not json")
		must(t, res.Status == 400, "expected 400 for a bad body, got %d", res.Status)
		res = e.do("POST", "/api/clinicmsg/send", "staffA", []map[string]any{{"channel": "sms", "to": "0501234567", "body": "x", "idempotency_key": "k"}, {"channel": "sms", "to": "0501234567", "body": "x", "idempotency_key": "k"}})
		items := res.Body["items"].([]any)
		must(t, items[0].(map[string]any)["status"] == 200.0 && items[1].(map[string]any)["status"] == 409.0, "a repeated key in one batch is a 409: %.400s", res.Raw)
	})
}

// TestSendStoresWhatACreateStores: the bulk route (and a clinic user's JSON record create,
// which takes its path) writes rows with its own INSERTs, so a message it stores must be
// column for column what PocketBase's own record create stores, first audit row and answer
// included, and subscribers must hear of it the same way.
func TestSendStoresWhatACreateStores(t *testing.T) {
	e := newEnv(t, func(c *hooks.Config) { c.DuplicateWindow = 10 * time.Minute })
	e.save("templates", map[string]any{"clinic": e.clinicA.Id, "code": "bulk_reminder", "channel": "any", "category": "reminder",
		"body_en": "Hello {{name}}, see you at {{time}}.", "body_ar": "مرحبا {{name}}", "active": true})
	e.save("preferences", map[string]any{"clinic": e.clinicA.Id, "patient_id": "P-2", "phone": "+966501110002", "language": "ar"})
	later := time.Now().UTC().Add(48 * time.Hour).Format("2006-01-02 15:04:05.000Z")
	payload := func(to, patient string) map[string]any {
		return map[string]any{"channel": "sms", "to": to, "template": "bulk_reminder", "patient_id": patient,
			"context": map[string]any{"name": "Sara", "time": "10:30"}, "send_at": later, "idempotency_key": "fidelity-" + patient}
	}
	events := e.subscribe("staffA", "messages")

	// A JSON create by an app takes the send route's path; a multipart create (the admin
	// UI's way) takes PocketBase's own. Both must store and answer the same.
	viaCreate := e.do("POST", "/api/collections/messages/records", "appA", payload("0501110001", "P-1"))
	must(t, viaCreate.Status == 200, "create: %s", viaCreate.Raw)
	viaForm := e.doForm("/api/collections/messages/records", "appA", payload("0501110004", "P-4"))
	must(t, viaForm.Status == 200, "form create: %s", viaForm.Raw)
	for k, v := range viaForm.Body {
		switch k {
		case "id", "created", "updated", "to", "patient_id", "idempotency_key":
			must(t, viaCreate.Body[k] != nil, "the JSON create's answer lacks %s: %s", k, viaCreate.Raw)
			continue
		}
		must(t, fmt.Sprint(viaCreate.Body[k]) == fmt.Sprint(v), "answer field %s: form create %v, JSON create %v", k, v, viaCreate.Body[k])
	}
	must(t, len(viaCreate.Body) == len(viaForm.Body), "expected the same answer fields:\n%s\n%s", viaForm.Raw, viaCreate.Raw)
	viaSend := e.do("POST", "/api/clinicmsg/send", "appA", []map[string]any{payload("0501110003", "P-1b"), payload("0501110002", "P-2")})
	// P-2 turned SMS off (a preference saved without the API defaults): stored, skipped.
	must(t, viaSend.Status == 200 && viaSend.Body["accepted"] == 1.0 && viaSend.Body["skipped"] == 1.0, "send: %.400s", viaSend.Raw)
	items := viaSend.Body["items"].([]any)
	sent := items[0].(map[string]any)["body"].(map[string]any)
	arabic := items[1].(map[string]any)["body"].(map[string]any)

	row := func(id string) map[string]string {
		out := map[string]string{}
		rows, err := e.app.DB().NewQuery("SELECT * FROM messages WHERE id = {:id}").Bind(map[string]any{"id": id}).Rows()
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		must(t, rows.Next(), "message %s is not stored", id)
		vals := make([]any, len(cols))
		for i := range vals {
			vals[i] = new(any)
		}
		if err := rows.Scan(vals...); err != nil {
			t.Fatal(err)
		}
		for i, c := range cols {
			out[c] = fmt.Sprintf("%T:%v", *(vals[i].(*any)), *(vals[i].(*any)))
		}
		return out
	}
	a := row(viaForm.str("id"))
	for name, id := range map[string]string{"JSON create": viaCreate.str("id"), "send route": sent["id"].(string)} {
		b := row(id)
		for col, va := range a {
			switch col {
			case "id", "created", "updated", "to", "patient_id", "idempotency_key":
				continue
			}
			must(t, b[col] == va, "column %s: form create stored %s, the %s %s", col, va, name, b[col])
		}
		for _, col := range []string{"created", "updated"} {
			stamp := regexp.MustCompile(`^string:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z$`)
			must(t, stamp.MatchString(a[col]) && stamp.MatchString(b[col]), "column %s: form create stored %s, the %s %s", col, a[col], name, b[col])
		}
		must(t, len(a) == len(b), "expected the same columns, got %d and %d", len(a), len(b))
	}
	must(t, sent["status"] == "scheduled" && sent["body"] == "Hello Sara, see you at 10:30." && sent["segments"] == 1.0,
		"expected the rendered, scheduled message in the answer: %v", sent)
	must(t, arabic["language"] == "ar" && arabic["body"] == "مرحبا Sara", "the patient's language applies: %v", arabic)

	trail := func(id string) string {
		var l struct {
			Event, Status, Detail, IP, UserAgent string
		}
		err := e.app.DB().NewQuery("SELECT event, status, detail, ip, user_agent AS useragent FROM message_logs WHERE message = {:id}").
			Bind(map[string]any{"id": id}).Row(&l.Event, &l.Status, &l.Detail, &l.IP, &l.UserAgent)
		if err != nil {
			t.Fatalf("no audit row for %s: %v", id, err)
		}
		return fmt.Sprintf("%+v", l)
	}
	for _, id := range []string{viaCreate.str("id"), sent["id"].(string)} {
		must(t, trail(viaForm.str("id")) == trail(id), "first audit rows differ: %s vs %s", trail(viaForm.str("id")), trail(id))
	}

	created := map[string]bool{}
	deadline := time.After(5 * time.Second)
	for len(created) < 4 {
		select {
		case ev := <-events:
			if ev.Action == "create" {
				created[ev.Record["id"].(string)] = true
			}
		case <-deadline:
			t.Fatalf("expected four realtime creates, saw %v", created)
		}
	}
	must(t, created[viaCreate.str("id")] && created[sent["id"].(string)] && created[arabic["id"].(string)], "the JSON create's and send route's messages must be announced: %v", created)

	t.Run("a key used by an earlier request is a 409 naming the first message", func(t *testing.T) {
		again := e.do("POST", "/api/clinicmsg/send", "appA", []map[string]any{payload("0501110003", "P-1b"), {"channel": "sms", "to": "0501110009", "body": "fresh"}})
		items := again.Body["items"].([]any)
		first := items[0].(map[string]any)
		must(t, first["status"] == 409.0 && strings.Contains(fmt.Sprint(first["body"]), sent["id"].(string)), "expected 409 naming %s: %v", sent["id"], first)
		must(t, items[1].(map[string]any)["status"] == 200.0, "the other message is accepted: %v", items[1])
	})

	t.Run("the same text twice in one request is caught by the duplicate guard", func(t *testing.T) {
		twice := e.do("POST", "/api/clinicmsg/send", "appA", []map[string]any{
			{"channel": "sms", "to": "0501110010", "body": "Your results are ready."},
			{"channel": "sms", "to": "0501110010", "body": "Your results are ready."}})
		items := twice.Body["items"].([]any)
		one := items[0].(map[string]any)["body"].(map[string]any)
		two := items[1].(map[string]any)["body"].(map[string]any)
		must(t, one["status"] == "queued" && two["status"] == "skipped" && strings.Contains(two["status_reason"].(string), one["id"].(string)),
			"expected the second skipped naming the first: %v / %v", one["status"], two["status_reason"])
	})

	t.Run("a message repeating one of an earlier request is caught by the duplicate guard", func(t *testing.T) {
		first := e.do("POST", "/api/clinicmsg/send", "appA", []map[string]any{{"channel": "sms", "to": "0501110030", "patient_id": "P-30", "body": "Lab results ready"}})
		id := first.Body["items"].([]any)[0].(map[string]any)["body"].(map[string]any)["id"].(string)
		res := e.do("POST", "/api/clinicmsg/send", "appA", []map[string]any{
			{"channel": "sms", "to": "0501110030", "body": "Lab results ready"},                       // same number
			{"channel": "sms", "to": "0501110031", "patient_id": "P-30", "body": "Lab results ready"}, // same patient
			{"channel": "sms", "to": "0501110030", "body": "Other text"},                              // other text
			{"channel": "whatsapp", "to": "0501110030", "body": "Lab results ready"},                  // other channel
		})
		var got []string
		for _, it := range res.Body["items"].([]any) {
			b := it.(map[string]any)["body"].(map[string]any)
			reason, _ := b["status_reason"].(string)
			got = append(got, fmt.Sprint(b["status"], " ", strings.Contains(reason, id)))
		}
		want := []string{"skipped true", "skipped true", "queued false", "queued false"}
		must(t, slices.Equal(got, want), "expected %v, got %v", want, got)
	})

	t.Run("preferences apply to every message of a request", func(t *testing.T) {
		e.save("preferences", map[string]any{"clinic": e.clinicA.Id, "patient_id": "P-out", "opted_out": true, "sms": true, "whatsapp": true, "email_enabled": true})
		e.save("preferences", map[string]any{"clinic": e.clinicA.Id, "phone": "+966501110021", "sms": false, "whatsapp": true, "email_enabled": true})
		e.save("preferences", map[string]any{"clinic": e.clinicA.Id, "email": "no-mail@example.com", "sms": true, "whatsapp": true, "email_enabled": false})
		e.save("preferences", map[string]any{"clinic": e.clinicB.Id, "phone": "+966501110023", "opted_out": true, "sms": true, "whatsapp": true, "email_enabled": true})
		res := e.do("POST", "/api/clinicmsg/send", "appA", []map[string]any{
			{"channel": "sms", "to": "0501110020", "patient_id": "P-out", "body": "a"},     // opted out by patient id
			{"channel": "sms", "to": "0501110021", "body": "b"},                            // SMS off by phone
			{"channel": "whatsapp", "to": "0501110021", "body": "c"},                       // WhatsApp still on
			{"channel": "email", "to": "no-mail@example.com", "subject": "s", "body": "d"}, // email off by address
			{"channel": "sms", "to": "0501110023", "body": "e"},                            // opted out in clinic B only
			{"channel": "sms", "to": "0501110021", "patient_id": "P-unknown", "body": "f"}, // falls back to the phone
		})
		var got []string
		for _, it := range res.Body["items"].([]any) {
			b := it.(map[string]any)["body"].(map[string]any)
			reason, _ := b["status_reason"].(string)
			got = append(got, fmt.Sprint(b["status"], " ", strings.SplitN(reason, ":", 2)[0]))
		}
		want := []string{"skipped opted_out", "skipped channel_disabled", "queued ", "skipped channel_disabled", "queued ", "skipped channel_disabled"}
		must(t, slices.Equal(got, want), "expected %v, got %v", want, got)
	})

	t.Run("field limits are checked as a create checks them", func(t *testing.T) {
		res := e.do("POST", "/api/clinicmsg/send", "appA", []map[string]any{{"channel": "sms", "to": "0501110011", "body": "x", "patient_id": strings.Repeat("p", 101)}})
		item := res.Body["items"].([]any)[0].(map[string]any)
		body, _ := json.Marshal(item["body"])
		must(t, item["status"] == 400.0 && strings.Contains(string(body), `"patient_id"`), "expected 400 naming patient_id: %s", body)
		res = e.do("POST", "/api/clinicmsg/send", "appA", []map[string]any{{"channel": "sms", "to": "0501110012", "body": "x", "campaign": "nosuchcampaign1"}})
		item = res.Body["items"].([]any)[0].(map[string]any)
		body, _ = json.Marshal(item["body"])
		must(t, item["status"] == 400.0 && strings.Contains(string(body), `"campaign"`), "expected 400 naming campaign: %s", body)
	})
}

// The create path's batched reads run for every request: each SELECT of them must search
// its table by an index, never scan it.
func TestBulkLookupsUseIndexes(t *testing.T) {
	e := newEnv(t)
	for name, text := range hooks.BulkLookups() {
		table := strings.Split(name, ".")[0]
		var plan []struct {
			Detail string `db:"detail"`
		}
		args := dbx.Params{"clinic": "x", "keys": `["x"]`}
		q := text
		for i := 0; strings.Contains(q, "?"); i++ {
			p := fmt.Sprintf("p%d", i)
			q = strings.Replace(q, "?", "{:"+p+"}", 1)
			args[p] = `["x"]`
		}
		if err := e.app.DB().NewQuery("EXPLAIN QUERY PLAN " + q).Bind(args).All(&plan); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var details []string
		for _, p := range plan {
			details = append(details, p.Detail)
		}
		all := strings.Join(details, " | ")
		parts := strings.Count(text, " UNION ALL ") + 1
		if strings.Count(all, "SEARCH "+table+" USING INDEX") != parts || strings.Contains(all, "SCAN "+table) {
			t.Errorf("%s does not search %s by an index: %s", name, table, all)
		}
		t.Logf("%s: %s", name, all)
	}
}

// Accepted messages are audited in message_logs; PocketBase's request log keeps only the
// refused creates, so that patient traffic is not logged twice.
func TestAcceptedCreatesStayOutOfTheRequestLog(t *testing.T) {
	e := newEnv(t)
	settings := e.app.Settings()
	settings.Logs.MaxDays = 5 // the request log, as a new appliance has it (off in the test data)
	must(t, e.app.Save(settings) == nil, "failed to turn the request log on")
	ok := e.do("POST", "/api/collections/messages/records", "appA", map[string]any{"channel": "sms", "to": "0501119001", "body": "a"})
	must(t, ok.Status == 200, "create: %s", ok.Raw)
	bad := e.do("POST", "/api/collections/messages/records", "appA", map[string]any{"channel": "sms", "to": "12", "body": "a"})
	must(t, bad.Status == 400, "bad create: %s", bad.Raw)
	sent := e.do("POST", "/api/clinicmsg/send", "appA", []map[string]any{{"channel": "sms", "to": "0501119002", "body": "b"}})
	must(t, sent.Status == 200, "send: %s", sent.Raw)
	badSend := e.do("POST", "/api/clinicmsg/send", "appA", "not a message")
	must(t, badSend.Status == 400, "bad send: %s", badSend.Raw)

	got := e.requestLog(2, "messages/records", "clinicmsg/send")
	want := []string{"400 /api/collections/messages/records", "400 /api/clinicmsg/send"}
	must(t, slices.Equal(got, want), "expected only the refused requests %v, got %v", want, got)
}

// TestCreatesWaitForRoom: requests beyond the bound on messages being created at once wait
// for room instead of failing, and a request larger than the whole bound still goes
// through; every message is stored once.
func TestCreatesWaitForRoom(t *testing.T) {
	e := newEnv(t)
	hooks.SetCreatingBound(e.svc, 3)
	batch := func(i, n int) []map[string]any {
		var items []map[string]any
		for j := range n {
			items = append(items, map[string]any{"channel": "sms", "to": fmt.Sprintf("0502%03d%03d", i, j), "body": "Your results are ready"})
		}
		return items
	}
	var wg sync.WaitGroup
	statuses := make([]int, 8)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = e.do("POST", "/api/clinicmsg/send", "appA", batch(i, 2)).Status
		}()
	}
	wg.Wait()
	for i, st := range statuses {
		must(t, st == 200, "request %d answered %d", i, st)
	}
	res := e.do("POST", "/api/clinicmsg/send", "appA", batch(99, 5))
	must(t, res.Status == 200, "a request larger than the bound: %d %s", res.Status, res.Raw)
	must(t, e.countMessages("") == 8*2+5, "expected %d messages stored, got %d", 8*2+5, e.countMessages(""))

	// With the whole bound taken, a request is not checked or stored until room frees.
	release := hooks.HoldCreating(e.svc, 3)
	answered := make(chan int, 1)
	go func() { answered <- e.do("POST", "/api/clinicmsg/send", "appA", batch(100, 1)).Status }()
	select {
	case st := <-answered:
		release()
		t.Fatalf("a request was answered (%d) while the bound was taken", st)
	case <-time.After(300 * time.Millisecond):
	}
	must(t, e.countMessages("") == 8*2+5, "a message was stored while the bound was taken")
	release()
	select {
	case st := <-answered:
		must(t, st == 200, "the waiting request answered %d", st)
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting request was not answered after room freed")
	}
	must(t, e.countMessages("") == 8*2+5+1, "expected the waiting request's message stored")
}
