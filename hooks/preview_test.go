package hooks_test

import (
	"slices"
	"strings"
	"testing"
)

func TestPreview(t *testing.T) {
	e := newEnv(t)
	e.svc.Dispatcher.Stop() // the priced message below must stay as the test wrote it
	e.save("templates", map[string]any{"code": "reminder", "channel": "any", "active": true, "body_en": "Hello {{name}}", "body_ar": "مرحبا {{name}}"})
	// A delivered message the provider priced: 2 segments for 0.10 SAR.
	m := e.save("messages", map[string]any{"clinic": e.clinicA.Id, "channel": "sms", "to": "0501234567", "body": "x"})
	m.Set("cost", 0.10)
	m.Set("segments", 2)
	m.Set("currency", "SAR")
	if err := e.app.Save(m); err != nil {
		t.Fatal(err)
	}

	res := e.do("POST", "/api/clinicmsg/preview", "staffA", map[string]any{"channel": "sms", "template": "reminder", "language": "ar", "context": map[string]any{"name": "سارة"},
		"recipients": []any{"0501234567", "12", map[string]any{"to": "0112345678"}}})
	must(t, res.Status == 200, "preview: %s", res.Raw)
	must(t, res.str("body") == "مرحبا سارة" && res.str("encoding") == "ucs2" && res.Body["segments"] == 1.0, "wrong render: %s", res.Raw)
	rc := res.Body["recipients"].(map[string]any)
	must(t, rc["valid"] == 1.0 && len(rc["invalid"].([]any)) == 2, "expected 1 valid and 2 invalid: %v", rc)
	cost := res.Body["cost_estimate"].(map[string]any)
	must(t, cost["currency"] == "SAR" && cost["amount"] == 0.05, "expected 0.05 SAR for one segment to one recipient: %v", cost)

	long := e.do("POST", "/api/clinicmsg/preview", "staffA", map[string]any{"channel": "sms", "body": strings.Repeat("a", 161)})
	must(t, long.Body["segments"] == 2.0 && long.str("encoding") == "gsm7", "expected 2 gsm7 segments: %s", long.Raw)

	bad := []struct {
		who   string
		body  map[string]any
		code  int
		field string
	}{
		{"staffA", map[string]any{"channel": "sms", "template": "reminder"}, 400, "context"},
		{"staffA", map[string]any{"channel": "sms", "template": "nope"}, 400, "template"},
		{"staffA", map[string]any{"channel": "sms", "body": "x", "to": "12"}, 400, "to"},
		{"staffA", map[string]any{"channel": "fax", "body": "x"}, 400, "channel"},
		{"staffA", map[string]any{"channel": "sms", "body": "x", "clinic": e.clinicB.Id}, 403, "clinic"},
	}
	for _, b := range bad {
		r := e.do("POST", "/api/clinicmsg/preview", b.who, b.body)
		must(t, r.Status == b.code && slices.Equal(r.errorFields(), []string{b.field}), "expected %d naming %s, got %d: %s", b.code, b.field, r.Status, r.Raw)
	}
	r := e.do("POST", "/api/clinicmsg/preview", "", map[string]any{"channel": "sms", "body": "x"})
	must(t, r.Status == 401, "expected 401 unauthenticated, got %d", r.Status)
	must(t, e.countMessages("") == 1, "a preview stores nothing")
}
