package reliability

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"clinicmsg/providers/providertest"
)

// TestWebhookBlackout loses every status callback (the carrier delivers, Twilio posts, and
// the callback never arrives), so the only way a message can reach its final status is the
// status poll, update-message-statuses. It leaves messages younger than 2 minutes to their
// webhook and runs every 5 minutes; one run takes up to 5,000 messages.
//
// The short run starts the job with `clinicmsg jobs run` beside the running server as soon
// as the messages are old enough, and expects one run to finish them all. The soak leaves it
// to the server's own cron and expects every message final within the minimum age plus the
// poll interval plus one batch.
func TestWebhookBlackout(t *testing.T) {
	t.Parallel()
	c := newChecks(t, "webhook_blackout")
	n := 40
	if Soak() {
		n = 400
	}
	fake := providertest.NewTwilio(t)
	fake.SetAutoCallbacks(100 * time.Millisecond)
	a := newAppliance(t, "")
	callbacks := newProxy(t, "http://"+a.addr, nil)
	callbacks.drop.Store(true)
	a.env = twilioEnv(fake, fake.URL, callbacks.URL)
	a.startHealthy()
	su, app, sec := a.appClinic("Blackout Clinic", fake.AuthToken)

	var items []any
	for i := range n {
		to := fmt.Sprintf("+96659%07d", 1000000+i)
		sec.phone(to)
		items = append(items, map[string]any{"channel": "sms", "to": to, "body": fmt.Sprintf("Kestrel blackout %d", i)})
	}
	res := a.api.must(t, "POST", "/api/clinicmsg/send", app, items, 200)
	c.check(res["accepted"] == float64(n), "expected %d accepted, got %v", n, res["accepted"])

	poll(time.Minute, 200*time.Millisecond, func() bool { return a.api.count(t, su, "messages", "status='queued'||status='sending'") == 0 })
	sent := a.api.records(t, su, "messages", "", "id,status,sent_at")
	allSent := true
	for _, m := range sent {
		allSent = allSent && m["status"] == "sent"
	}
	c.check(len(sent) == n && allSent, "expected all %d messages sent and waiting for a receipt, got %d", n, len(sent))
	// The carrier delivers; the callbacks are lost. Each message's "sent" callback is
	// posted (and dropped) before the fake marks it delivered.
	poll(10*time.Second, 20*time.Millisecond, func() bool {
		for _, m := range fake.Messages() {
			if m.Status != "delivered" {
				return false
			}
		}
		return callbacks.dropped.Load() >= int64(n)
	})
	c.check(callbacks.dropped.Load() >= int64(n), "expected the blackout to swallow the callbacks, %d dropped", callbacks.dropped.Load())
	eligible := newestSentAt(sent).Add(2 * time.Minute) // the poll's minimum age

	var jobOut string
	var runTook time.Duration
	if Soak() {
		// The server's own cron: */5 minutes, after the 2-minute minimum age.
		limit := eligible.Add(5*time.Minute + time.Minute)
		poll(time.Until(limit), 5*time.Second, func() bool { return a.api.count(t, su, "messages", "status='sent'") == 0 })
	} else {
		// The poll takes only messages sent 2 minutes ago or more, by the child process's
		// clock: a black-box appliance has no clock a test can move, so the age is waited out.
		time.Sleep(pollMinAgeWait(sent))
		start := time.Now()
		out, err := a.command("jobs", "run", "update-message-statuses").CombinedOutput()
		runTook = time.Since(start)
		jobOut = strings.TrimSpace(string(out))
		c.check(err == nil, "the status poll failed: %v: %s", err, out)
		t.Logf("status poll beside the server: %s", jobOut)
	}
	finalAfter := time.Since(eligible)

	msgs := a.api.records(t, su, "messages", "", "id,status")
	byStatus := map[string]int{}
	for _, m := range msgs {
		byStatus[m["status"].(string)]++
	}
	c.check(byStatus["delivered"] == n, "expected all %d messages delivered through the poll, got %v", n, byStatus)
	polled := a.api.records(t, su, "message_logs", "event='status'", "message,detail")
	bySource := map[string]int{}
	for _, l := range polled {
		raw, _ := json.Marshal(l["detail"])
		var d struct{ Source string }
		_ = json.Unmarshal(raw, &d)
		bySource[d.Source]++
	}
	c.check(bySource["poll"] == n && bySource["webhook"] == 0, "expected every status change from the poll, got %v", bySource)

	_, err := a.stop(15 * time.Second)
	c.check(err == nil, "stop: %v", err)
	scanned, leaks := scanLogs(t, c, a, sec)
	figures := map[string]any{
		"messages": n, "callbacks_dropped": callbacks.dropped.Load(), "messages_by_status": byStatus,
		"status_changes_by_source": bySource, "final_after_eligible_s": int(finalAfter.Seconds()),
		"poll_min_age_s": 120, "poll_interval_s": 300, "log_bytes_scanned": scanned, "log_leaks": len(leaks),
	}
	if jobOut != "" {
		figures["job_run"] = jobOut
		figures["job_run_ms"] = runTook.Milliseconds()
		figures["triggered_by"] = "clinicmsg jobs run update-message-statuses (beside the server)"
	} else {
		figures["triggered_by"] = "the server's cron"
	}
	c.record(figures)
}
