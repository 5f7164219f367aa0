package hooks_test

import (
	"strings"
	"testing"
	"time"

	"clinicmsg/providers"
)

// TestConsentHoldsOnEveryPath: a patient's consent decides whether a message goes when it
// is sent, not only when it was created, and an opt-out by number holds whatever
// patient_id a message names.
func TestConsentHoldsOnEveryPath(t *testing.T) {
	e := newEnv(t)
	later := time.Now().UTC().Add(time.Hour).Format(time.RFC3339)

	t.Run("an opt-out skips the patient's scheduled messages at once", func(t *testing.T) {
		res := e.do("POST", "/api/collections/messages/records", "appA", map[string]any{"channel": "sms", "to": "0501110001", "body": "See you tomorrow", "patient_id": "S1", "send_at": later})
		must(t, res.str("status") == "scheduled", "expected scheduled, got %v", res)
		other := e.do("POST", "/api/collections/messages/records", "appA", map[string]any{"channel": "sms", "to": "0501110009", "body": "Someone else", "send_at": later})
		must(t, other.str("status") == "scheduled", "expected scheduled, got %v", other)

		pref := e.do("POST", "/api/collections/preferences/records", "adminA", map[string]any{"patient_id": "S1", "phone": "0501110001", "sms": true, "opted_out": true})
		must(t, pref.str("id") != "", "expected the preference stored, got %v", pref)

		msg := e.message(res.str("id"))
		must(t, msg.GetString("status") == "skipped" && strings.HasPrefix(msg.GetString("status_reason"), "opted_out"),
			"expected skipped (opted_out), got %s (%s)", msg.GetString("status"), msg.GetString("status_reason"))
		must(t, strings.Contains(strings.Join(e.logEvents(msg.Id), ","), "skipped:skipped"), "expected a skipped audit row: %v", e.logEvents(msg.Id))
		must(t, e.message(other.str("id")).GetString("status") == "scheduled", "another patient's message must stay scheduled")
	})

	t.Run("an opt-out by number holds under another patient_id", func(t *testing.T) {
		e.do("POST", "/api/collections/preferences/records", "adminA", map[string]any{"patient_id": "MOTHER", "phone": "0501110002", "sms": true, "opted_out": true})
		e.do("POST", "/api/collections/preferences/records", "adminA", map[string]any{"patient_id": "CHILD", "phone": "0501110003", "sms": true})
		res := e.do("POST", "/api/collections/messages/records", "appA", map[string]any{"channel": "sms", "to": "0501110002", "body": "Vaccination due", "patient_id": "CHILD"})
		must(t, res.str("status") == "skipped" && strings.HasPrefix(res.str("status_reason"), "opted_out"), "expected skipped (opted_out), got %v", res)
		bulk := e.do("POST", "/api/clinicmsg/send", "appA", []map[string]any{{"channel": "sms", "to": "0501110002", "body": "Vaccination due again", "patient_id": "CHILD"}})
		items, _ := bulk.Body["items"].([]any)
		must(t, len(items) == 1 && items[0].(map[string]any)["body"].(map[string]any)["status"] == "skipped", "expected the send route to skip it too, got %v", bulk)
	})

	t.Run("a manual retry after an opt-out is skipped when claimed", func(t *testing.T) {
		res := e.do("POST", "/api/collections/messages/records", "appA", map[string]any{"channel": "sms", "to": providers.MockNumberPermanent, "body": "Lab results ready", "patient_id": "R1"})
		e.waitStatus(res.str("id"), "failed", 5*time.Second)
		e.do("POST", "/api/collections/preferences/records", "adminA", map[string]any{"patient_id": "R1", "sms": true, "opted_out": true})
		must(t, e.message(res.str("id")).GetString("status") == "failed", "a failed message is not waiting and stays failed")
		retry := e.do("POST", "/api/clinicmsg/messages/"+res.str("id")+"/retry", "staffA", nil)
		// The answer may already show the claim's skip: the dispatcher is woken at once.
		must(t, retry.Status == 200, "expected the retry accepted, got %v", retry)
		msg := e.waitStatus(res.str("id"), "skipped", 5*time.Second)
		must(t, strings.HasPrefix(msg.GetString("status_reason"), "opted_out"), "expected opted_out, got %q", msg.GetString("status_reason"))
		events := strings.Join(e.logEvents(msg.Id), ",")
		must(t, strings.HasSuffix(events, "retry_requested:queued,skipped:skipped"), "expected the claim to skip it without sending, got %s", events)
	})

	t.Run("a channel turned off skips the waiting messages of that channel only", func(t *testing.T) {
		sms := e.do("POST", "/api/collections/messages/records", "appA", map[string]any{"channel": "sms", "to": "0501110004", "body": "By SMS", "patient_id": "C1", "send_at": later})
		wa := e.do("POST", "/api/collections/messages/records", "appA", map[string]any{"channel": "whatsapp", "to": "0501110004", "body": "By WhatsApp", "patient_id": "C1", "send_at": later})
		e.do("POST", "/api/collections/preferences/records", "adminA", map[string]any{"patient_id": "C1", "sms": false, "whatsapp": true})
		must(t, strings.HasPrefix(e.message(sms.str("id")).GetString("status_reason"), "channel_disabled"), "expected the SMS skipped (channel_disabled), got %v", e.message(sms.str("id")).GetString("status_reason"))
		must(t, e.message(wa.str("id")).GetString("status") == "scheduled", "the WhatsApp message must stay scheduled")
	})
}
