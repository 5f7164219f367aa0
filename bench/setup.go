package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// Names the set-up gives the appliance; the scenarios use them.
const (
	superuserEmail    = "bench@clinicmsg.invalid"
	superuserPassword = "bench-superuser-password-1"
	appUserEmail      = "bench-app@clinicmsg.invalid"
	appUserPassword   = "bench-app-password-1"
	templateCode      = "bench_reminder"
	plainCollection   = "bench_plain"
	// preferencesSeeded patients (P-0000000…) have a preferences record.
	preferencesSeeded = 1000
	// twilioFrom is the sender the Twilio fake accepts.
	twilioFrom = "+15005550006"
)

// fixture is what the set-up stored in the template data folder; every scenario's data
// folder starts as a copy of it, so ids and tokens hold in all of them.
type fixture struct {
	dir        string
	clinicID   string
	suToken    string // superuser
	appToken   string // a users record with role "app" of the clinic
	appUserID  string
	clinicName string
}

// setUp creates the template data folder: a superuser (`clinicmsg superuser upsert`), then,
// over the API of a running appliance, a clinic, an app user, a template, preferences
// for a thousand patients, PocketBase's batch API switched on (the baseline of B1b), and
// bench_plain: a collection with a few text fields, public create and update rules and no
// hooks (the bare-PocketBase baseline).
func setUp(ctx context.Context, bin, work string) (*fixture, error) {
	dir := filepath.Join(work, "template")
	if _, err := runCLI(ctx, bin, "superuser", "upsert", superuserEmail, superuserPassword, "--dir", dir); err != nil {
		return nil, fmt.Errorf("failed to create the superuser: %w", err)
	}
	a, err := startAppliance(bin, dir, "", filepath.Join(work, "template.log"), "")
	if err != nil {
		return nil, err
	}
	fx, err := configure(a)
	if stopErr := a.stop(); err == nil && stopErr != nil {
		err = stopErr
	}
	if err != nil {
		return nil, fmt.Errorf("failed to set up the appliance: %w\n%s", err, a.logTail(20))
	}
	fx.dir = dir
	return fx, nil
}

func configure(a *appliance) (*fixture, error) {
	c := &client{base: a.base, hc: newHTTPClient(4)}
	fx := &fixture{clinicName: "Bench Clinic"}

	var auth struct {
		Token  string `json:"token"`
		Record struct {
			ID string `json:"id"`
		} `json:"record"`
	}
	if err := c.call("POST", "/api/collections/_superusers/auth-with-password", "", map[string]any{"identity": superuserEmail, "password": superuserPassword}, 200, &auth); err != nil {
		return nil, err
	}
	fx.suToken = auth.Token

	settings := map[string]any{"batch": map[string]any{"enabled": true, "maxRequests": 1000, "timeout": 120}}
	if err := c.call("PATCH", "/api/settings", fx.suToken, settings, 200, nil); err != nil {
		return nil, err
	}

	var rec struct {
		ID string `json:"id"`
	}
	// Retention far beyond B6's year of seeded messages, so no cleanup runs into it.
	if err := c.call("POST", "/api/collections/clinics/records", fx.suToken, map[string]any{
		"name": fx.clinicName, "timezone": "Asia/Riyadh", "default_language": "en", "retention_days": 3650,
	}, 200, &rec); err != nil {
		return nil, err
	}
	fx.clinicID = rec.ID

	if err := c.call("POST", "/api/collections/users/records", fx.suToken, map[string]any{
		"email": appUserEmail, "password": appUserPassword, "passwordConfirm": appUserPassword,
		"name": "Bench integration", "clinic": fx.clinicID, "role": "app",
	}, 200, &rec); err != nil {
		return nil, err
	}
	fx.appUserID = rec.ID
	if err := c.call("POST", "/api/collections/users/auth-with-password", "", map[string]any{"identity": appUserEmail, "password": appUserPassword}, 200, &auth); err != nil {
		return nil, err
	}
	fx.appToken = auth.Token

	if err := c.call("POST", "/api/collections/templates/records", fx.suToken, map[string]any{
		"clinic": fx.clinicID, "code": templateCode, "channel": "sms", "category": "reminder", "active": true,
		"body_en": "Dear {{patient_name}}, your appointment at {{clinic_name}} is on {{date}} at {{time}}. Reply 1 to confirm, 2 to cancel.",
		"body_ar": "عزيزي {{patient_name}}، موعدك في {{clinic_name}} يوم {{date}} الساعة {{time}}. أرسل 1 للتأكيد أو 2 للإلغاء.",
	}, 200, nil); err != nil {
		return nil, err
	}

	for from := 0; from < preferencesSeeded; from += 100 {
		var reqs []map[string]any
		for i := from; i < min(from+100, preferencesSeeded); i++ {
			reqs = append(reqs, map[string]any{"method": "POST", "url": "/api/collections/preferences/records", "body": map[string]any{
				"clinic": fx.clinicID, "patient_id": patientID(i), "language": "en",
				"sms": true, "whatsapp": true, "email_enabled": true, "categories": map[string]bool{"reminder": true},
			}})
		}
		if err := c.call("POST", "/api/batch", fx.suToken, map[string]any{"requests": reqs}, 200, nil); err != nil {
			return nil, fmt.Errorf("failed to create preferences: %w", err)
		}
	}

	plain := map[string]any{
		"name": plainCollection, "type": "base", "createRule": "", "updateRule": "",
		"fields": []map[string]any{
			{"name": "channel", "type": "text", "max": 16},
			{"name": "to", "type": "text", "max": 320},
			{"name": "template", "type": "text", "max": 100},
			{"name": "context", "type": "json", "maxSize": 65536},
			{"name": "patient_id", "type": "text", "max": 100},
			{"name": "body", "type": "text", "max": 20000},
			{"name": "status", "type": "text", "max": 32},
			{"name": "created", "type": "autodate", "onCreate": true},
			{"name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true},
		},
	}
	if err := c.call("POST", "/api/collections", fx.suToken, plain, 200, nil); err != nil {
		return nil, fmt.Errorf("failed to create %s: %w", plainCollection, err)
	}
	return fx, nil
}

// phoneLocal is the i-th bench phone number as a Saudi patient would type it
// (0501234567), phoneE164 the same number as clinicmsg stores it (+966501234567).
// Every message of a scenario goes to its own number, so the duplicate guard (on, at its
// default window) checks every message and skips none.
func phoneLocal(i int) string { return fmt.Sprintf("050%07d", i%10_000_000) }
func phoneE164(i int) string  { return fmt.Sprintf("+96650%07d", i%10_000_000) }

func patientID(i int) string { return fmt.Sprintf("P-%07d", i) }

// messageItem is the i-th message a clinic's app sends: a template reminder to a number in
// local form, with the patient's id (the first thousand patients have preferences).
func messageItem(i int) map[string]any {
	return map[string]any{
		"channel": "sms", "to": phoneLocal(i), "template": templateCode, "patient_id": patientID(i),
		"context": map[string]any{"patient_name": "Sara", "date": "1 Dec", "time": "10:00"},
	}
}

// plainItem is the same payload for bench_plain.
func plainItem(i int) map[string]any {
	return map[string]any{
		"channel": "sms", "to": phoneLocal(i), "template": templateCode, "patient_id": patientID(i),
		"context": map[string]any{"patient_name": "Sara", "date": "1 Dec", "time": "10:00"}, "status": "queued",
	}
}

// since formats t as PocketBase stores dates.
func since(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000Z") }
