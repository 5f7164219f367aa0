package compose_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"clinicmsg/internal/compose"
	"clinicmsg/providers"
)

// lookups answers the checks from memory: the checks are pure, so a table of rules needs
// no database.
type lookups struct {
	clinic    *core.Record
	templates map[string]*core.Record
	prefs     []*core.Record
	keys      map[string]string
	campaigns map[string]string
	previous  *compose.Previous
	accepted  int
}

func (l *lookups) Clinic(id string) (*core.Record, error) {
	if id != l.clinic.Id {
		return nil, compose.ErrNoSuchClinic
	}
	return l.clinic, nil
}
func (l *lookups) Template(_, code string) (*core.Record, error) { return l.templates[code], nil }
func (l *lookups) Preferences(_, _, _, _ string) ([]*core.Record, error) {
	return l.prefs, nil
}
func (l *lookups) KeyOwner(_, key string) (string, error)            { return l.keys[key], nil }
func (l *lookups) CampaignClinic(id string) (string, error)          { return l.campaigns[id], nil }
func (l *lookups) Duplicate(*core.Record) (*compose.Previous, error) { return l.previous, nil }
func (l *lookups) Accepted(*core.Record)                             { l.accepted++ }

func record(fields map[string]any) *core.Record {
	col := core.NewBaseCollection("messages")
	for _, f := range []string{"clinic", "channel", "to", "body", "subject", "template", "language", "patient_id", "category", "campaign", "idempotency_key",
		"status", "status_reason", "provider", "provider_message_id", "error_code", "error_message", "currency", "encoding"} {
		col.Fields.Add(&core.TextField{Name: f})
	}
	col.Fields.Add(&core.JSONField{Name: "context"}, &core.NumberField{Name: "attempts"}, &core.NumberField{Name: "segments"}, &core.NumberField{Name: "cost"})
	for _, f := range []string{"send_at", "sent_at", "delivered_at", "read_at", "next_attempt_at"} {
		col.Fields.Add(&core.DateField{Name: f})
	}
	rec := core.NewRecord(col)
	rec.Load(fields)
	return rec
}

func pref(fields map[string]any) *core.Record {
	col := core.NewBaseCollection("preferences")
	col.Fields.Add(&core.TextField{Name: "patient_id"}, &core.TextField{Name: "language"}, &core.BoolField{Name: "opted_out"},
		&core.BoolField{Name: "sms"}, &core.BoolField{Name: "whatsapp"}, &core.BoolField{Name: "email_enabled"}, &core.JSONField{Name: "categories"})
	rec := core.NewRecord(col)
	rec.Load(fields)
	return rec
}

// TestPrepare runs the create rules on one message each, through the Lookups contract.
func TestPrepare(t *testing.T) {
	clinicCol := core.NewBaseCollection("clinics")
	clinicCol.Fields.Add(&core.TextField{Name: "name"}, &core.TextField{Name: "default_language"}, &core.TextField{Name: "timezone"})
	clinic := core.NewRecord(clinicCol)
	clinic.Id = "clinicaaaaaaaaa"
	clinic.Load(map[string]any{"name": "Al Noor", "timezone": "Asia/Riyadh"})
	tplCol := core.NewBaseCollection("templates")
	tplCol.Fields.Add(&core.TextField{Name: "channel"}, &core.TextField{Name: "category"}, &core.TextField{Name: "body_en"}, &core.BoolField{Name: "active"})
	visit := core.NewRecord(tplCol)
	visit.Load(map[string]any{"channel": "any", "category": "reminder", "active": true, "body_en": "Dear {{name}}, see you {{when}} at {{clinic_name}}."})
	rules := &compose.Rules{Channels: []string{"sms", "whatsapp", "email"}, Categories: []string{"reminder", "results", "general", "marketing"}, DefaultRegion: "SA"}

	scenarios := []struct {
		name   string
		msg    map[string]any
		lk     func(l *lookups)
		field  string // the refused field, or ""
		status string
		reason string // prefix
	}{
		{"rendered and queued", map[string]any{"template": "visit", "context": map[string]any{"name": "Sara", "when": "at 10"}}, nil, "", providers.StatusQueued, ""},
		{"every missing variable named", map[string]any{"template": "visit", "context": map[string]any{}}, nil, "context", "", ""},
		{"an opt-out by number under another patient id", map[string]any{"body": "Hi", "patient_id": "CHILD"}, func(l *lookups) {
			l.prefs = []*core.Record{pref(map[string]any{"patient_id": "CHILD", "sms": true}), pref(map[string]any{"patient_id": "MOTHER", "sms": true, "opted_out": true})}
		}, "", providers.StatusSkipped, "opted_out"},
		{"a repeated key", map[string]any{"body": "Hi", "idempotency_key": "k"}, func(l *lookups) { l.keys = map[string]string{"k": "firstmessage123"} }, "idempotency_key", "", ""},
		{"another clinic's campaign", map[string]any{"body": "Hi", "campaign": "campbbbbbbbbbbb"}, func(l *lookups) { l.campaigns = map[string]string{"campbbbbbbbbbbb": "otherclinic1234"} }, "campaign", "", ""},
		{"a duplicate", map[string]any{"body": "Hi"}, func(l *lookups) { l.previous = &compose.Previous{ID: "earlier", Created: time.Now()} }, "", providers.StatusSkipped, "duplicate"},
		{"a campaign's message is never a duplicate", map[string]any{"body": "Hi", "campaign": "campaaaaaaaaaaa"}, func(l *lookups) {
			l.campaigns = map[string]string{"campaaaaaaaaaaa": clinic.Id}
			l.previous = &compose.Previous{ID: "earlier", Created: time.Now()}
		}, "", providers.StatusQueued, ""},
		{"a render past the limit", map[string]any{"template": "visit", "context": map[string]any{"name": strings.Repeat("x", 2000), "when": "now"}}, nil, "context", "", ""},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			l := &lookups{clinic: clinic, templates: map[string]*core.Record{"visit": visit}}
			if s.lk != nil {
				s.lk(l)
			}
			msg := map[string]any{"clinic": clinic.Id, "channel": "sms", "to": "0501234567"}
			for k, v := range s.msg {
				msg[k] = v
			}
			rec := record(msg)
			c, err := rules.Address(rec, l)
			if err != nil {
				t.Fatalf("expected the address accepted, got %v", err)
			}
			d, err := rules.Prepare(rec, c, l)
			if s.field != "" {
				if err == nil || !strings.Contains(fieldsOf(err), s.field) {
					t.Fatalf("expected an error naming %s, got %v", s.field, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("expected accepted, got %v", err)
			}
			if d.Status != s.status || !strings.HasPrefix(d.Reason, s.reason) {
				t.Fatalf("expected %s (%s…), got %s (%s)", s.status, s.reason, d.Status, d.Reason)
			}
			if rec.GetString("to") != "+966501234567" || l.accepted != 1 {
				t.Fatalf("expected the number in E.164 and the message accepted once, got %q, %d", rec.GetString("to"), l.accepted)
			}
		})
	}
}

// fieldsOf is the field names an API error's data holds.
func fieldsOf(err error) string {
	var ae *router.ApiError
	if !errors.As(err, &ae) {
		return ""
	}
	return fmt.Sprint(ae.RawData())
}
