package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	params := dbx.Params{"now": formatTime(now), "lease": formatTime(now.Add(d.s.cfg.Lease)), "n": n}
	// A channel whose provider does not depend on the attempt (no failover under way) is
	// routed by the claim's own UPDATE; the others get a routing decision per message below.
	settled := map[string]bool{}
	var route strings.Builder
	for i, ch := range claimChannels {
		name, ok := d.s.Router.Settled(ch)
		if !ok {
			continue
		}
		settled[ch] = true
		fmt.Fprintf(&route, " WHEN {:ch%d} THEN {:pr%d}", i, i)
		params["ch"+strconv.Itoa(i)], params["pr"+strconv.Itoa(i)] = ch, name
	}
	setProvider := ""
	if route.Len() > 0 {
		setProvider = ", provider = CASE channel" + route.String() + " ELSE provider END"
	}
	// A canceled campaign's queued messages are left for the campaign runner to cancel.
	query := `UPDATE messages SET status = 'sending', attempts = attempts + 1, next_attempt_at = {:lease}, updated = {:now}` + setProvider + `
		WHERE id IN (SELECT id FROM messages WHERE status = 'queued' AND next_attempt_at <= {:now}
			AND (campaign = '' OR campaign NOT IN (SELECT id FROM campaigns WHERE status = 'canceled'))
			ORDER BY next_attempt_at LIMIT {:n})
		RETURNING id, channel`
	var out []claimed
	err := d.s.app.RunInTransaction(func(tx core.App) error {
		out = out[:0]
		var rows []struct {
			ID      string `db:"id"`
			Channel string `db:"channel"`
		}
		if err := tx.DB().NewQuery(query).Bind(params).All(&rows); err != nil {
			return fmt.Errorf("failed to claim due messages: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		// A routing decision per message: while the primary is being probed after an
		// outage, only one message goes to it and the rest to the fallback.
		byProvider := map[string][]any{}
		for _, r := range rows {
			if settled[r.Channel] {
				continue
			}
			name, _, err := d.s.Router.For(r.Channel)
			if err != nil {
				name = "" // no provider can carry it: failed below, a configuration fault
			}
			byProvider[name] = append(byProvider[name], r.ID)
		}
		for name, ids := range byProvider {
			if _, err := tx.DB().Update("messages", dbx.Params{"provider": name}, dbx.In("id", ids...)).Execute(); err != nil {
				return fmt.Errorf("failed to route claimed messages: %w", err)
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
		logs := make([]logEntry, 0, len(recs))
		for _, r := range recs {
			c := claimed{rec: r, attempt: r.GetInt("attempts"), provider: r.GetString("provider"), claimedAt: now, unsent: r.GetDateTime("sent_at").IsZero()}
			if c.provider == "" {
				if err := d.s.failTx(tx, r, "no_provider", "no provider is configured for channel "+r.GetString("channel"), "", c.attempt, ""); err != nil {
					return err
				}
				continue
			}
			out = append(out, c)
			logs = append(logs, logEntry{Message: r.Id, Event: "sending", Status: providers.StatusSending, Provider: c.provider, Detail: map[string]any{"attempt": c.attempt}})
			d.s.announceAfterCommit(tx, r)
		}
		return writeLogs(tx, logs)
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
	rec.Set("status", providers.StatusQueued)
	rec.Set("attempts", max(rec.GetInt("attempts")-1, 0))
	rec.Set("next_attempt_at", next)
	if err := s.persistMessage(tx, rec); err != nil {
		return fmt.Errorf("failed to release message: %w", err)
	}
	return writeLog(tx, logEntry{Message: rec.Id, Event: "released", Status: providers.StatusQueued, Provider: provider,
		Detail: map[string]any{"reason": reason, "next_attempt_at": formatTime(next)}})
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
		rec.Set("next_attempt_at", next)
		rec.Set("error_code", code)
		rec.Set("error_message", truncate(message, 1000))
		if err := s.persistMessage(tx, rec); err != nil {
			return fmt.Errorf("failed to mark message in doubt: %w", err)
		}
		detail["reconcile_at"] = formatTime(next)
		return writeLog(tx, logEntry{Message: rec.Id, Event: "in_doubt", Status: providers.StatusSending, Provider: provider, Detail: detail, ErrorCode: code})
	case class == providers.ErrPermanent:
		if provider == "twilio" && code == providers.TwilioCodeOptedOut {
			if err := s.markOptedOut(tx, rec, "twilio:"+code); err != nil {
				return err
			}
		}
		return s.failTx(tx, rec, "permanent", message, code, attempt, provider)
	case attempt >= s.cfg.MaxAttempts:
		return s.failTx(tx, rec, "attempts_exhausted", message, code, attempt, provider)
	default:
		next := time.Now().UTC().Add(s.backoff(attempt, retryAfter))
		rec.Set("status", providers.StatusQueued)
		rec.Set("next_attempt_at", next)
		rec.Set("error_code", code)
		rec.Set("error_message", truncate(message, 1000))
		if err := s.persistMessage(tx, rec); err != nil {
			return fmt.Errorf("failed to schedule retry: %w", err)
		}
		detail["next_attempt_at"] = formatTime(next)
		return writeLog(tx, logEntry{Message: rec.Id, Event: "retry_scheduled", Status: providers.StatusQueued, Provider: provider, Detail: detail, ErrorCode: code})
	}
}

func (s *Service) failTx(tx core.App, rec *core.Record, reason, message, code string, attempt int, provider string) error {
	rec.Set("status", providers.StatusFailed)
	rec.Set("status_reason", reason)
	rec.Set("error_code", code)
	rec.Set("error_message", truncate(message, 1000))
	rec.Set("next_attempt_at", "")
	if err := s.persistMessage(tx, rec); err != nil {
		return fmt.Errorf("failed to mark message failed: %w", err)
	}
	return writeLog(tx, logEntry{Message: rec.Id, Event: "failed", Status: providers.StatusFailed, Provider: provider, ErrorCode: code,
		Detail: map[string]any{"attempt": attempt, "reason": reason, "error_message": truncate(message, 300)}})
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
	if rank[r.Status] > rank[status] {
		status = r.Status
	}
	now := types.NowDateTime()
	set := dbx.Params{"status": status, "status_reason": "", "error_code": "", "error_message": "", "next_attempt_at": "",
		"provider": c.provider, "updated": now.String()}
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
	res, err := updateWhere(tx, "messages", set, dbx.Params{"id": c.rec.Id, "status": providers.StatusSending, "attempts": c.attempt})
	if err != nil {
		return false, fmt.Errorf("failed to mark message sent: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return false, err
	}
	// The claimed record is this attempt's own (the claim's announcement is long done), so
	// it is brought up to date in place rather than copied; nothing above reads it but its
	// id, so running this again after a failed group writes the same.
	for k, v := range set {
		setField(c.rec, k, v)
	}
	s.announceAfterCommit(tx, c.rec)
	detail := map[string]any{"attempt": c.attempt, "provider_message_id": r.ProviderMessageID}
	if reconciled != "" {
		detail["reconciled"] = reconciled
	}
	return true, writeLog(tx, logEntry{Message: c.rec.Id, Event: "sent", Status: status, Provider: c.provider, Detail: detail})
}

func (s *Service) markSent(tx core.App, rec *core.Record, provider string, r *providers.Receipt, reconciled string) error {
	if r == nil {
		r = &providers.Receipt{}
	}
	cur := rec.GetString("status")
	if cur == providers.StatusCanceled || cur == providers.StatusSkipped {
		return nil
	}
	rec.Set("provider", provider)
	if r.ProviderMessageID != "" {
		rec.Set("provider_message_id", r.ProviderMessageID)
	}
	if r.Segments > 0 {
		rec.Set("segments", r.Segments) // the provider's billed count beats our estimate
	}
	if r.Cost > 0 {
		rec.Set("cost", r.Cost)
		rec.Set("currency", r.Currency)
	}
	status := cur
	if rank[cur] < rank[providers.StatusSent] || cur == providers.StatusFailed {
		status = providers.StatusSent
		if rank[r.Status] > rank[status] {
			status = r.Status
		}
		rec.Set("status", status)
		rec.Set("status_reason", "")
		rec.Set("error_code", "")
		rec.Set("error_message", "")
		rec.Set("next_attempt_at", "")
	}
	if rec.GetDateTime("sent_at").IsZero() {
		rec.Set("sent_at", types.NowDateTime())
	}
	if err := s.persistMessage(tx, rec); err != nil {
		return fmt.Errorf("failed to mark message sent: %w", err)
	}
	detail := map[string]any{"attempt": rec.GetInt("attempts"), "provider_message_id": r.ProviderMessageID}
	if reconciled != "" {
		detail["reconciled"] = reconciled
	}
	return writeLog(tx, logEntry{Message: rec.Id, Event: "sent", Status: status, Provider: provider, Detail: detail})
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
			recs, err := tx.FindRecordsByFilter("messages", "status = 'scheduled' && next_attempt_at <= {:now}", "next_attempt_at", 500, 0, dbx.Params{"now": formatTime(time.Now().UTC())})
			if err != nil {
				return err
			}
			n = len(recs)
			for _, r := range recs {
				r.Set("status", providers.StatusQueued)
				if err := d.s.persistMessage(tx, r); err != nil {
					return err
				}
				if err := writeLog(tx, logEntry{Message: r.Id, Event: "queued", Status: providers.StatusQueued, Detail: map[string]any{"reason": "send_at reached"}}); err != nil {
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
		recs, err := d.s.app.FindRecordsByFilter("messages", "status = 'sending' && next_attempt_at < {:cut}", "next_attempt_at", 100, 0, dbx.Params{"cut": formatTime(cutoff)})
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
		if err := writeLog(tx, logEntry{Message: rec.Id, Event: "lease_expired", Status: providers.StatusSending, Provider: provider, Detail: map[string]any{"attempt": rec.GetInt("attempts"), "reconciled": outcome}}); err != nil {
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

// formatTime writes t the way PocketBase stores dates, so string comparison orders them.
func formatTime(t time.Time) string {
	return t.UTC().Format(types.DefaultDateLayout)
}
