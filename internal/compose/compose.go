// Package compose holds the create checks of a message, one set for every path that
// creates one (a record create, the send route, a campaign's fan-out): the clinic and
// channel, the E.164 or email recipient, the idempotency key, the campaign's clinic, the
// fields' values, consent, bounded rendering, body limits, segments, the duplicate guard,
// quiet hours and the first status. It reads nothing itself: what it needs from storage it
// asks through Lookups, which the appliance answers per message or from what a bulk request
// preloaded, so both paths are held to the same rules.
package compose

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"

	"clinicmsg/providers"
)

// Body limits per channel, in characters: the providers' own limits.
const (
	MaxSMSBody      = 1600
	MaxWhatsAppBody = 4096
	MaxEmailBody    = 20000
	MaxSubject      = 998 // an email header line's limit (RFC 5322)
	// MaxContextBytes bounds a message's template variables: the longest body is 20,000
	// characters, so a larger context can only be a mistake or an attack.
	MaxContextBytes = 64 << 10
	// MaxTemplateBody bounds each template body, in characters.
	MaxTemplateBody = MaxEmailBody
)

// ErrNoSuchClinic is Lookups.Clinic's answer for an unknown clinic.
var ErrNoSuchClinic = errors.New("no such clinic")

// Previous is a message the duplicate guard found: the one a new message would repeat.
type Previous struct {
	ID          string
	Created     time.Time
	SameRequest bool // an earlier message of the same bulk request
}

// Lookups are the reads the create checks need.
type Lookups interface {
	// Clinic returns the clinic, or ErrNoSuchClinic.
	Clinic(id string) (*core.Record, error)
	// Template returns the clinic's own template with code, else the shared one, else nil.
	Template(clinicID, code string) (*core.Record, error)
	// Preferences returns every preference of the clinic that matches a message: the
	// patient's own by patient id first (when there is one), then each by the address.
	Preferences(clinicID, patientID, channel, to string) ([]*core.Record, error)
	// KeyOwner returns the id of the message that already holds an idempotency key, or "".
	KeyOwner(clinicID, key string) (string, error)
	// CampaignClinic returns the clinic of a campaign, or "" when there is no such campaign.
	CampaignClinic(id string) (string, error)
	// Duplicate returns the recent message rec would repeat (same template or text, to the
	// same patient or number, within the duplicate window), or nil.
	Duplicate(rec *core.Record) (*Previous, error)
	// Accepted tells the lookups rec passed, so later messages of the same request see it.
	Accepted(rec *core.Record)
}

// Rules are the settings the checks apply.
type Rules struct {
	Channels      []string
	Categories    []string
	DefaultRegion string // phone region for clinics that set none
	// ChannelProblem says why a channel cannot carry messages on this appliance (email
	// without SMTP), or "": such a message is refused at once rather than failing later.
	ChannelProblem func(channel string) string
}

// Decision is the outcome of the checks for an accepted message: its first status, why
// (for a skipped or held one), and the audit detail of its creation.
type Decision struct {
	Status string
	Reason string
	Detail map[string]any
}

// Address checks the clinic, the channel and the recipient, which a bulk create needs for
// all its messages before it looks up their preferences at once. It normalises rec's to.
func (r *Rules) Address(rec *core.Record, lk Lookups) (*core.Record, error) {
	clinic, err := Clinic(rec.GetString("clinic"), lk)
	if err != nil {
		return nil, err
	}
	if err := r.CheckChannel(rec.GetString("channel")); err != nil {
		return nil, err
	}
	if err := r.NormalizeRecipient(rec, clinic); err != nil {
		return nil, err
	}
	return clinic, nil
}

// Clinic returns the clinic a message or campaign names, or a 400 naming clinic.
func Clinic(id string, lk Lookups) (*core.Record, error) {
	if id == "" {
		return nil, BadField("clinic", "validation_required", "clinic is required")
	}
	clinic, err := lk.Clinic(id)
	if errors.Is(err, ErrNoSuchClinic) {
		return nil, BadField("clinic", "validation_invalid_clinic", fmt.Sprintf("clinic %q does not exist", id))
	}
	return clinic, err
}

// CheckChannel refuses a channel the appliance does not have.
func (r *Rules) CheckChannel(ch string) error {
	if !slices.Contains(r.Channels, ch) {
		return BadField("channel", "validation_invalid_channel", fmt.Sprintf("channel must be one of %s", strings.Join(r.Channels, ", ")))
	}
	if r.ChannelProblem != nil {
		if p := r.ChannelProblem(ch); p != "" {
			return BadField("channel", "validation_channel_unconfigured", p)
		}
	}
	return nil
}

// Region is the phone region numbers of the clinic are read in.
func (r *Rules) Region(clinic *core.Record) string {
	if c := clinic.GetString("country"); c != "" {
		return c
	}
	return r.DefaultRegion
}

// NormalizeRecipient sets rec's to in E.164 (or as a bare email address), or refuses it.
func (r *Rules) NormalizeRecipient(rec, clinic *core.Record) error {
	to := rec.GetString("to")
	if strings.TrimSpace(to) == "" {
		return BadField("to", "validation_required", "to is required")
	}
	if rec.GetString("channel") == providers.ChannelEmail {
		addr, err := NormalizeEmail(to)
		if err != nil {
			return BadField("to", "validation_invalid_email", "to is not a valid email address")
		}
		rec.Set("to", addr)
		return nil
	}
	e164, err := NormalizePhone(to, r.Region(clinic))
	if errors.Is(err, ErrNotMobile) {
		return BadField("to", "validation_not_mobile", "to is not a mobile number and cannot receive messages")
	}
	if err != nil {
		return BadField("to", "validation_invalid_phone", "to is not a valid phone number")
	}
	rec.Set("to", e164)
	return nil
}

// Prepare runs the rest of the checks on a message that passed Address: it renders rec,
// sets the columns the appliance owns and decides the first status. The caller stores
// the status (store.Initial) with the decision's audit row.
func (r *Rules) Prepare(rec, clinic *core.Record, lk Lookups) (Decision, error) {
	channel := rec.GetString("channel")

	if key := rec.GetString("idempotency_key"); key != "" {
		id, err := lk.KeyOwner(clinic.Id, key)
		if err != nil {
			return Decision{}, fmt.Errorf("failed to check idempotency_key: %w", err)
		}
		if id != "" {
			return Decision{}, IdempotencyConflict(id)
		}
	}
	if id := rec.GetString("campaign"); id != "" {
		owner, err := lk.CampaignClinic(id)
		if err != nil {
			return Decision{}, fmt.Errorf("failed to look up campaign %s: %w", id, err)
		}
		// Whatever path creates the message, a campaign's counters count its own clinic only.
		if owner == "" || owner != clinic.Id {
			return Decision{}, BadField("campaign", "validation_invalid_campaign", fmt.Sprintf("campaign %q does not exist in this clinic", id))
		}
	}
	if c := rec.GetString("category"); c != "" && !slices.Contains(r.Categories, c) {
		return Decision{}, BadField("category", "validation_invalid_category", fmt.Sprintf("category must be one of %s", strings.Join(r.Categories, ", ")))
	}
	if l := rec.GetString("language"); l != "" && l != "en" && l != "ar" {
		return Decision{}, BadField("language", "validation_invalid_language", "language must be en or ar")
	}

	prefs, err := lk.Preferences(clinic.Id, rec.GetString("patient_id"), channel, rec.GetString("to"))
	if err != nil {
		return Decision{}, err
	}
	var pref *core.Record // the patient's own, whose language the message takes
	if len(prefs) > 0 {
		pref = prefs[0]
	}
	if err := RenderContent(rec, clinic, pref, lk); err != nil {
		return Decision{}, err
	}
	if err := CheckBody(rec); err != nil {
		return Decision{}, err
	}

	encoding, segments := "", 1
	if channel != providers.ChannelEmail {
		encoding, segments = providers.Segments(rec.GetString("body"))
		if channel == providers.ChannelWhatsApp {
			segments = 1
		}
	}
	// Whatever the caller sent, the appliance owns these.
	for _, f := range []string{"status_reason", "provider", "provider_message_id", "error_code", "error_message", "currency", "sent_at", "delivered_at", "read_at", "next_attempt_at"} {
		rec.Set(f, "")
	}
	rec.Set("attempts", 0)
	rec.Set("cost", 0)
	rec.Set("encoding", encoding)
	rec.Set("segments", segments)

	now := time.Now().UTC()
	status, reason := providers.StatusQueued, ""
	at := now
	if sendAt := rec.GetDateTime("send_at"); !sendAt.IsZero() && sendAt.Time().After(now) {
		status, at = providers.StatusScheduled, sendAt.Time()
	}
	if c := ConsentReason(prefs, channel, rec.GetString("category")); c != "" {
		status, reason = providers.StatusSkipped, c
	} else if prev, err := duplicate(rec, lk); err != nil {
		return Decision{}, err
	} else if prev != nil {
		status, reason = providers.StatusSkipped, duplicateReason(prev)
	} else if held, moved := HoldForQuietHours(clinic, rec.GetString("category"), at); moved {
		status, at = providers.StatusScheduled, held
		reason = "quiet_hours: held until " + held.In(ClinicLocation(clinic)).Format("2006-01-02 15:04 MST")
	}
	if status != providers.StatusSkipped {
		rec.Set("next_attempt_at", at)
	}
	detail := map[string]any{"channel": channel, "segments": segments}
	if t := rec.GetString("template"); t != "" {
		detail["template"] = t
	}
	if reason != "" {
		detail["reason"] = reason
	}
	lk.Accepted(rec)
	return Decision{Status: status, Reason: reason, Detail: detail}, nil
}

// duplicate asks for the message rec would repeat; an idempotency key or a campaign says
// the caller means it.
func duplicate(rec *core.Record, lk Lookups) (*Previous, error) {
	if rec.GetString("idempotency_key") != "" || rec.GetString("campaign") != "" {
		return nil, nil
	}
	return lk.Duplicate(rec)
}

func duplicateReason(p *Previous) string {
	if p.SameRequest {
		return fmt.Sprintf("duplicate: message %s sent the same to this patient in the same request", p.ID)
	}
	return fmt.Sprintf("duplicate: message %s sent the same to this patient %s ago", p.ID, time.Since(p.Created).Round(time.Second))
}

// IdempotencyConflict is the answer to a repeated idempotency key.
func IdempotencyConflict(firstID string) error {
	return FieldError(http.StatusConflict, "idempotency_key", "validation_not_unique",
		fmt.Sprintf("idempotency_key was already used by message %s; nothing was sent again", firstID))
}

// BodyLimit is a channel's body limit in characters.
func BodyLimit(channel string) int {
	switch channel {
	case providers.ChannelSMS:
		return MaxSMSBody
	case providers.ChannelWhatsApp:
		return MaxWhatsAppBody
	}
	return MaxEmailBody
}

// CheckBody refuses a body over its channel's limit.
func CheckBody(rec *core.Record) error {
	n := utf8.RuneCountInString(rec.GetString("body"))
	limit := BodyLimit(rec.GetString("channel"))
	if n > limit {
		return BadField("body", "validation_body_too_long", fmt.Sprintf("body has %d characters; the %s limit is %d", n, rec.GetString("channel"), limit))
	}
	return nil
}

// RenderContent fills body (and subject) from the template, if one is named, and settles
// the message's language and category; pref is the patient's own preference, if any.
func RenderContent(rec, clinic, pref *core.Record, lk Lookups) error {
	clinicLang := clinic.GetString("default_language")
	if clinicLang == "" {
		clinicLang = "en"
	}
	lang := rec.GetString("language")
	if lang == "" && pref != nil {
		lang = pref.GetString("language")
	}
	if lang == "" {
		lang = clinicLang
	}

	code := rec.GetString("template")
	if code == "" {
		if strings.TrimSpace(rec.GetString("body")) == "" {
			return BadField("body", "validation_required", "either body or template is required")
		}
		if rec.GetString("channel") == providers.ChannelEmail && strings.TrimSpace(rec.GetString("subject")) == "" {
			return BadField("subject", "validation_required", "subject is required for an email without a template")
		}
		rec.Set("language", lang)
		return nil
	}

	tpl, err := lk.Template(clinic.Id, code)
	if err != nil {
		return err
	}
	if tpl == nil {
		return BadField("template", "validation_unknown_template", fmt.Sprintf("template %q does not exist", code))
	}
	if !tpl.GetBool("active") {
		return BadField("template", "validation_inactive_template", fmt.Sprintf("template %q is not active", code))
	}
	if tc := tpl.GetString("channel"); tc != "any" && tc != rec.GetString("channel") {
		return BadField("template", "validation_template_channel", fmt.Sprintf("template %q is for the %s channel", code, tc))
	}

	// The message's language if the template has it, else the clinic's, else English.
	used := ""
	for _, l := range []string{lang, clinicLang, "en"} {
		if strings.TrimSpace(tpl.GetString("body_"+l)) != "" {
			used = l
			break
		}
	}
	if used == "" {
		return BadField("template", "validation_template_empty", fmt.Sprintf("template %q has no body in %s, %s or en", code, lang, clinicLang))
	}

	raw, _ := rec.Get("context").(types.JSONRaw)
	if len(raw) > MaxContextBytes {
		return BadField("context", "validation_context_too_large", fmt.Sprintf("context has %d bytes; the limit is %d", len(raw), MaxContextBytes))
	}
	vars := map[string]any{}
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &vars); err != nil {
			return BadField("context", "validation_invalid_context", "context must be a JSON object of template variables")
		}
	}
	if _, ok := vars["clinic_name"]; !ok {
		vars["clinic_name"] = clinic.GetString("name")
	}

	limit := BodyLimit(rec.GetString("channel"))
	body, err := Render(tpl.GetString("body_"+used), vars, limit)
	if errors.Is(err, ErrRenderTooLong) {
		return BadField("context", "validation_body_too_long", fmt.Sprintf("template %q filled with this context is longer than the %s limit of %d characters", code, rec.GetString("channel"), limit))
	}
	if err != nil {
		return BadField("context", "validation_missing_variable", fmt.Sprintf("template %q needs %s", code, err))
	}
	rec.Set("body", body)
	if rec.GetString("channel") == providers.ChannelEmail {
		subject := tpl.GetString("subject_" + used)
		if subject == "" {
			subject = tpl.GetString("subject_en")
		}
		if subject == "" {
			subject = clinic.GetString("name")
		}
		subject, err = Render(subject, vars, MaxSubject)
		if errors.Is(err, ErrRenderTooLong) {
			return BadField("context", "validation_subject_too_long", fmt.Sprintf("template %q subject filled with this context is longer than %d characters", code, MaxSubject))
		}
		if err != nil {
			return BadField("context", "validation_missing_variable", fmt.Sprintf("template %q subject needs %s", code, err))
		}
		rec.Set("subject", subject)
	}
	rec.Set("language", used)
	if rec.GetString("category") == "" {
		rec.Set("category", tpl.GetString("category"))
	}
	return nil
}
