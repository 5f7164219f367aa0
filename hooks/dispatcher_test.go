package hooks_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"clinicmsg/hooks"
	"clinicmsg/providers"
	"clinicmsg/providers/providertest"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tests"
	"github.com/pocketbase/pocketbase/tools/types"
)

func TestMessageLifecycle(t *testing.T) {
	e := newEnv(t)
	res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "body": "Your appointment is tomorrow at 10:00"})
	must(t, res.Status == 200 && res.str("status") == "queued", "expected queued, got %d: %s", res.Status, res.Raw)
	rec := e.waitStatus(res.str("id"), "delivered", 5*time.Second)

	want := []string{"created:queued", "sending:sending", "sent:sent", "status:delivered"}
	must(t, slices.Equal(e.logEvents(rec.Id), want), "expected log %v, got %v", want, e.logEvents(rec.Id))
	must(t, rec.GetString("provider") == "mock" && rec.GetString("provider_message_id") != "", "provider not recorded: %v", rec)
	must(t, rec.GetInt("attempts") == 1, "expected 1 attempt, got %d", rec.GetInt("attempts"))
	must(t, !rec.GetDateTime("sent_at").IsZero() && !rec.GetDateTime("delivered_at").IsZero(), "timestamps missing")

	first, err := e.app.FindFirstRecordByFilter("message_logs", "message = {:m} && event = 'created'", map[string]any{"m": rec.Id})
	must(t, err == nil, "no created log: %v", err)
	must(t, first.GetString("ip") == "127.0.0.1" && first.GetString("user_agent") == "clinicmsg-test/1.0",
		"the first log row must record the caller's IP and user agent, got %q %q", first.GetString("ip"), first.GetString("user_agent"))

	// The caller's clinic sees the trail.
	logs := e.do("GET", "/api/collections/message_logs/records?filter=message='"+rec.Id+"'", "staffA", nil)
	must(t, int(logs.Body["totalItems"].(float64)) == 4, "expected 4 log rows over REST, got %v", logs.Body["totalItems"])
}

func TestDispatcherOutcomesOnMockTestNumbers(t *testing.T) {
	e := newEnv(t)
	scenarios := []struct {
		to       string
		status   string
		attempts int
		events   []string
	}{
		{providers.MockNumberPermanent, "failed", 1, []string{"created:queued", "sending:sending", "failed:failed"}},
		{providers.MockNumberRetryable, "failed", 3, []string{"created:queued", "sending:sending", "retry_scheduled:queued", "sending:sending", "retry_scheduled:queued", "sending:sending", "failed:failed"}},
		{providers.MockNumberFlaky, "delivered", 2, []string{"created:queued", "sending:sending", "retry_scheduled:queued", "sending:sending", "sent:sent", "status:delivered"}},
		{providers.MockNumberUndelivered, "undelivered", 1, []string{"created:queued", "sending:sending", "sent:sent", "status:undelivered"}},
		{providers.MockNumberUnknown, "failed", 3, []string{"created:queued", "sending:sending", "retry_scheduled:queued", "sending:sending", "retry_scheduled:queued", "sending:sending", "failed:failed"}},
	}
	for _, s := range scenarios {
		t.Run(s.to, func(t *testing.T) {
			res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": s.to, "body": "x"})
			must(t, res.Status == 200, "create: %s", res.Raw)
			rec := e.waitStatus(res.str("id"), s.status, 5*time.Second)
			must(t, rec.GetInt("attempts") == s.attempts, "expected %d attempts, got %d", s.attempts, rec.GetInt("attempts"))
			must(t, slices.Equal(e.logEvents(rec.Id), s.events), "expected log %v, got %v", s.events, e.logEvents(rec.Id))
			if s.status == "failed" {
				must(t, rec.GetString("error_code") != "" && rec.GetString("status_reason") != "", "a failure must say why: %v", rec)
			}
		})
	}
}

func TestEmailGoesThroughTheMailer(t *testing.T) {
	e := newEnv(t)
	res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "email", "to": "patient@example.com", "subject": "Results", "body": "Your results are ready."})
	must(t, res.Status == 200, "create: %s", res.Raw)
	rec := e.waitStatus(res.str("id"), "sent", 5*time.Second)
	must(t, e.app.TestMailer.TotalSend() == 1, "expected one mail, got %d", e.app.TestMailer.TotalSend())
	mail := e.app.TestMailer.LastMessage()
	must(t, mail.To[0].Address == "patient@example.com" && mail.Subject == "Results" && mail.Text == "Your results are ready.", "wrong mail: %+v", mail)
	must(t, rec.GetString("provider") == "email", "expected provider email, got %q", rec.GetString("provider"))
}

// TestRestartResumesWork: rows a stopped process left queued, or mid-send under a lease,
// are sent after a restart, each exactly once.
func TestRestartResumesWork(t *testing.T) {
	// The first process: messages are stored, then it "dies" before its dispatcher runs.
	app, err := tests.NewTestAppWithConfig(core.BaseAppConfig{DataDir: templateDir, DBConnect: hooks.DBConnect})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Cleanup()
	if _, err := hooks.Register(app, testConfig()); err != nil {
		t.Fatal(err)
	}
	clinic, err := app.FindFirstRecordByData("clinics", "name", "Clinic A")
	if err != nil {
		t.Fatal(err)
	}
	col, err := app.FindCollectionByNameOrId("messages")
	if err != nil {
		t.Fatal(err)
	}
	var queued []string
	for i := range 5 {
		rec := core.NewRecord(col)
		rec.Load(map[string]any{"clinic": clinic.Id, "channel": "sms", "to": fmt.Sprintf("05012345%02d", i), "body": "x"})
		if err := app.Save(rec); err != nil {
			t.Fatal(err)
		}
		queued = append(queued, rec.Id)
	}
	// Two rows were claimed when the process died: one lease already expired, one not.
	inFlight := queued[3:]
	for i, id := range inFlight {
		rec, err := app.FindRecordById("messages", id)
		if err != nil {
			t.Fatal(err)
		}
		rec.Set("status", "sending")
		rec.Set("attempts", 1)
		rec.Set("provider", "mock")
		lease := time.Now().UTC().Add(-time.Second)
		if i == 1 {
			lease = time.Now().UTC().Add(time.Second) // claimed just before the crash
		}
		rec.Set("next_attempt_at", lease)
		if err := app.Save(rec); err != nil {
			t.Fatal(err)
		}
	}
	dataDir := app.DataDir()
	if err := app.ClearBootstrap(); err != nil {
		t.Fatal(err)
	}

	// The restarted process on the same data folder.
	e := newEnvFrom(t, dataDir)
	for _, id := range queued {
		rec := e.waitStatus(id, "delivered", 5*time.Second)
		sends := 0
		for _, ev := range e.logEvents(id) {
			if strings.HasPrefix(ev, "sent:") {
				sends++
			}
		}
		must(t, sends == 1, "message %s sent %d times: %v", id, sends, e.logEvents(id))
		if slices.Contains(inFlight, id) {
			must(t, rec.GetInt("attempts") == 2, "an in-doubt row is sent again on the mock: attempts %d", rec.GetInt("attempts"))
			must(t, slices.Contains(e.logEvents(id), "lease_expired:sending"), "expected a lease_expired log: %v", e.logEvents(id))
		}
	}
}

// TestManyMessagesEachSentOnce: many workers never claim the same row twice, and a stop
// in the middle leaves nothing half-claimed.
func TestManyMessagesEachSentOnce(t *testing.T) {
	e := newEnv(t, func(c *hooks.Config) { c.Workers = 16; c.ClaimBatch = 7 })
	const n = 300
	err := e.seedQueued(n)
	must(t, err == nil, "seed: %v", err)
	e.svc.Dispatcher.Wake()
	// Stop in the middle: once the first messages are out, with the rest claimed or queued.
	waitFor(t, 10*time.Second, "the first messages sent", func() bool { return e.countMessages("status = 'sent' || status = 'delivered'") > 0 })
	e.svc.Stop()

	must(t, e.countMessages("status = 'sending'") == 0, "a stop must leave no row claimed, got %d", e.countMessages("status = 'sending'"))
	var dup []struct {
		Message string `db:"message"`
		N       int    `db:"n"`
	}
	err = e.app.DB().NewQuery("SELECT message, COUNT(*) AS n FROM message_logs WHERE event = 'sending' GROUP BY message HAVING n > 1").All(&dup)
	must(t, err == nil && len(dup) == 0, "rows claimed twice: %v %v", dup, err)
	sent := e.countMessages("status = 'sent' || status = 'delivered'")
	must(t, sent > 0, "expected some messages sent before the stop")
	must(t, sent+e.countMessages("status = 'queued'") == n, "messages lost: %d sent + %d queued of %d", sent, e.countMessages("status = 'queued'"), n)
}

func TestRetryAndRefreshRoutes(t *testing.T) {
	e := newEnv(t, func(c *hooks.Config) { c.MaxAttempts = 2 })
	failed := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": providers.MockNumberPermanent, "body": "x"})
	e.waitStatus(failed.str("id"), "failed", 5*time.Second)
	ok := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "body": "x"})
	e.waitStatus(ok.str("id"), "delivered", 5*time.Second)

	scenarios := []struct {
		name   string
		path   string
		who    string
		status int
		field  string
	}{
		{"retry another clinic's message", "/api/clinicmsg/messages/" + failed.str("id") + "/retry", "staffB", 404, ""},
		{"retry unauthenticated", "/api/clinicmsg/messages/" + failed.str("id") + "/retry", "", 401, ""},
		{"retry a delivered message", "/api/clinicmsg/messages/" + ok.str("id") + "/retry", "staffA", 400, "status"},
		{"retry unknown id", "/api/clinicmsg/messages/nope/retry", "staffA", 404, ""},
		{"retry a failed message", "/api/clinicmsg/messages/" + failed.str("id") + "/retry", "staffA", 200, ""},
		{"refresh another clinic's message", "/api/clinicmsg/messages/" + ok.str("id") + "/refresh", "staffB", 404, ""},
		{"refresh a delivered message", "/api/clinicmsg/messages/" + ok.str("id") + "/refresh", "appA", 200, ""},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			res := e.do("POST", s.path, s.who, nil)
			must(t, res.Status == s.status, "expected %d, got %d: %s", s.status, res.Status, res.Raw)
			if s.field != "" {
				must(t, slices.Equal(res.errorFields(), []string{s.field}), "expected the error to name %s: %s", s.field, res.Raw)
			}
		})
	}
	// The retried message failed again (permanent number) and has used both attempts.
	var rec *core.Record
	waitFor(t, 5*time.Second, "the retried message failed after its second attempt", func() bool {
		rec = e.message(failed.str("id"))
		return rec.GetString("status") == "failed" && rec.GetInt("attempts") >= 2
	})
	must(t, slices.Contains(e.logEvents(rec.Id), "retry_requested:queued"), "expected a retry_requested log: %v", e.logEvents(rec.Id))
	res := e.do("POST", "/api/clinicmsg/messages/"+failed.str("id")+"/retry", "staffA", nil)
	must(t, res.Status == 400 && slices.Equal(res.errorFields(), []string{"attempts"}), "expected 400 naming attempts, got %d: %s", res.Status, res.Raw)
}

// TestRefreshAppliesTheProviderStatus: a message left "sent" (its delivery report was lost)
// is brought up to date by refresh.
func TestRefreshAppliesTheProviderStatus(t *testing.T) {
	e := newEnv(t, func(c *hooks.Config) { c.MockDeliverAfter = time.Hour })
	res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "body": "x"})
	e.waitStatus(res.str("id"), "sent", 5*time.Second)
	r := e.do("POST", "/api/clinicmsg/messages/"+res.str("id")+"/refresh", "staffA", nil)
	must(t, r.Status == 200 && r.Body["status"] == "delivered" && r.Body["updated"] == true, "expected delivered, got %d: %s", r.Status, r.Raw)
	r = e.do("POST", "/api/clinicmsg/messages/"+res.str("id")+"/refresh", "staffA", nil)
	must(t, r.Status == 200 && r.Body["updated"] == false, "a second refresh changes nothing: %s", r.Raw)
}

// TestStatusMachineIsMonotonic: late, repeated and out-of-order reports never move a
// message backwards, and each accepted change writes one log row.
func TestStatusMachineIsMonotonic(t *testing.T) {
	e := newEnv(t, func(c *hooks.Config) { c.MockDeliverAfter = time.Hour })
	res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "whatsapp", "to": "0501234567", "body": "x"})
	rec := e.waitStatus(res.str("id"), "sent", 5*time.Second)
	pid := rec.GetString("provider_message_id")
	steps := []struct {
		report  string
		want    string
		changed bool
	}{
		{"delivered", "delivered", true},
		{"delivered", "delivered", false},
		{"sent", "delivered", false},
		{"failed", "delivered", false},
		{"read", "read", true},
		{"delivered", "read", false},
	}
	for _, s := range steps {
		changed, err := e.svc.ApplyStatus(providers.StatusUpdate{ProviderMessageID: pid, Status: s.report}, "mock", "test")
		must(t, err == nil, "apply %s: %v", s.report, err)
		rec = e.message(rec.Id)
		must(t, changed == s.changed && rec.GetString("status") == s.want, "after %s: expected %s (changed %v), got %s (changed %v)", s.report, s.want, s.changed, rec.GetString("status"), changed)
	}
	must(t, !rec.GetDateTime("read_at").IsZero() && !rec.GetDateTime("delivered_at").IsZero(), "read_at and delivered_at must be set")
	want := []string{"created:queued", "sending:sending", "sent:sent", "status:delivered", "status:read"}
	must(t, slices.Equal(e.logEvents(rec.Id), want), "expected log %v, got %v", want, e.logEvents(rec.Id))

	_, err := e.svc.ApplyStatus(providers.StatusUpdate{ProviderMessageID: "unknown", Status: "delivered"}, "mock", "test")
	must(t, err != nil, "a report for no message must be an error")
	_ = types.NowDateTime
}

// TestSendOutcomeOnAMovedRow: the send outcome is written with one UPDATE guarded by the
// lease (status sending, this attempt). When the row moved meanwhile (a delivery report got
// there first), the outcome must not move it back: it keeps "delivered" and gains the
// provider's id. When nothing moved, the guarded UPDATE writes "sent".
func TestSendOutcomeOnAMovedRow(t *testing.T) {
	e := newEnv(t)
	e.svc.Dispatcher.Stop()
	create := func(to string) {
		res := e.do("POST", "/api/collections/messages/records", "appA", map[string]any{"channel": "sms", "to": to, "body": "x"})
		must(t, res.Status == 200, "create: %s", res.Raw)
	}

	create("0501230001")
	id, err := hooks.SendOutcomeAfter(e.svc, nil, &providers.Receipt{ProviderMessageID: "SM-plain", Segments: 1})
	must(t, err == nil, "send: %v", err)
	rec := e.message(id)
	must(t, rec.GetString("status") == "sent" && rec.GetString("provider_message_id") == "SM-plain" && !rec.GetDateTime("sent_at").IsZero(),
		"expected sent with the provider's id, got %s %q", rec.GetString("status"), rec.GetString("provider_message_id"))
	must(t, slices.Equal(e.logEvents(id), []string{"created:queued", "sending:sending", "sent:sent"}), "trail: %v", e.logEvents(id))

	create("0501230002")
	id, err = hooks.SendOutcomeAfter(e.svc, func(id string) {
		_, err := e.svc.ApplyStatus(providers.StatusUpdate{MessageID: id, Status: providers.StatusDelivered}, "mock", "test")
		must(t, err == nil, "report: %v", err)
	}, &providers.Receipt{ProviderMessageID: "SM-late", Segments: 1})
	must(t, err == nil, "send: %v", err)
	rec = e.message(id)
	must(t, rec.GetString("status") == "delivered" && rec.GetString("provider_message_id") == "SM-late" && !rec.GetDateTime("delivered_at").IsZero(),
		"expected delivered kept and the provider's id added, got %s %q", rec.GetString("status"), rec.GetString("provider_message_id"))
	must(t, slices.Equal(e.logEvents(id), []string{"created:queued", "sending:sending", "status:delivered", "sent:delivered"}), "trail: %v", e.logEvents(id))
}

// TestClaimReturnsTheStoredRow: the claim's UPDATE routes the messages and returns their
// rows; the records a send is made from must be what a fresh read of the row gives, routed
// and unchanged.
func TestClaimReturnsTheStoredRow(t *testing.T) {
	e := newEnv(t)
	e.svc.Dispatcher.Stop()
	bodies := []map[string]any{
		{"channel": "sms", "to": "0501230021", "body": "Your results are ready", "context": map[string]any{"a": 1}},
		{"channel": "email", "to": "patient@example.com", "subject": "Results", "body": "Ready"},
	}
	for _, b := range bodies {
		res := e.do("POST", "/api/collections/messages/records", "appA", b)
		must(t, res.Status == 200, "create: %s", res.Raw)
	}
	recs, err := hooks.ClaimDue(e.svc, 10)
	must(t, err == nil && len(recs) == len(bodies), "expected %d claimed, got %d: %v", len(bodies), len(recs), err)
	for _, rec := range recs {
		stored := e.message(rec.Id)
		want := map[string]string{"sms": "mock", "email": "email"}[stored.GetString("channel")]
		must(t, stored.GetString("status") == "sending" && stored.GetInt("attempts") == 1 && stored.GetString("provider") == want,
			"expected sending, attempt 1, provider %s, got %s %d %q", want, stored.GetString("status"), stored.GetInt("attempts"), stored.GetString("provider"))
		got, _ := json.Marshal(rec.PublicExport())
		exp, _ := json.Marshal(stored.PublicExport())
		must(t, string(got) == string(exp), "the claimed record differs from the stored row:\n%s\n%s", got, exp)
		must(t, !rec.IsNew() && rec.Original().GetString("status") == "sending", "the claimed record must read as stored, unchanged")
	}
}

// TestSendOutcomeRunAgainAfterAFailedGroup: the send outcome updates the claimed record in
// place; when its group rolls back and it runs again alone, it must write the same row
// (sent_at included) and announce it once.
func TestSendOutcomeRunAgainAfterAFailedGroup(t *testing.T) {
	e := newEnv(t)
	e.svc.Dispatcher.Stop()
	res := e.do("POST", "/api/collections/messages/records", "appA", map[string]any{"channel": "sms", "to": "0501230031", "body": "x"})
	must(t, res.Status == 200, "create: %s", res.Raw)
	var mu sync.Mutex
	announced := 0
	e.app.OnModelAfterUpdateSuccess("messages").BindFunc(func(ev *core.ModelEvent) error {
		if rec, ok := ev.Model.(*core.Record); ok && rec.GetString("status") == "sent" {
			mu.Lock()
			announced++
			mu.Unlock()
		}
		return ev.Next()
	})
	id, err := hooks.SendOutcomeAfterARolledBackGroup(e.svc, &providers.Receipt{ProviderMessageID: "SM-again", Segments: 1})
	must(t, err == nil, "send: %v", err)
	rec := e.message(id)
	must(t, rec.GetString("status") == "sent" && rec.GetString("provider_message_id") == "SM-again" && !rec.GetDateTime("sent_at").IsZero(),
		"expected sent with sent_at and the provider's id, got %s %q %v", rec.GetString("status"), rec.GetString("provider_message_id"), rec.GetDateTime("sent_at"))
	must(t, slices.Equal(e.logEvents(id), []string{"created:queued", "sending:sending", "sent:sent"}), "trail: %v", e.logEvents(id))
	mu.Lock()
	defer mu.Unlock()
	must(t, announced == 1, "expected the change announced once, got %d", announced)
}

// sendingThroughSlowTwilio starts an appliance with workers sends in flight to a Twilio
// fake answering after latency, and n messages queued and the dispatcher woken.
func sendingThroughSlowTwilio(t *testing.T, latency time.Duration, workers, n int) (*env, *providertest.Twilio) {
	t.Helper()
	fake := providertest.NewTwilio(t)
	fake.SetLatency(latency)
	e := newEnv(t, withTwilio(fake), func(c *hooks.Config) { c.Workers = workers })
	must(t, e.seedQueued(n) == nil, "seed")
	e.svc.Dispatcher.Wake()
	return e, fake
}

// TestClaimedInHandGoBackAtStop: the dispatcher holds a few claimed messages beyond its
// free send slots, so that a slot that frees starts the next at once; a stop sends none of
// them and returns each to the queue without using an attempt.
func TestClaimedInHandGoBackAtStop(t *testing.T) {
	const n = 20
	e, fake := sendingThroughSlowTwilio(t, 400*time.Millisecond, 8, n)
	// 8 in flight at the fake and 2 (a quarter of the slots) claimed in hand.
	waitFor(t, 5*time.Second, "the sends in flight and in hand claimed", func() bool {
		return e.countMessages("status = 'sending'") == 10
	})
	e.svc.Stop()

	must(t, e.countMessages("status = 'sending'") == 0, "a stop must leave no row claimed, got %d", e.countMessages("status = 'sending'"))
	sent, queued := e.countMessages("status = 'sent' || status = 'delivered'"), e.countMessages("status = 'queued'")
	must(t, sent == len(sendsTo(fake)), "%d messages sent, the fake took %d", sent, len(sendsTo(fake)))
	must(t, sent+queued == n, "messages lost: %d sent + %d queued of %d", sent, queued, n)
	released := 0
	left, err := e.app.FindRecordsByFilter("messages", "status = 'queued'", "", 0, 0)
	must(t, err == nil, "queued: %v", err)
	for _, rec := range left {
		if slices.Contains(e.logEvents(rec.Id), "released:queued") {
			released++
			must(t, rec.GetInt("attempts") == 0, "a message released at stop used an attempt: %d", rec.GetInt("attempts"))
		}
	}
	must(t, released == 2, "expected the 2 messages in hand released at stop, got %d", released)
}

// TestClaimedInHandTooLongGoesBack: a claimed message that waits in hand longer than half
// its lease (the test's lease is 2 s) goes back to the queue instead of out, so the claim
// that takes it again reads the patient's consent again; each message is still sent once.
// Once the provider's answers show it slow, no message is held in hand at all.
func TestClaimedInHandTooLongGoesBack(t *testing.T) {
	const n = 6
	e, fake := sendingThroughSlowTwilio(t, 1500*time.Millisecond, 4, n)
	waitFor(t, 15*time.Second, "every message sent", func() bool {
		return e.countMessages("status = 'sent' || status = 'delivered'") == n
	})
	must(t, len(sendsTo(fake)) == n, "the fake took %d sends for %d messages", len(sendsTo(fake)), n)
	var back int
	err := e.app.DB().NewQuery("SELECT COUNT(*) FROM message_logs WHERE event = 'released' AND detail LIKE '%waited_too_long%'").Row(&back)
	must(t, err == nil && back >= 1, "expected a message held in hand too long to go back to the queue: %d %v", back, err)
	must(t, back <= 2, "messages kept going back to the queue (%d): the hand must empty against a slow provider", back)
}

// TestHeldTooLongReadsConsentAgain: consent is a send-time rule, so a message that goes
// back to the queue from the hand is checked against the patient's preferences again when
// it is claimed again. Patients who opt out while their message waits in hand get nothing;
// those whose messages were already at the provider are not recalled.
func TestHeldTooLongReadsConsentAgain(t *testing.T) {
	const n = 6
	e, fake := sendingThroughSlowTwilio(t, 1500*time.Millisecond, 4, n)
	// 4 in flight at the fake and 1 (a quarter of the slots) claimed in hand.
	waitFor(t, 5*time.Second, "the sends in flight and in hand claimed", func() bool {
		return e.countMessages("status = 'sending'") == 5
	})
	for i := range n {
		e.save("preferences", map[string]any{"clinic": e.clinicA.Id, "phone": fmt.Sprintf("0501%06d", i), "opted_out": true})
	}
	waitFor(t, 15*time.Second, "no message left queued or sending", func() bool {
		return e.countMessages("status = 'queued' || status = 'sending'") == 0
	})
	must(t, len(sendsTo(fake)) == 4, "expected only the 4 sends already in flight to reach the provider, got %d", len(sendsTo(fake)))
	skipped, err := e.app.FindRecordsByFilter("messages", "status = 'skipped'", "", 0, 0)
	must(t, err == nil && len(skipped) == 2, "expected the message in hand and the one still queued skipped, got %d (%v)", len(skipped), err)
	released := 0
	for _, rec := range skipped {
		if slices.Contains(e.logEvents(rec.Id), "released:queued") {
			released++
		}
	}
	must(t, released == 1, "expected the message held in hand released and then skipped for consent, got %d released", released)
}
