package hooks

import (
	"encoding/json"
	"fmt"
	"time"

	"clinicmsg/internal/compose"
	"clinicmsg/internal/dispatch"
	"clinicmsg/providers"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"
)

// dispatchEnv is what the dispatcher asks of the appliance (dispatch.Env).
type dispatchEnv struct{ s *Service }

var _ dispatch.Env = dispatchEnv{}

func (e dispatchEnv) ProviderMessage(rec *core.Record, claimedAt time.Time) (*providers.Message, error) {
	return e.s.providerMessage(rec, claimedAt)
}

func (e dispatchEnv) Consent(recs []*core.Record) (map[string]string, error) {
	return e.s.consentAtSend(recs)
}

func (e dispatchEnv) InWhatsAppWindow(rec *core.Record) (bool, error) {
	return e.s.inWhatsAppWindow(e.s.app, rec)
}

func (e dispatchEnv) OptedOut(tx core.App, rec *core.Record, source string) error {
	return e.s.markOptedOut(tx, rec, source)
}

func (e dispatchEnv) ObserveSend(provider, channel string, took time.Duration, err error) {
	e.s.observeSend(provider, channel, took, err)
}

// consentAtSend reads the preferences of the claimed messages' patients (one query per
// clinic, from the read pool: they are committed rows) and says which of the messages the
// patients' consent forbids now, by id with the reason.
func (s *Service) consentAtSend(recs []*core.Record) (map[string]string, error) {
	seen := newBatchSeen(0)
	if err := seen.loadPreferences(s.app, recs, make([]error, len(recs))); err != nil {
		return nil, fmt.Errorf("failed to check consent at send time: %w", err)
	}
	refused := map[string]string{}
	for _, r := range recs {
		ch := r.GetString("channel")
		prefs, _ := seen.preferences(r.GetString("clinic"), r.GetString("patient_id"), ch, r.GetString("to"))
		if reason := compose.ConsentReason(prefs, ch, r.GetString("category")); reason != "" {
			refused[r.Id] = reason
		}
	}
	return refused, nil
}

// providerMessage builds what a provider needs from a message row.
func (s *Service) providerMessage(rec *core.Record, claimedAt time.Time) (*providers.Message, error) {
	m := &providers.Message{
		ID:        rec.Id,
		Channel:   rec.GetString("channel"),
		To:        rec.GetString("to"),
		Body:      rec.GetString("body"),
		Subject:   rec.GetString("subject"),
		Language:  rec.GetString("language"),
		Segments:  rec.GetInt("segments"),
		ClaimedAt: claimedAt,
	}
	if m.Channel == providers.ChannelEmail {
		return m, nil
	}
	clinic, err := s.clinicCache.shared(s.app, rec.GetString("clinic"))
	if err != nil {
		return nil, fmt.Errorf("failed to load the message's clinic: %w", err)
	}
	if m.Channel == providers.ChannelSMS {
		m.From = clinic.GetString("sms_sender")
	} else {
		m.From = clinic.GetString("whatsapp_sender")
	}
	if code := rec.GetString("template"); code != "" && m.Channel == providers.ChannelWhatsApp {
		tpl, err := s.findTemplate(s.app, clinic.Id, code)
		if err != nil {
			return nil, err
		}
		if tpl != nil {
			if sid := tpl.GetString("whatsapp_content_sid_" + m.Language); sid != "" {
				m.ContentSID = sid
				m.ContentVariables = contentVariables(tpl.GetString("body_"+m.Language), rec)
			}
		}
	}
	return m, nil
}

// contentVariables numbers a template's {{variables}} in order of first use, the way an
// approved WhatsApp content template numbers its placeholders.
func contentVariables(body string, rec *core.Record) map[string]string {
	vars := map[string]any{}
	if raw, ok := rec.Get("context").(types.JSONRaw); ok && len(raw) > 0 {
		_ = json.Unmarshal(raw, &vars) // checked when the message was created
	}
	out := map[string]string{}
	for i, name := range compose.Placeholders(body) {
		out[fmt.Sprint(i+1)] = compose.Stringify(vars[name])
	}
	return out
}
