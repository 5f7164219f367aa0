package hooks_test

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCreateNormalisesPhoneNumbers(t *testing.T) {
	e := newEnv(t)
	inputs := []string{"0501234567", "00966501234567", "+966 50 123 4567", "٠٥٠١٢٣٤٥٦٧", "966501234567", "050-123-4567", "whatsapp:+966501234567"}
	for _, in := range inputs {
		t.Run(in, func(t *testing.T) {
			res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": in, "body": "Hello"})
			must(t, res.Status == 200, "expected 200, got %d: %s", res.Status, res.Raw)
			must(t, res.str("to") == "+966501234567", "expected +966501234567, got %q", res.str("to"))
			must(t, res.str("clinic") == e.clinicA.Id, "clinic should be taken from the user, got %q", res.str("clinic"))
			must(t, res.str("status") == "queued", "expected queued, got %q", res.str("status"))
		})
	}
}

func TestCreateRejectsBadInputNamingTheField(t *testing.T) {
	e := newEnv(t)
	e.save("templates", map[string]any{"code": "reminder", "channel": "any", "category": "reminder", "active": true,
		"body_en": "Hello {{patient_name}}, see you on {{date}}", "body_ar": "مرحبا {{patient_name}}، موعدك {{date}}"})
	e.save("templates", map[string]any{"code": "old", "channel": "any", "active": false, "body_en": "Old"})
	e.save("templates", map[string]any{"code": "wa_only", "channel": "whatsapp", "active": true, "body_en": "Hi"})

	scenarios := []struct {
		name   string
		who    string
		body   map[string]any
		status int
		field  string
	}{
		{"malformed phone", "staffA", map[string]any{"channel": "sms", "to": "05O1234567", "body": "x"}, 400, "to"},
		{"too short phone", "staffA", map[string]any{"channel": "sms", "to": "05012345", "body": "x"}, 400, "to"},
		{"landline", "staffA", map[string]any{"channel": "sms", "to": "0112345678", "body": "x"}, 400, "to"},
		{"empty phone", "staffA", map[string]any{"channel": "sms", "to": "", "body": "x"}, 400, "to"},
		{"bad email", "staffA", map[string]any{"channel": "email", "to": "not-an-address", "body": "x", "subject": "s"}, 400, "to"},
		{"email without subject", "staffA", map[string]any{"channel": "email", "to": "p@example.com", "body": "x"}, 400, "subject"},
		{"unknown channel", "staffA", map[string]any{"channel": "pager", "to": "0501234567", "body": "x"}, 400, "channel"},
		{"no body or template", "staffA", map[string]any{"channel": "sms", "to": "0501234567"}, 400, "body"},
		{"unknown template", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "template": "nope"}, 400, "template"},
		{"inactive template", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "template": "old"}, 400, "template"},
		{"template for another channel", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "template": "wa_only"}, 400, "template"},
		{"missing variable", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "template": "reminder", "context": map[string]any{"patient_name": "Sara"}}, 400, "context"},
		{"sms body too long", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "body": strings.Repeat("a", 1601)}, 400, "body"},
		{"whatsapp body too long", "staffA", map[string]any{"channel": "whatsapp", "to": "0501234567", "body": strings.Repeat("ب", 4097)}, 400, "body"},
		{"bad language", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "body": "x", "language": "fr"}, 400, "language"},
		{"client sets status", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "body": "x", "status": "delivered"}, 400, "status"},
		{"client sets provider", "appA", map[string]any{"channel": "sms", "to": "0501234567", "body": "x", "provider": "twilio"}, 400, "provider"},
		{"client sets attempts", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "body": "x", "attempts": 0}, 400, "attempts"},
		{"client sets cost", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "body": "x", "cost": 1}, 400, "cost"},
		{"client sets delivered_at", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "body": "x", "delivered_at": "2026-01-01 00:00:00Z"}, 400, "delivered_at"},
		{"another clinic", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "body": "x", "clinic": "CLINICB"}, 403, "clinic"},
		{"user without clinic", "nobody", map[string]any{"channel": "sms", "to": "0501234567", "body": "x"}, 403, "clinic"},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			if s.body["clinic"] == "CLINICB" {
				s.body["clinic"] = e.clinicB.Id
			}
			before := e.countMessages("")
			res := e.do("POST", "/api/collections/messages/records", s.who, s.body)
			must(t, res.Status == s.status, "expected %d, got %d: %s", s.status, res.Status, res.Raw)
			must(t, slices.Equal(res.errorFields(), []string{s.field}), "expected the error to name %q, got %v: %s", s.field, res.errorFields(), res.Raw)
			must(t, e.countMessages("") == before, "a rejected create must not store a message")
		})
	}

	t.Run("unauthenticated", func(t *testing.T) {
		res := e.do("POST", "/api/collections/messages/records", "", map[string]any{"channel": "sms", "to": "0501234567", "body": "x", "clinic": e.clinicA.Id})
		must(t, res.Status == 401, "expected 401 saying a token is needed, got %d", res.Status)
		must(t, e.countMessages("") == 0, "nothing may be stored")
	})
}

func TestCreateRendersTemplates(t *testing.T) {
	e := newEnv(t)
	e.save("templates", map[string]any{"code": "reminder", "channel": "any", "category": "reminder", "active": true,
		"body_en": "Hello {{patient_name}}, see you on {{ date }} at {{clinic_name}}", "body_ar": "مرحبا {{patient_name}}، موعدك {{date}}",
		"subject_en": "Reminder for {{patient_name}}"})
	// Clinic A's own template wins over the shared one of the same code.
	e.save("templates", map[string]any{"code": "results", "channel": "sms", "active": true, "body_en": "Shared results"})
	e.save("templates", map[string]any{"code": "results", "channel": "sms", "active": true, "body_en": "Clinic A results", "clinic": e.clinicA.Id})

	ctx := map[string]any{"patient_name": "Sara", "date": "2026-12-01"}
	scenarios := []struct {
		name, who   string
		body        map[string]any
		wantBody    string
		wantLang    string
		wantEnc     string
		wantSubject string
	}{
		{"english", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "template": "reminder", "context": ctx},
			"Hello Sara, see you on 2026-12-01 at Clinic A", "en", "gsm7", ""},
		{"arabic by request", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "template": "reminder", "context": ctx, "language": "ar"},
			"مرحبا Sara، موعدك 2026-12-01", "ar", "ucs2", ""},
		{"clinic default language", "staffB", map[string]any{"channel": "whatsapp", "to": "0501234567", "template": "reminder", "context": ctx},
			"مرحبا Sara، موعدك 2026-12-01", "ar", "ucs2", ""},
		{"fallback to english", "staffB", map[string]any{"channel": "sms", "to": "0501234567", "template": "results"},
			"Shared results", "en", "gsm7", ""},
		{"own template first", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "template": "results"},
			"Clinic A results", "en", "gsm7", ""},
		{"email subject", "staffA", map[string]any{"channel": "email", "to": "Sara@Example.com", "template": "reminder", "context": ctx},
			"Hello Sara, see you on 2026-12-01 at Clinic A", "en", "", "Reminder for Sara"},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			res := e.do("POST", "/api/collections/messages/records", s.who, s.body)
			must(t, res.Status == 200, "expected 200, got %d: %s", res.Status, res.Raw)
			must(t, res.str("body") == s.wantBody, "expected body %q, got %q", s.wantBody, res.str("body"))
			must(t, res.str("language") == s.wantLang, "expected language %q, got %q", s.wantLang, res.str("language"))
			must(t, res.str("encoding") == s.wantEnc, "expected encoding %q, got %q", s.wantEnc, res.str("encoding"))
			must(t, res.str("subject") == s.wantSubject, "expected subject %q, got %q", s.wantSubject, res.str("subject"))
		})
	}
	t.Run("category from template", func(t *testing.T) {
		res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "template": "reminder", "context": ctx})
		must(t, res.str("category") == "reminder", "expected category reminder, got %q", res.str("category"))
	})
}

func TestCreateCountsSegments(t *testing.T) {
	e := newEnv(t)
	scenarios := []struct {
		body     string
		encoding string
		segments float64
	}{
		{strings.Repeat("a", 160), "gsm7", 1},
		{strings.Repeat("a", 161), "gsm7", 2},
		{strings.Repeat("م", 70), "ucs2", 1},
		{strings.Repeat("م", 71), "ucs2", 2},
	}
	for _, s := range scenarios {
		res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "body": s.body})
		must(t, res.Status == 200, "expected 200, got %d", res.Status)
		must(t, res.str("encoding") == s.encoding && res.Body["segments"] == s.segments,
			"expected %s/%v, got %s/%v", s.encoding, s.segments, res.str("encoding"), res.Body["segments"])
	}
}

func TestCreateHonoursPreferences(t *testing.T) {
	e := newEnv(t)
	e.save("preferences", map[string]any{"clinic": e.clinicA.Id, "patient_id": "P1", "phone": "0501111111", "opted_out": true})
	e.save("preferences", map[string]any{"clinic": e.clinicA.Id, "patient_id": "P2", "sms": false, "whatsapp": true, "email_enabled": true})
	e.save("preferences", map[string]any{"clinic": e.clinicA.Id, "phone": "+966502222222", "sms": true, "whatsapp": true, "email_enabled": true, "categories": map[string]bool{"marketing": false}})
	// A preference made over REST without the switches keeps every channel on.
	res := e.do("POST", "/api/collections/preferences/records", "staffA", map[string]any{"patient_id": "P4", "language": "ar"})
	must(t, res.Status == 200, "expected 200, got %d: %s", res.Status, res.Raw)

	scenarios := []struct {
		name   string
		body   map[string]any
		status string
		reason string
	}{
		{"opted out by patient id", map[string]any{"channel": "sms", "to": "0509999999", "patient_id": "P1", "body": "x"}, "skipped", "opted_out"},
		{"opted out by phone", map[string]any{"channel": "whatsapp", "to": "0501111111", "body": "x"}, "skipped", "opted_out"},
		{"channel off", map[string]any{"channel": "sms", "to": "0503333333", "patient_id": "P2", "body": "x"}, "skipped", "channel_disabled"},
		{"other channel on", map[string]any{"channel": "whatsapp", "to": "0503333333", "patient_id": "P2", "body": "x"}, "queued", ""},
		{"category off", map[string]any{"channel": "sms", "to": "0502222222", "category": "marketing", "body": "x"}, "skipped", "category_disabled"},
		{"other category on", map[string]any{"channel": "sms", "to": "0502222222", "category": "results", "body": "x"}, "queued", ""},
		{"defaults on", map[string]any{"channel": "sms", "to": "0504444444", "patient_id": "P4", "body": "x"}, "queued", ""},
		{"other clinic's preference ignored", map[string]any{"channel": "sms", "to": "0501111111", "body": "x", "who": "staffB"}, "queued", ""},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			who := "staffA"
			if w, ok := s.body["who"].(string); ok {
				who = w
				delete(s.body, "who")
			}
			res := e.do("POST", "/api/collections/messages/records", who, s.body)
			must(t, res.Status == 200, "expected 200, got %d: %s", res.Status, res.Raw)
			must(t, res.str("status") == s.status, "expected %s, got %s", s.status, res.str("status"))
			must(t, strings.HasPrefix(res.str("status_reason"), s.reason), "expected reason %q, got %q", s.reason, res.str("status_reason"))
		})
	}

	// A skipped message is kept and never sent: the dispatcher has sent every queued message
	// created beside them, and the skipped ones are still untouched.
	e.svc.Dispatcher.Wake()
	waitFor(t, 5*time.Second, "the queued messages sent", func() bool { return e.countMessages("status = 'queued' || status = 'sending'") == 0 })
	for _, r := range mustFind(t, e, "status = 'skipped'") {
		must(t, r.GetInt("attempts") == 0 && r.GetString("provider") == "", "a skipped message must not be sent: %v", e.logEvents(r.Id))
	}
}

func TestCreateIdempotencyKey(t *testing.T) {
	e := newEnv(t)
	body := map[string]any{"channel": "sms", "to": "0501234567", "body": "x", "idempotency_key": "appt-42-reminder"}
	first := e.do("POST", "/api/collections/messages/records", "appA", body)
	must(t, first.Status == 200, "expected 200, got %d: %s", first.Status, first.Raw)
	second := e.do("POST", "/api/collections/messages/records", "staffA", body)
	must(t, second.Status == 409, "expected 409, got %d: %s", second.Status, second.Raw)
	must(t, slices.Equal(second.errorFields(), []string{"idempotency_key"}), "expected the error to name idempotency_key: %s", second.Raw)
	must(t, strings.Contains(second.Raw, first.str("id")), "the answer must name the existing message %s: %s", first.str("id"), second.Raw)
	must(t, e.countMessages("") == 1, "expected one message, got %d", e.countMessages(""))
	// The same key in another clinic is another message.
	other := e.do("POST", "/api/collections/messages/records", "staffB", body)
	must(t, other.Status == 200, "expected 200 for another clinic, got %d: %s", other.Status, other.Raw)
}

func TestCreateWithSendAtIsScheduled(t *testing.T) {
	e := newEnv(t)
	future := time.Now().UTC().Add(400 * time.Millisecond).Format("2006-01-02 15:04:05.000Z")
	res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "body": "x", "send_at": future})
	must(t, res.Status == 200 && res.str("status") == "scheduled", "expected scheduled, got %d %s", res.Status, res.str("status"))
	rec := e.waitStatus(res.str("id"), "delivered", 5*time.Second)
	must(t, !rec.GetDateTime("sent_at").Time().Before(rec.GetDateTime("send_at").Time()), "sent before send_at")
	want := []string{"created:scheduled", "queued:queued", "sending:sending", "sent:sent", "status:delivered"}
	must(t, slices.Equal(e.logEvents(rec.Id), want), "expected log %v, got %v", want, e.logEvents(rec.Id))

	past := time.Now().UTC().Add(-time.Hour).Format("2006-01-02 15:04:05.000Z")
	res = e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "body": "x", "send_at": past})
	must(t, res.str("status") == "queued", "a send_at in the past is queued, got %s", res.str("status"))
}
