package hooks

import (
	"database/sql"
	"errors"
	"fmt"

	"clinicmsg/providers"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"
)

// rank orders the statuses a provider can move a message through. A report applies only if
// it ranks above the current status, so a late "sent" never overwrites "delivered" and a
// repeated report is a no-op. failed and undelivered rank below delivered because a
// delivery receipt is the stronger evidence.
var rank = map[string]int{
	providers.StatusScheduled:   0,
	providers.StatusQueued:      1,
	providers.StatusSending:     2,
	providers.StatusSent:        3,
	providers.StatusFailed:      4,
	providers.StatusUndelivered: 4,
	providers.StatusDelivered:   5,
	providers.StatusRead:        6,
}

var errMessageNotFound = errors.New("no message matches this status report")

// ApplyStatus applies a provider's status report (webhook, poll, mock delivery report) to
// its message and appends one log row if the status changed. source names where the report
// came from, for the audit trail.
func (s *Service) ApplyStatus(u providers.StatusUpdate, provider, source string) (bool, error) {
	var changed bool
	err := s.writer.Do(func(tx core.App) error {
		rec, err := findReported(tx, u)
		if err != nil {
			return err
		}
		changed, err = s.applyStatus(tx, rec, u, provider, source)
		return err
	})
	return changed, err
}

func findReported(app core.App, u providers.StatusUpdate) (*core.Record, error) {
	var rec *core.Record
	var err error
	switch {
	case u.MessageID != "":
		rec, err = findOne(app, "messages", "id = {:id}", dbx.Params{"id": u.MessageID})
	case u.ProviderMessageID != "":
		rec, err = findOne(app, "messages", "provider_message_id = {:id} AND provider_message_id != ''", dbx.Params{"id": u.ProviderMessageID})
	default:
		return nil, errMessageNotFound
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errMessageNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("failed to find reported message: %w", err)
	}
	return rec, nil
}

// applyStatus moves rec forward to u.Status inside tx, monotonically.
func (s *Service) applyStatus(tx core.App, rec *core.Record, u providers.StatusUpdate, provider, source string) (bool, error) {
	cur := rec.GetString("status")
	next := u.Status
	nextRank, known := rank[next]
	if !known || cur == providers.StatusCanceled || cur == providers.StatusSkipped || nextRank <= rank[cur] {
		return false, s.updateBilling(tx, rec, u)
	}
	at := types.NowDateTime()
	if !u.At.IsZero() {
		if dt, err := types.ParseDateTime(u.At); err == nil {
			at = dt
		}
	}
	// The keys set are the columns written: a report changes a handful of a row's columns.
	keys := make([]string, 0, 10)
	set := func(k string, v any) {
		setField(rec, k, v)
		keys = append(keys, k)
	}
	set("status", next)
	if rec.GetString("provider_message_id") == "" && u.ProviderMessageID != "" {
		set("provider_message_id", u.ProviderMessageID)
	}
	if rec.GetString("provider") == "" && provider != "" {
		set("provider", provider)
	}
	if rec.GetDateTime("sent_at").IsZero() {
		set("sent_at", at)
	}
	switch next {
	case providers.StatusDelivered:
		set("delivered_at", at)
	case providers.StatusRead:
		set("read_at", at)
		if rec.GetDateTime("delivered_at").IsZero() {
			set("delivered_at", at)
		}
	case providers.StatusFailed, providers.StatusUndelivered:
		set("error_code", u.ErrorCode)
		set("error_message", truncate(u.ErrorMessage, 1000))
		set("status_reason", "reported "+next+" by "+provider)
	}
	set("next_attempt_at", "")
	if u.Segments > 0 {
		set("segments", u.Segments)
	}
	if u.Cost > 0 {
		set("cost", u.Cost)
		set("currency", u.Currency)
	}
	if err := s.persistFields(tx, rec, keys); err != nil {
		return false, fmt.Errorf("failed to save reported status: %w", err)
	}
	if provider == "twilio" && u.ErrorCode == providers.TwilioCodeOptedOut {
		if err := s.markOptedOut(tx, rec, "twilio:"+u.ErrorCode); err != nil {
			return false, err
		}
	}
	detail := map[string]any{"source": source, "previous": cur}
	if u.ProviderStatus != "" {
		detail["provider_status"] = u.ProviderStatus
	}
	if u.ErrorMessage != "" {
		detail["error_message"] = truncate(u.ErrorMessage, 300)
	}
	err := writeLog(tx, logEntry{Message: rec.Id, Event: "status", Status: next, Provider: provider, Detail: detail, ErrorCode: u.ErrorCode})
	return err == nil, err
}

// updateBilling stores the provider's billed segments and price when a report brings them
// without a new status (Twilio rates a message after it is sent). It is not a status
// change, so it writes no log row.
func (s *Service) updateBilling(tx core.App, rec *core.Record, u providers.StatusUpdate) error {
	changed := false
	if u.Segments > 0 && u.Segments != rec.GetInt("segments") {
		rec.Set("segments", u.Segments)
		changed = true
	}
	if u.Cost > 0 && (u.Cost != rec.GetFloat("cost") || u.Currency != rec.GetString("currency")) {
		rec.Set("cost", u.Cost)
		rec.Set("currency", u.Currency)
		changed = true
	}
	if !changed {
		return nil
	}
	if err := s.persistMessage(tx, rec); err != nil {
		return fmt.Errorf("failed to save billing details: %w", err)
	}
	return nil
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}

// markOptedOut records in the patient's preferences that the provider refused them as
// opted out (they replied STOP to the carrier), so clinicmsg skips them from now on.
func (s *Service) markOptedOut(tx core.App, msg *core.Record, source string) error {
	return s.upsertPreference(tx, msg, func(p *core.Record) bool {
		if p.GetBool("opted_out") {
			return false
		}
		p.Set("opted_out", true)
		p.Set("opted_out_at", types.NowDateTime())
		p.Set("opt_out_source", source)
		return true
	})
}
