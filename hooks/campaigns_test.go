package hooks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"clinicmsg/hooks"
	"clinicmsg/providers"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tests"
)

func (e *env) campaign(id string) *core.Record {
	e.t.Helper()
	r, err := e.app.FindRecordById("campaigns", id)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) waitCampaign(id, status string, within time.Duration) *core.Record {
	e.t.Helper()
	var r *core.Record
	if !poll(within, func() bool { r = e.campaign(id); return r.GetString("status") == status }) {
		e.t.Fatalf("campaign %s: expected %s within %v, got %s (cursor %d of %d)", id, status, within, r.GetString("status"), r.GetInt("cursor"), r.GetInt("total"))
	}
	return r
}

// waitFannedOut waits until the campaign's checkpoint has passed its whole list of total.
func (e *env) waitFannedOut(id string, total int, within time.Duration) {
	e.t.Helper()
	var cursor int
	if !poll(within, func() bool { cursor = e.campaign(id).GetInt("cursor"); return cursor >= total }) {
		e.t.Fatalf("campaign %s: expected its %d recipients fanned out within %v, the cursor is at %d", id, total, within, cursor)
	}
}

// count runs a COUNT query, failing the test if it cannot.
func (e *env) count(query string, params map[string]any) int {
	e.t.Helper()
	var n int
	if err := e.app.DB().NewQuery(query).Bind(params).Row(&n); err != nil {
		e.t.Fatalf("failed to count (%s): %v", query, err)
	}
	return n
}

func TestCampaignOf10000RecipientsInOneRequest(t *testing.T) {
	e := newEnv(t)
	e.svc.Dispatcher.Stop() // only the fan-out is under test here
	recipients := make([]any, 0, 10_003)
	for i := range 10_000 {
		recipients = append(recipients, fmt.Sprintf("05%08d", 10_000_000+i))
	}
	recipients = append(recipients, "not a number", map[string]any{"to": "0112345678", "patient_id": "P-landline"}, "")
	res := e.do("POST", "/api/collections/campaigns/records", "staffA", map[string]any{
		"name": "Flu season", "channel": "sms", "body": "Flu vaccines are available at {{clinic_name}}.", "recipients": recipients})
	must(t, res.Status == 200 && res.str("status") == "running", "expected a running campaign, got %d: %.300s", res.Status, res.Raw)
	must(t, res.Body["total"] == float64(10_003), "expected total 10003, got %v", res.Body["total"])
	id := res.str("id")

	e.waitFannedOut(id, 10_003, 60*time.Second)
	must(t, e.countMessages("campaign = '"+id+"'") == 10_000, "expected 10000 messages, got %d", e.countMessages("campaign = '"+id+"'"))
	keys := e.count("SELECT COUNT(DISTINCT idempotency_key) FROM messages WHERE campaign = {:c}", map[string]any{"c": id})
	must(t, keys == 10_000, "expected 10000 distinct recipients, got %d", keys)
	// Recipient i got the message keyed i, across the list's stored parts.
	misplaced := e.count(`SELECT COUNT(*) FROM messages WHERE campaign = {:c}
		AND CAST(substr(idempotency_key, length('campaign:' || {:c} || ':') + 1) AS INTEGER) + 10000000 != CAST(substr("to", 6) AS INTEGER)`,
		map[string]any{"c": id})
	must(t, misplaced == 0, "expected each recipient's message under its own index, %d are not", misplaced)

	// The runner refreshes the counters on its next pass; woken, it makes one now.
	e.svc.Campaigns.Wake()
	var c *core.Record
	poll(10*time.Second, func() bool {
		c = e.campaign(id)
		return c.GetInt("queued") == 10_000 && c.GetInt("skipped") == 3
	})
	must(t, c.GetInt("queued") == 10_000 && c.GetInt("skipped") == 3, "expected 10000 queued and 3 skipped, got %d and %d", c.GetInt("queued"), c.GetInt("skipped"))
	result := c.GetString("result")
	for _, want := range []string{`"index":10000`, `"index":10001`, `"index":10002`, `"field":"to"`} {
		must(t, strings.Contains(result, want), "expected %s in the skipped list: %.500s", want, result)
	}
}

// TestCampaignRecipientsLiveBesideTheCampaign: the list is stored in parts of 1,000 in
// campaign_recipients, in order, and the campaign row itself stays small; the list cannot
// be changed afterwards, not even by a superuser.
func TestCampaignRecipientsLiveBesideTheCampaign(t *testing.T) {
	e := newEnv(t)
	e.svc.Dispatcher.Stop()
	list := make([]any, 0, 2_500)
	for i := range 2_500 {
		list = append(list, map[string]any{"to": fmt.Sprintf("05%08d", 50_000_000+i), "patient_id": fmt.Sprintf("P-%d", i)})
	}
	res := e.do("POST", "/api/collections/campaigns/records", "staffA", map[string]any{"channel": "sms", "body": "Hello", "status": "draft", "recipients": list})
	must(t, res.Status == 200 && res.Body["total"] == 2_500.0 && res.Body["recipients"] == nil, "expected a draft of 2500 without the list in the row: %.300s", res.Raw)
	id := res.str("id")

	var parts []struct {
		Part       int    `db:"part"`
		Recipients string `db:"recipients"`
	}
	err := e.app.DB().NewQuery("SELECT part, recipients FROM campaign_recipients WHERE campaign = {:c} ORDER BY part").Bind(map[string]any{"c": id}).All(&parts)
	must(t, err == nil && len(parts) == 3, "expected 3 parts, got %d (%v)", len(parts), err)
	must(t, strings.HasPrefix(parts[0].Recipients, `[{"to":"0550000000","patient_id":"P-0"}`) && strings.Contains(parts[2].Recipients, `"P-2499"`),
		"expected the list in order: %.80s … %.80s", parts[0].Recipients, parts[2].Recipients)
	var rowSize int
	err = e.app.DB().NewQuery("SELECT LENGTH(COALESCE(recipients, '')) FROM campaigns WHERE id = {:c}").Bind(map[string]any{"c": id}).Row(&rowSize)
	must(t, err == nil, "failed to read the campaign row: %v", err)
	must(t, rowSize <= len("null"), "expected no list in the campaign row, got %d bytes", rowSize)

	up := e.do("PATCH", "/api/collections/campaigns/records/"+id, "superuser", map[string]any{"recipients": []string{"0501234567"}})
	must(t, up.Status == 400 && slices.Equal(up.errorFields(), []string{"recipients"}), "expected 400 naming recipients: %s", up.Raw)

	up = e.do("PATCH", "/api/collections/campaigns/records/"+id, "staffA", map[string]any{"status": "running"})
	must(t, up.Status == 200, "start: %s", up.Raw)
	e.waitFannedOut(id, 2_500, 30*time.Second)
	var inOrder int
	err = e.app.DB().NewQuery("SELECT COUNT(*) FROM messages WHERE campaign = {:c} AND patient_id = 'P-' || SUBSTR(idempotency_key, LENGTH({:c}) + 11)").
		Bind(map[string]any{"c": id}).Row(&inOrder)
	must(t, err == nil, "count: %v", err)
	must(t, inOrder == 2_500, "expected recipient i to get key campaign:<id>:i, %d of 2500 did", inOrder)
}

// TestCampaignFanOutResumesAfterACrash: a process that stops between batches leaves a
// checkpoint; the next one finishes the list with no duplicate and no gap.
func TestCampaignFanOutResumesAfterACrash(t *testing.T) {
	app, err := tests.NewTestAppWithConfig(core.BaseAppConfig{DataDir: templateDir, DBConnect: hooks.DBConnect})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Cleanup()
	cfg := testConfig()
	cfg.CampaignBatch = 500
	svc, err := hooks.Register(app, cfg)
	if err != nil {
		t.Fatal(err)
	}
	clinic, err := app.FindFirstRecordByData("clinics", "name", "Clinic A")
	if err != nil {
		t.Fatal(err)
	}
	col, err := app.FindCollectionByNameOrId("campaigns")
	if err != nil {
		t.Fatal(err)
	}
	var list []string
	for i := range 1_234 {
		list = append(list, fmt.Sprintf("05%08d", 40_000_000+i))
	}
	camp := core.NewRecord(col)
	camp.Load(map[string]any{"clinic": clinic.Id, "channel": "sms", "body": "Recall", "recipients": list})
	if err := app.Save(camp); err != nil {
		t.Fatal(err)
	}
	more, err := svc.Campaigns.FanOutBatch(camp.Id)
	must(t, err == nil && more, "first batch: %v %v", more, err)
	dataDir := app.DataDir()
	if err := app.ClearBootstrap(); err != nil { // the process dies here
		t.Fatal(err)
	}

	e := newEnvFrom(t, dataDir, func(c *hooks.Config) { c.CampaignBatch = 500 })
	e.svc.Dispatcher.Stop()
	e.waitFannedOut(camp.Id, 1_234, 30*time.Second)
	var rows []struct {
		Key string `db:"idempotency_key"`
	}
	err = e.app.DB().NewQuery("SELECT idempotency_key FROM messages WHERE campaign = {:c}").Bind(map[string]any{"c": camp.Id}).All(&rows)
	must(t, err == nil, "%v", err)
	seen := map[string]int{}
	for _, r := range rows {
		seen[r.Key]++
	}
	for i := range 1_234 {
		k := fmt.Sprintf("campaign:%s:%d", camp.Id, i)
		must(t, seen[k] == 1, "recipient %d has %d messages", i, seen[k])
	}
	must(t, len(rows) == 1_234, "expected 1234 messages, got %d", len(rows))
}

func TestCampaignCountersAndSummary(t *testing.T) {
	e := newEnv(t, func(c *hooks.Config) { c.CampaignInterval = 50 * time.Millisecond })
	e.save("templates", map[string]any{"code": "recall", "channel": "any", "category": "marketing", "active": true, "body_en": "Hello {{name}}, time for your check-up."})
	e.save("preferences", map[string]any{"clinic": e.clinicA.Id, "phone": "0507777777", "opted_out": true})
	res := e.do("POST", "/api/collections/campaigns/records", "staffA", map[string]any{
		"name": "Recall", "channel": "sms", "template": "recall", "context": map[string]any{"name": "patient"},
		"recipients": []any{
			"0501234567",
			map[string]any{"to": "0501234568", "patient_id": "P2", "context": map[string]any{"name": "Sara"}},
			providers.MockNumberPermanent,
			"0507777777", // opted out
			"12345",      // invalid
		}})
	must(t, res.Status == 200, "create: %s", res.Raw)
	c := e.waitCampaign(res.str("id"), "done", 10*time.Second)
	got := map[string]int{}
	for _, f := range []string{"total", "queued", "sent", "delivered", "failed", "skipped"} {
		got[f] = c.GetInt(f)
	}
	want := map[string]int{"total": 5, "queued": 0, "sent": 2, "delivered": 2, "failed": 1, "skipped": 2}
	for k, v := range want {
		must(t, got[k] == v, "expected counters %v, got %v", want, got)
	}
	sara, err := e.app.FindFirstRecordByFilter("messages", "patient_id = 'P2'")
	must(t, err == nil && sara.GetString("body") == "Hello Sara, time for your check-up.", "recipient context must win: %v", sara)

	sum := e.do("GET", "/api/clinicmsg/campaigns/"+res.str("id")+"/summary", "appA", nil)
	must(t, sum.Status == 200 && sum.Body["total"] == 5.0 && sum.Body["sent"] == 2.0 && sum.Body["failed"] == 1.0, "summary: %s", sum.Raw)
	for _, f := range []string{"total", "queued", "sent", "delivered", "failed", "skipped"} {
		must(t, sum.Body[f] == float64(got[f]), "the summary's %s (%v) must be the record's (%d)", f, sum.Body[f], got[f])
	}
	other := e.do("GET", "/api/clinicmsg/campaigns/"+res.str("id")+"/summary", "staffB", nil)
	must(t, other.Status == 404, "another clinic must not see the summary, got %d", other.Status)
}

func TestCampaignDraftScheduleAndCancel(t *testing.T) {
	e := newEnv(t, func(c *hooks.Config) { c.CampaignInterval = 50 * time.Millisecond })

	t.Run("a draft waits until started", func(t *testing.T) {
		res := e.do("POST", "/api/collections/campaigns/records", "staffA", map[string]any{"channel": "sms", "body": "x", "status": "draft", "recipients": []string{"0501234567"}})
		must(t, res.Status == 200 && res.str("status") == "draft", "create: %s", res.Raw)
		// A whole pass of the runner, which fans out every running campaign, leaves it alone.
		err := e.svc.Campaigns.RunOnce(context.Background())
		must(t, err == nil, "runner pass: %v", err)
		must(t, e.countMessages("campaign = '"+res.str("id")+"'") == 0, "a draft must not fan out")
		up := e.do("PATCH", "/api/collections/campaigns/records/"+res.str("id"), "staffA", map[string]any{"status": "running"})
		must(t, up.Status == 200, "start: %s", up.Raw)
		e.waitCampaign(res.str("id"), "done", 10*time.Second)
	})

	t.Run("a future send_at holds the campaign", func(t *testing.T) {
		at := time.Now().UTC().Add(400 * time.Millisecond).Format("2006-01-02 15:04:05.000Z")
		res := e.do("POST", "/api/collections/campaigns/records", "staffA", map[string]any{"channel": "sms", "body": "x", "send_at": at, "recipients": []string{"0501234567"}})
		must(t, res.Status == 200 && res.str("status") == "scheduled", "expected scheduled: %s", res.Raw)
		c := e.waitCampaign(res.str("id"), "done", 10*time.Second)
		must(t, !c.GetDateTime("started_at").Time().Before(c.GetDateTime("send_at").Time()), "started before send_at")
	})

	t.Run("cancel stops the unsent messages", func(t *testing.T) {
		e.svc.Dispatcher.Stop() // keep every message unsent
		list := make([]string, 40)
		for i := range list {
			list[i] = fmt.Sprintf("05%08d", 30_000_000+i)
		}
		res := e.do("POST", "/api/collections/campaigns/records", "staffA", map[string]any{"channel": "sms", "body": "x", "recipients": list})
		id := res.str("id")
		waitFor(t, 5*time.Second, "the campaign's 40 messages", func() bool { return e.countMessages("campaign = '"+id+"'") >= 40 })
		up := e.do("PATCH", "/api/collections/campaigns/records/"+id, "staffB", map[string]any{"status": "canceled"})
		must(t, up.Status == 404, "another clinic cannot cancel, got %d", up.Status)
		up = e.do("PATCH", "/api/collections/campaigns/records/"+id, "staffA", map[string]any{"status": "canceled"})
		must(t, up.Status == 200, "cancel: %s", up.Raw)
		poll(5*time.Second, func() bool { return e.countMessages("campaign = '"+id+"' && status = 'canceled'") >= 40 })
		must(t, e.countMessages("campaign = '"+id+"' && status = 'canceled'") == 40, "expected 40 canceled messages")
		// The runner's next pass ends the canceled campaign; woken, it makes one now.
		e.svc.Campaigns.Wake()
		var c *core.Record
		poll(5*time.Second, func() bool {
			c = e.campaign(id)
			return !c.GetDateTime("finished_at").IsZero() && c.GetInt("skipped") == 40
		})
		must(t, !c.GetDateTime("finished_at").IsZero() && c.GetInt("skipped") == 40, "expected a finished campaign with 40 not sent, got %v", c)
	})

	t.Run("clients cannot rewrite a campaign", func(t *testing.T) {
		res := e.do("POST", "/api/collections/campaigns/records", "staffA", map[string]any{"channel": "sms", "body": "x", "status": "draft", "recipients": []string{"0501234567"}})
		id := res.str("id")
		scenarios := []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"sent": 99}, "sent"},
			{map[string]any{"cursor": 0}, "cursor"},
			{map[string]any{"status": "done"}, "status"},
		}
		for _, s := range scenarios {
			r := e.do("PATCH", "/api/collections/campaigns/records/"+id, "staffA", s.body)
			must(t, r.Status == 400 && slices.Equal(r.errorFields(), []string{s.field}), "expected 400 naming %s, got %d: %s", s.field, r.Status, r.Raw)
		}
		r := e.do("POST", "/api/collections/campaigns/records", "staffA", map[string]any{"channel": "sms", "body": "x", "recipients": "0501234567"})
		must(t, r.Status == 400 && slices.Equal(r.errorFields(), []string{"recipients"}), "expected 400 naming recipients: %s", r.Raw)
		r = e.do("POST", "/api/collections/campaigns/records", "staffA", map[string]any{"channel": "sms", "recipients": []string{"0501234567"}})
		must(t, r.Status == 400 && slices.Equal(r.errorFields(), []string{"body"}), "expected 400 naming body: %s", r.Raw)
	})
}

// TestCampaignRecipientsMigration: the migration that moved recipient lists out of the
// campaign row goes both ways without losing or reordering a recipient.
func TestCampaignRecipientsMigration(t *testing.T) {
	e := newEnv(t)
	e.svc.Dispatcher.Stop()
	list := []any{"0551230001", map[string]any{"to": "0551230002", "patient_id": "P-2"}, "0551230003"}
	res := e.do("POST", "/api/collections/campaigns/records", "staffA", map[string]any{"channel": "sms", "body": "x", "status": "draft", "recipients": list})
	must(t, res.Status == 200, "create: %s", res.Raw)
	id := res.str("id")
	row := func() string {
		var raw string
		if err := e.app.DB().NewQuery("SELECT COALESCE(recipients, '') FROM campaigns WHERE id = {:id}").Bind(map[string]any{"id": id}).Row(&raw); err != nil {
			t.Fatalf("failed to read the campaign row: %v", err)
		}
		return raw
	}

	runner := core.NewMigrationsRunner(e.app, core.AppMigrations)
	// Revert the later migrations first, then this one.
	var reverted []string
	for len(reverted) == 0 || !strings.Contains(reverted[len(reverted)-1], "campaign_recipients") {
		r, err := runner.Down(1)
		must(t, err == nil && len(r) == 1, "down: %v %v", r, err)
		reverted = append(reverted, r...)
	}
	must(t, row() == `[{"to":"0551230001"},{"to":"0551230002","patient_id":"P-2"},{"to":"0551230003"}]`, "expected the list back in the row, got %s", row())

	applied, err := runner.Up()
	must(t, err == nil && len(applied) == len(reverted), "up: %v %v", applied, err)
	must(t, row() == "" || row() == "null", "expected the list out of the row again, got %s", row())
	var parts []string
	err = e.app.DB().NewQuery("SELECT recipients FROM campaign_recipients WHERE campaign = {:id} ORDER BY part").Bind(map[string]any{"id": id}).Column(&parts)
	must(t, err == nil && len(parts) == 1 && parts[0] == `[{"to":"0551230001"},{"to":"0551230002","patient_id":"P-2"},{"to":"0551230003"}]`, "expected one part in order, got %v %v", parts, err)
}

// A JSON campaign create has its list read as it arrives (the appliance's memory peak was
// this request); what it stores and answers is what it did when PocketBase took the list.
func TestCampaignCreateStreamsItsList(t *testing.T) {
	e := newEnv(t)
	e.svc.Dispatcher.Stop()
	body := json.RawMessage(`{"recipients": ["0551230001", {"to": "0551230002", "patient_id": "P-2", "context": {"name": "Sara"}}],
		"channel": "sms", "body": "Hello {{name}}", "context": {"name": "all"}, "status": "draft"}`)
	res := e.do("POST", "/api/collections/campaigns/records", "staffA", body)
	must(t, res.Status == 200 && res.Body["total"] == 2.0 && res.Body["recipients"] == nil && res.Body["status"] == "draft",
		"expected a draft of 2 recipients: %s", res.Raw)
	var parts []string
	err := e.app.DB().NewQuery("SELECT recipients FROM campaign_recipients WHERE campaign = {:id} ORDER BY part").Bind(map[string]any{"id": res.str("id")}).Column(&parts)
	must(t, err == nil && len(parts) == 1 && parts[0] == `[{"to":"0551230001"},{"to":"0551230002","patient_id":"P-2","context":{"name":"Sara"}}]`,
		"expected the list in one part: %v %v", parts, err)

	cases := []struct {
		body  string
		field string
	}{
		{`{"channel": "sms", "body": "x", "recipients": ["0551230001", 42]}`, "recipients"},
		{`{"channel": "sms", "body": "x", "recipients": []}`, "recipients"},
		{`{"channel": "sms", "recipients": ["0551230001"]}`, "body"},
		{`{"channel": "sms", "body": "x", "recipients": ["0551230001"], "total": 5}`, "total"},
		{`{"channel": "sms", "body": "x", "recipients": ["0551230001"], "clinic": "` + e.clinicB.Id + `"}`, "clinic"},
	}
	for _, c := range cases {
		before := countCampaigns(e)
		r := e.do("POST", "/api/collections/campaigns/records", "staffA", json.RawMessage(c.body))
		must(t, r.Status >= 400 && r.Status < 500 && slices.Equal(r.errorFields(), []string{c.field}), "%s: expected a 4xx naming %s, got %d %s", c.body, c.field, r.Status, r.Raw)
		must(t, countCampaigns(e) == before, "%s: nothing may be stored", c.body)
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/collections/campaigns/records", strings.NewReader(`{"channel": "sms", "body": "x", "recipients": ["0551230001"`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", e.tokens["staffA"])
	cut, err := http.DefaultClient.Do(req)
	must(t, err == nil && cut.StatusCode == 400, "a cut-off body is a 400: %v %v", cut, err)
	cut.Body.Close()

	var huge strings.Builder
	huge.WriteString(`{"channel": "sms", "body": "x", "recipients": [`)
	for i := range 100_001 {
		if i > 0 {
			huge.WriteString(",")
		}
		huge.WriteString(`"0551230001"`)
	}
	huge.WriteString("]}")
	r := e.do("POST", "/api/collections/campaigns/records", "staffA", json.RawMessage(huge.String()))
	must(t, r.Status == 400 && slices.Equal(r.errorFields(), []string{"recipients"}) && strings.Contains(r.Raw, "100001"), "expected too many recipients: %.300s", r.Raw)
}

func countCampaigns(e *env) int64 {
	e.t.Helper()
	n, err := e.app.CountRecords("campaigns")
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}
