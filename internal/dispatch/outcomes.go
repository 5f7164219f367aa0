package dispatch

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"clinicmsg/internal/store"
	"clinicmsg/providers"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"
)

func (d *Dispatcher) releaseTx(tx core.App, rec *core.Record, provider, reason string, after time.Duration) error {
	next := time.Now().UTC().Add(after)
	_, err := d.store.Transition(tx, rec, store.Change{To: providers.StatusQueued,
		Set: map[string]any{"attempts": max(rec.GetInt("attempts")-1, 0), "next_attempt_at": store.FormatTime(next)},
		Audit: store.Entry{Event: "released", Provider: provider,
			Detail: map[string]any{"reason": reason, "next_attempt_at": store.FormatTime(next)}}})
	if err != nil {
		return fmt.Errorf("failed to release message: %w", err)
	}
	return nil
}

// settleFailure decides what a failed attempt leads to: failed, retry later, or in doubt.
func (d *Dispatcher) settleFailure(tx core.App, rec *core.Record, provider string, sendErr error, reconciled string) error {
	class := providers.ClassOf(sendErr)
	code, message := "", sendErr.Error()
	var retryAfter time.Duration
	if pe, ok := providers.AsError(sendErr); ok {
		code, retryAfter = pe.Code, pe.RetryAfter
		if pe.Message != "" {
			message = pe.Message
		}
	}
	attempt := rec.GetInt("attempts")
	detail := map[string]any{"attempt": attempt, "class": class.Error()}
	if reconciled != "" {
		detail["reconciled"] = reconciled
	}

	inDoubt := class == providers.ErrUnknown && reconciled == "failed"
	pe, _ := providers.AsError(sendErr)
	switch {
	case pe != nil && pe.HTTPStatus == http.StatusTooManyRequests && class == providers.ErrRetryable:
		// The provider refused before doing anything: slow it down, keep the attempt.
		pause := d.router.Limiter(provider).Throttled(retryAfter)
		return d.releaseTx(tx, rec, provider, "provider_throttled", pause)
	case inDoubt:
		// We cannot tell whether the provider has it; resending could reach the patient twice.
		next := time.Now().UTC().Add(d.backoff(attempt, retryAfter))
		detail["reconcile_at"] = store.FormatTime(next)
		_, err := d.store.Transition(tx, rec, store.Change{
			Set:   map[string]any{"next_attempt_at": store.FormatTime(next), "error_code": code, "error_message": store.Truncate(message, 1000)},
			Audit: store.Entry{Event: "in_doubt", Provider: provider, Detail: detail, ErrorCode: code}})
		if err != nil {
			return fmt.Errorf("failed to mark message in doubt: %w", err)
		}
		return nil
	case class == providers.ErrPermanent:
		if providers.IsOptedOut(provider, code) {
			if err := d.env.OptedOut(tx, rec, provider+":"+code); err != nil {
				return err
			}
		}
		return d.failTx(tx, rec, "permanent", message, code, attempt, provider)
	case attempt >= d.cfg.MaxAttempts:
		return d.failTx(tx, rec, "attempts_exhausted", message, code, attempt, provider)
	default:
		next := time.Now().UTC().Add(d.backoff(attempt, retryAfter))
		detail["next_attempt_at"] = store.FormatTime(next)
		_, err := d.store.Transition(tx, rec, store.Change{To: providers.StatusQueued,
			Set:   map[string]any{"next_attempt_at": store.FormatTime(next), "error_code": code, "error_message": store.Truncate(message, 1000)},
			Audit: store.Entry{Event: "retry_scheduled", Provider: provider, Detail: detail, ErrorCode: code}})
		if err != nil {
			return fmt.Errorf("failed to schedule retry: %w", err)
		}
		return nil
	}
}

// failTx ends a message as failed. Its status_reason is the bare code (permanent,
// attempts_exhausted, no_provider) and the provider's words go to error_message: the
// retry job (hooks/jobs.go retryableReasons) and the health error rate (hooks/health.go)
// match the bare code exactly, so a "code: text" reason here would silently stop
// automatic retries. The dashboard translates the code.
func (d *Dispatcher) failTx(tx core.App, rec *core.Record, reason, message, code string, attempt int, provider string) error {
	_, err := d.store.Transition(tx, rec, store.Change{To: providers.StatusFailed,
		Set: map[string]any{"status_reason": reason, "error_code": code, "error_message": store.Truncate(message, 1000), "next_attempt_at": ""},
		Audit: store.Entry{Event: "failed", Provider: provider, ErrorCode: code,
			Detail: map[string]any{"attempt": attempt, "reason": reason, "error_message": store.Truncate(message, 300)}}})
	if err != nil {
		return fmt.Errorf("failed to mark message failed: %w", err)
	}
	return nil
}

// Requeue queues a failed message again (a person's retry or the retry job); audit
// says who asked. The claim checks consent again before it is sent.
func (d *Dispatcher) Requeue(tx core.App, rec *core.Record, audit store.Entry) error {
	audit.Event = "retry_requested"
	_, err := d.store.Transition(tx, rec, store.Change{To: providers.StatusQueued,
		Set:   map[string]any{"status_reason": "", "next_attempt_at": types.NowDateTime().String()},
		Audit: audit})
	return err
}

// Skip ends a waiting or claimed message as skipped: the patient's consent, as it is
// now, forbids it. stage says where the rule caught it (send, opt_out) for the audit row.
func (d *Dispatcher) Skip(tx core.App, rec *core.Record, reason, stage string) error {
	_, err := d.store.Transition(tx, rec, store.Change{To: providers.StatusSkipped,
		Set:   map[string]any{"status_reason": reason, "next_attempt_at": ""},
		Audit: store.Entry{Event: "skipped", Detail: map[string]any{"reason": reason, "stage": stage}}})
	if err != nil {
		return fmt.Errorf("failed to skip message: %w", err)
	}
	return nil
}

// markSent records an accepted send. If a delivery report overtook it, the status stays
// where the report put it and only the provider's details are filled in.
// markSentLeased is markSent for the usual case, a row still in the state the claim left
// it (sending, this attempt): one guarded UPDATE instead of reading the row back first.
// It reports false, having changed nothing, when the row moved meanwhile (a delivery
// report overtook the answer, a cancel, a lost lease); markSent then decides on the row.
func (d *Dispatcher) markSentLeased(tx core.App, c claimed, r *providers.Receipt, reconciled string) (bool, error) {
	if r == nil {
		r = &providers.Receipt{}
	}
	status := providers.StatusSent
	if store.Rank[r.Status] > store.Rank[status] {
		status = r.Status
	}
	now := types.NowDateTime()
	set := receiptFields(c.provider, r)
	set["status_reason"], set["error_code"], set["error_message"], set["next_attempt_at"] = "", "", "", ""
	if c.unsent {
		set["sent_at"] = now.String()
	}
	detail := map[string]any{"attempt": c.attempt, "provider_message_id": r.ProviderMessageID}
	if reconciled != "" {
		detail["reconciled"] = reconciled
	}
	// The claimed record is this attempt's own (the claim's announcement is long done), so
	// it is brought up to date in place rather than copied; the guard on the status and
	// attempt makes running this again after a failed group write the same.
	c.rec.SetRaw("status", providers.StatusSending)
	ok, err := d.store.Transition(tx, c.rec, store.Change{To: status, Set: set, Guard: map[string]any{"attempts": c.attempt},
		Audit: store.Entry{Event: "sent", Provider: c.provider, Detail: detail}})
	if err != nil {
		return false, fmt.Errorf("failed to mark message sent: %w", err)
	}
	return ok, nil
}

func (d *Dispatcher) markSent(tx core.App, rec *core.Record, provider string, r *providers.Receipt, reconciled string) error {
	if r == nil {
		r = &providers.Receipt{}
	}
	cur := rec.GetString("status")
	if cur == providers.StatusCanceled || cur == providers.StatusSkipped {
		return nil
	}
	set := receiptFields(provider, r)
	status := cur
	if store.Rank[cur] < store.Rank[providers.StatusSent] || cur == providers.StatusFailed {
		status = providers.StatusSent
		if store.Rank[r.Status] > store.Rank[status] {
			status = r.Status
		}
		set["status_reason"], set["error_code"], set["error_message"], set["next_attempt_at"] = "", "", "", ""
	}
	if rec.GetDateTime("sent_at").IsZero() {
		set["sent_at"] = types.NowDateTime().String()
	}
	detail := map[string]any{"attempt": rec.GetInt("attempts"), "provider_message_id": r.ProviderMessageID}
	if reconciled != "" {
		detail["reconciled"] = reconciled
	}
	if _, err := d.store.Transition(tx, rec, store.Change{To: status, Set: set,
		Audit: store.Entry{Event: "sent", Provider: provider, Detail: detail}}); err != nil {
		return fmt.Errorf("failed to mark message sent: %w", err)
	}
	return nil
}

// backoff is Backoff from the configured first delay.
func (d *Dispatcher) backoff(attempt int, retryAfter time.Duration) time.Duration {
	return Backoff(d.cfg.RetryBackoff, attempt, retryAfter)
}

// Backoff is the delay before attempt+1: base doubled per attempt up to an hour, with ±20%
// jitter so that a provider outage does not end in a synchronized stampede; a vendor's
// Retry-After wins if longer. The app-event sender uses it too.
func Backoff(base time.Duration, attempt int, retryAfter time.Duration) time.Duration {
	wait := base << min(max(attempt-1, 0), 10)
	wait = min(wait, time.Hour)
	wait = time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
	return max(wait, retryAfter)
}

// receiptFields are the columns a provider's receipt fills in on a sent message.
func receiptFields(provider string, r *providers.Receipt) map[string]any {
	set := map[string]any{"provider": provider}
	if r.ProviderMessageID != "" {
		set["provider_message_id"] = r.ProviderMessageID
	}
	if r.Segments > 0 {
		set["segments"] = r.Segments // the provider's billed count beats our estimate
	}
	if r.Cost > 0 {
		set["cost"] = r.Cost
		set["currency"] = r.Currency
	}
	return set
}
