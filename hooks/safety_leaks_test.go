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

// TestPreviewPricesAreTheClinicsOwn: a cost estimate comes from what the caller's clinic
// paid; a clinic that has paid nothing yet learns nothing of another clinic's prices.
func TestPreviewPricesAreTheClinicsOwn(t *testing.T) {
	e := newEnv(t).quiet()
	now := time.Now().UTC()
	// Clinic B paid 0.10 SAR a segment (the fixture's rows are one segment each).
	e.insert(
		row{clinic: e.clinicB.Id, channel: "sms", status: "delivered", provider: "mock", attempts: 1, cost: 0.10, currency: "SAR", created: now},
		row{clinic: e.clinicB.Id, channel: "sms", status: "delivered", provider: "mock", attempts: 1, cost: 0.10, currency: "SAR", created: now},
	)
	scenarios := []struct {
		who  string
		body map[string]any
		want any // per_segment, or nil for no estimate
	}{
		{"staffA", map[string]any{"channel": "sms", "body": "Hello"}, nil},
		{"staffB", map[string]any{"channel": "sms", "body": "Hello"}, 0.10},
		{"superuser", map[string]any{"channel": "sms", "body": "Hello", "clinic": e.clinicA.Id}, nil},
		{"superuser", map[string]any{"channel": "sms", "body": "Hello", "clinic": e.clinicB.Id}, 0.10},
		{"staffB", map[string]any{"channel": "whatsapp", "body": "Hello"}, nil}, // B paid for SMS only
	}
	for _, s := range scenarios {
		t.Run(fmt.Sprintf("%s %v", s.who, s.body["clinic"]), func(t *testing.T) {
			res := e.do("POST", "/api/clinicmsg/preview", s.who, s.body)
			must(t, res.Status == 200, "preview: %d %s", res.Status, res.Raw)
			cost, _ := res.Body["cost_estimate"].(map[string]any)
			if s.want == nil {
				must(t, res.Body["cost_estimate"] == nil, "expected no estimate, got %v", res.Body["cost_estimate"])
				return
			}
			must(t, cost["per_segment"] == s.want && cost["currency"] == "SAR", "expected %v SAR a segment, got %v", s.want, cost)
		})
	}
}

// TestHealthFiguresAreTheClinicsOwn: a clinic user's /health shows the error rates of its
// own clinic's messages; only a superuser sees the appliance's.
func TestHealthFiguresAreTheClinicsOwn(t *testing.T) {
	e := newEnv(t).quiet()
	now := time.Now().UTC()
	var rows []row
	for range 6 { // B's messages all failing on the provider's side
		rows = append(rows, row{clinic: e.clinicB.Id, channel: "sms", status: "failed", provider: "mock", attempts: 3, errorCode: "30008", created: now})
	}
	for range 2 { // too few of A's to judge
		rows = append(rows, row{clinic: e.clinicA.Id, channel: "sms", status: "delivered", provider: "mock", attempts: 1, created: now})
	}
	e.insert(rows...)
	scenarios := []struct {
		who    string
		rate   any // nil: below the sample size
		status string
	}{
		{"staffA", nil, "healthy"},
		{"adminA", nil, "healthy"},
		{"staffB", 100.0, "down"},
		{"superuser", 75.0, "degraded"}, // 6 of 8: degraded from 20%, down from 80%
	}
	for _, s := range scenarios {
		t.Run(s.who, func(t *testing.T) {
			sms := channel(e.health(s.who), "sms")
			must(t, sms["error_rate"] == s.rate && sms["status"] == s.status, "expected error rate %v and %s, got %v", s.rate, s.status, sms)
		})
	}
}

// TestCachesAreBounded: names a caller makes up (unknown templates, clinic ids, webhook
// tokens) cannot grow the in-memory caches past their bounds.
func TestCachesAreBounded(t *testing.T) {
	fake := providertest.NewTwilio(t)
	e := newEnv(t, withTwilio(fake)).quiet()
	const bound = 10
	hooks.SetCacheBounds(e.svc, bound)
	for i := range 3 * bound {
		e.save("clinics", map[string]any{"name": fmt.Sprintf("Clinic %d", i)})
	}
	clinics, err := e.app.FindAllRecords("clinics")
	must(t, err == nil, "clinics: %v", err)

	for i := range 3 * bound {
		res := e.do("POST", "/api/clinicmsg/preview", "staffA", map[string]any{"channel": "sms", "template": fmt.Sprintf("no-such-template-%d", i)})
		must(t, res.Status == 400, "an unknown template is a 400, got %d: %s", res.Status, res.Raw)
	}
	for _, c := range clinics {
		res := e.do("POST", "/api/clinicmsg/preview", "superuser", map[string]any{"channel": "sms", "body": "x", "clinic": c.Id})
		must(t, res.Status == 200, "preview for clinic %s: %d %s", c.Id, res.Status, res.Raw)
	}
	for i := range 3 * bound {
		p := url.Values{"MessageSid": {fmt.Sprintf("SM%032d", i)}, "MessageStatus": {"delivered"}, "AccountSid": {fake.AccountSID}}
		req, _ := providertest.SignedStatusCallback(e.srv.URL+"/api/clinicmsg/webhooks/twilio/status", p, fake.AuthToken)
		req.Header.Set("I-Twilio-Idempotency-Token", fmt.Sprintf("token-%d", i))
		res, err := http.DefaultClient.Do(req)
		must(t, err == nil && res.StatusCode == 204, "status callback: %v %v", err, res)
		res.Body.Close()
	}
	// Every token is cached until it expires or the bound is reached: 3 × bound distinct
	// tokens of one user (each with its own expiry).
	staff, err := e.app.FindAuthRecordByEmail("users", "staffa@example.com")
	must(t, err == nil, "staff user: %v", err)
	for i := range 3 * bound {
		token, err := staff.NewStaticAuthToken(time.Duration(i+1) * time.Hour)
		must(t, err == nil, "token: %v", err)
		req, _ := http.NewRequest("GET", e.srv.URL+"/api/clinicmsg/lists", nil)
		req.Header.Set("Authorization", token)
		res, err := http.DefaultClient.Do(req)
		must(t, err == nil && res.StatusCode == 200, "lists with token %d: %v %v", i, err, res)
		res.Body.Close()
	}
	for name, size := range hooks.CacheSizes(e.svc) {
		must(t, size[0] > 0 && size[0] <= bound, "%s: expected at most %d entries, got %d", name, bound, size[0])
	}
}
