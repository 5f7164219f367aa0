package hooks

import (
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"clinicmsg/intents"
	"clinicmsg/internal/store"
	"clinicmsg/providers"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"
)

const twilioInboundPath = "/api/clinicmsg/webhooks/twilio/inbound"

// whatsAppWindow is how long after a patient's last WhatsApp message free-form text may
// be sent to them (Meta's customer-service window).
const whatsAppWindow = 24 * time.Hour

// handleTwilioInbound takes a patient's message to the clinic's number (signed like status
// callbacks). The reply is stored, and acted on, before Twilio gets its empty TwiML answer.
func (s *Service) handleTwilioInbound(e *core.RequestEvent) error {
	parser, ok := s.inboundParsers["twilio"]
	if !ok {
		return e.NotFoundError("Twilio is not configured.", nil)
	}
	in, err := parser.ParseInboundWebhook(e.Request, s.publicBase(e))
	if errors.Is(err, providers.ErrBadSignature) {
		s.countWebhook("twilio_inbound", "forbidden")
		s.app.Logger().Warn("refused a twilio incoming message", "reason", "bad signature", "ip", e.RealIP())
		return e.ForbiddenError("The request signature does not verify.", nil)
	}
	if err != nil {
		s.countWebhook("twilio_inbound", "bad_request")
		return e.BadRequestError("The incoming message could not be read.", nil)
	}
	reply, err := s.ReceiveReply(*in, "twilio")
	if err != nil {
		s.countWebhook("twilio_inbound", "error")
		s.app.Logger().Error("failed to store an incoming message", "provider_message_id", in.ProviderMessageID, "error", err)
		return e.Error(http.StatusServiceUnavailable, "The message could not be stored; retry later.", nil)
	}
	s.countWebhook("twilio_inbound", "stored")
	s.app.Logger().Info("incoming message stored", "reply", reply.Id, "intent", reply.GetString("intent"), "clinic", reply.GetString("clinic"))
	return e.Blob(http.StatusOK, "text/xml; charset=utf-8", []byte(`<?xml version="1.0" encoding="UTF-8"?><Response></Response>`))
}

// ReceiveReply stores a patient's message, matches it to the last message sent to that
// number from the number the patient wrote to (matchReply), classifies it and acts on it,
// in one transaction: opt out or back in, answer HELP, record an appointment answer on its
// message, and queue the event for the clinic's app. A repeated delivery of the same inbound
// message changes nothing.
func (s *Service) ReceiveReply(in providers.Inbound, provider string) (*core.Record, error) {
	var reply *core.Record
	err := s.app.RunInTransaction(func(tx core.App) error {
		if in.ProviderMessageID != "" {
			prev, err := store.FindOne(tx, "replies", "provider = {:p} AND provider_message_id = {:id} AND provider_message_id != ''", dbx.Params{"p": provider, "id": in.ProviderMessageID})
			if err == nil {
				reply = prev
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("failed to look for a repeated reply: %w", err)
			}
		}
		// The reply answers the last message sent to this patient from the number the patient
		// wrote to: only a clinic that sent from that number may receive it.
		matched, err := s.matchReply(tx, in)
		if err != nil {
			return err
		}
		answersAppointment := matched != nil && (matched.GetString("category") == "reminder" || matched.GetString("category") == "confirmation")
		intent := intents.Classify(in.Body, answersAppointment)
		switch strings.ToUpper(in.OptOutType) { // the carrier's own keyword handling, when enabled
		case "STOP":
			intent = intents.Stop
		case "START":
			intent = intents.Start
		case "HELP":
			intent = intents.Help
		}

		col, err := tx.FindCachedCollectionByNameOrId("replies")
		if err != nil {
			return err
		}
		reply = core.NewRecord(col)
		reply.Set("channel", in.Channel)
		reply.Set("from", in.From)
		reply.Set("to", in.To)
		reply.Set("body", store.Truncate(in.Body, 5000))
		reply.Set("intent", string(intent))
		reply.Set("provider", provider)
		reply.Set("provider_message_id", in.ProviderMessageID)
		if matched != nil {
			reply.Set("clinic", matched.GetString("clinic"))
			reply.Set("message", matched.Id)
		}
		if err := tx.Save(reply); err != nil {
			return fmt.Errorf("failed to store the reply: %w", err)
		}
		if matched == nil {
			return nil // kept for superusers; no clinic to act for
		}
		return s.actOnReply(tx, reply, matched, intent, in)
	})
	return reply, err
}

// matchReply finds the message a patient's reply answers: the last message on the reply's
// channel to the patient's number from one of the clinics that send from the number the
// patient wrote to (nil when none did).
func (s *Service) matchReply(tx core.App, in providers.Inbound) (*core.Record, error) {
	clinics, err := s.replyClinics(tx, in.Channel, in.To)
	if err != nil {
		return nil, err
	}
	if len(clinics) == 0 {
		return nil, nil
	}
	var found []*core.Record
	err = tx.RecordQuery("messages").
		AndWhere(dbx.HashExp{"to": in.From, "channel": in.Channel}).
		AndWhere(dbx.In("clinic", clinics...)).
		AndWhere(dbx.NewExp("status IN ('sent','delivered','read','undelivered')")).
		OrderBy("created DESC").Limit(1).All(&found)
	if err != nil {
		return nil, fmt.Errorf("failed to match the reply: %w", err)
	}
	if len(found) == 0 {
		return nil, nil
	}
	return found[0], nil
}

// replyClinics returns the clinics that send on channel from the number to: those whose own
// sender it is (several when a superuser gave them one number), and, when it is the
// appliance's default sender (TWILIO_FROM_NUMBER / TWILIO_WHATSAPP_NUMBER, or any number of
// the Messaging Service, which sends for clinics without a number of their own), the clinics
// without a sender.
func (s *Service) replyClinics(tx core.App, channel, to string) ([]any, error) {
	field, def := "sms_sender", s.cfg.TwilioFromNumber
	if channel == providers.ChannelWhatsApp {
		field, def = "whatsapp_sender", s.cfg.TwilioWhatsAppNumber
	}
	to = senderKey(to)
	if to == "" {
		return nil, nil
	}
	var rows []struct {
		ID     string `db:"id"`
		Sender string `db:"sender"`
	}
	if err := tx.DB().Select("id", field+" AS sender").From("clinics").All(&rows); err != nil {
		return nil, fmt.Errorf("failed to find the clinics sending from the reply's number: %w", err)
	}
	var own, unassigned []any
	for _, r := range rows {
		switch senderKey(r.Sender) {
		case to:
			own = append(own, r.ID)
		case "":
			unassigned = append(unassigned, r.ID)
		}
	}
	viaDefault := to == senderKey(def)
	if !viaDefault && s.cfg.TwilioMessagingServiceSID != "" && len(own) == 0 {
		// The Messaging Service picks a number from its pool for clinics without a sender
		// (for SMS always; for WhatsApp when no default number is set); any number that is
		// no clinic's own may be one of the pool's.
		viaDefault = channel == providers.ChannelSMS || def == ""
	}
	if viaDefault {
		own = append(own, unassigned...)
	}
	return own, nil
}

// senderKey is a sender number as compared: without Twilio's "whatsapp:" prefix, spaces or
// dashes, so that "+966 50-123" written on a clinic matches Twilio's "+96650123".
func senderKey(n string) string {
	n = strings.TrimPrefix(strings.TrimSpace(n), "whatsapp:")
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, n)
}

func (s *Service) actOnReply(tx core.App, reply, msg *core.Record, intent intents.Intent, in providers.Inbound) error {
	now := types.NowDateTime()
	err := s.upsertPreference(tx, msg, func(p *core.Record) bool {
		p.Set("last_inbound_"+in.Channel, now)
		switch intent {
		case intents.Stop:
			if !p.GetBool("opted_out") {
				p.Set("opted_out", true)
				p.Set("opted_out_at", now)
				p.Set("opt_out_source", "reply:"+in.Channel)
			}
		case intents.Start:
			p.Set("opted_out", false)
			p.Set("opted_out_at", "")
			p.Set("opt_out_source", "")
		}
		return true
	})
	if err != nil {
		return err
	}

	switch intent {
	case intents.Confirm, intents.Cancel:
		_, err := s.store.Transition(tx, msg, store.Change{Set: map[string]any{"reply_intent": string(intent)},
			Audit: store.Entry{Event: "reply", Provider: reply.GetString("provider"), Detail: map[string]any{"intent": string(intent), "reply": reply.Id}}})
		if err != nil {
			return fmt.Errorf("failed to record the patient's answer: %w", err)
		}
	case intents.Help:
		if err := s.answerHelp(tx, reply, msg); err != nil {
			return err
		}
	}

	eventType := "reply.received"
	switch intent {
	case intents.Confirm:
		eventType = "appointment.confirmed"
	case intents.Cancel:
		eventType = "appointment.canceled"
	}
	return s.queueAppEvent(tx, msg.GetString("clinic"), eventType, map[string]any{
		"reply": map[string]any{"id": reply.Id, "channel": in.Channel, "from": in.From, "body": in.Body, "intent": string(intent)},
		"message": map[string]any{"id": msg.Id, "patient_id": msg.GetString("patient_id"), "template": msg.GetString("template"),
			"category": msg.GetString("category"), "context": msg.Get("context")},
	})
}

// answerHelp sends the clinic's help text back on the channel the patient used.
func (s *Service) answerHelp(tx core.App, reply, msg *core.Record) error {
	clinic, err := tx.FindRecordById("clinics", msg.GetString("clinic"))
	if err != nil {
		return fmt.Errorf("failed to load the clinic: %w", err)
	}
	lang := msg.GetString("language")
	text := clinic.GetString("help_text_" + lang)
	if text == "" {
		text = clinic.GetString("help_text_en")
	}
	if text == "" {
		if lang == "ar" {
			text = clinic.GetString("name") + ": للتواصل مع العيادة اتصل بنا. للإيقاف أرسل STOP أو إيقاف."
		} else {
			text = clinic.GetString("name") + ": call the clinic for help. Reply STOP to stop these messages."
		}
	}
	col, err := tx.FindCachedCollectionByNameOrId("messages")
	if err != nil {
		return err
	}
	answer := core.NewRecord(col)
	answer.Set("clinic", clinic.Id)
	answer.Set("channel", reply.GetString("channel"))
	answer.Set("to", reply.GetString("from"))
	answer.Set("body", text)
	answer.Set("language", lang)
	answer.Set("patient_id", msg.GetString("patient_id"))
	answer.Set("category", "confirmation") // an answer the patient asked for: not held for quiet hours
	answer.Set("idempotency_key", "help:"+reply.Id)
	if err := tx.Save(answer); err != nil {
		return fmt.Errorf("failed to answer HELP: %w", err)
	}
	return nil
}

// upsertPreference applies change to the preferences of msg's patient (by patient id,
// else by number), creating them with every channel on if the patient has none yet.
func (s *Service) upsertPreference(tx core.App, msg *core.Record, change func(*core.Record) bool) error {
	clinic, patient, to := msg.GetString("clinic"), msg.GetString("patient_id"), msg.GetString("to")
	pref, err := findPreference(tx, clinic, patient, msg.GetString("channel"), to)
	if err != nil {
		return err
	}
	if pref == nil {
		col, err := tx.FindCachedCollectionByNameOrId("preferences")
		if err != nil {
			return fmt.Errorf("failed to find preferences: %w", err)
		}
		pref = core.NewRecord(col)
		pref.Set("clinic", clinic)
		pref.Set("patient_id", patient)
		if msg.GetString("channel") == providers.ChannelEmail {
			pref.Set("email", to)
		} else {
			pref.Set("phone", to)
		}
		for _, f := range []string{"sms", "whatsapp", "email_enabled"} {
			pref.Set(f, true)
		}
	}
	if !change(pref) {
		return nil
	}
	if err := tx.Save(pref); err != nil {
		return fmt.Errorf("failed to save preferences: %w", err)
	}
	return nil
}

// inWhatsAppWindow reports whether the patient wrote on WhatsApp in the last 24 hours, so
// that a free-form WhatsApp message is allowed.
func (s *Service) inWhatsAppWindow(app core.App, msg *core.Record) (bool, error) {
	pref, err := findPreference(app, msg.GetString("clinic"), msg.GetString("patient_id"), providers.ChannelWhatsApp, msg.GetString("to"))
	if err != nil || pref == nil {
		return false, err
	}
	last := pref.GetDateTime("last_inbound_whatsapp")
	return !last.IsZero() && nowUTC().Sub(last.Time()) < whatsAppWindow, nil
}
