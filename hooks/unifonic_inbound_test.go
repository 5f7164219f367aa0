package hooks_test

import (
	"testing"
	"time"

	"clinicmsg/hooks"
	"clinicmsg/providers/providertest"

	"github.com/pocketbase/dbx"
)

// TestUnifonicReplyWebhookRefused pins down what a Unifonic clinic's patients' replies do
// today. Unifonic's SMS API documents no webhook for replies (docs/PROVIDERS.md), so there is
// no Unifonic inbound route; the one inbound webhook Unifonic documents, its WhatsApp
// Conversation platform's "message.received", must not pass for a delivery report if it is
// pointed at the delivery-report URL: it is refused with a 400 and stores nothing, where a
// 204 would have told Unifonic the patient's STOP was taken.
func TestUnifonicReplyWebhookRefused(t *testing.T) {
	fake := providertest.NewUnifonic(t)
	e := newEnv(t, withUnifonic(fake), func(c *hooks.Config) { c.SMSProvider = "unifonic" })
	res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "body": "x"})
	must(t, res.Status == 200, "create: %s", res.Raw)
	sent := e.waitStatus(res.str("id"), "sent", 5*time.Second)

	// The shape Unifonic documents for an incoming WhatsApp message, carrying the id of a
	// message clinicmsg did send, so that only the event type tells it apart.
	received := map[string]any{
		"messageId":      sent.GetString("provider_message_id"),
		"eventId":        "1a2b3c4d-5e6f-4a0b-9c8d-7e6f5a4b3c2d",
		"eventType":      "message.received",
		"applicationId":  "2b3c4d5e-6f70-4b1c-8d9e-0f1a2b3c4d5e",
		"conversationId": "3c4d5e6f-7081-4c2d-9eaf-1a2b3c4d5e6f",
		"sender":         map[string]any{"channel": "whatsapp", "contact": "+966501234567", "name": "Patient"},
		"content":        map[string]any{"text": "STOP", "type": "text"},
		"timestamp":      "2024-01-02T09:00:00.000Z",
	}
	// What a stored reply would change: its row, the clinic's app event, an opt-out.
	counts := func() [3]int64 {
		var out [3]int64
		for i, q := range []struct {
			col   string
			where dbx.Expression
		}{{"replies", nil}, {"app_events", nil}, {"preferences", dbx.HashExp{"opted_out": true}}} {
			n, err := e.app.CountRecords(q.col, q.where)
			must(t, err == nil, "count %s: %v", q.col, err)
			out[i] = n
		}
		return out
	}
	before := counts()
	scenarios := []struct {
		name string
		path string
		want int
	}{
		{"a forged secret", "/api/clinicmsg/webhooks/unifonic/wrong-secret", 403},
		{"an incoming message at the delivery-report URL", "/api/clinicmsg/webhooks/unifonic/dlr-secret-123", 400},
		{"a guessed inbound route", "/api/clinicmsg/webhooks/unifonic/dlr-secret-123/inbound", 404},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			r := e.do("POST", s.path, "", received)
			if r.Status != s.want {
				t.Fatalf("expected %d, got %d: %s", s.want, r.Status, r.Raw)
			}
			after := counts()
			must(t, after == before, "expected no reply, app event or opt-out stored (replies, app_events, opted out): before %v, after %v", before, after)
			rec := e.message(sent.Id)
			must(t, rec.GetString("status") == "sent" && rec.GetString("reply_intent") == "", "the message must not change, got %s %q", rec.GetString("status"), rec.GetString("reply_intent"))
		})
	}
}
