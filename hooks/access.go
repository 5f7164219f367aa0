package hooks

import (
	"clinicmsg/internal/compose"
	"fmt"
	"net/http"
	"strings"

	"github.com/ganigeorgiev/fexpr"
	"github.com/pocketbase/pocketbase/core"
)

// Collections whose rows belong to one clinic.
var clinicScoped = []string{"messages", "templates", "preferences", "campaigns"}

// Fields a client may never write, per collection (the API rules refuse them too; this
// check runs first so that the answer names the field).
var readOnlyFields = map[string][]string{
	"messages": {
		"status", "status_reason", "provider", "provider_message_id", "attempts", "next_attempt_at",
		"error_code", "error_message", "encoding", "segments", "cost", "currency",
		"sent_at", "delivered_at", "read_at", "reply_intent",
	},
	"campaigns": {"total", "queued", "sent", "delivered", "failed", "skipped", "cursor", "result", "started_at", "finished_at"},
}

// assignedClinicFields are the clinic settings a superuser assigns and a clinic admin may not
// claim: the senders decide whose number a patient sees and so where the patient's answer
// (and its STOP) goes, and the app webhook decides whose system receives the clinic's
// replies. The clinics update rule refuses them too (migration 1764800000); this check names
// the field.
var assignedClinicFields = []string{"sms_sender", "whatsapp_sender", "app_webhook_url", "app_webhook_secret"}

// guardClinicWrites answers a clinic user's create or update of a clinic-scoped record with
// a 4xx that names the problem (another clinic, a server-only field) before PocketBase's
// API rules, which would refuse the same request without saying why.
func (s *Service) guardClinicWrites(e *core.RequestEvent, col *core.Collection) error {
	if e.Auth == nil || e.HasSuperuserAuth() || e.Auth.Collection().Name != "users" {
		return e.Next() // guests are refused by the rules; superusers may do anything
	}
	if col.Name == "templates" && e.Request.Method == http.MethodPost && e.Auth.GetString("role") != "admin" {
		// The create rule says the same (migration 1764950000); this answer says why.
		return e.ForbiddenError("Only a clinic admin can create templates.", nil)
	}
	userClinic := e.Auth.GetString("clinic")
	if userClinic == "" {
		return compose.FieldError(http.StatusForbidden, "clinic", "validation_no_clinic", "your account belongs to no clinic; ask a superuser to assign one")
	}
	info, err := e.RequestInfo()
	if err != nil {
		return e.BadRequestError("Failed to read the request body.", err)
	}
	if v, ok := info.Body["clinic"]; ok {
		if c, _ := v.(string); c != "" && c != userClinic {
			return compose.FieldError(http.StatusForbidden, "clinic", "validation_other_clinic", "clinic must be your own clinic")
		}
	}
	for _, f := range readOnlyFields[col.Name] {
		if _, ok := info.Body[f]; ok {
			return compose.BadField(f, "validation_read_only", fmt.Sprintf("%s is set by clinicmsg and cannot be written", f))
		}
	}
	return e.Next()
}

// guardClinicSettings answers a clinic user's write of an assigned clinic field with a 403
// naming it, before anything is changed.
func (s *Service) guardClinicSettings(e *core.RequestEvent, _ *core.Collection) error {
	if e.Auth == nil || e.HasSuperuserAuth() {
		return e.Next() // guests are refused by the rules; superusers assign these
	}
	if err := refuseAssignedClinicFields(e); err != nil {
		return err
	}
	return e.Next()
}

// onClinicWriteRequest is guardClinicSettings for every path of a clinic's create or
// update, /api/batch included, which does not pass the router's middleware.
func (s *Service) onClinicWriteRequest(e *core.RecordRequestEvent) error {
	if e.Auth != nil && !e.HasSuperuserAuth() {
		if err := refuseAssignedClinicFields(e.RequestEvent); err != nil {
			return err
		}
	}
	return e.Next()
}

// refuseAssignedClinicFields answers a write of an assigned clinic field with a 403 naming
// it. It reads the body as the caller sent it: PocketBase drops a hidden field
// (app_webhook_secret) a clinic user writes before its rules see it, and would apply the
// rest of the request.
func refuseAssignedClinicFields(e *core.RequestEvent) error {
	body, err := callerFields(e)
	if err != nil {
		return e.BadRequestError("Failed to read the request body.", err)
	}
	for _, f := range assignedClinicFields {
		if _, ok := body[f]; ok {
			return compose.FieldError(http.StatusForbidden, f, "validation_superuser_only", fmt.Sprintf("%s is assigned by a superuser and cannot be changed by a clinic", f))
		}
	}
	return nil
}

// onScopedCreateRequest fills the clinic of a clinic user's new record from the account,
// records who made a message, and gives boolean switches their "on" default when a request
// leaves them out (a JSON body without "sms" means "not said", not "off").
func (s *Service) onScopedCreateRequest(e *core.RecordRequestEvent) error {
	if e.Auth != nil && !e.HasSuperuserAuth() && e.Auth.Collection().Name == "users" {
		own := e.Auth.GetString("clinic")
		if e.Record.GetString("clinic") == "" {
			e.Record.Set("clinic", own)
		}
		if e.Record.GetString("clinic") != own {
			return compose.FieldError(http.StatusForbidden, "clinic", "validation_other_clinic", "clinic must be your own clinic")
		}
	}
	info, err := e.RequestInfo()
	if err != nil {
		return e.BadRequestError("Failed to read the request body.", err)
	}
	defaultsOn := func(fields ...string) {
		for _, f := range fields {
			if _, ok := info.Body[f]; !ok {
				e.Record.Set(f, true)
			}
		}
	}
	switch e.Collection.Name {
	case "messages":
		who := audit{IP: e.RealIP(), UserAgent: e.Request.UserAgent()}
		if e.Auth != nil {
			who.User = e.Auth.Id
		}
		e.Record.Set(auditKey, who)
	case "campaigns":
		if list, ok := e.Get(streamedListKey).(*recipientParts); ok {
			e.Record.Set(streamedListKey, list)
		}
	case "templates":
		defaultsOn("active")
	case "preferences":
		defaultsOn("sms", "whatsapp", "email_enabled")
	}
	return e.Next()
}

// onClinicSave fills a clinic's defaults and checks its time zone.
func (s *Service) onClinicSave(e *core.RecordEvent) error {
	r := e.Record
	if r.GetString("timezone") == "" {
		r.Set("timezone", "Asia/Riyadh")
	}
	if _, err := compose.LoadLocation(r.GetString("timezone")); err != nil {
		return compose.BadField("timezone", "validation_invalid_timezone", fmt.Sprintf("timezone %q is not an IANA time zone such as Asia/Riyadh", r.GetString("timezone")))
	}
	if r.GetString("country") == "" {
		r.Set("country", s.cfg.DefaultRegion)
	}
	if r.GetString("default_language") == "" {
		r.Set("default_language", "en")
	}
	if r.GetInt("retention_days") == 0 {
		r.Set("retention_days", s.cfg.RetentionDays)
	}
	// The app verifies every event with the secret; an unsigned webhook would accept forgeries.
	if r.GetString("app_webhook_url") != "" && r.GetString("app_webhook_secret") == "" {
		return compose.BadField("app_webhook_secret", "validation_required", "app_webhook_secret is required with app_webhook_url: the clinic's app checks each event's signature with it")
	}
	return e.Next()
}

// onPreferenceSave stores the phone number in E.164, as messages store theirs, so that a
// preference matches whichever way the number was written.
func (s *Service) onPreferenceSave(e *core.RecordEvent) error {
	r := e.Record
	if p := r.GetString("phone"); p != "" {
		clinic, err := s.clinicOf(e.App, r.GetString("clinic"))
		if err != nil {
			return err
		}
		e164, err := compose.NormalizePhone(p, s.rules.Region(clinic))
		if err != nil {
			return compose.BadField("phone", "validation_invalid_phone", "phone is not a valid mobile number")
		}
		r.Set("phone", e164)
	}
	if em := r.GetString("email"); em != "" {
		r.Set("email", strings.ToLower(strings.TrimSpace(em)))
	}
	if r.GetBool("opted_out") && r.GetDateTime("opted_out_at").IsZero() {
		r.Set("opted_out_at", nowUTC())
	}
	return e.Next()
}

// clinicListed are the collections whose list rule admits a clinic user to their own
// clinic's rows only (clinic = @request.auth.clinic).
var clinicListed = []string{"messages", "preferences", "campaigns", "replies", "app_events"}

// ownClinicListRule is how such a list rule ends (migration 1764300000's ownClinic).
const ownClinicListRule = "&& clinic = @request.auth.clinic"

// scopeClinicList writes the caller's clinic into a clinic user's list filter when the list
// is read in created order (as the dashboard pages, newest first). The list rule already
// limits the rows to that clinic, but PocketBase compiles `clinic = @request.auth.clinic`
// into a join with the users table and a COALESCE that no index serves, so a clinic's
// message list over a year of messages read the whole table (2.4 s at 200,000 messages,
// 12.6 s at 1.1 million). The same condition as a literal lets SQLite seek (clinic,
// created). The answer is unchanged: the rule still applies.
func scopeClinicList(e *core.RequestEvent, col *core.Collection) error {
	if e.Auth == nil || e.Auth.Collection().Name != "users" || col.ListRule == nil ||
		!strings.HasSuffix(*col.ListRule, ownClinicListRule) {
		return e.Next()
	}
	clinic := e.Auth.GetString("clinic")
	if clinic == "" || strings.ContainsFunc(clinic, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_')
	}) {
		return e.Next() // the rule answers; an id that would need quoting is left to it
	}
	q := e.Request.URL.Query()
	// Only a list read in created order is served by that index. For any other (a count of
	// a status, say) the plan PocketBase gets without the clinic is as good or better: a
	// clinic's thousands of rows found through (clinic, created) are each looked up in the
	// table (the side-by-side's count of delivered messages cost 18 % more CPU with it).
	first, _, _ := strings.Cut(q.Get("sort"), ",")
	if strings.TrimLeft(strings.TrimSpace(first), "+-") != "created" {
		return e.Next()
	}
	filter := `clinic = "` + clinic + `"`
	if f := q.Get("filter"); strings.TrimSpace(f) != "" {
		// The newline ends a trailing // comment in the caller's filter. A filter that does
		// not parse once wrapped (a quote inside a comment) is left to the rule alone.
		filter += " && (" + f + "\n)"
		if _, err := fexpr.Parse(filter); err != nil {
			return e.Next()
		}
	}
	q.Set("filter", filter)
	e.Request.URL.RawQuery = q.Encode()
	return e.Next()
}
