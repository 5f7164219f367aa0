package hooks

import (
	"errors"
	"fmt"
	"net/http"
	"unicode/utf8"

	"clinicmsg/internal/compose"
	"clinicmsg/providers"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"
)

// previewRequest is what the compose and campaign screens ask about before sending.
type previewRequest struct {
	Clinic     string         `json:"clinic"`
	Channel    string         `json:"channel"`
	To         string         `json:"to"`
	Template   string         `json:"template"`
	Body       string         `json:"body"`
	Subject    string         `json:"subject"`
	Context    map[string]any `json:"context"`
	Language   string         `json:"language"`
	Recipients []any          `json:"recipients"`
}

// handlePreview renders a message exactly as a create would (template, language,
// variables, limits) and says how it will be sent: encoding, segments and a cost estimate.
// With recipients it also checks every number, as a campaign would. Nothing is stored.
func (s *Service) handlePreview(e *core.RequestEvent) error {
	var req previewRequest
	if err := e.BindBody(&req); err != nil {
		return e.BadRequestError("The request body is not valid JSON.", err)
	}
	clinicID := req.Clinic
	if !e.HasSuperuserAuth() {
		own := e.Auth.GetString("clinic")
		if own == "" {
			return compose.FieldError(http.StatusForbidden, "clinic", "validation_no_clinic", "your account belongs to no clinic; ask a superuser to assign one")
		}
		if clinicID != "" && clinicID != own {
			return compose.FieldError(http.StatusForbidden, "clinic", "validation_other_clinic", "clinic must be your own clinic")
		}
		clinicID = own
	}
	clinic, err := s.clinicOf(e.App, clinicID)
	if err != nil {
		return err
	}
	if err := s.rules.CheckChannel(req.Channel); err != nil {
		return err
	}
	col, err := e.App.FindCachedCollectionByNameOrId("messages")
	if err != nil {
		return e.InternalServerError("", err)
	}
	rec := core.NewRecord(col)
	rec.Set("clinic", clinic.Id)
	rec.Set("channel", req.Channel)
	rec.Set("template", req.Template)
	rec.Set("body", req.Body)
	rec.Set("subject", req.Subject)
	rec.Set("language", req.Language)
	if req.Context != nil {
		rec.Set("context", req.Context)
	}
	if req.Channel == providers.ChannelEmail && req.Subject == "" && req.Template == "" {
		rec.Set("subject", "(preview)") // a subject is asked for only when sending
	}
	if req.To != "" {
		rec.Set("to", req.To)
		if err := s.rules.NormalizeRecipient(rec, clinic); err != nil {
			return err
		}
	}
	if l := req.Language; l != "" && l != "en" && l != "ar" {
		return compose.BadField("language", "validation_invalid_language", "language must be en or ar")
	}
	if err := compose.RenderContent(rec, clinic, nil, createLookups{s: s, app: e.App}); err != nil {
		return err
	}
	body := rec.GetString("body")
	out := map[string]any{
		"body": body, "subject": rec.GetString("subject"), "language": rec.GetString("language"),
		"to": rec.GetString("to"), "characters": utf8.RuneCountInString(body),
	}
	if err := compose.CheckBody(rec); err != nil {
		out["error"] = err.(*router.ApiError).Message
	}
	segments := 1
	if req.Channel != providers.ChannelEmail {
		enc, n := providers.Segments(body)
		out["encoding"] = enc
		if req.Channel == providers.ChannelSMS {
			segments = n
		}
	}
	out["segments"] = segments
	count := 1
	if len(req.Recipients) > maxRecipients {
		return compose.BadField("recipients", "validation_too_many", fmt.Sprintf("preview at most %d recipients, as a campaign takes; this has %d", maxRecipients, len(req.Recipients)))
	}
	if req.Recipients != nil {
		valid, invalid := s.checkRecipients(clinic, req.Channel, req.Recipients)
		out["recipients"] = map[string]any{"valid": valid, "invalid": invalid}
		count = valid
	}
	if price, currency, ok := s.unitPrice(e.App, clinic.Id, req.Channel); ok {
		out["cost_estimate"] = map[string]any{"amount": roundCents(price * float64(segments*count)), "currency": currency, "per_segment": price}
	} else {
		out["cost_estimate"] = nil
	}
	return e.JSON(http.StatusOK, out)
}

type invalidRecipient struct {
	Index  int    `json:"index"`
	To     string `json:"to"`
	Code   string `json:"code"` // the same code a create answers for this recipient
	Reason string `json:"reason"`
}

// checkRecipients normalises each recipient as a campaign would and counts the valid ones.
func (s *Service) checkRecipients(clinic *core.Record, channel string, list []any) (int, []invalidRecipient) {
	recs, err := parseRecipients(list)
	if err != nil {
		return 0, []invalidRecipient{{Index: -1, Code: "validation_invalid_recipients", Reason: err.Error()}}
	}
	valid := 0
	invalid := []invalidRecipient{}
	for i, r := range recs {
		var err error
		if channel == providers.ChannelEmail {
			_, err = compose.NormalizeEmail(r.To)
		} else {
			_, err = compose.NormalizePhone(r.To, s.rules.Region(clinic))
		}
		switch {
		case errors.Is(err, compose.ErrNotMobile):
			invalid = append(invalid, invalidRecipient{i, r.To, "validation_not_mobile", "not a mobile number"})
		case err != nil && channel == providers.ChannelEmail:
			invalid = append(invalid, invalidRecipient{i, r.To, "validation_invalid_email", "not a valid email address"})
		case err != nil:
			invalid = append(invalid, invalidRecipient{i, r.To, "validation_invalid_phone", "not a valid phone number"})
		default:
			valid++
		}
	}
	return valid, invalid
}

// unitPrice estimates the price of one segment on channel from what the clinic paid over
// the last 30 days (the provider's own figures). A clinic that has paid nothing yet gets no
// estimate: another clinic's prices are that clinic's business (its contract, its volume).
func (s *Service) unitPrice(app core.App, clinicID, channel string) (float64, string, bool) {
	var row struct {
		Cost     float64 `db:"cost"`
		Segments float64 `db:"segments"`
		Currency string  `db:"currency"`
	}
	err := app.DB().NewQuery(`SELECT SUM(cost) AS cost, SUM(segments) AS segments, currency FROM messages
		WHERE clinic = {:c} AND channel = {:ch} AND cost > 0 AND created >= datetime('now', '-30 days')
		GROUP BY currency ORDER BY COUNT(*) DESC LIMIT 1`).Bind(dbx.Params{"ch": channel, "c": clinicID}).One(&row)
	if err != nil || row.Segments <= 0 {
		return 0, "", false
	}
	return row.Cost / row.Segments, row.Currency, true
}

func roundCents(v float64) float64 {
	return float64(int64(v*10000+0.5)) / 10000
}
