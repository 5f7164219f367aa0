package hooks_test

import (
	"slices"
	"testing"
)

// TestSendersAreAssigned: who a clinic's messages come from, and whose system gets its
// patients' replies, is set by a superuser; a clinic admin who tries is told which field,
// and nothing changes.
func TestSendersAreAssigned(t *testing.T) {
	e := newEnv(t)
	path := "/api/collections/clinics/records/" + e.clinicA.Id
	refused := []struct {
		name string
		body map[string]any
	}{
		{"sms_sender", map[string]any{"sms_sender": "+15005550101"}},
		{"whatsapp_sender", map[string]any{"whatsapp_sender": "whatsapp:+15005550101"}},
		{"app_webhook_url", map[string]any{"app_webhook_url": "https://example.com/hook"}},
		{"app_webhook_secret", map[string]any{"app_webhook_secret": "guess"}},
		{"sms_sender", map[string]any{"name": "Renamed", "sms_sender": ""}}, // clearing is a change too
	}
	for _, s := range refused {
		t.Run("admin sets "+s.name, func(t *testing.T) {
			res := e.do("PATCH", path, "adminA", s.body)
			must(t, res.Status == 403 && slices.Equal(res.errorFields(), []string{s.name}), "expected 403 naming %s, got %d: %s", s.name, res.Status, res.Raw)
		})
	}
	t.Run("admin creates a clinic with a sender", func(t *testing.T) {
		res := e.do("POST", "/api/collections/clinics/records", "adminA", map[string]any{"name": "Mine", "sms_sender": "+15005550101"})
		must(t, res.Status == 403 && slices.Equal(res.errorFields(), []string{"sms_sender"}), "expected 403 naming sms_sender, got %d: %s", res.Status, res.Raw)
	})
	t.Run("nothing changed", func(t *testing.T) {
		c, err := e.app.FindRecordById("clinics", e.clinicA.Id)
		must(t, err == nil, "clinic A: %v", err)
		for _, f := range []string{"sms_sender", "whatsapp_sender", "app_webhook_url", "app_webhook_secret"} {
			must(t, c.GetString(f) == "", "%s changed to %q", f, c.GetString(f))
		}
		must(t, c.GetString("name") == "Clinic A", "name changed with a refused field: %q", c.GetString("name"))
		n, err := e.app.CountRecords("clinics")
		must(t, err == nil && n == 2, "expected 2 clinics, got %d (%v)", n, err)
	})
	t.Run("a batch request meets the same rule", func(t *testing.T) {
		s := e.app.Settings()
		s.Batch.Enabled = true
		if err := e.app.Save(s); err != nil {
			t.Fatal(err)
		}
		res := e.do("POST", "/api/batch", "adminA", map[string]any{"requests": []map[string]any{
			{"method": "PATCH", "url": "/api/collections/clinics/records/" + e.clinicA.Id, "body": map[string]any{"sms_sender": "+15005550101"}},
		}})
		must(t, res.Status >= 400 && res.Status < 500, "expected a 4xx, got %d: %s", res.Status, res.Raw)
		c, err := e.app.FindRecordById("clinics", e.clinicA.Id)
		must(t, err == nil && c.GetString("sms_sender") == "", "the batch changed the sender to %q (%v)", c.GetString("sms_sender"), err)
		res = e.do("POST", "/api/batch", "adminA", map[string]any{"requests": []map[string]any{
			{"method": "PATCH", "url": "/api/collections/clinics/records/" + e.clinicA.Id, "body": map[string]any{"help_text_en": "By batch"}},
		}})
		must(t, res.Status == 200, "a batch of the clinic's own settings passes, got %d: %s", res.Status, res.Raw)
	})
	t.Run("admin still edits the clinic's own settings", func(t *testing.T) {
		res := e.do("PATCH", path, "adminA", map[string]any{"help_text_en": "Call 011 000 0000", "quiet_start": "21:00", "quiet_end": "08:00"})
		must(t, res.Status == 200 && res.str("help_text_en") == "Call 011 000 0000", "expected 200, got %d: %s", res.Status, res.Raw)
	})
	t.Run("a superuser may give two clinics one number", func(t *testing.T) {
		for _, id := range []string{e.clinicA.Id, e.clinicB.Id} {
			res := e.do("PATCH", "/api/collections/clinics/records/"+id, "superuser", map[string]any{"sms_sender": "+15005550101"})
			must(t, res.Status == 200 && res.str("sms_sender") == "+15005550101", "expected 200, got %d: %s", res.Status, res.Raw)
		}
	})
	t.Run("an app webhook needs its secret", func(t *testing.T) {
		res := e.do("PATCH", path, "superuser", map[string]any{"app_webhook_url": "https://example.com/hook"})
		must(t, res.Status == 400 && slices.Equal(res.errorFields(), []string{"app_webhook_secret"}), "expected 400 naming app_webhook_secret, got %d: %s", res.Status, res.Raw)
		res = e.do("PATCH", path, "superuser", map[string]any{"app_webhook_url": "not a url", "app_webhook_secret": "s3cret"})
		must(t, res.Status == 400 && slices.Equal(res.errorFields(), []string{"app_webhook_url"}), "expected 400 naming app_webhook_url, got %d: %s", res.Status, res.Raw)
	})
}
