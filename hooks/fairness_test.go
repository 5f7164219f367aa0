package hooks_test

import (
	"fmt"
	"testing"
	"time"

	"clinicmsg/hooks"
	"clinicmsg/providers/providertest"
)

// TestSingleMessagesOvertakeACampaign: with the provider limited to 100 segments a second
// and one clinic's 3,000-recipient campaign draining, another clinic's lab result and the
// same clinic's appointment change are each sent within 5 s, not after the campaign.
func TestSingleMessagesOvertakeACampaign(t *testing.T) {
	fake := providertest.NewTwilio(t)
	e := newEnv(t, withTwilio(fake), func(c *hooks.Config) { c.TwilioMPS = 100 })
	camp := startCampaign(t, e, "adminA", "Flu season", numbers("0503", 3000))
	// Let the campaign's messages fill the queue first.
	waitFor(t, 10*time.Second, "a campaign backlog of 1000 queued messages", func() bool {
		return e.countMessages("campaign = '"+camp+"' && status = 'queued'") >= 1000
	})

	lab := e.do("POST", "/api/collections/messages/records", "staffB", map[string]any{"channel": "sms", "to": "0504000001", "body": "Your results are ready.", "category": "results"})
	appt := e.do("POST", "/api/collections/messages/records", "appA", map[string]any{"channel": "sms", "to": "0504000002", "body": "Your appointment moved to 11:00.", "category": "reminder"})
	must(t, lab.Status == 200 && appt.Status == 200, "singles: %s %s", lab.Raw, appt.Raw)
	e.waitStatus(lab.str("id"), "sent", 5*time.Second)
	e.waitStatus(appt.str("id"), "sent", 5*time.Second)
	left := e.countMessages("campaign = '" + camp + "' && (status = 'queued' || status = 'sending')")
	must(t, left > 0, "the test needs the campaign still draining when the singles go")
	e.do("PATCH", "/api/collections/campaigns/records/"+camp, "adminA", map[string]any{"status": "canceled"})
}

// TestClinicDeleteWaitsForItsMessages: a clinic with messages still to send cannot be
// deleted (they would vanish under the dispatcher), and a clinic that no longer exists
// gets no new message.
func TestClinicDeleteWaitsForItsMessages(t *testing.T) {
	e := newEnv(t)
	later := time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
	msg := e.do("POST", "/api/collections/messages/records", "staffB", map[string]any{"channel": "sms", "to": "0505000001", "body": "Tomorrow", "send_at": later})
	must(t, msg.str("status") == "scheduled", "expected scheduled: %s", msg.Raw)
	res := e.do("DELETE", "/api/collections/clinics/records/"+e.clinicB.Id, "superuser", nil)
	must(t, res.Status == 400 && len(res.errorFields()) == 1 && res.errorFields()[0] == "clinic", "expected 400 naming clinic, got %d %s", res.Status, res.Raw)
	_, err := e.app.FindRecordById("clinics", e.clinicB.Id)
	must(t, err == nil, "the clinic must still exist")

	cancel := e.message(msg.str("id"))
	must(t, e.app.Delete(cancel) == nil, "delete the waiting message")
	res = e.do("DELETE", "/api/collections/clinics/records/"+e.clinicB.Id, "superuser", nil)
	must(t, res.Status == 204, "expected the clinic deleted, got %d %s", res.Status, res.Raw)
	res = e.do("POST", "/api/clinicmsg/send", "staffB", []map[string]any{{"channel": "sms", "to": "0505000002", "body": "Orphan"}})
	must(t, e.countMessages("to = '+966505000002'") == 0, "no message may be stored for a deleted clinic: %s", res.Raw)
}

// TestCampaignsTakeTurns: a small campaign of clinic B created while clinic A's long one
// is being fanned out gets all its messages in before A's list is through.
func TestCampaignsTakeTurns(t *testing.T) {
	e := newEnv(t, func(c *hooks.Config) { c.CampaignBatch = 100 })
	long, short := numbers("0506", 3000), numbers("0507", 50)
	a := startCampaign(t, e, "adminA", "A recall", long)
	b := startCampaign(t, e, "staffB", "B recall", short)
	waitFor(t, 20*time.Second, "clinic B's campaign fanned out", func() bool {
		return e.countMessages("campaign = '"+b+"'") == len(short)
	})
	fannedA := e.countMessages("campaign = '" + a + "'")
	must(t, fannedA < len(long), "clinic B's campaign must not wait for clinic A's whole list (A had %d of %d)", fannedA, len(long))
}

// TestCampaignClaimsTakeTurns: with the provider limited to 100 segments a second and clinic
// A's 1,500-recipient campaign already queued, clinic B's small campaign is sent within a
// few seconds, not after A's backlog: the claim takes campaign messages clinic by clinic.
func TestCampaignClaimsTakeTurns(t *testing.T) {
	fake := providertest.NewTwilio(t)
	e := newEnv(t, withTwilio(fake), func(c *hooks.Config) { c.TwilioMPS = 100 })
	long := numbers("0508", 1500)
	a := startCampaign(t, e, "adminA", "A recall", long)
	waitFor(t, 20*time.Second, "clinic A's campaign queued", func() bool {
		return e.countMessages("campaign = '"+a+"'") == len(long)
	})
	short := numbers("0509", 5)
	b := startCampaign(t, e, "staffB", "B recall", short)
	waitFor(t, 6*time.Second, "clinic B's campaign sent", func() bool {
		return e.countMessages("campaign = '"+b+"' && (status = 'sent' || status = 'delivered')") == len(short)
	})
	left := e.countMessages("campaign = '" + a + "' && (status = 'queued' || status = 'sending')")
	must(t, left > 0, "the test needs clinic A's campaign still draining when B's is sent")
	e.do("PATCH", "/api/collections/campaigns/records/"+a, "adminA", map[string]any{"status": "canceled"})
}

// numbers are n local mobile numbers starting with prefix, each its own.
func numbers(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%06d", prefix, i)
	}
	return out
}

// startCampaign creates a marketing SMS campaign as who and returns its id.
func startCampaign(t *testing.T, e *env, who, name string, to []string) string {
	t.Helper()
	res := e.do("POST", "/api/collections/campaigns/records", who, map[string]any{"name": name, "channel": "sms", "body": name + ": due for a check-up.", "category": "marketing", "recipients": to})
	must(t, res.Status == 200, "campaign %s: %.300s", name, res.Raw)
	return res.str("id")
}
