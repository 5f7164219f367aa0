package hooks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"clinicmsg/hooks"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
)

// row is a message written straight into the table, with every field the statistics and
// the jobs read under the test's control (the record API would run the create checks and
// the dispatcher would move it on).
type row struct {
	id, clinic, channel, status, reason, provider, providerID, errorCode, currency, to string
	attempts                                                                           int
	cost                                                                               float64
	created, updated                                                                   time.Time
	sent, delivered, read                                                              time.Duration // after created; 0 = not set
	nextAttempt                                                                        time.Time
}

// insert writes rows in one transaction and returns their ids.
func (e *env) insert(rows ...row) []string {
	e.t.Helper()
	ids := make([]string, len(rows))
	err := e.app.RunInTransaction(func(tx core.App) error {
		for i, r := range rows {
			if r.id == "" {
				r.id = fmt.Sprintf("t%014d", rand.Int64N(1e14))
			}
			if r.to == "" {
				r.to = "+966501234567"
				if r.channel == "email" {
					r.to = "patient@example.com"
				}
			}
			if r.updated.IsZero() {
				r.updated = r.created
			}
			at := func(d time.Duration) string {
				if d == 0 {
					return ""
				}
				return fmtTime(r.created.Add(d))
			}
			next := ""
			if !r.nextAttempt.IsZero() {
				next = fmtTime(r.nextAttempt)
			}
			_, err := tx.DB().Insert("messages", dbx.Params{
				"id": r.id, "clinic": r.clinic, "channel": r.channel, "to": r.to, "body": "Your appointment is tomorrow.",
				"status": r.status, "status_reason": r.reason, "provider": r.provider, "provider_message_id": r.providerID,
				"attempts": r.attempts, "error_code": r.errorCode, "cost": r.cost, "currency": r.currency, "segments": 1,
				"sent_at": at(r.sent), "delivered_at": at(r.delivered), "read_at": at(r.read), "next_attempt_at": next,
				"created": fmtTime(r.created), "updated": fmtTime(r.updated),
			}).Execute()
			if err != nil {
				return err
			}
			ids[i] = r.id
		}
		return nil
	})
	if err != nil {
		e.t.Fatalf("failed to insert messages: %v", err)
	}
	return ids
}

// quiet stops the dispatcher and the cron, so that rows written by a test stay as written.
func (e *env) quiet() *env {
	e.app.Cron().Stop()
	e.svc.Dispatcher.Stop()
	return e
}

func (e *env) runJob(name string) hooks.JobResult {
	e.t.Helper()
	res, err := e.svc.RunJob(context.Background(), name, "test")
	if err != nil {
		e.t.Fatalf("job %s: %v (%+v)", name, err, res)
	}
	return res
}

// stats fetches GET /api/clinicmsg/stats and decodes it.
func (e *env) stats(who, query string) hooks.Stats {
	e.t.Helper()
	res := e.do("GET", "/api/clinicmsg/stats"+query, who, nil)
	if res.Status != 200 {
		e.t.Fatalf("stats%s as %s: expected 200, got %d: %s", query, who, res.Status, res.Raw)
	}
	var st hooks.Stats
	if err := json.Unmarshal([]byte(res.Raw), &st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

func TestStatsRefusesBadRequests(t *testing.T) {
	e := newEnv(t).quiet()
	scenarios := []struct {
		name   string
		who    string
		query  string
		status int
		field  string
	}{
		{"guest", "", "?days=7", 401, ""},
		{"days zero", "staffA", "?days=0", 400, "days"},
		{"days too many", "staffA", "?days=367", 400, "days"},
		{"days negative", "staffA", "?days=-1", 400, "days"},
		{"days fraction", "staffA", "?days=1.5", 400, "days"},
		{"days word", "staffA", "?days=week", 400, "days"},
		{"days empty", "staffA", "?days=", 400, "days"},
		{"days signed", "staffA", "?days=+7", 400, "days"},
		{"another clinic", "staffA", "?clinic=" + e.clinicB.Id, 403, "clinic"},
		{"user without clinic", "nobody", "", 403, "clinic"},
		{"superuser without clinic", "superuser", "", 400, "clinic"},
		{"superuser with unknown clinic", "superuser", "?clinic=nosuchclinic123", 400, "clinic"},
		{"days 1", "staffA", "?days=1", 200, ""},
		{"days 366", "staffA", "?days=366", 200, ""},
		{"own clinic named", "adminA", "?clinic=" + e.clinicA.Id, 200, ""},
		{"superuser with clinic", "superuser", "?clinic=" + e.clinicB.Id, 200, ""},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			res := e.do("GET", "/api/clinicmsg/stats"+s.query, s.who, nil)
			must(t, res.Status == s.status, "expected %d, got %d: %s", s.status, res.Status, res.Raw)
			if s.field == "" {
				return
			}
			fields := res.errorFields()
			must(t, len(fields) == 1 && fields[0] == s.field, "expected the error to name %q, got %v: %s", s.field, fields, res.Raw)
			must(t, res.Body["status"] == float64(s.status) && res.str("message") != "", "expected PocketBase's error shape, got %s", res.Raw)
			data := res.Body["data"].(map[string]any)[s.field].(map[string]any)
			must(t, data["code"] != "" && data["message"] != "", "expected a code and a message for %s, got %v", s.field, data)
		})
	}
}

// statsFixture writes a small data set with known answers. Clinic A is in Asia/Riyadh
// (UTC+3): "today" messages are created at 01:00 local, which is still yesterday in UTC,
// so the daily series proves it counts in the clinic's time zone.
func statsFixture(e *env) (today time.Time) {
	loc, _ := time.LoadLocation("Asia/Riyadh")
	l := time.Now().In(loc)
	midnight := time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)
	today = midnight.Add(time.Hour).UTC()
	yesterday := today.Add(-24 * time.Hour)
	a, b := e.clinicA.Id, e.clinicB.Id
	s := time.Second
	e.insert(
		row{clinic: a, channel: "sms", status: "delivered", provider: "twilio", attempts: 1, cost: 0.05, currency: "USD", created: today, sent: 2 * s, delivered: 10 * s},
		row{clinic: a, channel: "sms", status: "delivered", provider: "twilio", attempts: 2, cost: 0.05, currency: "USD", created: today, sent: 4 * s, delivered: 10 * s},
		row{clinic: a, channel: "sms", status: "failed", reason: "attempts_exhausted", provider: "twilio", attempts: 3, errorCode: "30001", created: today},
		row{clinic: a, channel: "sms", status: "undelivered", provider: "unifonic", attempts: 1, cost: 0.10, currency: "SAR", errorCode: "30005", created: today, sent: 2 * s},
		row{clinic: a, channel: "whatsapp", status: "read", provider: "twilio", attempts: 1, cost: 0.02, currency: "USD", created: today, sent: 1 * s, delivered: 5 * s, read: 9 * s},
		row{clinic: a, channel: "email", status: "sent", provider: "email", attempts: 1, created: today, sent: 1 * s},
		row{clinic: a, channel: "sms", status: "skipped", reason: "opted_out", created: today},
		row{clinic: a, channel: "sms", status: "queued", created: today, nextAttempt: today.Add(240 * time.Hour)},
		row{clinic: a, channel: "sms", status: "sent", provider: "twilio", attempts: 1, created: today, sent: 2 * s},
		row{clinic: a, channel: "sms", status: "delivered", provider: "unifonic", attempts: 1, cost: 0.10, currency: "SAR", created: yesterday, sent: 2 * s, delivered: 20 * s},
		row{clinic: a, channel: "sms", status: "failed", reason: "permanent", provider: "twilio", attempts: 1, errorCode: "21211", created: yesterday},
		row{id: "old0000000000a1", clinic: a, channel: "sms", status: "delivered", provider: "twilio", attempts: 1, created: today.Add(-10 * 24 * time.Hour), sent: s, delivered: 2 * s},
		row{clinic: b, channel: "sms", status: "failed", reason: "permanent", provider: "twilio", attempts: 1, errorCode: "99999", created: today},
	)
	return today
}

func TestStatsKnownAnswers(t *testing.T) {
	e := newEnv(t).quiet()
	statsFixture(e)

	st := e.stats("staffA", "?days=7")
	must(t, st.Clinic == e.clinicA.Id && st.Timezone == "Asia/Riyadh" && st.Days == 7 && len(st.ByDay) == 7, "wrong header: %s", pretty(st))
	checks := []struct {
		name      string
		got, want any
	}{
		{"total", st.Total, 11},
		{"by_channel", st.ByChannel, map[string]int{"sms": 9, "whatsapp": 1, "email": 1}},
		{"by_status", st.ByStatus, map[string]int{"scheduled": 0, "queued": 1, "sending": 0, "sent": 2, "delivered": 3, "read": 1,
			"failed": 2, "undelivered": 1, "canceled": 0, "skipped": 1}},
		// Final: 4 delivered/read + the email accepted by the mail server, 3 failed/undelivered.
		{"final", st.Final, 8},
		{"successful", st.Successful, 5},
		{"success_rate", st.SuccessRate, 62.5},
		{"by_provider", st.ByProvider, map[string]*hooks.ProviderStats{
			"twilio":   {Total: 6, Final: 5, Successful: 3, SuccessRate: 60},
			"unifonic": {Total: 2, Final: 2, Successful: 1, SuccessRate: 50},
			"email":    {Total: 1, Final: 1, Successful: 1, SuccessRate: 100},
		}},
		{"retried", st.Retried, 2},
		{"retry_success_rate", st.RetrySuccessRate, 50.0},
		{"cost", st.Cost, map[string]map[string]float64{"sms": {"USD": 0.1, "SAR": 0.2}, "whatsapp": {"USD": 0.02}}},
		{"top_errors", st.TopErrors, []hooks.ErrorCount{{"21211", 1}, {"30001", 1}, {"30005", 1}}},
		{"days in series", len(st.ByDay), 7},
		{"today", *st.ByDay[6], hooks.DayStats{Date: st.To, Total: 9, Final: 6, Successful: 4, Failed: 2, SuccessRate: 66.67}},
		{"yesterday", *st.ByDay[5], hooks.DayStats{Date: st.ByDay[5].Date, Total: 2, Final: 2, Successful: 1, Failed: 1, SuccessRate: 50}},
		{"an empty day", *st.ByDay[0], hooks.DayStats{Date: st.From}},
		{"queue latencies", st.Latency["queue"].Count, 7},
		{"delivery latencies", st.Latency["delivery"].Count, 4},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			must(t, reflect.DeepEqual(c.got, c.want), "expected %v, got %v", pretty(c.want), pretty(c.got))
		})
	}
	// Sent after 1, 1, 2, 2, 2, 2 and 4 s; delivered 4, 6, 8 and 18 s after sent. Buckets
	// are about 10% wide, so a percentile is within 5% of the exact one.
	latency := []struct {
		name      string
		got, want float64
	}{
		{"queue p50", st.Latency["queue"].P50, 2}, {"queue p95", st.Latency["queue"].P95, 4},
		{"delivery p50", st.Latency["delivery"].P50, 6}, {"delivery p95", st.Latency["delivery"].P95, 18},
	}
	for _, l := range latency {
		must(t, math.Abs(l.got-l.want) <= 0.05*l.want, "%s: expected about %vs, got %vs", l.name, l.want, l.got)
	}

	wide := e.stats("staffA", "?days=30")
	must(t, wide.Total == 12 && wide.ByStatus["delivered"] == 4 && len(wide.ByDay) == 30, "days=30: expected 12 messages, 4 delivered, got %d, %d", wide.Total, wide.ByStatus["delivered"])

	other := e.stats("staffB", "?days=30")
	must(t, other.Total == 1 && len(other.TopErrors) == 1 && other.TopErrors[0].Code == "99999" && other.SuccessRate == 0,
		"clinic B must see exactly its own message, got %s", pretty(other))
	asSuper := e.stats("superuser", "?days=30&clinic="+e.clinicB.Id)
	must(t, asSuper.Total == 1, "a superuser naming clinic B must get B's numbers, got %d", asSuper.Total)

	empty := e.save("clinics", map[string]any{"name": "Clinic C", "timezone": "Asia/Kolkata"})
	none := e.stats("superuser", "?days=1&clinic="+empty.Id)
	must(t, none.Total == 0 && none.Final == 0 && none.SuccessRate == 0 && none.RetrySuccessRate == 0 && len(none.ByDay) == 1 &&
		none.Latency["queue"].Count == 0 && len(none.TopErrors) == 0 && len(none.Cost) == 0 && len(none.ByProvider) == 0,
		"an empty range must be all zeros, got %s", pretty(none))
	must(t, none.Timezone == "Asia/Kolkata", "expected the clinic's own time zone, got %q", none.Timezone)
}

// TestStatsRollupAnswersTheSame: after rollup-message-stats, finished days are read from
// the roll-up; the answer must not change, and a later change to an old message must show
// at once (its day is counted live again until the next roll-up).
func TestStatsRollupAnswersTheSame(t *testing.T) {
	e := newEnv(t).quiet()
	statsFixture(e)
	live := e.stats("staffA", "?days=30")

	res := e.runJob(hooks.JobRollupStats)
	must(t, res.Outcome == "ok" && res.Detail["days"].(int) == 10, "expected the roll-up to cover the 10 finished days since the oldest message, got %+v", res)
	var marked int
	must(t, e.app.DB().NewQuery("SELECT COUNT(*) FROM clinicmsg_stats_days WHERE clinic = {:c}").Bind(dbx.Params{"c": e.clinicA.Id}).Row(&marked) == nil && marked == 10,
		"expected roll-up markers, got %d", marked)
	rolled := e.stats("staffA", "?days=30")
	live.GeneratedAt, rolled.GeneratedAt = time.Time{}, time.Time{}
	must(t, reflect.DeepEqual(live, rolled), "the roll-up changed the answer:\nlive   %s\nrolled %s", pretty(live), pretty(rolled))

	// A second roll-up recomputes only the recent days.
	again := e.runJob(hooks.JobRollupStats)
	must(t, again.Detail["days"].(int) == 3, "expected only the last 3 finished days to be recomputed, got %v", again.Detail)

	old := e.message("old0000000000a1")
	old.Set("status", "failed")
	old.Set("error_code", "30008")
	if err := e.app.Save(old); err != nil {
		t.Fatal(err)
	}
	changed := e.stats("staffA", "?days=30")
	must(t, changed.ByStatus["delivered"] == 3 && changed.ByStatus["failed"] == 3, "a change to a rolled-up day must show at once, got %v", changed.ByStatus)
	e.runJob(hooks.JobRollupStats)
	after := e.stats("staffA", "?days=30")
	after.GeneratedAt, changed.GeneratedAt = time.Time{}, time.Time{}
	must(t, reflect.DeepEqual(after, changed), "the re-rolled day disagrees with the live count")
}

func pretty(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
