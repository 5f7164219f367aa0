package hooks_test

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestSendRoute(t *testing.T) {
	e := newEnv(t)

	t.Run("one message answers like a record create", func(t *testing.T) {
		res := e.do("POST", "/api/clinicmsg/send", "appA", map[string]any{"channel": "sms", "to": "0501234567", "body": "Hello"})
		must(t, res.Status == 200 && res.str("status") == "queued" && res.str("to") == "+966501234567" && res.str("clinic") == e.clinicA.Id, "expected a queued message: %s", res.Raw)
		e.waitStatus(res.str("id"), "delivered", 5*time.Second)
		bad := e.do("POST", "/api/clinicmsg/send", "appA", map[string]any{"channel": "sms", "to": "12", "body": "Hello"})
		must(t, bad.Status == 400 && slices.Equal(bad.errorFields(), []string{"to"}), "expected 400 naming to: %s", bad.Raw)
	})

	t.Run("an array answers per message", func(t *testing.T) {
		before := e.countMessages("")
		batch := []map[string]any{}
		for i := range 5 {
			batch = append(batch, map[string]any{"channel": "sms", "to": fmt.Sprintf("05012345%02d", i), "body": "Batch"})
		}
		batch = append(batch,
			map[string]any{"channel": "sms", "to": "bad", "body": "x"},
			map[string]any{"channel": "sms", "to": "0501234567", "body": "x", "status": "sent"},
			map[string]any{"channel": "sms", "to": "0501234567", "body": "x", "clinic": e.clinicB.Id},
			map[string]any{"channel": "sms", "body": "x"},
		)
		res := e.do("POST", "/api/clinicmsg/send", "appA", batch)
		must(t, res.Status == 200 && res.Body["accepted"] == 5.0 && res.Body["rejected"] == 4.0, "expected 5 accepted and 4 rejected: %.400s", res.Raw)
		items := res.Body["items"].([]any)
		want := []float64{200, 200, 200, 200, 200, 400, 400, 403, 400}
		for i, w := range want {
			got := items[i].(map[string]any)["status"].(float64)
			must(t, got == w, "item %d: expected %v, got %v (%v)", i, w, got, items[i])
		}
		must(t, e.countMessages("")-before == 5, "expected 5 stored messages, got %d", e.countMessages("")-before)
	})

	t.Run("limits and access", func(t *testing.T) {
		big := make([]map[string]any, 1001)
		for i := range big {
			big[i] = map[string]any{"channel": "sms", "to": "0501234567", "body": "x"}
		}
		res := e.do("POST", "/api/clinicmsg/send", "appA", big)
		must(t, res.Status == 400 && slices.Equal(res.errorFields(), []string{"messages"}), "expected 400 for 1001 messages: %.300s", res.Raw)
		res = e.do("POST", "/api/clinicmsg/send", "", map[string]any{"channel": "sms", "to": "0501234567", "body": "x"})
		must(t, res.Status == 401, "expected 401 unauthenticated, got %d", res.Status)
		res = e.do("POST", "/api/clinicmsg/send", "appA", "not json")
		must(t, res.Status == 400, "expected 400 for a bad body, got %d", res.Status)
		res = e.do("POST", "/api/clinicmsg/send", "staffA", []map[string]any{{"channel": "sms", "to": "0501234567", "body": "x", "idempotency_key": "k"}, {"channel": "sms", "to": "0501234567", "body": "x", "idempotency_key": "k"}})
		items := res.Body["items"].([]any)
		must(t, items[0].(map[string]any)["status"] == 200.0 && items[1].(map[string]any)["status"] == 409.0, "a repeated key in one batch is a 409: %.400s", res.Raw)
	})
}
