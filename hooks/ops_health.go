package hooks

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"sync"
	"time"

	"clinicmsg/internal/store"
	"clinicmsg/providers"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
)

// Health statuses, worst last.
const (
	healthHealthy  = "healthy"
	healthDegraded = "degraded"
	healthDown     = "down"
	// healthUnconfigured is a channel this appliance is not set up for (email without
	// SMTP): nothing is wrong with it, and its messages are refused at create time.
	healthUnconfigured = "unconfigured"
)

var healthLevel = map[string]int{healthHealthy: 2, healthUnconfigured: 2, healthDegraded: 1, healthDown: 0}

const (
	// healthTTL is how long a provider check and the error rates are reused: GET /health
	// may be polled every few seconds by a load balancer, and must not reach the vendor
	// each time.
	healthTTL = 30 * time.Second
	// healthCheckTimeout bounds one provider check.
	healthCheckTimeout = 5 * time.Second
	// errorWindow is how far back the error rate looks.
	errorWindow = 15 * time.Minute
	// A provider's error rate counts only over errorMinSample attempted messages; at
	// errorDegraded it is degraded, at errorDown down.
	errorMinSample = 5
	errorDegraded  = 0.20
	errorDown      = 0.80
	// stalledAfter: a due message waiting longer than this means sending has stalled.
	stalledAfter = 10 * time.Minute
)

// ChannelHealth is one channel's state in GET /api/clinicmsg/health.
type ChannelHealth struct {
	Status    string    `json:"status"`
	Provider  string    `json:"provider"`
	CheckedAt time.Time `json:"checked_at"`
	Detail    string    `json:"detail"`
	// ErrorRate is the percentage of the provider's messages created in the last 15
	// minutes whose last attempt failed on the provider's side; nil below the sample size.
	ErrorRate *float64       `json:"error_rate"`
	Attempted int            `json:"attempted,omitzero"` // superusers only: it spans all clinics
	Fallback  *ChannelHealth `json:"fallback,omitzero"`
	// Notes are Detail's sentences as codes and their parameters, so the dashboard says
	// them in the reader's language.
	Notes []HealthNote `json:"notes"`
}

// HealthNote is one note on a channel's health: check_passed, no_check, check_failed
// (error), email_unconfigured, no_provider, fallback (provider, status), error_rate (rate
// in percent, minutes).
type HealthNote struct {
	Code     string  `json:"code"`
	Provider string  `json:"provider,omitempty"`
	Status   string  `json:"status,omitempty"`
	Error    string  `json:"error,omitempty"`
	Rate     float64 `json:"rate,omitempty"`
	Minutes  int     `json:"minutes,omitempty"`
}

// note adds a note to the channel's health, as a code and as the English sentence of
// Detail.
func (ch *ChannelHealth) note(n HealthNote, text string) {
	ch.Notes = append(ch.Notes, n)
	if ch.Detail == "" {
		ch.Detail = text
	} else {
		ch.Detail += "; " + text
	}
}

// providerCheck is a cached Checker answer.
type providerCheck struct {
	err     error
	checked bool // false: the provider has no Checker
	at      time.Time
}

// healthChecker runs provider checks at most once per healthTTL, however many callers ask;
// callers that arrive during a check wait for its answer.
type healthChecker struct {
	s *Service

	mu     sync.Mutex // guards the maps below
	checks map[string]*providerCheck
	locks  map[string]*sync.Mutex // one per provider: a single check in flight

	rateMu  sync.Mutex // serialises error-rate queries; guards rates, ratesAt and clinicRates
	rates   map[string]rateSample
	ratesAt time.Time
	// clinicRates are each clinic's own error rates, for its users' view of /health.
	clinicRates map[string]clinicRateSample

	last   map[string]ChannelHealth // for metrics and for logging transitions
	lastMu sync.Mutex
}

type rateSample struct{ attempted, failing int }

type clinicRateSample struct {
	rates map[string]rateSample
	at    time.Time
}

// maxClinicRates bounds the per-clinic error-rate cache; past it the cache starts over.
const maxClinicRates = 1000

func newHealthChecker(s *Service) *healthChecker {
	return &healthChecker{s: s, checks: map[string]*providerCheck{}, locks: map[string]*sync.Mutex{}, last: map[string]ChannelHealth{}}
}

// check returns the provider's cached check, running it if older than ttl.
func (h *healthChecker) check(ctx context.Context, name string, ttl time.Duration) providerCheck {
	h.mu.Lock()
	l, ok := h.locks[name]
	if !ok {
		l = &sync.Mutex{}
		h.locks[name] = l
	}
	h.mu.Unlock()

	l.Lock()
	defer l.Unlock()
	h.mu.Lock()
	c := h.checks[name]
	h.mu.Unlock()
	if c != nil && time.Since(c.at) < ttl {
		return *c
	}
	res := &providerCheck{at: time.Now().UTC()}
	p, ok := h.s.Router.Provider(name)
	switch {
	case !ok:
		res.checked, res.err = true, fmt.Errorf("provider %q is not configured", name)
	default:
		if ch, ok := p.(providers.Checker); ok {
			cctx, cancel := context.WithTimeout(ctx, healthCheckTimeout)
			res.checked, res.err = true, safeCheck(cctx, ch)
			cancel()
		}
	}
	h.mu.Lock()
	h.checks[name] = res
	h.mu.Unlock()
	return *res
}

// safeCheck keeps a panicking vendor check from taking the health endpoint down with it.
func safeCheck(ctx context.Context, c providers.Checker) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("check panicked: %v", r)
		}
	}()
	return c.Check(ctx)
}

// errorRates returns, per provider, the messages created in the last errorWindow that
// reached it and how many of those ended their last attempt with a provider-side failure:
// waiting for a retry, in doubt, or failed after retryable errors. Permanent failures (an
// invalid number) are the recipient's, not the provider's, and do not count.
func (h *healthChecker) errorRates(app core.App, ttl time.Duration) (map[string]rateSample, error) {
	h.rateMu.Lock()
	defer h.rateMu.Unlock()
	if h.rates != nil && time.Since(h.ratesAt) < ttl {
		return h.rates, nil
	}
	rates, err := readErrorRates(app, "")
	if err != nil {
		return nil, err
	}
	h.rates, h.ratesAt = rates, time.Now()
	return h.rates, nil
}

// clinicErrorRates is errorRates over one clinic's messages only: a clinic's users see how
// their own messages fare, never another clinic's.
func (h *healthChecker) clinicErrorRates(app core.App, clinic string, ttl time.Duration) (map[string]rateSample, error) {
	h.rateMu.Lock()
	defer h.rateMu.Unlock()
	if c, ok := h.clinicRates[clinic]; ok && time.Since(c.at) < ttl {
		return c.rates, nil
	}
	rates, err := readErrorRates(app, clinic)
	if err != nil {
		return nil, err
	}
	if h.clinicRates == nil || len(h.clinicRates) >= maxClinicRates {
		h.clinicRates = map[string]clinicRateSample{}
	}
	h.clinicRates[clinic] = clinicRateSample{rates: rates, at: time.Now()}
	return rates, nil
}

// readErrorRates counts, per provider, recent attempted messages and the failing ones, of
// one clinic or ("") of all.
func readErrorRates(app core.App, clinic string) (map[string]rateSample, error) {
	var rows []struct {
		Provider  string `db:"provider"`
		Attempted int    `db:"attempted"`
		Failing   int    `db:"failing"`
	}
	// clinic IN (...) lets SQLite walk idx_messages_clinic_created once per clinic
	// instead of scanning every message.
	scope := "clinic IN (SELECT id FROM clinics)"
	if clinic != "" {
		scope = "clinic = {:clinic}"
	}
	err := app.DB().NewQuery(`
		SELECT provider, COUNT(*) AS attempted,
			COALESCE(SUM(error_code != '' AND status IN ('queued', 'sending', 'failed') AND status_reason != 'permanent'), 0) AS failing
		FROM messages
		WHERE ` + scope + ` AND created >= {:since} AND attempts > 0 AND provider != ''
		GROUP BY provider`).Bind(dbx.Params{"since": store.FormatTime(time.Now().Add(-errorWindow)), "clinic": clinic}).All(&rows)
	if err != nil {
		return nil, fmt.Errorf("failed to read recent error rates: %w", err)
	}
	rates := map[string]rateSample{}
	for _, r := range rows {
		rates[r.Provider] = rateSample{r.Attempted, r.Failing}
	}
	return rates, nil
}

// channels returns the health of every routed channel. ttl 0 forces fresh checks (the
// check-integration-health job).
func (h *healthChecker) channels(ctx context.Context, ttl time.Duration) (map[string]ChannelHealth, error) {
	rates, err := h.errorRates(h.s.app, ttl)
	if err != nil {
		return nil, err
	}
	out := h.channelsWith(ctx, ttl, rates)
	h.remember(out)
	return out, nil
}

// clinicChannels is channels as one clinic's users see them: the providers' own checks
// (shared by every clinic) weighed with that clinic's error rates only. It is not
// remembered: /metrics and the status-change log are the appliance's.
func (h *healthChecker) clinicChannels(ctx context.Context, clinic string, ttl time.Duration) (map[string]ChannelHealth, error) {
	rates, err := h.clinicErrorRates(h.s.app, clinic, ttl)
	if err != nil {
		return nil, err
	}
	return h.channelsWith(ctx, ttl, rates), nil
}

func (h *healthChecker) channelsWith(ctx context.Context, ttl time.Duration, rates map[string]rateSample) map[string]ChannelHealth {
	out := map[string]ChannelHealth{}
	for _, channel := range store.Channels {
		rt, ok := h.s.Router.Route(channel)
		if !ok {
			ch := ChannelHealth{Status: healthDown, CheckedAt: time.Now().UTC()}
			ch.note(HealthNote{Code: "no_provider"}, "no provider is configured for this channel")
			out[channel] = ch
			continue
		}
		ch := h.providerHealth(ctx, rt.Primary, rates, ttl)
		if rt.Fallback != "" {
			fb := h.providerHealth(ctx, rt.Fallback, rates, ttl)
			ch.Fallback = &fb
			if ch.Status == healthDown && fb.Status != healthDown {
				ch.Status = healthDegraded
				ch.note(HealthNote{Code: "fallback", Provider: rt.Fallback, Status: fb.Status}, "the fallback provider "+rt.Fallback+" is "+fb.Status)
			}
		}
		out[channel] = ch
	}
	return out
}

func (h *healthChecker) providerHealth(ctx context.Context, name string, rates map[string]rateSample, ttl time.Duration) ChannelHealth {
	c := h.check(ctx, name, ttl)
	ch := ChannelHealth{Status: healthHealthy, Provider: name, CheckedAt: c.at}
	switch {
	case !c.checked:
		ch.note(HealthNote{Code: "no_check"}, "the provider has no health check; status from its recent error rate")
	case errors.Is(c.err, providers.ErrNotConfigured):
		ch.Status = healthUnconfigured
		ch.note(HealthNote{Code: name + "_unconfigured"}, store.Truncate(c.err.Error(), 200))
		return ch
	case c.err != nil:
		ch.Status = healthDown
		msg := store.Truncate(c.err.Error(), 200)
		ch.note(HealthNote{Code: "check_failed", Error: msg}, "check failed: "+msg)
	default:
		ch.note(HealthNote{Code: "check_passed"}, "check passed")
	}
	r := rates[name]
	ch.Attempted = r.attempted
	if r.attempted >= errorMinSample {
		rate := float64(r.failing) / float64(r.attempted)
		pct := round2(100 * rate)
		ch.ErrorRate = &pct
		status := healthHealthy
		switch {
		case rate >= errorDown:
			status = healthDown
		case rate >= errorDegraded:
			status = healthDegraded
		}
		if healthLevel[status] < healthLevel[ch.Status] {
			ch.Status = status
		}
		if status != healthHealthy {
			ch.note(HealthNote{Code: "error_rate", Rate: pct, Minutes: int(errorWindow.Minutes())},
				fmt.Sprintf("%.0f%% of its messages in the last %d minutes failed on the provider's side", 100*rate, int(errorWindow.Minutes())))
		}
	}
	return ch
}

// remember keeps the latest answer for /metrics and logs every change of a channel's status.
func (h *healthChecker) remember(now map[string]ChannelHealth) {
	h.lastMu.Lock()
	defer h.lastMu.Unlock()
	for channel, ch := range now {
		prev, seen := h.last[channel]
		if seen && (prev.Status != ch.Status || prev.Provider != ch.Provider) {
			level := h.s.app.Logger().Warn
			if ch.Status == healthHealthy {
				level = h.s.app.Logger().Info
			}
			level("channel health changed", "channel", channel, "provider", ch.Provider, "from", prev.Status, "to", ch.Status, "detail", ch.Detail)
		}
		h.last[channel] = ch
	}
}

func (h *healthChecker) lastKnown() map[string]ChannelHealth {
	h.lastMu.Lock()
	defer h.lastMu.Unlock()
	return maps.Clone(h.last)
}

// Outbox is the queue's state in GET /api/clinicmsg/health.
type Outbox struct {
	Depth               int     `json:"depth"` // queued messages, due or waiting for a retry
	Due                 int     `json:"due"`
	Sending             int     `json:"sending"`
	Scheduled           int     `json:"scheduled"`
	OldestDueAgeSeconds float64 `json:"oldest_due_age_seconds"`
}

// outbox reads the queue through idx_messages_due (status, next_attempt_at); clinic ""
// means every clinic's.
func (s *Service) outbox(app core.App, clinic string) (Outbox, error) {
	var row struct {
		Queued    int    `db:"queued"`
		Due       int    `db:"due"`
		Sending   int    `db:"sending"`
		Scheduled int    `db:"scheduled"`
		OldestDue string `db:"oldest_due"`
	}
	now := store.FormatTime(time.Now())
	q := `SELECT
			COALESCE(SUM(status = 'queued'), 0) AS queued,
			COALESCE(SUM(status = 'queued' AND next_attempt_at <= {:now}), 0) AS due,
			COALESCE(SUM(status = 'sending'), 0) AS sending,
			COALESCE(SUM(status = 'scheduled'), 0) AS scheduled,
			COALESCE(MIN(CASE WHEN status = 'queued' AND next_attempt_at <= {:now} THEN next_attempt_at END), '') AS oldest_due
		FROM messages WHERE status IN ('queued', 'sending', 'scheduled')`
	params := dbx.Params{"now": now}
	if clinic != "" {
		q += ` AND clinic = {:clinic}`
		params["clinic"] = clinic
	}
	if err := app.DB().NewQuery(q).Bind(params).One(&row); err != nil {
		return Outbox{}, fmt.Errorf("failed to read the outbox: %w", err)
	}
	ob := Outbox{Depth: row.Queued, Due: row.Due, Sending: row.Sending, Scheduled: row.Scheduled}
	if row.OldestDue != "" {
		if t, err := time.Parse("2006-01-02 15:04:05.000Z", row.OldestDue); err == nil {
			ob.OldestDueAgeSeconds = round2(max(time.Since(t).Seconds(), 0))
		}
	}
	return ob, nil
}

// overall is the worst channel status, degraded at least when sending has stalled.
func overall(chs map[string]ChannelHealth, ob *Outbox) string {
	status := healthHealthy
	for _, ch := range chs {
		if healthLevel[ch.Status] < healthLevel[status] {
			status = ch.Status
		}
	}
	if ob != nil && ob.OldestDueAgeSeconds > stalledAfter.Seconds() && status == healthHealthy {
		status = healthDegraded
	}
	return status
}

// handleHealth answers GET /api/clinicmsg/health (the original spec's
// check_integration_health). A guest learns only the overall status; a clinic user also
// gets each channel, with its own clinic's error rates, and its own clinic's outbox; a
// superuser the whole appliance's.
func (s *Service) handleHealth(e *core.RequestEvent) error {
	o := s.ops()
	chs, err := o.health.channels(e.Request.Context(), healthTTL)
	if err != nil {
		return e.InternalServerError("Failed to check health.", err)
	}
	// The overall status weighs the whole appliance's queue; a caller sees only its own.
	all, err := s.outbox(e.App, "")
	if err != nil {
		return e.InternalServerError("Failed to read the outbox.", err)
	}
	status := overall(chs, &all)
	super := e.HasSuperuserAuth()
	ob := all
	switch {
	case super:
	case e.Auth != nil && e.Auth.Collection().Name == "users" && e.Auth.GetString("clinic") != "":
		clinic := e.Auth.GetString("clinic")
		if ob, err = s.outbox(e.App, clinic); err != nil {
			return e.InternalServerError("Failed to read the outbox.", err)
		}
		// The channels' figures (error rate, and the status and detail it decides) are the
		// clinic's own; the overall status above stays the appliance's, as a guest sees it.
		if chs, err = o.health.clinicChannels(e.Request.Context(), clinic, healthTTL); err != nil {
			return e.InternalServerError("Failed to check health.", err)
		}
	default:
		return e.JSON(http.StatusOK, map[string]any{"status": status})
	}
	if !super {
		for k, ch := range chs {
			ch.Attempted = 0
			if ch.Fallback != nil {
				fb := *ch.Fallback
				fb.Attempted = 0
				ch.Fallback = &fb
			}
			chs[k] = ch
		}
	}
	return e.JSON(http.StatusOK, map[string]any{"status": status, "channels": chs, "outbox": ob, "checked_at": time.Now().UTC()})
}

// round2 rounds to two decimals, as percentages and seconds are reported.
func round2(v float64) float64 {
	return math.Round(v*100) / 100
}
