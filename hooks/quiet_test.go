package hooks_test

import (
	"strings"
	"testing"
	"time"

	"clinicmsg/hooks"
	"clinicmsg/internal/compose"
)

// TestQuietHoursHoldNonUrgentMessages uses a quiet window around the current time in the
// clinic's zone, so that it holds whatever the hour the test runs at.
func TestQuietHoursHoldNonUrgentMessages(t *testing.T) {
	for _, zone := range []string{"Asia/Riyadh", "America/New_York"} {
		t.Run(zone, func(t *testing.T) {
			e := newEnv(t)
			loc, _ := time.LoadLocation(zone)
			now := time.Now().In(loc)
			start, end := now.Add(-time.Hour).Format("15:04"), now.Add(2*time.Hour).Format("15:04")
			e.clinicA.Set("timezone", zone)
			e.clinicA.Set("quiet_start", start)
			e.clinicA.Set("quiet_end", end)
			if err := e.app.Save(e.clinicA); err != nil {
				t.Fatal(err)
			}
			scenarios := []struct {
				category string
				status   string
			}{
				{"", "scheduled"}, {"general", "scheduled"}, {"marketing", "scheduled"}, {"reminder", "scheduled"},
				{"results", "queued"}, {"confirmation", "queued"}, {"cancellation", "queued"},
			}
			for _, s := range scenarios {
				res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "body": "x " + s.category, "category": s.category})
				must(t, res.Status == 200 && res.str("status") == s.status, "%q: expected %s, got %d %s", s.category, s.status, res.Status, res.str("status"))
				if s.status == "scheduled" {
					next := e.message(res.str("id")).GetDateTime("next_attempt_at").Time()
					wantEnd := compose.QuietEnd(time.Now(), loc, start, end)
					must(t, next.Equal(wantEnd.UTC()), "expected to be held until %v, got %v", wantEnd.UTC(), next)
					must(t, strings.HasPrefix(res.str("status_reason"), "quiet_hours"), "expected a quiet_hours reason, got %q", res.str("status_reason"))
				}
			}
			// A clinic may hold results too.
			e.clinicA.Set("quiet_categories", []string{"results"})
			if err := e.app.Save(e.clinicA); err != nil {
				t.Fatal(err)
			}
			res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "body": "r", "category": "results"})
			must(t, res.str("status") == "scheduled", "expected the clinic's own categories to apply, got %s", res.str("status"))
			res = e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "body": "m", "category": "marketing"})
			must(t, res.str("status") == "queued", "expected marketing to go when the clinic holds only results, got %s", res.str("status"))
		})
	}
}

func TestDuplicateGuard(t *testing.T) {
	e := newEnv(t, func(c *hooks.Config) { c.DuplicateWindow = 10 * time.Minute })
	e.save("templates", map[string]any{"code": "reminder", "channel": "any", "category": "reminder", "active": true, "body_en": "See you {{when}}"})
	send := func(body map[string]any) response {
		t.Helper()
		res := e.do("POST", "/api/collections/messages/records", "appA", body)
		must(t, res.Status == 200, "expected 200, got %d: %s", res.Status, res.Raw)
		return res
	}
	first := send(map[string]any{"channel": "sms", "to": "0501234567", "template": "reminder", "context": map[string]any{"when": "tomorrow"}, "patient_id": "P1"})
	must(t, first.str("status") == "queued", "first: %s", first.str("status"))

	scenarios := []struct {
		name   string
		body   map[string]any
		status string
	}{
		{"same template, same number", map[string]any{"channel": "sms", "to": "+966501234567", "template": "reminder", "context": map[string]any{"when": "tomorrow"}}, "skipped"},
		{"same template, same patient, other number", map[string]any{"channel": "sms", "to": "0509876543", "template": "reminder", "context": map[string]any{"when": "tomorrow"}, "patient_id": "P1"}, "skipped"},
		{"with an idempotency key", map[string]any{"channel": "sms", "to": "0501234567", "template": "reminder", "context": map[string]any{"when": "tomorrow"}, "idempotency_key": "k1"}, "queued"},
		{"other channel", map[string]any{"channel": "whatsapp", "to": "0501234567", "template": "reminder", "context": map[string]any{"when": "tomorrow"}}, "queued"},
		{"other text", map[string]any{"channel": "sms", "to": "0501234567", "body": "Your results are ready"}, "queued"},
		{"same text again", map[string]any{"channel": "sms", "to": "0501234567", "body": "Your results are ready"}, "skipped"},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			res := send(s.body)
			must(t, res.str("status") == s.status, "expected %s, got %s (%s)", s.status, res.str("status"), res.str("status_reason"))
			if s.status == "skipped" {
				must(t, strings.Contains(res.str("status_reason"), first.str("id")) || strings.HasPrefix(res.str("status_reason"), "duplicate"), "the reason must name the earlier message: %q", res.str("status_reason"))
			}
		})
	}
	// Another clinic's message to the same number is not a duplicate.
	res := e.do("POST", "/api/collections/messages/records", "staffB", map[string]any{"channel": "sms", "to": "0501234567", "body": "Your results are ready"})
	must(t, res.str("status") == "queued", "another clinic: expected queued, got %s", res.str("status"))
}
