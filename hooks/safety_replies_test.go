package hooks_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"clinicmsg/hooks"
	"clinicmsg/providers/providertest"
)

// TestRepliesBelongToTheNumberTheyAnswered: a patient's reply goes to the clinic that sent
// from the number the patient wrote to, never to whichever clinic wrote to the patient last;
// its app event goes to that clinic's own app webhook when it has one.
func TestRepliesBelongToTheNumberTheyAnswered(t *testing.T) {
	const (
		defaultSMS = "+15005550006" // TWILIO_FROM_NUMBER in withTwilio
		numberA    = "+15005550102"
		numberB    = "+15005550101"
		patient    = "+966501234567"
	)
	fake := providertest.NewTwilio(t)
	appliance := newAppServer(t, "appliance-secret", 0)
	appB := newAppServer(t, "clinic-b-secret", 0)
	e := newEnv(t, withTwilio(fake), func(c *hooks.Config) {
		c.AppWebhookURL, c.AppWebhookSecret = appliance.URL, "appliance-secret"
	})
	e.save("templates", map[string]any{"code": "reminder", "channel": "any", "category": "reminder", "active": true, "body_en": "Reminder: {{when}}. Reply YES to confirm or NO to cancel."})

	assign := func(clinic string, fields map[string]any) {
		t.Helper()
		res := e.do("PATCH", "/api/collections/clinics/records/"+clinic, "superuser", fields)
		must(t, res.Status == 200, "a superuser assigns %v: %d %s", fields, res.Status, res.Raw)
	}
	remind := func(who, patientID string) string {
		t.Helper()
		res := e.do("POST", "/api/collections/messages/records", who, map[string]any{"channel": "sms", "to": "0501234567", "template": "reminder",
			"context": map[string]any{"when": "tomorrow 10:00"}, "patient_id": patientID})
		must(t, res.Status == 200, "create: %s", res.Raw)
		e.waitStatus(res.str("id"), "sent", 5*time.Second)
		return res.str("id")
	}
	n := 0
	reply := func(to, body string) map[string]string {
		t.Helper()
		n++
		sid := fmt.Sprintf("SMsafety%026d", n)
		p := url.Values{"From": {patient}, "To": {to}, "Body": {body}, "MessageSid": {sid}, "AccountSid": {fake.AccountSID}}
		req, _ := providertest.SignedStatusCallback(e.srv.URL+"/api/clinicmsg/webhooks/twilio/inbound", p, fake.AuthToken)
		res, err := http.DefaultClient.Do(req)
		must(t, err == nil && res.StatusCode == 200, "inbound: %v %v", err, res)
		res.Body.Close()
		r, err := e.app.FindFirstRecordByData("replies", "provider_message_id", sid)
		must(t, err == nil, "reply not stored: %v", err)
		return map[string]string{"clinic": r.GetString("clinic"), "message": r.GetString("message"), "intent": r.GetString("intent")}
	}
	waitEvents := func(a *appServer, n int) []map[string]any {
		t.Helper()
		poll(5*time.Second, func() bool { return len(a.received()) >= n })
		return a.received()
	}

	assign(e.clinicB.Id, map[string]any{"sms_sender": numberB, "app_webhook_url": appB.URL, "app_webhook_secret": "clinic-b-secret"})
	assign(e.clinicA.Id, map[string]any{"sms_sender": numberA})
	// B reminds the patient from B's number; A writes to the same patient later, from A's.
	msgB := remind("staffB", "PB")
	msgA := remind("appA", "PA")

	t.Run("an answer to B's number goes to B, though A wrote last", func(t *testing.T) {
		r := reply(numberB, "cancel")
		must(t, r["clinic"] == e.clinicB.Id && r["message"] == msgB && r["intent"] == "cancel", "expected B's reminder canceled, got %v", r)
		must(t, e.message(msgB).GetString("reply_intent") == "cancel", "B's reminder must record the cancel")
		must(t, e.message(msgA).GetString("reply_intent") == "", "A's reminder must not change: %q", e.message(msgA).GetString("reply_intent"))
		evs := waitEvents(appB, 1)
		must(t, len(evs) == 1 && evs[0]["type"] == "appointment.canceled" && evs[0]["clinic"] == e.clinicB.Id, "B's app must get B's cancel, got %v", evs)
		must(t, appB.bad == 0, "B's events must be signed with B's secret")
	})
	t.Run("an answer to A's number goes to A and A's events to the appliance webhook", func(t *testing.T) {
		r := reply(numberA, "yes")
		must(t, r["clinic"] == e.clinicA.Id && r["message"] == msgA && r["intent"] == "confirm", "expected A's reminder confirmed, got %v", r)
		evs := waitEvents(appliance, 1)
		must(t, len(evs) == 1 && evs[0]["clinic"] == e.clinicA.Id && evs[0]["type"] == "appointment.confirmed", "the appliance webhook must get A's event, got %v", evs)
		must(t, len(appB.received()) == 1, "B's app must receive none of A's events: %v", appB.received())
	})
	t.Run("the default number answers for no clinic that has its own", func(t *testing.T) {
		r := reply(defaultSMS, "hello")
		must(t, r["clinic"] == "" && r["message"] == "", "no clinic sent from the default number, got %v", r)
	})
	t.Run("a number no clinic sends from answers for none", func(t *testing.T) {
		r := reply("+15005550999", "hello")
		must(t, r["clinic"] == "" && r["message"] == "", "expected an unmatched reply, got %v", r)
	})
	t.Run("clinics sharing a number: the last message from it", func(t *testing.T) {
		assign(e.clinicB.Id, map[string]any{"sms_sender": numberA}) // a superuser may share a number
		later := remind("staffB", "PB")
		r := reply(numberA, "hello")
		must(t, r["clinic"] == e.clinicB.Id && r["message"] == later, "expected B's later message, got %v", r)
	})
	t.Run("the default number answers for the clinics without a number", func(t *testing.T) {
		assign(e.clinicA.Id, map[string]any{"sms_sender": ""})
		fromDefault := remind("appA", "PA")
		must(t, sendsTo(fake)[len(sendsTo(fake))-1].Form.Get("From") == defaultSMS, "A now sends from the default number")
		r := reply(defaultSMS, "hello")
		must(t, r["clinic"] == e.clinicA.Id && r["message"] == fromDefault, "expected A's message from the default number, got %v", r)
	})
	t.Run("a clinic's webhook secret is shown to superusers only", func(t *testing.T) {
		for _, who := range []string{"staffB", "adminB"} {
			res := e.do("GET", "/api/collections/clinics/records/"+e.clinicB.Id, who, nil)
			_, shown := res.Body["app_webhook_secret"]
			must(t, res.Status == 200 && !shown, "%s must not see the webhook secret: %s", who, res.Raw)
		}
		res := e.do("GET", "/api/collections/clinics/records/"+e.clinicB.Id, "superuser", nil)
		must(t, res.str("app_webhook_secret") == "clinic-b-secret", "a superuser sees the secret: %s", res.Raw)
	})
}
