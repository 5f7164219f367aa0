package hooks_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"clinicmsg/hooks"
	"clinicmsg/providers/providertest"

	"github.com/pocketbase/pocketbase/core"
)

// appServer is the clinic's app receiving clinicmsg's events; it fails the first failures
// deliveries.
type appServer struct {
	*httptest.Server
	mu       sync.Mutex
	failures int
	events   []map[string]any
	bad      int // deliveries whose signature did not verify
	tries    int
}

func newAppServer(t *testing.T, secret string, failures int) *appServer {
	a := &appServer{failures: failures}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		defer a.mu.Unlock()
		a.tries++
		if r.Header.Get("X-Clinicmsg-Signature") != "sha256="+hooks.SignAppEvent(secret, body) {
			a.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if a.failures > 0 {
			a.failures--
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		var ev map[string]any
		_ = json.Unmarshal(body, &ev)
		a.events = append(a.events, ev)
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *appServer) received() []map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]map[string]any(nil), a.events...)
}

func TestPatientReplies(t *testing.T) {
	fake := providertest.NewTwilio(t)
	app := newAppServer(t, "app-secret", 2)
	e := newEnv(t, withTwilio(fake), func(c *hooks.Config) {
		c.AppWebhookURL, c.AppWebhookSecret = app.URL, "app-secret"
	})
	e.save("templates", map[string]any{"code": "reminder", "channel": "any", "category": "reminder", "active": true, "body_en": "Reminder: {{when}}. Reply YES to confirm or NO to cancel."})
	reminder := e.do("POST", "/api/collections/messages/records", "appA", map[string]any{"channel": "sms", "to": "0501234567", "template": "reminder", "context": map[string]any{"when": "tomorrow 10:00"}, "patient_id": "P1"})
	e.waitStatus(reminder.str("id"), "sent", 5*time.Second)

	inbound := e.srv.URL + "/api/clinicmsg/webhooks/twilio/inbound"
	n := 0
	post := func(from, body, sig string) (int, string) {
		t.Helper()
		n++
		p := url.Values{"From": {from}, "To": {"+15005550006"}, "Body": {body}, "MessageSid": {"SM" + strings.Repeat("0", 30) + string(rune('a'+n%26)) + string(rune('a'+n/26))},
			"AccountSid": {fake.AccountSID}, "NumMedia": {"0"}}
		req, _ := providertest.SignedStatusCallback(inbound, p, fake.AuthToken)
		if sig != "" {
			req.Header.Set("X-Twilio-Signature", sig)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	lastReply := func() map[string]any {
		recs, err := e.app.FindRecordsByFilter("replies", "", "-created", 1, 0)
		must(t, err == nil && len(recs) == 1, "no reply stored: %v", err)
		return map[string]any{"intent": recs[0].GetString("intent"), "clinic": recs[0].GetString("clinic"), "message": recs[0].GetString("message")}
	}

	t.Run("a forged incoming message is refused", func(t *testing.T) {
		code, _ := post("+966501234567", "STOP", "Zm9yZ2Vk")
		must(t, code == 403, "expected 403, got %d", code)
		n, err := e.app.CountRecords("replies")
		must(t, err == nil && n == 0, "a refused message must not be stored: %d stored (%v)", n, err)
	})
	t.Run("yes confirms the appointment", func(t *testing.T) {
		code, body := post("+966501234567", "Yes!", "")
		must(t, code == 200 && strings.Contains(body, "<Response>"), "expected empty TwiML, got %d %q", code, body)
		r := lastReply()
		must(t, r["intent"] == "confirm" && r["clinic"] == e.clinicA.Id && r["message"] == reminder.str("id"), "wrong reply: %v", r)
		msg := e.message(reminder.str("id"))
		must(t, msg.GetString("reply_intent") == "confirm", "the answer must be recorded on the message")
		must(t, strings.Contains(strings.Join(e.logEvents(msg.Id), ","), "reply:"), "expected a reply log row: %v", e.logEvents(msg.Id))
	})
	t.Run("the app receives the answer, signed, after retries", func(t *testing.T) {
		poll(5*time.Second, func() bool { return len(app.received()) > 0 })
		evs := app.received()
		must(t, len(evs) == 1 && evs[0]["type"] == "appointment.confirmed", "expected appointment.confirmed, got %v", evs)
		data := evs[0]["data"].(map[string]any)
		must(t, data["message"].(map[string]any)["patient_id"] == "P1", "the event must name the patient: %v", data)
		// The event's record is marked delivered after the app's answer arrives, so it may
		// trail the request the app saw.
		var ev *core.Record
		poll(5*time.Second, func() bool {
			var err error
			ev, err = e.app.FindFirstRecordByFilter("app_events", "type = 'appointment.confirmed'")
			return err == nil && ev.GetString("status") == "delivered"
		})
		must(t, ev != nil, "the app event is not stored")
		must(t, ev.GetString("status") == "delivered" && ev.GetInt("attempts") == 3, "expected delivery on the 3rd attempt, got %s after %d", ev.GetString("status"), ev.GetInt("attempts"))
		must(t, app.bad == 0, "every delivery must be signed")
	})
	t.Run("stop opts the patient out", func(t *testing.T) {
		code, _ := post("+966501234567", "Stop. Thank you", "")
		must(t, code == 200, "expected 200, got %d", code)
		must(t, lastReply()["intent"] == "stop", "expected stop")
		pref, err := e.app.FindFirstRecordByFilter("preferences", "patient_id = 'P1'")
		must(t, err == nil && pref.GetBool("opted_out") && pref.GetString("opt_out_source") == "reply:sms", "expected an opt-out, got %v %v", pref, err)
		res := e.do("POST", "/api/collections/messages/records", "appA", map[string]any{"channel": "sms", "to": "0501234567", "body": "Another", "patient_id": "P1"})
		must(t, res.str("status") == "skipped", "the next message must be skipped, got %s", res.str("status"))
	})
	t.Run("start opts back in", func(t *testing.T) {
		post("+966501234567", "START", "")
		pref, err := e.app.FindFirstRecordByFilter("preferences", "patient_id = 'P1'")
		must(t, err == nil && !pref.GetBool("opted_out"), "expected the patient opted back in, got %v %v", pref, err)
	})
	t.Run("help is answered with the clinic's text", func(t *testing.T) {
		e.clinicA.Set("help_text_en", "Al Noor clinic: call 011 000 0000.")
		if err := e.app.Save(e.clinicA); err != nil {
			t.Fatal(err)
		}
		post("+966501234567", "help", "")
		recs, err := e.app.FindRecordsByFilter("messages", "body = 'Al Noor clinic: call 011 000 0000.'", "", 0, 0)
		must(t, err == nil && len(recs) == 1 && recs[0].GetString("to") == "+966501234567", "expected one help answer, got %d %v", len(recs), err)
	})
	t.Run("a reply matching no message is kept for superusers only", func(t *testing.T) {
		post("+966509999999", "hello?", "")
		r := lastReply()
		must(t, r["clinic"] == "" && r["intent"] == "", "expected an unmatched reply, got %v", r)
		res := e.do("GET", "/api/collections/replies/records?filter="+url.QueryEscape("from='+966509999999'"), "staffA", nil)
		must(t, res.Body["totalItems"] == 0.0, "staff must not see unmatched replies: %s", res.Raw)
		res = e.do("GET", "/api/collections/replies/records?filter="+url.QueryEscape("from='+966509999999'"), "superuser", nil)
		must(t, res.Body["totalItems"] == 1.0, "superusers see unmatched replies: %s", res.Raw)
		res = e.do("GET", "/api/collections/replies/records", "staffB", nil)
		must(t, res.Body["totalItems"] == 0.0, "another clinic sees none of A's replies: %s", res.Raw)
	})
	t.Run("a repeated delivery is stored once", func(t *testing.T) {
		p := url.Values{"From": {"+966501234567"}, "To": {"+15005550006"}, "Body": {"ok"}, "MessageSid": {"SMrepeat0000000000000000000000000"}, "AccountSid": {fake.AccountSID}}
		for range 2 {
			req, _ := providertest.SignedStatusCallback(inbound, p, fake.AuthToken)
			res, err := http.DefaultClient.Do(req)
			must(t, err == nil && res.StatusCode == 200, "expected 200: %v", err)
			res.Body.Close()
		}
		recs, err := e.app.FindRecordsByFilter("replies", "provider_message_id = 'SMrepeat0000000000000000000000000'", "", 0, 0)
		must(t, err == nil && len(recs) == 1, "expected one stored reply, got %d (%v)", len(recs), err)
	})
}

func TestWhatsAppWindow(t *testing.T) {
	fake := providertest.NewTwilio(t)
	e := newEnv(t, withTwilio(fake))
	e.save("templates", map[string]any{"code": "approved", "channel": "whatsapp", "active": true, "body_en": "Hi {{name}}", "whatsapp_content_sid_en": "HXabcdefabcdefabcdefabcdefabcdefab"})
	e.save("templates", map[string]any{"code": "unapproved", "channel": "whatsapp", "active": true, "body_en": "Hi {{name}}"})
	send := func(body map[string]any) string {
		res := e.do("POST", "/api/collections/messages/records", "staffA", body)
		must(t, res.Status == 200, "create: %s", res.Raw)
		return res.str("id")
	}

	free := send(map[string]any{"channel": "whatsapp", "to": "0501234567", "body": "Free text"})
	rec := e.waitStatus(free, "failed", 5*time.Second)
	must(t, rec.GetString("error_code") == "outside_whatsapp_window" && strings.Contains(rec.GetString("error_message"), "24 hours"), "expected a clear window failure, got %q %q", rec.GetString("error_code"), rec.GetString("error_message"))
	rec = e.waitStatus(send(map[string]any{"channel": "whatsapp", "to": "0501234567", "template": "unapproved", "context": map[string]any{"name": "Sara"}}), "failed", 5*time.Second)
	must(t, strings.Contains(rec.GetString("error_message"), "whatsapp_content_sid_en"), "the reason must name the missing content SID: %q", rec.GetString("error_message"))
	must(t, len(sendsTo(fake)) == 0, "nothing may reach the provider outside the window")

	e.waitStatus(send(map[string]any{"channel": "whatsapp", "to": "0501234567", "template": "approved", "context": map[string]any{"name": "Sara"}}), "sent", 5*time.Second)

	// The patient writes on WhatsApp: free-form text is allowed for 24 hours.
	p := url.Values{"From": {"whatsapp:+966501234567"}, "To": {"whatsapp:+15005550007"}, "Body": {"Hello"}, "MessageSid": {"SMwindow000000000000000000000000"}, "AccountSid": {fake.AccountSID}}
	req, _ := providertest.SignedStatusCallback(e.srv.URL+"/api/clinicmsg/webhooks/twilio/inbound", p, fake.AuthToken)
	res, err := http.DefaultClient.Do(req)
	must(t, err == nil && res.StatusCode == 200, "inbound: %v", err)
	res.Body.Close()
	e.waitStatus(send(map[string]any{"channel": "whatsapp", "to": "0501234567", "body": "Free text, now allowed"}), "sent", 5*time.Second)
	sends := sendsTo(fake)
	must(t, len(sends) == 2 && sends[1].Form.Get("Body") == "Free text, now allowed", "expected the free-form send, got %d sends", len(sends))

	// The mock takes free-form WhatsApp, so a new install works without an account.
	e2 := newEnv(t)
	e2.waitStatus(func() string {
		r := e2.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "whatsapp", "to": "0501234567", "body": "x"})
		return r.str("id")
	}(), "delivered", 5*time.Second)
}
