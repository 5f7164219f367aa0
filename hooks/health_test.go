package hooks_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"clinicmsg/hooks"
	"clinicmsg/providers"
)

// checker is a provider whose health check answers err and counts how often it is asked.
type checker struct {
	err   error
	calls atomic.Int32
}

func (c *checker) Send(ctx context.Context, m *providers.Message) (*providers.Receipt, error) {
	return nil, &providers.Error{Provider: "test", Class: providers.ErrRetryable, Message: "not used"}
}

func (c *checker) Check(ctx context.Context) error {
	c.calls.Add(1)
	return c.err
}

// route registers p under name and routes the SMS channel to it (fallback optional).
func (e *env) route(name string, p providers.Provider, fallback string) {
	e.t.Helper()
	e.svc.Router.Register(name, p)
	if err := e.svc.Router.SetRoute(providers.ChannelSMS, providers.Route{Primary: name, Fallback: fallback}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) health(who string) response {
	e.t.Helper()
	res := e.do("GET", "/api/clinicmsg/health", who, nil)
	if res.Status != 200 {
		e.t.Fatalf("health as %q: expected 200, got %d: %s", who, res.Status, res.Raw)
	}
	return res
}

func channel(res response, name string) map[string]any {
	chs, _ := res.Body["channels"].(map[string]any)
	ch, _ := chs[name].(map[string]any)
	return ch
}

func TestHealthShowsDetailOnlyToSignedInCallers(t *testing.T) {
	e := newEnv(t).quiet()
	guest := e.health("")
	must(t, len(guest.Body) == 1 && guest.str("status") == "healthy", "a guest must get only the overall status, got %s", guest.Raw)

	staff := e.health("staffA")
	must(t, staff.str("status") == "healthy", "expected healthy, got %s", staff.Raw)
	for _, name := range []string{"sms", "whatsapp", "email"} {
		ch := channel(staff, name)
		must(t, ch["status"] == "healthy" && ch["provider"] != "" && ch["checked_at"] != "" && ch["detail"] != "", "channel %s: %v", name, ch)
		_, counted := ch["attempted"]
		must(t, !counted, "a clinic user must not see the appliance's message counts: %v", ch)
	}
	must(t, channel(staff, "sms")["provider"] == "mock" && channel(staff, "email")["provider"] == "email", "wrong providers: %s", staff.Raw)
	ob, _ := staff.Body["outbox"].(map[string]any)
	for _, k := range []string{"depth", "due", "sending", "scheduled", "oldest_due_age_seconds"} {
		_, ok := ob[k]
		must(t, ok, "outbox.%s missing: %v", k, ob)
	}
}

// TestHealthOutboxIsTheCallersOwn: a clinic user sees its own clinic's queue, a superuser
// the whole appliance's; a due message waiting long enough makes the appliance degraded.
func TestHealthOutboxIsTheCallersOwn(t *testing.T) {
	e := newEnv(t).quiet()
	long := time.Now().UTC().Add(-time.Hour)
	e.insert(
		row{clinic: e.clinicA.Id, channel: "sms", status: "queued", created: long, nextAttempt: long},
		row{clinic: e.clinicB.Id, channel: "sms", status: "queued", created: long, nextAttempt: long},
		row{clinic: e.clinicB.Id, channel: "sms", status: "queued", created: long, nextAttempt: time.Now().Add(time.Hour)},
		row{clinic: e.clinicB.Id, channel: "sms", status: "scheduled", created: long, nextAttempt: time.Now().Add(time.Hour)},
	)
	scenarios := []struct {
		who                   string
		depth, due, scheduled float64
	}{
		{"staffA", 1, 1, 0},
		{"staffB", 2, 1, 1},
		{"superuser", 3, 2, 1},
	}
	for _, s := range scenarios {
		t.Run(s.who, func(t *testing.T) {
			res := e.health(s.who)
			ob := res.Body["outbox"].(map[string]any)
			must(t, ob["depth"] == s.depth && ob["due"] == s.due && ob["scheduled"] == s.scheduled, "expected depth %v due %v scheduled %v, got %v", s.depth, s.due, s.scheduled, ob)
			age := ob["oldest_due_age_seconds"].(float64)
			must(t, age > 3500 && age < 3700, "expected the oldest due message to be an hour late, got %v", age)
			must(t, res.str("status") == "degraded", "sending has stalled for an hour: expected degraded, got %s", res.str("status"))
		})
	}
	must(t, e.health("").str("status") == "degraded", "a guest sees the same overall status")
}

func TestHealthFollowsTheProvidersCheck(t *testing.T) {
	scenarios := []struct {
		name     string
		err      error
		fallback string
		sms      string
		overall  string
	}{
		{"check passes", nil, "", "healthy", "healthy"},
		{"check fails", errors.New("401 bad credentials"), "", "down", "down"},
		{"check fails with a fallback", errors.New("connection refused"), "mock", "degraded", "degraded"},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			e := newEnv(t).quiet()
			c := &checker{err: s.err}
			e.route("vendor", c, s.fallback)
			res := e.runJob(hooks.JobCheckHealth)
			must(t, res.Detail["sms"] == s.sms, "the job must report sms %s, got %v", s.sms, res.Detail)

			h := e.health("adminA")
			sms := channel(h, "sms")
			must(t, sms["status"] == s.sms && sms["provider"] == "vendor", "expected sms %s via vendor, got %v", s.sms, sms)
			must(t, channel(h, "whatsapp")["status"] == "healthy", "whatsapp is on the mock and healthy: %v", channel(h, "whatsapp"))
			must(t, h.str("status") == s.overall && e.health("").str("status") == s.overall, "expected overall %s, got %s", s.overall, h.str("status"))
			if s.fallback != "" {
				fb, _ := sms["fallback"].(map[string]any)
				must(t, fb["provider"] == "mock" && fb["status"] == "healthy", "expected the fallback's health, got %v", sms)
			}
		})
	}
}

// TestHealthChecksAreCached: however often /health is asked, a vendor is checked at most
// once per cache period; the scheduled job always checks afresh.
func TestHealthChecksAreCached(t *testing.T) {
	e := newEnv(t).quiet()
	c := &checker{}
	e.route("vendor", c, "")
	for range 5 {
		e.health("staffA")
		e.health("")
	}
	must(t, c.calls.Load() == 1, "expected one check for ten requests, got %d", c.calls.Load())
	e.runJob(hooks.JobCheckHealth)
	must(t, c.calls.Load() == 2, "the health job must check afresh, got %d checks", c.calls.Load())
}

// TestHealthFollowsTheErrorRate: the mock's check always passes, so only the share of
// recent messages failing on the provider's side can degrade it. A permanent failure (an
// invalid number) is the recipient's problem, not the provider's.
func TestHealthFollowsTheErrorRate(t *testing.T) {
	scenarios := []struct {
		name               string
		ok, retryable, bad int
		sms                string
	}{
		{"all delivered", 6, 0, 0, "healthy"},
		{"one in three failing", 4, 2, 0, "degraded"},
		{"all failing", 0, 5, 0, "down"},
		{"invalid numbers", 1, 0, 5, "healthy"},
		{"too few to judge", 0, 4, 0, "healthy"},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			e := newEnv(t)
			var ids []string
			send := func(n int, to string) {
				for range n {
					// A distinct text each: the same text to the same number is skipped as a duplicate.
					body := fmt.Sprintf("Reminder %d", len(ids))
					res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": to, "body": body})
					must(t, res.Status == 200, "create: %s", res.Raw)
					ids = append(ids, res.str("id"))
				}
			}
			send(s.ok, "0501234567")
			send(s.retryable, providers.MockNumberRetryable)
			send(s.bad, providers.MockNumberPermanent)
			for _, id := range ids {
				e.waitFinal(id, 10*time.Second)
			}
			res := e.runJob(hooks.JobCheckHealth)
			must(t, res.Detail["sms"] == s.sms, "expected sms %s, got %v", s.sms, res.Detail)
			sms := channel(e.health("superuser"), "sms")
			must(t, sms["status"] == s.sms, "expected %s, got %v", s.sms, sms)
			must(t, sms["attempted"] == float64(len(ids)), "a superuser sees how many messages the rate is over: %v", sms)
		})
	}
}

// waitFinal waits until the message has left the queue for good.
func (e *env) waitFinal(id string, within time.Duration) {
	e.t.Helper()
	finished := poll(within, func() bool {
		switch e.message(id).GetString("status") {
		case "delivered", "failed", "undelivered":
			return true
		}
		return false
	})
	if !finished {
		e.t.Fatalf("message %s did not finish within %v: %v", id, within, e.logEvents(id))
	}
}

// TestEmailWithoutSMTPIsToldTruthfully: with no mail server set up, an email message is
// refused at create time naming channel and what to configure, health shows email
// "unconfigured" (not healthy, and the appliance is not degraded by it). An email already
// waiting then fails at once as permanent (providers' TestEmailUnconfigured).
func TestEmailWithoutSMTPIsToldTruthfully(t *testing.T) {
	e := newEnv(t)
	queued := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "email", "to": "sara@example.com", "subject": "Hi", "body": "Hello"})
	must(t, queued.Status == 200, "with SMTP set up: %s", queued.Raw)
	e.waitStatus(queued.str("id"), "sent", 5*time.Second)

	settings := e.app.Settings()
	settings.SMTP.Enabled = false
	if err := e.app.Save(settings); err != nil {
		t.Fatal(err)
	}
	before := e.countMessages("")
	res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "email", "to": "sara@example.com", "subject": "Hi", "body": "Hello again"})
	must(t, res.Status == 400 && len(res.errorFields()) == 1 && res.errorFields()[0] == "channel" && strings.Contains(res.Raw, "Mail settings"),
		"expected 400 naming channel and the mail settings, got %d %s", res.Status, res.Raw)
	viaSend := e.do("POST", "/api/clinicmsg/send", "appA", []map[string]any{{"channel": "email", "to": "sara@example.com", "subject": "Hi", "body": "Hello"}})
	must(t, viaSend.Body["rejected"] == 1.0, "the send route must refuse it too: %s", viaSend.Raw)
	must(t, e.countMessages("") == before, "nothing may be stored")

	health := e.do("GET", "/api/clinicmsg/health", "superuser", nil)
	chs, _ := health.Body["channels"].(map[string]any)
	email, _ := chs["email"].(map[string]any)
	must(t, email["status"] == "unconfigured", "expected email unconfigured, got %v", email)
	notes, _ := email["notes"].([]any)
	must(t, len(notes) == 1 && notes[0].(map[string]any)["code"] == "email_unconfigured", "expected the note as a code, got %v", email["notes"])
	must(t, health.str("status") == "healthy", "an unconfigured channel must not degrade the appliance: %s", health.Raw)
}
