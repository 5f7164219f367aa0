package hooks_test

import (
	"strings"
	"testing"
	"time"

	"clinicmsg/hooks"
)

func TestQuietEnd(t *testing.T) {
	riyadh, _ := time.LoadLocation("Asia/Riyadh")
	berlin, _ := time.LoadLocation("Europe/Berlin")
	at := func(loc *time.Location, y int, m time.Month, d, h, min int) time.Time {
		return time.Date(y, m, d, h, min, 0, 0, loc)
	}
	scenarios := []struct {
		name       string
		t          time.Time
		loc        *time.Location
		start, end string
		want       time.Time
	}{
		{"inside, before midnight", at(riyadh, 2026, 11, 28, 22, 30), riyadh, "21:00", "08:00", at(riyadh, 2026, 11, 29, 8, 0)},
		{"inside, after midnight", at(riyadh, 2026, 11, 29, 3, 0), riyadh, "21:00", "08:00", at(riyadh, 2026, 11, 29, 8, 0)},
		{"at the start", at(riyadh, 2026, 11, 28, 21, 0), riyadh, "21:00", "08:00", at(riyadh, 2026, 11, 29, 8, 0)},
		{"at the end", at(riyadh, 2026, 11, 29, 8, 0), riyadh, "21:00", "08:00", time.Time{}},
		{"outside", at(riyadh, 2026, 11, 28, 12, 0), riyadh, "21:00", "08:00", time.Time{}},
		{"same-day window", at(riyadh, 2026, 11, 28, 13, 30), riyadh, "13:00", "14:00", at(riyadh, 2026, 11, 28, 14, 0)},
		{"no window", at(riyadh, 2026, 11, 28, 22, 0), riyadh, "", "", time.Time{}},
		{"end of month", at(riyadh, 2026, 11, 30, 23, 0), riyadh, "21:00", "08:00", at(riyadh, 2026, 12, 1, 8, 0)},
		// Berlin springs forward on 2026-03-29 at 02:00: the night is an hour shorter.
		{"dst spring forward", at(berlin, 2026, 3, 28, 23, 0), berlin, "22:00", "07:00", at(berlin, 2026, 3, 29, 7, 0)},
		{"dst fall back", at(berlin, 2026, 10, 24, 23, 0), berlin, "22:00", "07:00", at(berlin, 2026, 10, 25, 7, 0)},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			got := hooks.QuietEnd(s.t, s.loc, s.start, s.end)
			if !got.Equal(s.want) {
				t.Fatalf("expected %v, got %v", s.want, got)
			}
		})
	}
	// The spring-forward night lasts 8 hours in UTC, the fall-back night 10.
	spring := hooks.QuietEnd(at(berlin, 2026, 3, 28, 22, 0), berlin, "22:00", "07:00").Sub(at(berlin, 2026, 3, 28, 22, 0))
	fall := hooks.QuietEnd(at(berlin, 2026, 10, 24, 22, 0), berlin, "22:00", "07:00").Sub(at(berlin, 2026, 10, 24, 22, 0))
	if spring != 8*time.Hour || fall != 10*time.Hour {
		t.Fatalf("expected DST nights of 8h and 10h, got %v and %v", spring, fall)
	}
}

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
					wantEnd := hooks.QuietEnd(time.Now(), loc, start, end)
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
