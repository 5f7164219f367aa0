package dispatch

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

// ErrMessageNotFound is a status report for a message this appliance does not have.
var ErrMessageNotFound = errors.New("no message matches this status report")

// ApplyStatus applies a provider's status report (webhook, poll, mock delivery report) to
// its message and appends one log row if the status changed. source names where the report
// came from, for the audit trail.
func (d *Dispatcher) ApplyStatus(u providers.StatusUpdate, provider, source string) (bool, error) {
	var changed bool
	err := d.writer.Do(func(tx core.App) error {
		rec, err := findReported(tx, u)
		if err != nil {
			return err
		}
		changed, err = d.applyStatus(tx, rec, u, provider, source)
		return err
	})
	return changed, err
}

func findReported(app core.App, u providers.StatusUpdate) (*core.Record, error) {
	var rec *core.Record
	var err error
	switch {
	case u.MessageID != "":
		rec, err = store.FindOne(app, "messages", "id = {:id}", dbx.Params{"id": u.MessageID})
	case u.ProviderMessageID != "":
		rec, err = store.FindOne(app, "messages", "provider_message_id = {:id} AND provider_message_id != ''", dbx.Params{"id": u.ProviderMessageID})
	default:
		return nil, ErrMessageNotFound
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrMessageNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("failed to find reported message: %w", err)
	}
	return rec, nil
}

// applyStatus moves rec forward to u.Status inside tx, monotonically.
func (d *Dispatcher) applyStatus(tx core.App, rec *core.Record, u providers.StatusUpdate, provider, source string) (bool, error) {
	cur := rec.GetString("status")
	next := u.Status
	if !store.Reported(cur, next) {
		return false, d.updateBilling(tx, rec, u)
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
		set["error_message"] = store.Truncate(u.ErrorMessage, 1000)
		// A stable code first (reported_failed, reported_undelivered), then the English.
		set["status_reason"] = "reported_" + next + ": reported " + next + " by " + provider
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
		detail["error_message"] = store.Truncate(u.ErrorMessage, 300)
	}
	if next == providers.StatusFailed || next == providers.StatusUndelivered {
		detail["reason"] = "reported_" + next
	}
	changed, err := d.store.Transition(tx, rec, store.Change{To: next, Set: set,
		Audit: store.Entry{Event: "status", Provider: provider, Detail: detail, ErrorCode: u.ErrorCode}})
	if err != nil || !changed {
		return false, err
	}
	if providers.IsOptedOut(provider, u.ErrorCode) {
		if err := d.env.OptedOut(tx, rec, provider+":"+u.ErrorCode); err != nil {
			return false, err
		}
	}
	return true, nil
}

// updateBilling stores the provider's billed segments and price when a report brings them
// without a new status (Twilio rates a message after it is sent). It is not a status
// change, so it writes no log row.
func (d *Dispatcher) updateBilling(tx core.App, rec *core.Record, u providers.StatusUpdate) error {
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
	if _, err := d.store.Transition(tx, rec, store.Change{Set: set}); err != nil {
		return fmt.Errorf("failed to save billing details: %w", err)
	}
	return nil
}
