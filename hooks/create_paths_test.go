package hooks_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pocketbase/pocketbase/core"
)

// TestEveryCreatePathRunsEveryRule runs each create rule through each way a message can be
// created: a JSON record create (the send route's group commit), a multipart create (the
// admin UI), creates with ?expand= and ?fields= (PocketBase's own create), /api/batch and
// /api/clinicmsg/send. A refused message names its field, answers 4xx and stores nothing.
func TestEveryCreatePathRunsEveryRule(t *testing.T) {
	e := newEnv(t)
	// Batch requests are off by default; an operator may turn them on, and then they must
	// obey the same rules.
	settings := e.app.Settings()
	settings.Batch.Enabled, settings.Batch.MaxRequests = true, 50
	if err := e.app.Save(settings); err != nil {
		t.Fatal(err)
	}
	e.save("templates", map[string]any{"code": "visit", "channel": "any", "category": "reminder", "active": true, "body_en": "Dear {{name}}, your visit is on {{date}}."})
	e.save("templates", map[string]any{"code": "bomb", "channel": "any", "category": "general", "active": true, "body_en": strings.Repeat("{{a}}", 1000)})
	foreign := e.save("campaigns", map[string]any{"clinic": e.clinicB.Id, "name": "B recall", "channel": "sms", "body": "Recall",
		"recipients": []string{"0502220001"}, "send_at": time.Now().UTC().Add(24 * time.Hour).Format("2006-01-02 15:04:05.000Z")})
	e.save("preferences", map[string]any{"clinic": e.clinicA.Id, "phone": "+966502220009", "sms": true, "opted_out": true})

	type path struct {
		name string
		post func(msg map[string]any) (int, map[string]any) // status and the error's data (or the record)
	}
	asRecord := func(res response) (int, map[string]any) {
		return res.Status, res.Body
	}
	paths := []path{
		{"json", func(m map[string]any) (int, map[string]any) {
			return asRecord(e.do("POST", "/api/collections/messages/records", "staffA", m))
		}},
		{"multipart", func(m map[string]any) (int, map[string]any) {
			return asRecord(e.doForm("/api/collections/messages/records", "staffA", m))
		}},
		{"expand", func(m map[string]any) (int, map[string]any) {
			return asRecord(e.do("POST", "/api/collections/messages/records?expand=clinic", "staffA", m))
		}},
		{"fields", func(m map[string]any) (int, map[string]any) {
			return asRecord(e.do("POST", "/api/collections/messages/records?fields=id,status,status_reason", "staffA", m))
		}},
		{"batch", func(m map[string]any) (int, map[string]any) {
			res := e.do("POST", "/api/batch", "staffA", map[string]any{"requests": []any{map[string]any{
				"method": "POST", "url": "/api/collections/messages/records", "body": m}}})
			if res.Status != http.StatusOK {
				return res.Status, res.Body
			}
			return http.StatusOK, res.Body
		}},
		{"send", func(m map[string]any) (int, map[string]any) {
			res := e.do("POST", "/api/clinicmsg/send", "staffA", []any{m})
			items, _ := res.Body["items"].([]any)
			if res.Status != http.StatusOK || len(items) != 1 {
				return res.Status, res.Body
			}
			item := items[0].(map[string]any)
			body, _ := item["body"].(map[string]any)
			return int(item["status"].(float64)), body
		}},
	}
	rules := []struct {
		name  string
		msg   map[string]any
		field string // the field a 400 names; "" for an accepted message
		skip  bool   // accepted but skipped
	}{
		{"another clinic's campaign", map[string]any{"body": "Hi", "campaign": foreign.Id}, "campaign", false},
		{"an unknown campaign", map[string]any{"body": "Hi", "campaign": "nosuchcampaign1"}, "campaign", false},
		{"send_at without a zone", map[string]any{"body": "Hi", "send_at": "2026-12-03 09:00"}, "send_at", false},
		{"send_at in words", map[string]any{"body": "Hi", "send_at": "tomorrow"}, "send_at", false},
		{"send_at day first", map[string]any{"body": "Hi", "send_at": "03/12/2026 09:00"}, "send_at", false},
		{"an unknown language", map[string]any{"body": "Hi", "language": "fr"}, "language", false},
		{"a category given as a number", map[string]any{"body": "Hi", "category": 7}, "category", false},
		{"an unknown template", map[string]any{"template": "nosuch"}, "template", false},
		{"missing variables", map[string]any{"template": "visit", "context": map[string]any{}}, "context", false},
		{"a render past the SMS limit", map[string]any{"template": "bomb", "context": map[string]any{"a": strings.Repeat("x", 200_000)}}, "context", false},
		{"a malformed number", map[string]any{"body": "Hi", "to": "12ab"}, "to", false},
		{"an opted-out number", map[string]any{"body": "Hi", "to": "0502220009"}, "", true},
		{"send_at with an offset", map[string]any{"body": "Hi", "send_at": "2030-12-03T09:00:00+03:00"}, "", false},
	}
	n := 0
	for _, r := range rules {
		for _, p := range paths {
			t.Run(r.name+" via "+p.name, func(t *testing.T) {
				n++
				msg := map[string]any{"channel": "sms", "to": fmt.Sprintf("05022%05d", n), "idempotency_key": fmt.Sprintf("path-%d", n)}
				for k, v := range r.msg {
					msg[k] = v
				}
				before := e.countMessages("")
				status, body := p.post(msg)
				stored := e.countMessages("") - before
				if r.field != "" {
					must(t, status == http.StatusBadRequest || status == http.StatusForbidden, "expected 400, got %d: %v", status, body)
					data, _ := body["data"].(map[string]any)
					if p.name == "batch" {
						must(t, strings.Contains(fmt.Sprint(body), r.field), "expected the batch error to name %s: %v", r.field, body)
					} else {
						keys := make([]string, 0, len(data))
						for k := range data {
							keys = append(keys, k)
						}
						must(t, slices.Contains(keys, r.field), "expected the error to name %s, got %v", r.field, body)
					}
					must(t, stored == 0, "a refused message must store nothing, stored %d", stored)
					return
				}
				must(t, status == http.StatusOK, "expected 200, got %d: %v", status, body)
				must(t, stored == 1, "expected one message stored, got %d", stored)
				rec := mustFind(t, e, "idempotency_key = '"+msg["idempotency_key"].(string)+"'")[0]
				if r.skip {
					must(t, rec.GetString("status") == "skipped", "expected skipped, got %s", rec.GetString("status"))
				} else if _, ok := r.msg["send_at"]; ok {
					must(t, rec.GetString("status") == "scheduled" && rec.GetDateTime("send_at").Time().Equal(time.Date(2030, 12, 3, 6, 0, 0, 0, time.UTC)),
						"expected scheduled for 06:00 UTC, got %s %v", rec.GetString("status"), rec.GetDateTime("send_at"))
				}
			})
		}
	}
	camp, err := e.app.FindRecordById("campaigns", foreign.Id)
	must(t, err == nil, "campaign: %v", err)
	msgs := e.countMessages("campaign = '" + camp.Id + "'")
	must(t, msgs == 0, "clinic B's campaign must hold no message of clinic A, holds %d", msgs)
}

// TestUnreadableSwitchesAndNumbers: a switch or a number PocketBase would misread ("yes"
// read as off) is a 400 naming it on creates and updates, as JSON or as a form, and
// changes nothing.
func TestUnreadableSwitchesAndNumbers(t *testing.T) {
	e := newEnv(t)
	pref := e.do("POST", "/api/collections/preferences/records", "adminA", map[string]any{"patient_id": "T1", "phone": "0508880001", "sms": true})
	must(t, pref.Status == 200, "preference: %s", pref.Raw)
	scenarios := []struct {
		name   string
		send   func() response
		field  string
		stored func() bool
	}{
		{"a switch as a word", func() response {
			return e.do("POST", "/api/collections/preferences/records", "adminA", map[string]any{"patient_id": "T2", "sms": "yes"})
		}, "sms", func() bool { return len(prefsOf(t, e, "T2")) > 0 }},
		{"a switch as a word, in a form", func() response {
			return e.doForm("/api/collections/preferences/records", "adminA", map[string]any{"patient_id": "T3", "opted_out": "maybe"})
		}, "opted_out", func() bool { return len(prefsOf(t, e, "T3")) > 0 }},
		{"a switch as a number, on an update", func() response {
			return e.do("PATCH", "/api/collections/preferences/records/"+pref.str("id"), "adminA", map[string]any{"opted_out": 2})
		}, "opted_out", func() bool { return prefsOf(t, e, "T1")[0].GetBool("opted_out") }},
		{"a number as a word", func() response {
			return e.do("PATCH", "/api/collections/clinics/records/"+e.clinicA.Id, "adminA", map[string]any{"retention_days": "ninety"})
		}, "retention_days", func() bool {
			c, _ := e.app.FindRecordById("clinics", e.clinicA.Id)
			return c.GetInt("retention_days") != 90
		}},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			res := s.send()
			must(t, res.Status == 400 && len(res.errorFields()) == 1 && res.errorFields()[0] == s.field, "expected 400 naming %s, got %d %s", s.field, res.Status, res.Raw)
			must(t, !s.stored(), "nothing may change")
		})
	}
}

func prefsOf(t *testing.T, e *env, patient string) []*core.Record {
	t.Helper()
	recs, err := e.app.FindRecordsByFilter("preferences", "patient_id = {:p}", "", 0, 0, map[string]any{"p": patient})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}
