package providers

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Test numbers the mock treats specially, so that every dispatcher path can be exercised
// on a fresh install without a vendor account. Every other number is accepted and
// reported delivered DeliverAfter later.
const (
	MockNumberPermanent   = "+966500000001" // every attempt fails permanently
	MockNumberRetryable   = "+966500000002" // every attempt fails retryably
	MockNumberUndelivered = "+966500000003" // accepted, then reported undelivered
	MockNumberFlaky       = "+966500000004" // the first attempt of each message fails retryably
	MockNumberUnknown     = "+966500000005" // every attempt ends in an unknown outcome (as a timeout would)
)

// Mock is a provider without a network: it answers like a vendor that accepts the message
// and later reports its delivery, as a real delivery report (DLR) would arrive.
type Mock struct {
	// Report receives the simulated delivery report. Nil disables reports; the status can
	// still be fetched, since a mock provider id says how its message ends.
	Report       func(StatusUpdate)
	DeliverAfter time.Duration // default 1s
	Logger       *slog.Logger

	mu      sync.Mutex
	closed  bool
	timers  map[*time.Timer]struct{}
	flakySe map[string]bool
}

var (
	_ Provider      = (*Mock)(nil)
	_ StatusFetcher = (*Mock)(nil)
	_ Reconciler    = (*Mock)(nil)
	_ Checker       = (*Mock)(nil)
)

// Send accepts the message unless its number is on the test list.
func (p *Mock) Send(ctx context.Context, m *Message) (*Receipt, error) {
	if err := ctx.Err(); err != nil {
		return nil, &Error{Provider: "mock", Class: ErrRetryable, Message: "not sent: shutting down", Err: err}
	}
	to := strings.TrimPrefix(m.To, "whatsapp:")
	switch to {
	case MockNumberPermanent:
		return nil, &Error{Provider: "mock", Class: ErrPermanent, HTTPStatus: 400, Code: "mock-invalid-number", Message: "the mock rejects this test number"}
	case MockNumberRetryable:
		return nil, &Error{Provider: "mock", Class: ErrRetryable, HTTPStatus: 503, Code: "mock-unavailable", Message: "the mock is unavailable for this test number"}
	case MockNumberUnknown:
		return nil, &Error{Provider: "mock", Class: ErrUnknown, Code: "mock-timeout", Message: "the mock timed out after the request was written"}
	case MockNumberFlaky:
		p.mu.Lock()
		if p.flakySe == nil {
			p.flakySe = map[string]bool{}
		}
		seen := p.flakySe[m.ID]
		p.flakySe[m.ID] = true
		p.mu.Unlock()
		if !seen {
			return nil, &Error{Provider: "mock", Class: ErrRetryable, HTTPStatus: 503, Code: "mock-busy", Message: "the mock is busy for the first attempt"}
		}
	}

	final := StatusDelivered
	suffix := "d"
	if to == MockNumberUndelivered {
		final, suffix = StatusUndelivered, "u"
	}
	// The outcome is encoded in the id so FetchStatus works across restarts.
	id := "mock_" + m.ID + "_" + suffix
	segments := m.Segments
	if segments <= 0 {
		segments = 1
	}
	if p.Logger != nil {
		p.Logger.Debug("mock accepted message", "message", m.ID, "provider_message_id", id, "channel", m.Channel)
	}
	p.scheduleReport(StatusUpdate{MessageID: m.ID, ProviderMessageID: id, Status: final, ProviderStatus: final})
	return &Receipt{ProviderMessageID: id, Status: StatusSent, Segments: segments}, nil
}

func (p *Mock) scheduleReport(u StatusUpdate) {
	if p.Report == nil {
		return
	}
	delay := p.DeliverAfter
	if delay <= 0 {
		delay = time.Second
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if p.timers == nil {
		p.timers = map[*time.Timer]struct{}{}
	}
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		p.mu.Lock()
		delete(p.timers, t)
		closed := p.closed
		p.mu.Unlock()
		if closed {
			return
		}
		u.At = time.Now().UTC()
		if u.Status == StatusUndelivered {
			u.ErrorCode, u.ErrorMessage = "mock-undelivered", "the mock reports this test number undelivered"
		}
		p.Report(u)
	})
	p.timers[t] = struct{}{}
}

// Close drops pending delivery reports; the messages stay "sent" until a status fetch.
func (p *Mock) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for t := range p.timers {
		t.Stop()
	}
	p.timers = nil
}

// FetchStatus answers the final status the mock chose at send time.
func (p *Mock) FetchStatus(ctx context.Context, providerMessageID string) (*StatusUpdate, error) {
	if !strings.HasPrefix(providerMessageID, "mock_") {
		return nil, &Error{Provider: "mock", Class: ErrPermanent, HTTPStatus: 404, Code: "mock-not-found", Message: "unknown mock message id"}
	}
	u := &StatusUpdate{ProviderMessageID: providerMessageID, Status: StatusDelivered, ProviderStatus: StatusDelivered, At: time.Now().UTC()}
	if strings.HasSuffix(providerMessageID, "_u") {
		u.Status, u.ProviderStatus = StatusUndelivered, StatusUndelivered
		u.ErrorCode, u.ErrorMessage = "mock-undelivered", "the mock reports this test number undelivered"
	}
	u.MessageID = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(providerMessageID, "mock_"), "_d"), "_u")
	return u, nil
}

// Reconcile reports that an unknown-outcome attempt never reached the mock, so it is resent.
func (p *Mock) Reconcile(ctx context.Context, m *Message) (*Receipt, error) {
	return nil, nil
}

// Check always succeeds: the mock has no network.
func (p *Mock) Check(ctx context.Context) error { return nil }
