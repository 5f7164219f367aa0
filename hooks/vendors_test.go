package hooks_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"clinicmsg/hooks"
	"clinicmsg/providers/providertest"
)

// withTwilio sends SMS and WhatsApp through a fake Twilio on loopback, with the real
// twilio-go client.
func withTwilio(fake *providertest.Twilio) envOption {
	return func(c *hooks.Config) {
		c.SMSProvider, c.WhatsAppProvider = "twilio", "twilio"
		c.TwilioAccountSID, c.TwilioAuthToken = fake.AccountSID, fake.AuthToken
		c.TwilioFromNumber, c.TwilioWhatsAppNumber = "+15005550006", "+15005550007"
		c.TwilioAPIURL = fake.URL
	}
}

func withUnifonic(fake *providertest.Unifonic) envOption {
	return func(c *hooks.Config) {
		c.UnifonicAppSID, c.UnifonicSenderID = providertest.UnifonicAppSID, "ClinicA"
		c.UnifonicAPIURL = fake.URL
		c.WebhookSecret = "dlr-secret-123"
	}
}

func sendsTo(fake *providertest.Twilio) []providertest.Request {
	var out []providertest.Request
	for _, r := range fake.Requests() {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/Messages.json") {
			out = append(out, r)
		}
	}
	return out
}

func TestTwilioEndToEnd(t *testing.T) {
	fake := providertest.NewTwilio(t)
	fake.SetAutoCallbacks(50 * time.Millisecond)
	e := newEnv(t, withTwilio(fake))

	res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "body": "موعدك غدا الساعة 10"})
	must(t, res.Status == 200, "create: %s", res.Raw)
	rec := e.waitStatus(res.str("id"), "delivered", 5*time.Second)

	sends := sendsTo(fake)
	must(t, len(sends) == 1, "expected exactly one request to Twilio, got %d", len(sends))
	f := sends[0].Form
	must(t, f.Get("To") == "+966501234567" && f.Get("From") == "+15005550006" && f.Get("Body") == "موعدك غدا الساعة 10",
		"wrong request: %v", f)
	must(t, f.Get("StatusCallback") == e.srv.URL+"/api/clinicmsg/webhooks/twilio/status", "wrong StatusCallback %q", f.Get("StatusCallback"))
	must(t, rec.GetString("provider") == "twilio" && strings.HasPrefix(rec.GetString("provider_message_id"), "SM"), "provider not recorded: %v", rec)
	// Twilio rates a message after sending it: the price comes with a status fetch.
	must(t, rec.GetFloat("cost") == 0, "expected no price before Twilio rated the message")
	r := e.do("POST", "/api/clinicmsg/messages/"+rec.Id+"/refresh", "staffA", nil)
	must(t, r.Status == 200 && r.Body["updated"] == false, "refresh: %s", r.Raw)
	rec = e.message(rec.Id)
	must(t, rec.GetFloat("cost") > 0 && rec.GetString("currency") == "USD", "expected a positive cost in USD, got %v %q", rec.GetFloat("cost"), rec.GetString("currency"))
	want := []string{"created:queued", "sending:sending", "sent:sent", "status:delivered"}
	must(t, slices.Equal(e.logEvents(rec.Id), want), "expected log %v, got %v", want, e.logEvents(rec.Id))

	t.Run("whatsapp with an approved content template", func(t *testing.T) {
		e.save("templates", map[string]any{"code": "wa_reminder", "channel": "whatsapp", "active": true,
			"body_en": "Hello {{patient_name}}, your visit is on {{date}}", "whatsapp_content_sid_en": "HX0123456789abcdef0123456789abcdef"})
		res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "whatsapp", "to": "0501234567", "template": "wa_reminder",
			"context": map[string]any{"patient_name": "Sara", "date": "1 Dec"}})
		must(t, res.Status == 200, "create: %s", res.Raw)
		e.waitStatus(res.str("id"), "delivered", 5*time.Second)
		f := sendsTo(fake)[1].Form
		must(t, f.Get("To") == "whatsapp:+966501234567" && f.Get("From") == "whatsapp:+15005550007", "wrong addresses: %v", f)
		must(t, f.Get("ContentSid") == "HX0123456789abcdef0123456789abcdef" && f.Get("ContentVariables") == `{"1":"Sara","2":"1 Dec"}` && f.Get("Body") == "",
			"expected a content template send, got %v", f)
	})
}

func TestTwilioStatusWebhook(t *testing.T) {
	fake := providertest.NewTwilio(t)
	e := newEnv(t, withTwilio(fake))
	settings := e.app.Settings()
	settings.Logs.MaxDays = 5 // the request log, as a new appliance has it (off in the test data)
	must(t, e.app.Save(settings) == nil, "failed to turn the request log on")
	// The patient wrote within 24 hours, so free-form WhatsApp is allowed.
	e.save("preferences", map[string]any{"clinic": e.clinicA.Id, "phone": "0501234567", "sms": true, "whatsapp": true, "last_inbound_whatsapp": time.Now().UTC()})
	res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "whatsapp", "to": "0501234567", "body": "x"})
	rec := e.waitStatus(res.str("id"), "sent", 5*time.Second)
	sid := rec.GetString("provider_message_id")
	hook := e.srv.URL + "/api/clinicmsg/webhooks/twilio/status"

	post := func(params url.Values, sign string, token string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", hook, strings.NewReader(params.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if sign != "" {
			req.Header.Set("X-Twilio-Signature", sign)
		}
		if token != "" {
			req.Header.Set("I-Twilio-Idempotency-Token", token)
		}
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	params := func(status string) url.Values {
		p, ok := fake.StatusCallbackParams(sid, status, 0)
		must(t, ok, "unknown sid")
		return p
	}

	delivered := params("delivered")
	scenarios := []struct {
		name   string
		params url.Values
		sign   string
		token  string
		code   int
		want   string
	}{
		{"no signature", delivered, "", "", 403, "sent"},
		{"forged signature", delivered, "bm90IGEgc2lnbmF0dXJl", "", 403, "sent"},
		{"signed with another token", delivered, providertest.TwilioSignature("0123456789abcdef0123456789abcdef", hook, delivered), "", 403, "sent"},
		{"signed for another URL", delivered, providertest.TwilioSignature(fake.AuthToken, "https://evil.example/api/clinicmsg/webhooks/twilio/status", delivered), "", 403, "sent"},
		{"signed, then a parameter changed", func() url.Values { p := params("read"); return p }(), providertest.TwilioSignature(fake.AuthToken, hook, delivered), "", 403, "sent"},
		{"signed delivered", delivered, providertest.TwilioSignature(fake.AuthToken, hook, delivered), "tok-1", 204, "delivered"},
		{"same token again", params("read"), providertest.TwilioSignature(fake.AuthToken, hook, params("read")), "tok-1", 204, "delivered"},
		{"late sent (out of order)", params("sent"), providertest.TwilioSignature(fake.AuthToken, hook, params("sent")), "tok-2", 204, "delivered"},
		{"repeated delivered", delivered, providertest.TwilioSignature(fake.AuthToken, hook, delivered), "tok-3", 204, "delivered"},
		{"read", params("read"), providertest.TwilioSignature(fake.AuthToken, hook, params("read")), "tok-4", 204, "read"},
		{"late delivered after read", delivered, providertest.TwilioSignature(fake.AuthToken, hook, delivered), "tok-5", 204, "read"},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			code := post(s.params, s.sign, s.token)
			must(t, code == s.code, "expected %d, got %d", s.code, code)
			got := e.message(rec.Id).GetString("status")
			must(t, got == s.want, "expected status %s, got %s", s.want, got)
		})
	}
	rec = e.message(rec.Id)
	must(t, !rec.GetDateTime("read_at").IsZero(), "read_at must be set")
	want := []string{"created:queued", "sending:sending", "sent:sent", "status:delivered", "status:read"}
	must(t, slices.Equal(e.logEvents(rec.Id), want), "expected one log row per accepted change %v, got %v", want, e.logEvents(rec.Id))

	t.Run("only refused callbacks reach the request log", func(t *testing.T) {
		var statuses []int
		for _, entry := range e.requestLog(5, "webhooks/twilio/status") {
			code, _, _ := strings.Cut(entry, " ")
			n, err := strconv.Atoi(code)
			must(t, err == nil, "a request log entry without a status: %q", entry)
			statuses = append(statuses, n)
		}
		must(t, slices.Equal(statuses, []int{403, 403, 403, 403, 403}), "expected the five refused callbacks and none of the accepted ones, got %v", statuses)
	})

	t.Run("a callback for a message we do not have is acknowledged", func(t *testing.T) {
		p := url.Values{"MessageSid": {"SM00000000000000000000000000000000"}, "MessageStatus": {"delivered"}, "AccountSid": {fake.AccountSID}}
		must(t, post(p, providertest.TwilioSignature(fake.AuthToken, hook, p), "") == 204, "expected 204")
	})
}

func TestTwilioErrorsThroughTheDispatcher(t *testing.T) {
	fake := providertest.NewTwilio(t)
	e := newEnv(t, withTwilio(fake), func(c *hooks.Config) { c.SendTimeout = 400 * time.Millisecond })
	const (
		invalid   = "+966501110001"
		optedOut  = "+966501110002"
		busy      = "+966501110003"
		html503   = "+966501110004"
		hangKept  = "+966501110005"
		hangLost  = "+966501110006"
		notMobile = "+966501110007"
	)
	fake.ReplyToNumber(invalid, providertest.TwilioError(21211))
	fake.ReplyToNumber(optedOut, providertest.TwilioError(21610))
	fake.ReplyToNumber(notMobile, providertest.TwilioError(21614))
	fake.ReplyToNumber(html503, providertest.HTMLUnavailable())
	fake.ReplyToNumber(hangKept, providertest.Reply{Hang: true, Accept: true})
	fake.ReplyToNumber(hangLost, providertest.Reply{Hang: true})

	create := func(to string) string {
		res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": to, "body": "x", "patient_id": "P-" + to[len(to)-4:]})
		must(t, res.Status == 200, "create: %s", res.Raw)
		return res.str("id")
	}
	attemptsTo := func(to string) int {
		n := 0
		for _, r := range sendsTo(fake) {
			if r.Form.Get("To") == to {
				n++
			}
		}
		return n
	}

	t.Run("invalid number fails at once", func(t *testing.T) {
		rec := e.waitStatus(create(invalid), "failed", 5*time.Second)
		must(t, rec.GetString("error_code") == "21211" && attemptsTo(invalid) == 1, "expected one attempt and 21211, got %d and %q", attemptsTo(invalid), rec.GetString("error_code"))
	})
	t.Run("not a mobile fails at once", func(t *testing.T) {
		rec := e.waitStatus(create(notMobile), "failed", 5*time.Second)
		must(t, rec.GetString("error_code") == "21614", "expected 21614, got %q", rec.GetString("error_code"))
	})
	t.Run("opted out at the carrier marks the patient opted out", func(t *testing.T) {
		e.waitStatus(create(optedOut), "failed", 5*time.Second)
		pref, err := e.app.FindFirstRecordByFilter("preferences", "phone = {:p}", map[string]any{"p": optedOut})
		must(t, err == nil && pref.GetBool("opted_out") && pref.GetString("opt_out_source") == "twilio:21610", "expected an opt-out preference, got %v %v", pref, err)
		res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": optedOut, "body": "again"})
		must(t, res.str("status") == "skipped", "the next message must be skipped, got %s", res.str("status"))
	})
	t.Run("HTML 503 is retried", func(t *testing.T) {
		rec := e.waitStatus(create(html503), "failed", 5*time.Second)
		must(t, rec.GetInt("attempts") == 3 && attemptsTo(html503) == 3, "expected 3 attempts, got %d (%d requests)", rec.GetInt("attempts"), attemptsTo(html503))
	})
	t.Run("a hang the provider kept is reconciled, not resent", func(t *testing.T) {
		rec := e.waitStatus(create(hangKept), "sent", 5*time.Second)
		must(t, attemptsTo(hangKept) == 1, "expected one send, got %d", attemptsTo(hangKept))
		must(t, strings.HasPrefix(rec.GetString("provider_message_id"), "SM"), "expected the found sid, got %q", rec.GetString("provider_message_id"))
		must(t, slices.Contains(e.logEvents(rec.Id), "sent:sent"), "log: %v", e.logEvents(rec.Id))
	})
	t.Run("a hang the provider lost is sent again", func(t *testing.T) {
		id := create(hangLost)
		waitFor(t, 5*time.Second, "a resend after reconciliation found nothing", func() bool { return attemptsTo(hangLost) >= 2 })
		rec := e.waitStatus(id, "failed", 10*time.Second)
		must(t, strings.Contains(rec.GetString("error_message"), "no record"), "expected the reconciliation in the error, got %q", rec.GetString("error_message"))
	})
	t.Run("429 slows the provider without using attempts", func(t *testing.T) {
		fake.ReplyNext(2, providertest.TwilioError(20429))
		rec := e.waitStatus(create(busy), "sent", 10*time.Second)
		must(t, rec.GetInt("attempts") == 1, "429s must not use attempts, got %d", rec.GetInt("attempts"))
		events := e.logEvents(rec.Id)
		must(t, slices.Contains(events, "released:queued"), "expected released log rows: %v", events)
	})
}

func TestFailoverToTheFallbackAndBack(t *testing.T) {
	const cooldown = 300 * time.Millisecond
	twilio := providertest.NewTwilio(t)
	unifonic := providertest.NewUnifonic(t)
	e := newEnv(t, withTwilio(twilio), withUnifonic(unifonic), func(c *hooks.Config) {
		c.SMSFallbackProvider = "unifonic"
		c.FailoverThreshold = 3
		c.FailoverCooldown = cooldown
	})
	outage := providertest.TwilioServerError()
	twilio.SetOutage(&outage)

	var ids []string
	for i := range 6 {
		res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": "05012345" + string(rune('0'+i)) + "0", "body": "x"})
		must(t, res.Status == 200, "create: %s", res.Raw)
		ids = append(ids, res.str("id"))
	}
	for _, id := range ids {
		rec := e.waitStatus(id, "sent", 10*time.Second)
		must(t, rec.GetString("provider") == "unifonic", "expected the fallback to carry %s, got %s", id, rec.GetString("provider"))
	}
	// Each attempt records the provider that carried it.
	var providersUsed []string
	for _, id := range ids {
		recs, err := e.app.FindRecordsByFilter("message_logs", "message = {:m} && event = 'sending'", "created", 0, 0, map[string]any{"m": id})
		must(t, err == nil, "failed to read the log of %s: %v", id, err)
		for _, r := range recs {
			providersUsed = append(providersUsed, r.GetString("provider"))
		}
	}
	must(t, slices.Contains(providersUsed, "twilio") && slices.Contains(providersUsed, "unifonic"), "expected attempts on both providers, got %v", providersUsed)
	must(t, len(unifonic.Messages()) == 6, "expected 6 messages at the fallback, got %d", len(unifonic.Messages()))

	twilio.SetOutage(nil)
	// The breaker's cooldown runs on the router's clock, which the tests of package hooks
	// cannot replace (providers.Router keeps it unexported); so the cooldown is short and
	// waited out in real time. A probe before it ends would go to the fallback.
	time.Sleep(cooldown + 100*time.Millisecond)
	res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": "0501234599", "body": "x"})
	rec := e.waitStatus(res.str("id"), "sent", 5*time.Second)
	must(t, rec.GetString("provider") == "twilio", "expected the primary back after it recovered, got %s", rec.GetString("provider"))
}

func TestRateLimitHoldsABurst(t *testing.T) {
	fake := providertest.NewTwilio(t)
	e := newEnv(t, withTwilio(fake), func(c *hooks.Config) { c.TwilioMPS = 5 })
	const n = 15
	for i := range n {
		res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "body": "x", "idempotency_key": string(rune('a' + i))})
		must(t, res.Status == 200, "create: %s", res.Raw)
	}
	poll(10*time.Second, func() bool { return len(sendsTo(fake)) >= n })
	sends := sendsTo(fake)
	must(t, len(sends) == n, "expected %d sends, got %d", n, len(sends))
	// 5 segments/s with one second of burst: the last of 15 goes no earlier than 1.8s after the first.
	spread := sends[n-1].At.Sub(sends[0].At)
	must(t, spread >= 1700*time.Millisecond, "expected the burst spread over at least 1.7s, got %v", spread)
}

func TestUnifonicDeliveryReports(t *testing.T) {
	fake := providertest.NewUnifonic(t)
	e := newEnv(t, withUnifonic(fake), func(c *hooks.Config) { c.SMSProvider = "unifonic" })
	res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "body": "x"})
	rec := e.waitStatus(res.str("id"), "sent", 5*time.Second)
	must(t, rec.GetString("currency") == "SAR" && rec.GetFloat("cost") > 0, "expected a cost in SAR, got %v %q", rec.GetFloat("cost"), rec.GetString("currency"))
	msgs := fake.Messages()
	must(t, len(msgs) == 1 && msgs[0].CorrelationID == rec.Id && msgs[0].Recipient == "966501234567", "wrong request: %+v", msgs)
	must(t, strings.HasSuffix(msgs[0].StatusCallback, "/api/clinicmsg/webhooks/unifonic/dlr-secret-123"), "wrong callback %q", msgs[0].StatusCallback)

	d, ok := fake.DLRFor(msgs[0].MessageID)
	must(t, ok, "no DLR")
	d.DLR = "Delivered"
	r, err := fake.PostDLR(context.Background(), e.srv.URL+"/api/clinicmsg/webhooks/unifonic/wrong-secret", d, true)
	must(t, err == nil && r.StatusCode == 403, "expected 403 for a wrong secret, got %v %v", r, err)
	r.Body.Close()
	must(t, e.message(rec.Id).GetString("status") == "sent", "a refused report must change nothing")
	r, err = fake.PostDLR(context.Background(), e.srv.URL+"/api/clinicmsg/webhooks/unifonic/dlr-secret-123", d, false)
	must(t, err == nil && r.StatusCode == 204, "expected 204, got %v %v", r, err)
	r.Body.Close()
	must(t, e.message(rec.Id).GetString("status") == "delivered", "expected delivered")
}
