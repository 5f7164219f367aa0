// Package dispatch is the send pipeline: the loop that claims due messages with a lease,
// sends them through the providers outside any transaction, writes each outcome (sent,
// retry, failed, in doubt) through the store, settles expired leases by asking the
// provider, and applies delivery reports. It reaches the rest of the appliance through the
// small Env interface it declares, and writes only through internal/store.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"clinicmsg/internal/store"
	"clinicmsg/internal/worker"
	"clinicmsg/providers"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
)

// Config are the dispatcher's settings (hooks.Config carries them from the environment).
type Config struct {
	Workers       int           // sends in flight at once; 0: learned from the provider (Concurrency)
	Rate          float64       // segments per second the providers allow (TWILIO_MPS, UNIFONIC_MPS); 0: unknown
	ClaimBatch    int           // rows claimed per claim
	Lease         time.Duration // how long a claimed row is ours
	SendTimeout   time.Duration // one provider request
	SweepInterval time.Duration // scheduled rows, retries and expired leases
	ShutdownGrace time.Duration // how long Stop lets in-flight sends finish
	MaxAttempts   int
	RetryBackoff  time.Duration // first retry's delay, doubled per attempt
}

// Env is what the dispatcher needs from the appliance around it.
type Env interface {
	// ProviderMessage builds what a provider needs from a message row (the clinic's
	// sender, a WhatsApp template's content SID).
	ProviderMessage(rec *core.Record, claimedAt time.Time) (*providers.Message, error)
	// Consent says which of the claimed messages the patients' consent forbids now, by
	// id with the reason.
	Consent(recs []*core.Record) (map[string]string, error)
	// InWhatsAppWindow reports whether the patient wrote on WhatsApp within 24 hours.
	InWhatsAppWindow(rec *core.Record) (bool, error)
	// OptedOut records in tx that the carrier refused the patient as opted out.
	OptedOut(tx core.App, rec *core.Record, source string) error
	// ObserveSend records one provider request for the metrics.
	ObserveSend(provider, channel string, took time.Duration, err error)
}

// Dispatcher sends queued messages. The messages table is the queue: a row is claimed with
// a lease (status "sending", next_attempt_at = lease end) in a transaction, sent outside
// any transaction, and its result written in another. Nothing lives only in memory, so a
// restart resumes exactly where the database says.
type Dispatcher struct {
	app    core.App
	store  *store.Store
	writer *store.Writer
	router *providers.Router
	cfg    Config
	env    Env
	loop   *worker.Worker
	slots  *Concurrency

	mu         sync.Mutex
	started    bool
	stopped    bool
	sendCtx    context.Context
	sendCancel context.CancelFunc

	inflight sync.WaitGroup
	busy     atomic.Int64

	// ready holds claimed messages waiting for a send slot: a slot that frees starts the
	// next one at once instead of waiting for a claim (a round trip through the writer's
	// group). Each holds its lease and counts in inflight; Stop releases what is left.
	readyMu  sync.Mutex
	ready    []claimed
	draining bool
}

// New returns a dispatcher that has not started.
func New(app core.App, st *store.Store, w *store.Writer, router *providers.Router, cfg Config, env Env) *Dispatcher {
	d := &Dispatcher{app: app, store: st, writer: w, router: router, cfg: cfg, env: env, loop: worker.New(), slots: NewConcurrency(cfg.Workers, cfg.Rate)}
	d.sendCtx, d.sendCancel = context.WithCancel(context.Background())
	return d
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
	// Orphans are "sending", so claims never take them: new messages go out while the
	// previous process's sends are being reconciled.
	d.inflight.Add(1)
	go func() {
		defer d.inflight.Done()
		d.recoverOrphans()
	}()
	d.loop.Start(d.cfg.SweepInterval, d.pass)
}

// Wake asks the loop to claim due messages now instead of at the next sweep.
func (d *Dispatcher) Wake() {
	d.loop.Wake()
}

// Stop stops claiming, lets in-flight sends finish for the shutdown grace period, then
// cancels the rest; every claimed row is written back (sent, queued for retry, or left in
// doubt for reconciliation) before Stop returns.
func (d *Dispatcher) Stop() {
	d.mu.Lock()
	if !d.started || d.stopped {
		d.stopped = true
		d.mu.Unlock()
		d.sendCancel()
		return
	}
	d.stopped = true
	d.mu.Unlock()

	if !d.loop.Stop(d.cfg.ShutdownGrace) {
		d.app.Logger().Warn("the dispatch loop did not stop within the grace period")
	}
	// Claimed messages not yet started go back to the queue without using an attempt.
	d.readyMu.Lock()
	d.draining = true
	left := d.ready
	d.ready = nil
	d.readyMu.Unlock()
	d.release("shutdown", 0, left...)
	for range left {
		d.inflight.Done()
	}
	done := make(chan struct{})
	go func() { d.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d.cfg.ShutdownGrace):
		d.sendCancel()
		<-done
	}
	d.sendCancel()
}

// pass is one turn of the loop: at every tick it queues due scheduled messages, settles
// expired leases and claims; on a wake-up it only claims.
func (d *Dispatcher) pass(ctx context.Context, tick bool) {
	if tick {
		d.sweep(ctx)
		d.fill(ctx)
		return
	}
	// While many sends are in flight, wait until a few rows are wanted: claiming one row
	// per finished send would spend the writer on tiny claims. The next tick claims
	// whatever is wanted.
	if d.busy.Load() == 0 || d.wanted() >= d.claimThreshold() {
		d.fill(ctx)
	}
}

// claimThreshold is how many rows must be wanted before a wake-up claims more.
func (d *Dispatcher) claimThreshold() int {
	return max(1, min(d.cfg.ClaimBatch, d.slots.Limit()/16))
}

// wanted is how many more rows the dispatcher would hold: one per free send slot plus a
// quarter of the slots in hand, less those already waiting in ready. The quarter covers the
// sends that finish while a claim waits for its group commit (clinicmsg bench B3, 256 in
// flight: with an eighth the hand ran dry in half the samples; 0.74 → 0.81–0.83 of the
// latency bound against 0.76–0.80).
func (d *Dispatcher) wanted() int {
	limit := d.slots.Limit()
	hand := limit / 4
	// Against a provider that takes long to answer, a claim's round trip is lost in its
	// latency and a message in hand would only wait: none are held.
	if d.slots.Latency() > d.maxHeld()/4 {
		hand = 0
	}
	d.readyMu.Lock()
	n := len(d.ready)
	d.readyMu.Unlock()
	return limit - int(d.busy.Load()) + hand - n
}

// maxInHand is the longest a claimed message may wait in hand before it is sent.
const maxInHand = 5 * time.Second

// maxHeld is maxInHand, or half the lease if that is shorter.
func (d *Dispatcher) maxHeld() time.Duration {
	if d.cfg.Lease > 0 {
		return min(maxInHand, d.cfg.Lease/2)
	}
	return maxInHand
}

// startReady starts ready messages while send slots are free.
func (d *Dispatcher) startReady() {
	d.readyMu.Lock()
	defer d.readyMu.Unlock()
	for len(d.ready) > 0 && !d.draining && int(d.busy.Load()) < d.slots.Limit() {
		c := d.ready[0]
		d.ready[0] = claimed{}
		d.ready = d.ready[1:]
		d.busy.Add(1)
		go d.send(c)
	}
}

// claimed is one row this process holds the lease on.
type claimed struct {
	rec       *core.Record
	attempt   int
	provider  string
	claimedAt time.Time
	unsent    bool // sent_at was empty when claimed
}

// fill claims the rows wanted (wanted) into ready and starts as many as slots are free.
func (d *Dispatcher) fill(ctx context.Context) {
	for ctx.Err() == nil {
		d.startReady()
		want := d.wanted()
		if want <= 0 {
			return
		}
		n := min(want, d.cfg.ClaimBatch)
		batch, err := d.claim(n)
		if err != nil {
			d.app.Logger().Error("failed to claim due messages", "error", err)
			return
		}
		d.inflight.Add(len(batch))
		d.readyMu.Lock()
		draining := d.draining
		if !draining {
			d.ready = append(d.ready, batch...)
		}
		d.readyMu.Unlock()
		if draining { // a pass that outlived Stop's wait: its rows go back at once
			d.release("shutdown", 0, batch...)
			for range batch {
				d.inflight.Done()
			}
			return
		}
		d.startReady()
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
		if name, ok := d.router.Settled(ch); ok {
			routes[ch] = name
		}
	}
	var out []claimed
	// The claim is one of the writer's group ops: it shares its commit with the creates
	// and outcomes waiting beside it, and claims the rows created ahead of it in the same
	// group. A claim of its own was a second write transaction for every few messages.
	err := d.writer.Do(func(tx core.App) error {
		out = out[:0]
		recs, err := d.store.Claim(tx, n, now, now.Add(d.cfg.Lease), routes)
		if err != nil || len(recs) == 0 {
			return err
		}
		// A routing decision per message: while the primary is being probed after an
		// outage, only one message goes to it and the rest to the fallback.
		byProvider := map[string][]*core.Record{}
		for _, r := range recs {
			ch := r.GetString("channel")
			if _, settled := routes[ch]; settled {
				continue
			}
			name, _, err := d.router.For(ch)
			if err != nil {
				name = "" // no provider can carry it: failed below, a configuration fault
			}
			byProvider[name] = append(byProvider[name], r)
		}
		for name, rs := range byProvider {
			ids := make([]any, len(rs))
			for i, r := range rs {
				ids[i] = r.Id
			}
			if err := store.Route(tx, name, ids); err != nil {
				return err
			}
			for _, r := range rs {
				r.SetRaw("provider", name)
				if err := r.PostScan(); err != nil { // the stored row, routed
					return err
				}
			}
		}
		// Consent is a send-time rule: whatever path created the message and however long it
		// waited, the patient's preferences as they are now decide whether it goes.
		refused, err := d.env.Consent(recs)
		if err != nil {
			return err
		}
		logs := make([]store.Entry, 0, len(recs))
		for _, r := range recs {
			c := claimed{rec: r, attempt: r.GetInt("attempts"), provider: r.GetString("provider"), claimedAt: now, unsent: r.GetDateTime("sent_at").IsZero()}
			if reason := refused[r.Id]; reason != "" {
				if err := d.Skip(tx, r, reason, "send"); err != nil {
					return err
				}
				continue
			}
			if c.provider == "" {
				if err := d.failTx(tx, r, "no_provider", "no provider is configured for channel "+r.GetString("channel"), "", c.attempt, ""); err != nil {
					return err
				}
				continue
			}
			out = append(out, c)
			logs = append(logs, store.Entry{Message: r.Id, Event: "sending", Status: providers.StatusSending, Provider: c.provider, Detail: map[string]any{"attempt": c.attempt}})
			d.store.Announce(tx, r)
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
			d.startReady()
			d.Wake()
		}
	}
	defer func() {
		freeSlot()
		d.inflight.Done()
	}()
	defer func() {
		if r := recover(); r != nil {
			d.app.Logger().Error("send panicked; the message stays in doubt until its lease ends", "message", c.rec.Id, "panic", fmt.Sprint(r))
		}
	}()

	// A row held in hand too long goes back rather than out: consent was read when it was
	// claimed and is a send-time rule, and past its lease the sweep may settle it as in
	// doubt. The claim that takes it again reads consent again.
	if time.Since(c.claimedAt) > d.maxHeld() {
		d.release("waited_too_long", 0, c)
		return
	}
	p, ok := d.router.Provider(c.provider)
	if !ok {
		d.finish(c, nil, &providers.Error{Provider: c.provider, Class: providers.ErrPermanent, Message: "provider is no longer configured"}, "")
		return
	}
	msg, err := d.env.ProviderMessage(c.rec, c.claimedAt)
	if err != nil {
		d.finish(c, nil, &providers.Error{Provider: c.provider, Class: providers.ErrPermanent, Message: err.Error()}, "")
		return
	}
	// Free-form WhatsApp reaches a patient only within 24 hours of their last message; say
	// so now rather than let the vendor refuse it (Twilio 63016). The mock takes free-form
	// text, so a new install works without a WhatsApp account.
	if msg.Channel == providers.ChannelWhatsApp && msg.ContentSID == "" && c.provider != "mock" {
		open, err := d.env.InWhatsAppWindow(c.rec)
		if err != nil {
			d.app.Logger().Error("failed to check the WhatsApp window; the message stays queued", "message", c.rec.Id, "error", err)
			d.release("window_check_failed", time.Minute, c)
			return
		}
		if !open {
			// Say what is missing: a free-text message needs the patient's recent message;
			// a template's needs its approved content SID in the message's language.
			what := "a free-text WhatsApp message can go only within 24 hours of the patient's last WhatsApp message; send it with a template that has an approved content SID"
			if tpl := c.rec.GetString("template"); tpl != "" {
				what = "the patient has not written on WhatsApp within 24 hours, and template " + tpl + " has no approved content SID for " + msg.Language + " (whatsapp_content_sid_" + msg.Language + ")"
			}
			d.finish(c, nil, &providers.Error{Provider: c.provider, Class: providers.ErrPermanent, Code: "outside_whatsapp_window", Message: what}, "")
			return
		}
	}

	// Pace the provider. The wait is bounded well inside the lease: a row that cannot get a
	// turn soon goes back to the queue without using an attempt.
	limiter := d.router.Limiter(c.provider)
	waitCtx, cancelWait := context.WithTimeout(d.sendCtx, d.cfg.Lease/4)
	err = limiter.Wait(waitCtx, msg.Segments)
	cancelWait()
	if err != nil {
		d.release("rate_limited", time.Second, c)
		return
	}

	ctx, cancel := context.WithTimeout(d.sendCtx, d.cfg.SendTimeout)
	started := time.Now()
	receipt, err := p.Send(ctx, msg)
	cancel()
	took := time.Since(started)
	d.env.ObserveSend(c.provider, msg.Channel, took, err)
	d.router.Report(c.provider, err)
	// The provider's answers set how many sends may be in flight: it answered (even to
	// refuse this message), or it said it has too many.
	if pe, ok := providers.AsError(err); ok && pe.HTTPStatus == http.StatusTooManyRequests {
		d.slots.Throttled()
	} else if err == nil || providers.ClassOf(err) == providers.ErrPermanent {
		d.slots.Answered(took)
	}
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
	ctx, cancel := context.WithTimeout(d.sendCtx, d.cfg.SendTimeout)
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
	err := d.writer.Do(func(tx core.App) error {
		if sendErr == nil {
			if done, err := d.markSentLeased(tx, c, receipt, reconciled); done || err != nil {
				return err
			}
		}
		rec, err := tx.FindRecordById("messages", c.rec.Id)
		if err != nil {
			return fmt.Errorf("failed to reload message: %w", err)
		}
		if sendErr == nil {
			return d.markSent(tx, rec, c.provider, receipt, reconciled)
		}
		if rec.GetString("status") != providers.StatusSending || rec.GetInt("attempts") != c.attempt {
			return nil // the lease was lost; whoever holds the row now decides
		}
		return d.settleFailure(tx, rec, c.provider, sendErr, reconciled)
	})
	if err != nil {
		d.app.Logger().Error("failed to record send outcome; the lease will expire and the message will be reconciled", "message", c.rec.Id, "error", err)
	}
}

// release puts claimed rows back in the queue without counting the attempt, in one group
// op: they were never sent (our own rate limit, the provider refused with 429 before doing
// anything, or they were still in hand at a stop).
func (d *Dispatcher) release(reason string, after time.Duration, cs ...claimed) {
	if len(cs) == 0 {
		return
	}
	err := d.writer.Do(func(tx core.App) error {
		for _, c := range cs {
			rec, err := tx.FindRecordById("messages", c.rec.Id)
			if err != nil {
				return fmt.Errorf("failed to reload message: %w", err)
			}
			if rec.GetString("status") != providers.StatusSending || rec.GetInt("attempts") != c.attempt {
				continue
			}
			if err := d.releaseTx(tx, rec, c.provider, reason, after); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		d.app.Logger().Error("failed to release claimed messages; their leases will expire", "messages", len(cs), "error", err)
	}
}

// sweep moves due scheduled messages to the queue and settles rows whose lease expired.
func (d *Dispatcher) sweep(ctx context.Context) {
	if err := d.promoteScheduled(); err != nil {
		d.app.Logger().Error("failed to queue due scheduled messages", "error", err)
	}
	d.settleExpired(ctx, time.Now().UTC())
}

func (d *Dispatcher) promoteScheduled() error {
	for {
		n := 0
		err := d.app.RunInTransaction(func(tx core.App) error {
			recs, err := tx.FindRecordsByFilter("messages", "status = 'scheduled' && next_attempt_at <= {:now}", "next_attempt_at", 500, 0, dbx.Params{"now": store.FormatTime(time.Now().UTC())})
			if err != nil {
				return err
			}
			n = len(recs)
			for _, r := range recs {
				_, err := d.store.Transition(tx, r, store.Change{To: providers.StatusQueued,
					Audit: store.Entry{Event: "queued", Detail: map[string]any{"reason": "send_at_reached"}}})
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
	d.settleExpired(d.sendCtx, time.Now().UTC().Add(d.cfg.Lease))
}

// settleExpired reconciles "sending" rows whose lease ends before cutoff: found at the
// provider means sent; otherwise they are queued again while attempts remain.
func (d *Dispatcher) settleExpired(ctx context.Context, cutoff time.Time) {
	for ctx.Err() == nil {
		recs, err := d.app.FindRecordsByFilter("messages", "status = 'sending' && next_attempt_at < {:cut}", "next_attempt_at", 100, 0, dbx.Params{"cut": store.FormatTime(cutoff)})
		if err != nil {
			d.app.Logger().Error("failed to find expired leases", "error", err)
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
	claimedAt := r.GetDateTime("next_attempt_at").Time().Add(-d.cfg.Lease)
	provider := r.GetString("provider")
	p, ok := d.router.Provider(provider)
	var receipt *providers.Receipt
	var outcome string
	var sendErr error = &providers.Error{Provider: provider, Class: providers.ErrUnknown, Message: "the lease expired before the send outcome was recorded"}
	if ok {
		if msg, err := d.env.ProviderMessage(r, claimedAt); err == nil {
			receipt, sendErr, outcome = d.reconcile(p, msg, sendErr)
		}
	}
	if outcome == "unsupported" {
		// The provider cannot say whether it has the message; sending again risks a
		// duplicate, never a loss.
		sendErr = &providers.Error{Provider: provider, Class: providers.ErrRetryable, Message: "the lease expired; the provider cannot reconcile, so the message is sent again", Err: sendErr}
	}
	leaseEnd := r.GetString("next_attempt_at")
	err := d.writer.Do(func(tx core.App) error {
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
			return d.markSent(tx, rec, provider, receipt, outcome)
		}
		return d.settleFailure(tx, rec, provider, sendErr, outcome)
	})
	if err != nil {
		d.app.Logger().Error("failed to settle an expired lease", "message", r.Id, "error", err)
	}
}
