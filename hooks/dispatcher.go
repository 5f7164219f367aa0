package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"clinicmsg/internal/store"
	"clinicmsg/providers"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"
)

// Dispatcher sends queued messages. The messages table is the queue: a row is claimed with
// a lease (status "sending", next_attempt_at = lease end) in a transaction, sent outside
// any transaction, and its result written in another. Nothing lives only in memory, so a
// restart resumes exactly where the database says.
type Dispatcher struct {
	s    *Service
	wake chan struct{}

	mu         sync.Mutex
	started    bool
	stopped    bool
	loopCancel context.CancelFunc
	loopDone   chan struct{}
	sendCtx    context.Context
	sendCancel context.CancelFunc

	inflight sync.WaitGroup
	busy     atomic.Int64
}

func newDispatcher(s *Service) *Dispatcher {
	return &Dispatcher{s: s, wake: make(chan struct{}, 1)}
}

// Start recovers rows a previous process left mid-send and starts the dispatch loop. It is
// safe to call more than once.
func (d *Dispatcher) Start() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started || d.stopped {
		return
	}
	d.started = true
	loopCtx, loopCancel := context.WithCancel(context.Background())
	d.loopCancel = loopCancel
	d.sendCtx, d.sendCancel = context.WithCancel(context.Background())
	d.loopDone = make(chan struct{})
	go d.loop(loopCtx)
}

// Wake asks the loop to claim due messages now instead of at the next sweep.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Stop stops claiming, lets in-flight sends finish for the shutdown grace period, then
// cancels the rest; every claimed row is written back (sent, queued for retry, or left in
// doubt for reconciliation) before Stop returns.
func (d *Dispatcher) Stop() {
	d.mu.Lock()
	if !d.started || d.stopped {
		d.stopped = true
		d.mu.Unlock()
		return
	}
	d.stopped = true
	d.mu.Unlock()

	d.loopCancel()
	<-d.loopDone

	done := make(chan struct{})
	go func() { d.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d.s.cfg.ShutdownGrace):
		d.sendCancel()
		<-done
	}
	d.sendCancel()
}

func (d *Dispatcher) loop(ctx context.Context) {
	defer close(d.loopDone)
	// Orphans are "sending", so claims never take them: new messages go out while the
	// previous process's sends are being reconciled.
	d.inflight.Add(1)
	go func() {
		defer d.inflight.Done()
		d.recoverOrphans()
	}()
	d.sweep(ctx)
	d.fill(ctx)
	ticker := time.NewTicker(d.s.cfg.SweepInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
			// While many sends are in flight, wait until a few slots are free: a claim is a
			// transaction of its own, and claiming one row per finished send would spend
			// the writer on commits. The ticker below claims whatever is free.
			if free := d.s.cfg.Workers - int(d.busy.Load()); d.busy.Load() == 0 || free >= d.claimThreshold() {
				d.fill(ctx)
			}
		case <-ticker.C:
			d.sweep(ctx)
			d.fill(ctx)
		}
	}
}

// claimThreshold is how many send slots must be free before a wake-up claims more rows.
func (d *Dispatcher) claimThreshold() int {
	return max(1, min(d.s.cfg.ClaimBatch, d.s.cfg.Workers/16))
}

// claimed is one row this process holds the lease on.
type claimed struct {
	rec       *core.Record
	attempt   int
	provider  string
	claimedAt time.Time
	unsent    bool // sent_at was empty when claimed
}

// fill claims as many due rows as there are free send slots and starts their sends.
func (d *Dispatcher) fill(ctx context.Context) {
	for ctx.Err() == nil {
		free := d.s.cfg.Workers - int(d.busy.Load())
		if free <= 0 {
			return
		}
		n := min(free, d.s.cfg.ClaimBatch)
		batch, err := d.claim(n)
		if err != nil {
			d.s.app.Logger().Error("failed to claim due messages", "error", err)
			return
		}
		for _, c := range batch {
			d.busy.Add(1)
			d.inflight.Add(1)
			go d.send(c)
		}
		if len(batch) < n {
			return
		}
	}
}

// claimChannels are the channels the claim routes in its own UPDATE when it can.
var claimChannels = []string{providers.ChannelSMS, providers.ChannelWhatsApp, providers.ChannelEmail}

func (d *Dispatcher) claim(n int) ([]claimed, error) {
	now := time.Now().UTC()
	// A channel whose provider does not depend on the attempt (no failover under way) is
	// routed by the claim's own UPDATE; the others get a routing decision per message below.
	routes := map[string]string{}
	for _, ch := range claimChannels {
		if name, ok := d.s.Router.Settled(ch); ok {
			routes[ch] = name
		}
	}
	var out []claimed
	err := d.s.app.RunInTransaction(func(tx core.App) error {
		out = out[:0]
		rows, err := d.s.store.Claim(tx, n, now, now.Add(d.s.cfg.Lease), routes)
		if err != nil || len(rows) == 0 {
			return err
		}
		// A routing decision per message: while the primary is being probed after an
		// outage, only one message goes to it and the rest to the fallback.
		byProvider := map[string][]any{}
		for _, r := range rows {
			if _, settled := routes[r.Channel]; settled {
				continue
			}
			name, _, err := d.s.Router.For(r.Channel)
			if err != nil {
				name = "" // no provider can carry it: failed below, a configuration fault
			}
			byProvider[name] = append(byProvider[name], r.ID)
		}
		for name, ids := range byProvider {
			if err := store.Route(tx, name, ids); err != nil {
				return err
			}
		}
		// Reading the rows again costs less than returning every column from the UPDATE.
		in := make([]any, len(rows))
		for i, r := range rows {
			in[i] = r.ID
		}
		var recs []*core.Record
		if err := tx.RecordQuery("messages").AndWhere(dbx.In("id", in...)).OrderBy("next_attempt_at").All(&recs); err != nil {
			return fmt.Errorf("failed to load claimed messages: %w", err)
		}
		// Consent is a send-time rule: whatever path created the message and however long it
		// waited, the patient's preferences as they are now decide whether it goes.
		refused, err := d.s.consentAtSend(recs)
		if err != nil {
			return err
		}
		logs := make([]store.Entry, 0, len(recs))
		for _, r := range recs {
			c := claimed{rec: r, attempt: r.GetInt("attempts"), provider: r.GetString("provider"), claimedAt: now, unsent: r.GetDateTime("sent_at").IsZero()}
			if reason := refused[r.Id]; reason != "" {
				if err := d.s.skipTx(tx, r, reason, "send"); err != nil {
					return err
				}
				continue
			}
			if c.provider == "" {
				if err := d.s.failTx(tx, r, "no_provider", "no provider is configured for channel "+r.GetString("channel"), "", c.attempt, ""); err != nil {
					return err
				}
				continue
			}
			out = append(out, c)
			logs = append(logs, store.Entry{Message: r.Id, Event: "sending", Status: providers.StatusSending, Provider: c.provider, Detail: map[string]any{"attempt": c.attempt}})
			d.s.store.Announce(tx, r)
		}
		return store.WriteLogs(tx, logs)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// send makes one attempt outside any transaction and writes its outcome.
func (d *Dispatcher) send(c claimed) {
	slotHeld := true
	freeSlot := func() {
		if slotHeld {
			slotHeld = false
			d.busy.Add(-1)
			d.Wake()
		}
	}
	defer func() {
		freeSlot()
		d.inflight.Done()
	}()
	defer func() {
		if r := recover(); r != nil {
			d.s.app.Logger().Error("send panicked; the message stays in doubt until its lease ends", "message", c.rec.Id, "panic", fmt.Sprint(r))
		}
	}()

	p, ok := d.s.Router.Provider(c.provider)
	if !ok {
		d.finish(c, nil, &providers.Error{Provider: c.provider, Class: providers.ErrPermanent, Message: "provider is no longer configured"}, "")
		return
	}
	msg, err := d.s.providerMessage(c.rec, c.claimedAt)
	if err != nil {
		d.finish(c, nil, &providers.Error{Provider: c.provider, Class: providers.ErrPermanent, Message: err.Error()}, "")
		return
	}
	// Free-form WhatsApp reaches a patient only within 24 hours of their last message; say
	// so now rather than let the vendor refuse it (Twilio 63016). The mock takes free-form
	// text, so a new install works without a WhatsApp account.
	if msg.Channel == providers.ChannelWhatsApp && msg.ContentSID == "" && c.provider != "mock" {
		open, err := d.s.inWhatsAppWindow(d.s.app, c.rec)
		if err != nil {
			d.s.app.Logger().Error("failed to check the WhatsApp window; the message stays queued", "message", c.rec.Id, "error", err)
			d.release(c, "window_check_failed", time.Minute)
			return
		}
		if !open {
			d.finish(c, nil, &providers.Error{Provider: c.provider, Class: providers.ErrPermanent, Code: "outside_whatsapp_window",
				Message: "free-form WhatsApp is allowed only within 24 hours of the patient's last WhatsApp message, and the template has no approved content SID (whatsapp_content_sid_" + msg.Language + ")"}, "")
			return
		}
	}

	// Pace the provider. The wait is bounded well inside the lease: a row that cannot get a
	// turn soon goes back to the queue without using an attempt.
	limiter := d.s.Router.Limiter(c.provider)
	waitCtx, cancelWait := context.WithTimeout(d.sendCtx, d.s.cfg.Lease/4)
	err = limiter.Wait(waitCtx, msg.Segments)
	cancelWait()
	if err != nil {
		d.release(c, "rate_limited", time.Second)
		return
	}

	ctx, cancel := context.WithTimeout(d.sendCtx, d.s.cfg.SendTimeout)
	started := time.Now()
	receipt, err := p.Send(ctx, msg)
	cancel()
	d.s.observeSend(c.provider, msg.Channel, time.Since(started), err)
	d.s.Router.Report(c.provider, err)
	if err == nil {
		limiter.Accepted()
	}

	reconciled := ""
	if err != nil && providers.ClassOf(err) == providers.ErrUnknown {
		receipt, err, reconciled = d.reconcile(p, msg, err)
	}
	// The slot bounds the requests open at the provider: once it has answered, the next
	// message may go while this one's outcome waits for its group commit (the lease
	// still holds the row, and a stop still waits for the outcome).
	freeSlot()
	d.finish(c, receipt, err, reconciled)
}

// reconcile settles an unknown outcome: found at the provider means sent; not found means
// a resend is safe; a provider that cannot tell leaves the message in doubt.
func (d *Dispatcher) reconcile(p providers.Provider, msg *providers.Message, sendErr error) (*providers.Receipt, error, string) {
	rc, ok := p.(providers.Reconciler)
	if !ok {
		return nil, sendErr, "unsupported"
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.s.cfg.SendTimeout)
	defer cancel()
	receipt, err := rc.Reconcile(ctx, msg)
	switch {
	case err != nil:
		return nil, errors.Join(sendErr, fmt.Errorf("failed to reconcile: %w", err)), "failed"
	case receipt != nil:
		return receipt, nil, "found"
	default:
		e := &providers.Error{Provider: "reconcile", Class: providers.ErrRetryable, Code: "not_found_at_provider", Message: "the provider has no record of the attempt", Err: sendErr}
		if pe, ok := providers.AsError(sendErr); ok && pe.Code != "" {
			e.Code = pe.Code
			e.Message = pe.Message + "; the provider has no record of the attempt"
		}
		return nil, e, "not_found"
	}
}

// finish writes the outcome of attempt c, unless the row has moved on without us.
func (d *Dispatcher) finish(c claimed, receipt *providers.Receipt, sendErr error, reconciled string) {
	err := d.s.writer.Do(func(tx core.App) error {
		if sendErr == nil {
			if done, err := d.s.markSentLeased(tx, c, receipt, reconciled); done || err != nil {
				return err
			}
		}
		rec, err := tx.FindRecordById("messages", c.rec.Id)
		if err != nil {
			return fmt.Errorf("failed to reload message: %w", err)
		}
		if sendErr == nil {
			return d.s.markSent(tx, rec, c.provider, receipt, reconciled)
		}
		if rec.GetString("status") != providers.StatusSending || rec.GetInt("attempts") != c.attempt {
			return nil // the lease was lost; whoever holds the row now decides
		}
		return d.s.settleFailure(tx, rec, c.provider, sendErr, reconciled)
	})
	if err != nil {
		d.s.app.Logger().Error("failed to record send outcome; the lease will expire and the message will be reconciled", "message", c.rec.Id, "error", err)
	}
}

// release puts a claimed row back in the queue without counting the attempt: it was
// never sent (our own rate limit, or the provider refused it with 429 before doing anything).
func (d *Dispatcher) release(c claimed, reason string, after time.Duration) {
	err := d.s.writer.Do(func(tx core.App) error {
		rec, err := tx.FindRecordById("messages", c.rec.Id)
		if err != nil {
			return fmt.Errorf("failed to reload message: %w", err)
		}
		if rec.GetString("status") != providers.StatusSending || rec.GetInt("attempts") != c.attempt {
			return nil
		}
		return d.s.releaseTx(tx, rec, c.provider, reason, after)
	})
	if err != nil {
		d.s.app.Logger().Error("failed to release a message; its lease will expire", "message", c.rec.Id, "error", err)
	}
}

func (s *Service) releaseTx(tx core.App, rec *core.Record, provider, reason string, after time.Duration) error {
	next := time.Now().UTC().Add(after)
	_, err := s.store.Transition(tx, rec, store.Change{To: providers.StatusQueued,
		Set: map[string]any{"attempts": max(rec.GetInt("attempts")-1, 0), "next_attempt_at": store.FormatTime(next)},
		Audit: store.Entry{Event: "released", Provider: provider,
			Detail: map[string]any{"reason": reason, "next_attempt_at": store.FormatTime(next)}}})
	if err != nil {
		return fmt.Errorf("failed to release message: %w", err)
	}
	return nil
}

// settleFailure decides what a failed attempt leads to: failed, retry later, or in doubt.
func (s *Service) settleFailure(tx core.App, rec *core.Record, provider string, sendErr error, reconciled string) error {
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
		pause := s.Router.Limiter(provider).Throttled(retryAfter)
		return s.releaseTx(tx, rec, provider, "provider_throttled", pause)
	case inDoubt:
		// We cannot tell whether the provider has it; resending could reach the patient twice.
		next := time.Now().UTC().Add(s.backoff(attempt, retryAfter))
		detail["reconcile_at"] = store.FormatTime(next)
		_, err := s.store.Transition(tx, rec, store.Change{
			Set:   map[string]any{"next_attempt_at": store.FormatTime(next), "error_code": code, "error_message": truncate(message, 1000)},
			Audit: store.Entry{Event: "in_doubt", Provider: provider, Detail: detail, ErrorCode: code}})
		if err != nil {
			return fmt.Errorf("failed to mark message in doubt: %w", err)
		}
		return nil
	case class == providers.ErrPermanent:
		if providers.IsOptedOut(provider, code) {
			if err := s.markOptedOut(tx, rec, provider+":"+code); err != nil {
				return err
			}
		}
		return s.failTx(tx, rec, "permanent", message, code, attempt, provider)
	case attempt >= s.cfg.MaxAttempts:
		return s.failTx(tx, rec, "attempts_exhausted", message, code, attempt, provider)
	default:
		next := time.Now().UTC().Add(s.backoff(attempt, retryAfter))
		detail["next_attempt_at"] = store.FormatTime(next)
		_, err := s.store.Transition(tx, rec, store.Change{To: providers.StatusQueued,
			Set:   map[string]any{"next_attempt_at": store.FormatTime(next), "error_code": code, "error_message": truncate(message, 1000)},
			Audit: store.Entry{Event: "retry_scheduled", Provider: provider, Detail: detail, ErrorCode: code}})
		if err != nil {
			return fmt.Errorf("failed to schedule retry: %w", err)
		}
		return nil
	}
}

func (s *Service) failTx(tx core.App, rec *core.Record, reason, message, code string, attempt int, provider string) error {
	_, err := s.store.Transition(tx, rec, store.Change{To: providers.StatusFailed,
		Set: map[string]any{"status_reason": reason, "error_code": code, "error_message": truncate(message, 1000), "next_attempt_at": ""},
		Audit: store.Entry{Event: "failed", Provider: provider, ErrorCode: code,
			Detail: map[string]any{"attempt": attempt, "reason": reason, "error_message": truncate(message, 300)}}})
	if err != nil {
		return fmt.Errorf("failed to mark message failed: %w", err)
	}
	return nil
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
		if reason := consentReason(prefs, ch, r.GetString("category")); reason != "" {
			refused[r.Id] = reason
		}
	}
	return refused, nil
}

// requeueTx queues a failed message again (a person's retry or the retry job); audit
// says who asked. The claim checks consent again before it is sent.
func (s *Service) requeueTx(tx core.App, rec *core.Record, audit store.Entry) error {
	audit.Event = "retry_requested"
	_, err := s.store.Transition(tx, rec, store.Change{To: providers.StatusQueued,
		Set:   map[string]any{"status_reason": "", "next_attempt_at": types.NowDateTime().String()},
		Audit: audit})
	return err
}

// skipTx ends a waiting or claimed message as skipped: the patient's consent, as it is
// now, forbids it. stage says where the rule caught it (send, opt_out) for the audit row.
func (s *Service) skipTx(tx core.App, rec *core.Record, reason, stage string) error {
	_, err := s.store.Transition(tx, rec, store.Change{To: providers.StatusSkipped,
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
func (s *Service) markSentLeased(tx core.App, c claimed, r *providers.Receipt, reconciled string) (bool, error) {
	if r == nil {
		r = &providers.Receipt{}
	}
	status := providers.StatusSent
	if store.Rank[r.Status] > store.Rank[status] {
		status = r.Status
	}
	now := types.NowDateTime()
	set := map[string]any{"status_reason": "", "error_code": "", "error_message": "", "next_attempt_at": "",
		"provider": c.provider}
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
	ok, err := s.store.Transition(tx, c.rec, store.Change{To: status, Set: set, Guard: map[string]any{"attempts": c.attempt},
		Audit: store.Entry{Event: "sent", Provider: c.provider, Detail: detail}})
	if err != nil {
		return false, fmt.Errorf("failed to mark message sent: %w", err)
	}
	return ok, nil
}

func (s *Service) markSent(tx core.App, rec *core.Record, provider string, r *providers.Receipt, reconciled string) error {
	if r == nil {
		r = &providers.Receipt{}
	}
	cur := rec.GetString("status")
	if cur == providers.StatusCanceled || cur == providers.StatusSkipped {
		return nil
	}
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
	if _, err := s.store.Transition(tx, rec, store.Change{To: status, Set: set,
		Audit: store.Entry{Event: "sent", Provider: provider, Detail: detail}}); err != nil {
		return fmt.Errorf("failed to mark message sent: %w", err)
	}
	return nil
}

// backoff doubles from RetryBackoff per attempt, with ±20% jitter so that a provider
// outage does not end in a synchronized stampede; a vendor's Retry-After wins if longer.
func (s *Service) backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := s.cfg.RetryBackoff << min(max(attempt-1, 0), 10)
	d = min(d, time.Hour)
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	return max(d, retryAfter)
}

// sweep moves due scheduled messages to the queue and settles rows whose lease expired.
func (d *Dispatcher) sweep(ctx context.Context) {
	if err := d.promoteScheduled(); err != nil {
		d.s.app.Logger().Error("failed to queue due scheduled messages", "error", err)
	}
	d.settleExpired(ctx, time.Now().UTC())
}

func (d *Dispatcher) promoteScheduled() error {
	for {
		n := 0
		err := d.s.app.RunInTransaction(func(tx core.App) error {
			recs, err := tx.FindRecordsByFilter("messages", "status = 'scheduled' && next_attempt_at <= {:now}", "next_attempt_at", 500, 0, dbx.Params{"now": store.FormatTime(time.Now().UTC())})
			if err != nil {
				return err
			}
			n = len(recs)
			for _, r := range recs {
				_, err := d.s.store.Transition(tx, r, store.Change{To: providers.StatusQueued,
					Audit: store.Entry{Event: "queued", Detail: map[string]any{"reason": "send_at reached"}}})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil || n < 500 {
			return err
		}
	}
}

// recoverOrphans settles every row a previous process left "sending" at once: one
// appliance process owns a data folder, so no live worker holds those leases. It runs
// beside new claims, and tells the two apart by the lease: every claim of this process
// leases until at least now + Lease.
func (d *Dispatcher) recoverOrphans() {
	d.settleExpired(context.Background(), time.Now().UTC().Add(d.s.cfg.Lease))
}

// settleExpired reconciles "sending" rows whose lease ends before cutoff: found at the
// provider means sent; otherwise they are queued again while attempts remain.
func (d *Dispatcher) settleExpired(ctx context.Context, cutoff time.Time) {
	for ctx.Err() == nil {
		recs, err := d.s.app.FindRecordsByFilter("messages", "status = 'sending' && next_attempt_at < {:cut}", "next_attempt_at", 100, 0, dbx.Params{"cut": store.FormatTime(cutoff)})
		if err != nil {
			d.s.app.Logger().Error("failed to find expired leases", "error", err)
			return
		}
		// Reconciling asks the provider once per row; a few at a time keeps a restart after
		// a crash with many sends in flight from taking minutes.
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for _, r := range recs {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				d.settleOne(r)
			}()
		}
		wg.Wait()
		if len(recs) < 100 {
			return
		}
	}
}

func (d *Dispatcher) settleOne(r *core.Record) {
	claimedAt := r.GetDateTime("next_attempt_at").Time().Add(-d.s.cfg.Lease)
	provider := r.GetString("provider")
	p, ok := d.s.Router.Provider(provider)
	var receipt *providers.Receipt
	var outcome string
	var sendErr error = &providers.Error{Provider: provider, Class: providers.ErrUnknown, Message: "the lease expired before the send outcome was recorded"}
	if ok {
		if msg, err := d.s.providerMessage(r, claimedAt); err == nil {
			receipt, sendErr, outcome = d.reconcile(p, msg, sendErr)
		}
	}
	if outcome == "unsupported" {
		// The provider cannot say whether it has the message; sending again risks a
		// duplicate, never a loss.
		sendErr = &providers.Error{Provider: provider, Class: providers.ErrRetryable, Message: "the lease expired; the provider cannot reconcile, so the message is sent again", Err: sendErr}
	}
	leaseEnd := r.GetString("next_attempt_at")
	err := d.s.writer.Do(func(tx core.App) error {
		rec, err := tx.FindRecordById("messages", r.Id)
		if err != nil {
			return err
		}
		if rec.GetString("status") != providers.StatusSending || rec.GetString("next_attempt_at") != leaseEnd {
			return nil
		}
		if err := store.WriteLog(tx, store.Entry{Message: rec.Id, Event: "lease_expired", Status: providers.StatusSending, Provider: provider, Detail: map[string]any{"attempt": rec.GetInt("attempts"), "reconciled": outcome}}); err != nil {
			return err
		}
		if sendErr == nil {
			return d.s.markSent(tx, rec, provider, receipt, outcome)
		}
		return d.s.settleFailure(tx, rec, provider, sendErr, outcome)
	})
	if err != nil {
		d.s.app.Logger().Error("failed to settle an expired lease", "message", r.Id, "error", err)
	}
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
	for i, name := range placeholders(body) {
		out[fmt.Sprint(i+1)] = stringify(vars[name])
	}
	return out
}
