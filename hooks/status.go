package hooks

import (
	"database/sql"
	"errors"
	"fmt"

	"clinicmsg/internal/store"
	"clinicmsg/providers"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"
)

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
	if !store.Reported(cur, next) {
		return false, s.updateBilling(tx, rec, u)
	}
	at := types.NowDateTime()
	if !u.At.IsZero() {
		if dt, err := types.ParseDateTime(u.At); err == nil {
			at = dt
		}
	}
	// A report changes a handful of a row's columns; only those are written.
	set := map[string]any{"next_attempt_at": ""}
	if rec.GetString("provider_message_id") == "" && u.ProviderMessageID != "" {
		set["provider_message_id"] = u.ProviderMessageID
	}
	if rec.GetString("provider") == "" && provider != "" {
		set["provider"] = provider
	}
	if rec.GetDateTime("sent_at").IsZero() {
		set["sent_at"] = at.String()
	}
	switch next {
	case providers.StatusDelivered:
		set["delivered_at"] = at.String()
	case providers.StatusRead:
		set["read_at"] = at.String()
		if rec.GetDateTime("delivered_at").IsZero() {
			set["delivered_at"] = at.String()
		}
	case providers.StatusFailed, providers.StatusUndelivered:
		set["error_code"] = u.ErrorCode
		set["error_message"] = truncate(u.ErrorMessage, 1000)
		set["status_reason"] = "reported " + next + " by " + provider
	}
	if u.Segments > 0 {
		set["segments"] = u.Segments
	}
	if u.Cost > 0 {
		set["cost"] = u.Cost
		set["currency"] = u.Currency
	}
	detail := map[string]any{"source": source, "previous": cur}
	if u.ProviderStatus != "" {
		detail["provider_status"] = u.ProviderStatus
	}
	if u.ErrorMessage != "" {
		detail["error_message"] = truncate(u.ErrorMessage, 300)
	}
	changed, err := s.store.Transition(tx, rec, store.Change{To: next, Set: set,
		Audit: store.Entry{Event: "status", Provider: provider, Detail: detail, ErrorCode: u.ErrorCode}})
	if err != nil || !changed {
		return false, err
	}
	if providers.IsOptedOut(provider, u.ErrorCode) {
		if err := s.markOptedOut(tx, rec, provider+":"+u.ErrorCode); err != nil {
			return false, err
		}
	}
	return true, nil
}

// updateBilling stores the provider's billed segments and price when a report brings them
// without a new status (Twilio rates a message after it is sent). It is not a status
// change, so it writes no log row.
func (s *Service) updateBilling(tx core.App, rec *core.Record, u providers.StatusUpdate) error {
	set := map[string]any{}
	if u.Segments > 0 && u.Segments != rec.GetInt("segments") {
		set["segments"] = u.Segments
	}
	if u.Cost > 0 && (u.Cost != rec.GetFloat("cost") || u.Currency != rec.GetString("currency")) {
		set["cost"] = u.Cost
		set["currency"] = u.Currency
	}
	if len(set) == 0 {
		return nil
	}
	if _, err := s.store.Transition(tx, rec, store.Change{Set: set}); err != nil {
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
