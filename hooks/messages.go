package hooks

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"clinicmsg/internal/store"
	"clinicmsg/providers"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"
)

// Body limits per channel, in characters: the providers' own limits.
const (
	maxSMSBody      = 1600
	maxWhatsAppBody = 4096
	maxEmailBody    = 20000
	maxSubject      = 998 // an email header line's limit (RFC 5322)
	// maxContextBytes bounds a message's template variables: the longest body is 20,000
	// characters, so a larger context can only be a mistake or an attack.
	maxContextBytes = 64 << 10
	// maxTemplateBody bounds each template body, in characters.
	maxTemplateBody = maxEmailBody
)

var (
	channels   = store.Channels
	categories = store.Categories
)

// auditKey holds, on a record being created over HTTP, who asked for it. It is custom data
// on the record, never a field, so clients cannot set it.
const auditKey = "@clinicmsg.audit"

type audit struct {
	IP        string
	UserAgent string
	User      string
}

// onMessageCreate checks, normalises and renders a message before it is inserted, decides
// its first status, and writes the first audit row in the same transaction. It runs for
// every create through PocketBase: REST, admin UI and Go.
func (s *Service) onMessageCreate(e *core.RecordEvent) error {
	first, err := s.prepareMessage(e.App, e.Record, nil)
	if err != nil {
		return err
	}
	// The insert and its first audit row commit together.
	return saveWith(e, func(tx core.App) error {
		first.Message = e.Record.Id
		return store.WriteLog(tx, first)
	})
}

// prepareMessage is the create-time work on a new message: it checks, normalises and
// renders rec, decides its first status, and returns the first audit row. seen, when set,
// holds the messages accepted earlier in the same bulk request, which the database cannot
// see yet.
func (s *Service) prepareMessage(app core.App, rec *core.Record, seen *batchSeen) (store.Entry, error) {
	clinic, err := s.checkAddress(app, rec)
	if err != nil {
		return store.Entry{}, err
	}
	return s.prepareAddressed(app, rec, clinic, seen)
}

// checkAddress is the first part of prepareMessage: the clinic, the channel and the
// normalised recipient, which a bulk create needs for all its messages before it looks
// up their preferences at once.
func (s *Service) checkAddress(app core.App, rec *core.Record) (*core.Record, error) {
	clinic, err := s.clinicOf(app, rec.GetString("clinic"))
	if err != nil {
		return nil, err
	}
	if err := checkChannel(rec.GetString("channel")); err != nil {
		return nil, err
	}
	if err := s.normalizeRecipient(rec, clinic); err != nil {
		return nil, err
	}
	return clinic, nil
}

// prepareAddressed is the rest of prepareMessage, for a message that passed checkAddress.
func (s *Service) prepareAddressed(app core.App, rec, clinic *core.Record, seen *batchSeen) (store.Entry, error) {
	channel := rec.GetString("channel")

	if key := rec.GetString("idempotency_key"); key != "" {
		if seen != nil {
			// A bulk create checks the database for all its keys at once, when it inserts.
			if id := seen.keyOwner(clinic.Id, key); id != "" {
				return store.Entry{}, idempotencyConflict(id)
			}
		} else if existing, err := store.FindOne(app, "messages", "clinic = {:c} AND idempotency_key = {:k} AND idempotency_key != ''", dbx.Params{"c": clinic.Id, "k": key}); err == nil {
			return store.Entry{}, idempotencyConflict(existing.Id)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return store.Entry{}, fmt.Errorf("failed to check idempotency_key: %w", err)
		}
	}

	if err := s.checkCampaign(app, rec, seen); err != nil {
		return store.Entry{}, err
	}
	if c := rec.GetString("category"); c != "" && !slices.Contains(categories, c) {
		return store.Entry{}, badField("category", "validation_invalid_category", fmt.Sprintf("category must be one of %s", strings.Join(categories, ", ")))
	}
	if l := rec.GetString("language"); l != "" && l != "en" && l != "ar" {
		return store.Entry{}, badField("language", "validation_invalid_language", "language must be en or ar")
	}

	prefs, found := seen.preferences(clinic.Id, rec.GetString("patient_id"), channel, rec.GetString("to"))
	if !found {
		var err error
		if prefs, err = findPreferences(app, clinic.Id, rec.GetString("patient_id"), channel, rec.GetString("to")); err != nil {
			return store.Entry{}, err
		}
	}
	var pref *core.Record // the patient's own, whose language the message takes
	if len(prefs) > 0 {
		pref = prefs[0]
	}

	if err := s.renderContent(app, rec, clinic, pref); err != nil {
		return store.Entry{}, err
	}
	if err := checkBody(rec); err != nil {
		return store.Entry{}, err
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
	if r := consentReason(prefs, channel, rec.GetString("category")); r != "" {
		status, reason = providers.StatusSkipped, r
	} else if dup := seen.duplicateOf(rec); dup != "" {
		status, reason = providers.StatusSkipped, fmt.Sprintf("duplicate: message %s sent the same to this patient in the same request", dup)
	} else if dup, err := s.findDuplicate(app, rec, seen); err != nil {
		return store.Entry{}, err
	} else if dup != "" {
		status, reason = providers.StatusSkipped, dup
	} else if held, moved := holdForQuietHours(clinic, rec.GetString("category"), at); moved {
		status, at = providers.StatusScheduled, held
		reason = "quiet_hours: held until " + held.In(clinicLocation(clinic)).Format("2006-01-02 15:04 MST")
	}
	if status != providers.StatusSkipped {
		rec.Set("next_attempt_at", at)
	}
	store.Initial(rec, status, reason)

	var who audit
	if a, ok := rec.GetRaw(auditKey).(audit); ok {
		who = a
	}
	detail := map[string]any{"channel": channel, "segments": segments}
	if who.User != "" {
		detail["user"] = who.User
	}
	if t := rec.GetString("template"); t != "" {
		detail["template"] = t
	}
	if reason != "" {
		detail["reason"] = reason
	}
	seen.add(rec)
	return store.Entry{Message: rec.Id, Event: "created", Status: status, Detail: detail, IP: who.IP, UserAgent: who.UserAgent}, nil
}

// checkCampaign refuses a campaign of another clinic (or none): whatever path creates the
// message, its campaign's counters must only ever count the campaign's own clinic.
func (s *Service) checkCampaign(app core.App, rec *core.Record, seen *batchSeen) error {
	id := rec.GetString("campaign")
	if id == "" {
		return nil
	}
	clinic, ok := "", false
	if seen != nil {
		clinic, ok = seen.campaigns[id]
	}
	if !ok {
		// Not found stays "": an unknown campaign is refused for each message naming it.
		err := app.DB().Select("clinic").From("campaigns").Where(dbx.HashExp{"id": id}).Limit(1).Row(&clinic)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("failed to look up campaign %s: %w", id, err)
		}
		if seen != nil {
			seen.campaigns[id] = clinic
		}
	}
	if clinic == "" || clinic != rec.GetString("clinic") {
		return badField("campaign", "validation_invalid_campaign", fmt.Sprintf("campaign %q does not exist in this clinic", id))
	}
	return nil
}

func idempotencyConflict(firstID string) error {
	return fieldError(http.StatusConflict, "idempotency_key", "validation_not_unique",
		fmt.Sprintf("idempotency_key was already used by message %s; nothing was sent again", firstID))
}

// findDuplicate returns why rec repeats a message the patient got within the duplicate
// window (same template, or same text, to the same patient or number), or "". An
// idempotency key or a campaign says the caller means it.
func (s *Service) findDuplicate(app core.App, rec *core.Record, seen *batchSeen) (string, error) {
	if s.cfg.DuplicateWindow <= 0 || rec.GetString("idempotency_key") != "" || rec.GetString("campaign") != "" {
		return "", nil
	}
	if prev, loaded := seen.recentDuplicate(rec); loaded {
		if prev == nil {
			return "", nil
		}
		return fmt.Sprintf("duplicate: message %s sent the same to this patient %s ago", prev.ID, time.Since(prev.Created.Time()).Round(time.Second)), nil
	}
	since := store.FormatTime(time.Now().UTC().Add(-s.cfg.DuplicateWindow))
	same := "template = {:tpl} AND (template != '' OR body = {:body}) AND channel = {:ch} AND created >= {:since} AND status NOT IN ('failed','undelivered','canceled','skipped')"
	params := dbx.Params{"c": rec.GetString("clinic"), "to": rec.GetString("to"), "p": rec.GetString("patient_id"),
		"tpl": rec.GetString("template"), "body": rec.GetString("body"), "ch": rec.GetString("channel"), "since": since}
	// By number, and by patient: one statement, each branch on its own index.
	q := "SELECT id, created FROM messages WHERE clinic = {:c} AND [[to]] = {:to} AND " + same
	if rec.GetString("patient_id") != "" {
		q += " UNION ALL SELECT id, created FROM messages WHERE clinic = {:c} AND patient_id = {:p} AND patient_id != '' AND " + same
	}
	var prev struct {
		ID      string         `db:"id"`
		Created types.DateTime `db:"created"`
	}
	err := app.DB().NewQuery(q + " LIMIT 1").Bind(params).One(&prev)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("failed to look for a duplicate: %w", err)
	}
	return fmt.Sprintf("duplicate: message %s sent the same to this patient %s ago", prev.ID, time.Since(prev.Created.Time()).Round(time.Second)), nil
}

func clinicLocation(clinic *core.Record) *time.Location {
	loc, err := loadLocation(clinic.GetString("timezone"))
	if err != nil {
		return time.UTC
	}
	return loc
}

func checkChannel(channel string) error {
	if !slices.Contains(channels, channel) {
		return badField("channel", "validation_invalid_channel", fmt.Sprintf("channel must be one of %s", strings.Join(channels, ", ")))
	}
	return nil
}

func (s *Service) clinicOf(app core.App, id string) (*core.Record, error) {
	if id == "" {
		return nil, badField("clinic", "validation_required", "clinic is required")
	}
	clinic, err := s.clinicCache.get(app, id)
	if err != nil {
		return nil, badField("clinic", "validation_invalid_clinic", fmt.Sprintf("clinic %q does not exist", id))
	}
	return clinic, nil
}

func (s *Service) regionOf(clinic *core.Record) string {
	if c := clinic.GetString("country"); c != "" {
		return c
	}
	return s.cfg.DefaultRegion
}

func (s *Service) normalizeRecipient(rec *core.Record, clinic *core.Record) error {
	to := rec.GetString("to")
	if strings.TrimSpace(to) == "" {
		return badField("to", "validation_required", "to is required")
	}
	if rec.GetString("channel") == providers.ChannelEmail {
		addr, err := normalizeEmail(to)
		if err != nil {
			return badField("to", "validation_invalid_email", "to is not a valid email address")
		}
		rec.Set("to", addr)
		return nil
	}
	e164, err := normalizePhone(to, s.regionOf(clinic))
	if errors.Is(err, errNotMobile) {
		return badField("to", "validation_not_mobile", "to is not a mobile number and cannot receive messages")
	}
	if err != nil {
		return badField("to", "validation_invalid_phone", "to is not a valid phone number")
	}
	rec.Set("to", e164)
	return nil
}

// renderContent fills body (and subject) from the template, if one is named, and settles
// the message's language and category.
func (s *Service) renderContent(app core.App, rec, clinic, pref *core.Record) error {
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
			return badField("body", "validation_required", "either body or template is required")
		}
		if rec.GetString("channel") == providers.ChannelEmail && strings.TrimSpace(rec.GetString("subject")) == "" {
			return badField("subject", "validation_required", "subject is required for an email without a template")
		}
		rec.Set("language", lang)
		return nil
	}

	tpl, err := s.findTemplate(app, clinic.Id, code)
	if err != nil {
		return err
	}
	if tpl == nil {
		return badField("template", "validation_unknown_template", fmt.Sprintf("template %q does not exist", code))
	}
	if !tpl.GetBool("active") {
		return badField("template", "validation_inactive_template", fmt.Sprintf("template %q is not active", code))
	}
	if tc := tpl.GetString("channel"); tc != "any" && tc != rec.GetString("channel") {
		return badField("template", "validation_template_channel", fmt.Sprintf("template %q is for the %s channel", code, tc))
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
		return badField("template", "validation_template_empty", fmt.Sprintf("template %q has no body in %s, %s or en", code, lang, clinicLang))
	}

	vars := map[string]any{}
	if raw, ok := rec.Get("context").(types.JSONRaw); ok && len(raw) > maxContextBytes {
		return badField("context", "validation_context_too_large", fmt.Sprintf("context has %d bytes; the limit is %d", len(raw), maxContextBytes))
	}
	if raw, ok := rec.Get("context").(types.JSONRaw); ok && len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &vars); err != nil {
			return badField("context", "validation_invalid_context", "context must be a JSON object of template variables")
		}
	}
	if _, ok := vars["clinic_name"]; !ok {
		vars["clinic_name"] = clinic.GetString("name")
	}

	limit := bodyLimit(rec.GetString("channel"))
	body, err := render(tpl.GetString("body_"+used), vars, limit)
	if errors.Is(err, errRenderTooLong) {
		return badField("context", "validation_body_too_long", fmt.Sprintf("template %q filled with this context is longer than the %s limit of %d characters", code, rec.GetString("channel"), limit))
	}
	if err != nil {
		return badField("context", "validation_missing_variable", fmt.Sprintf("template %q needs %s", code, err))
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
		subject, err = render(subject, vars, maxSubject)
		if errors.Is(err, errRenderTooLong) {
			return badField("context", "validation_subject_too_long", fmt.Sprintf("template %q subject filled with this context is longer than %d characters", code, maxSubject))
		}
		if err != nil {
			return badField("context", "validation_missing_variable", fmt.Sprintf("template %q subject needs %s", code, err))
		}
		rec.Set("subject", subject)
	}
	rec.Set("language", used)
	if rec.GetString("category") == "" {
		rec.Set("category", tpl.GetString("category"))
	}
	return nil
}

// findTemplate returns the clinic's own template with code, else the shared one, else nil.
func (s *Service) findTemplate(app core.App, clinicID, code string) (*core.Record, error) {
	return s.templateCache.get(clinicID+"\x00"+code, func() (*core.Record, error) {
		return findTemplate(app, clinicID, code)
	})
}

func findTemplate(app core.App, clinicID, code string) (*core.Record, error) {
	recs, err := app.FindRecordsByFilter("templates", "code = {:code} && (clinic = {:c} || clinic = '')", "", 2, 0, dbx.Params{"code": code, "c": clinicID})
	if err != nil {
		return nil, fmt.Errorf("failed to look up template: %w", err)
	}
	var shared *core.Record
	for _, r := range recs {
		if r.GetString("clinic") == clinicID {
			return r, nil
		}
		shared = r
	}
	return shared, nil
}

// bodyLimit is a channel's body limit in characters.
func bodyLimit(channel string) int {
	switch channel {
	case providers.ChannelSMS:
		return maxSMSBody
	case providers.ChannelWhatsApp:
		return maxWhatsAppBody
	}
	return maxEmailBody
}

func checkBody(rec *core.Record) error {
	n := utf8.RuneCountInString(rec.GetString("body"))
	limit := bodyLimit(rec.GetString("channel"))
	if n > limit {
		return badField("body", "validation_body_too_long", fmt.Sprintf("body has %d characters; the %s limit is %d", n, rec.GetString("channel"), limit))
	}
	return nil
}

// findPreferences returns every preference of the clinic that matches a message: the
// patient's own by patient id (first, when there is one) and each by the phone number or
// email address the message goes to. A family's shared phone may carry several.
func findPreferences(app core.App, clinicID, patientID, channel, to string) ([]*core.Record, error) {
	contact := "phone = {:to} AND phone != ''"
	if channel == providers.ChannelEmail {
		contact = "email = {:to} AND email != ''"
	}
	where := "clinic = {:c} AND (" + contact + ")"
	if patientID != "" {
		where = "clinic = {:c} AND ((patient_id = {:p} AND patient_id != '') OR (" + contact + "))"
	}
	var recs []*core.Record
	err := app.RecordQuery("preferences").AndWhere(dbx.NewExp(where, dbx.Params{"c": clinicID, "p": patientID, "to": to})).
		OrderBy("(patient_id = {:p}) DESC").Limit(50).All(&recs)
	if err != nil {
		return nil, fmt.Errorf("failed to look up preferences: %w", err)
	}
	return recs, nil
}

// findPreference returns the patient's own preferences (by patient id), else the first
// that matches the address, else nil: the one whose language a message takes.
func findPreference(app core.App, clinicID, patientID, channel, to string) (*core.Record, error) {
	recs, err := findPreferences(app, clinicID, patientID, channel, to)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	return recs[0], nil
}

// consentReason is the patient's consent for a message: the strictest answer of every
// preference that matches it (by patient id, by phone, by email), so an opt-out by number
// holds whatever patient_id a message names. It says why the message may not go, or "".
func consentReason(prefs []*core.Record, channel, category string) string {
	best, bestRank := "", 0
	for _, p := range prefs {
		r := skipReason(p, channel, category)
		rank := 0
		switch {
		case strings.HasPrefix(r, "opted_out"):
			rank = 3
		case strings.HasPrefix(r, "channel_disabled"):
			rank = 2
		case r != "":
			rank = 1
		}
		if rank > bestRank {
			best, bestRank = r, rank
		}
	}
	return best
}

// skipReason says why preferences forbid this message, or "" if they allow it.
func skipReason(pref *core.Record, channel, category string) string {
	if pref == nil {
		return ""
	}
	if pref.GetBool("opted_out") {
		return "opted_out: the patient opted out of messages"
	}
	field := channel
	if channel == providers.ChannelEmail {
		field = "email_enabled"
	}
	if !pref.GetBool(field) {
		return fmt.Sprintf("channel_disabled: the patient turned off %s", channel)
	}
	if category == "" {
		category = "general"
	}
	var cats map[string]bool
	if raw, ok := pref.Get("categories").(types.JSONRaw); ok && len(raw) > 0 {
		_ = json.Unmarshal(raw, &cats) // a malformed map allows everything rather than silencing a patient
	}
	if allowed, ok := cats[category]; ok && !allowed {
		return fmt.Sprintf("category_disabled: the patient turned off %s messages", category)
	}
	return ""
}

// store.Entry is one row of a message's audit trail.
func nowUTC() time.Time { return time.Now().UTC() }

// saveWith runs the rest of a create hook chain (PocketBase's insert) and then also, in the
// same transaction, so that both commit or neither does. e.App is put back afterwards:
// PocketBase announces the create (realtime) with it, and the transaction is over by then.
func saveWith(e *core.RecordEvent, also func(tx core.App) error) error {
	orig := e.App
	defer func() { e.App = orig }()
	return orig.RunInTransaction(func(tx core.App) error {
		e.App = tx
		if err := e.Next(); err != nil {
			return err
		}
		return also(tx)
	})
}
