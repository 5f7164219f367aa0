// Package providers sends one message attempt through an SMS, WhatsApp or email vendor and
// classifies every vendor failure once, at the edge, so the dispatcher can decide between
// retrying, failing and reconciling without knowing any vendor's error codes.
package providers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Channels a message can be sent on.
const (
	ChannelSMS      = "sms"
	ChannelWhatsApp = "whatsapp"
	ChannelEmail    = "email"
)

// Message statuses as stored on a clinicmsg message. Providers report in these terms.
const (
	StatusScheduled   = "scheduled"
	StatusQueued      = "queued"
	StatusSending     = "sending"
	StatusSent        = "sent"
	StatusDelivered   = "delivered"
	StatusRead        = "read"
	StatusFailed      = "failed"
	StatusUndelivered = "undelivered"
	StatusCanceled    = "canceled"
	StatusSkipped     = "skipped"
)

// Message is what a provider needs for one send attempt.
type Message struct {
	ID       string // clinicmsg message id; vendors that accept a correlation id get this one
	Channel  string
	To       string // E.164 for sms and whatsapp, an address for email
	From     string // the clinic's own sender; empty means the provider's configured default
	Body     string
	Subject  string
	Language string
	// ContentSID is the vendor-approved WhatsApp template for this message, if any; when set,
	// ContentVariables carries the template's variables and Body is informational only.
	ContentSID       string
	ContentVariables map[string]string
	Segments         int
	// ClaimedAt is when this attempt was claimed; reconciliation looks for sends since then.
	ClaimedAt time.Time
}

// Receipt is a provider's answer to an accepted send.
type Receipt struct {
	ProviderMessageID string
	Status            string  // usually StatusSent; a provider that answers synchronously may say more
	Segments          int     // billed segments, 0 when the provider did not say
	Cost              float64 // positive, 0 when not yet rated
	Currency          string
}

// Provider sends one attempt of one message. It never retries on its own: retrying is the
// dispatcher's decision, made from the class of the returned error.
type Provider interface {
	Send(ctx context.Context, m *Message) (*Receipt, error)
}

// StatusUpdate is a delivery status reported by a provider through a webhook, a poll or,
// for the mock, a simulated delivery report.
type StatusUpdate struct {
	MessageID         string // clinicmsg id, when the vendor echoes it (correlation id)
	ProviderMessageID string
	Status            string // a clinicmsg status (StatusSent, StatusDelivered, ...)
	ProviderStatus    string // the vendor's own word, kept for the audit trail
	ErrorCode         string
	ErrorMessage      string
	Segments          int
	Cost              float64
	Currency          string
	At                time.Time
}

// StatusFetcher asks the provider for a message's current status (polling, "refresh").
type StatusFetcher interface {
	FetchStatus(ctx context.Context, providerMessageID string) (*StatusUpdate, error)
}

// Reconciler finds out whether an attempt whose outcome is unknown reached the provider.
// It returns the receipt of the matching send, or nil and no error when the provider has
// no record of it, which makes a resend safe.
type Reconciler interface {
	Reconcile(ctx context.Context, m *Message) (*Receipt, error)
}

// Checker reports whether the provider is reachable and the credentials work.
// ErrNotConfigured says a provider lacks the settings it needs (email without SMTP): a
// send can never succeed until someone configures it, and health shows it "unconfigured".
var ErrNotConfigured = errors.New("not configured")

type Checker interface {
	Check(ctx context.Context) error
}

// Inbound is a message a patient sent to a clinic's number, in the same terms whichever
// vendor carried it, so that reply handling (hooks.ReceiveReply) knows no vendor.
type Inbound struct {
	Channel           string // ChannelSMS or ChannelWhatsApp
	From              string // the patient, E.164, without a vendor prefix such as "whatsapp:"
	To                string // the clinic's number the patient wrote to; it picks the clinic
	Body              string
	ProviderMessageID string // the vendor's id for the inbound message; a repeat is dropped by it
	OptOutType        string // the vendor's own keyword handling (STOP, START or HELP), if any
}

// InboundParser reads a vendor's incoming-message webhook. It authenticates the request
// first: publicURL is the appliance's public scheme and host, for vendors that sign the URL
// they called. A request that does not authenticate returns an error wrapping
// ErrBadSignature (the route answers 403 and stores nothing); any other error means the
// request could not be read (400).
//
// Only Twilio implements it. Unifonic's SMS API documents no webhook for messages patients
// send (docs/PROVIDERS.md, "Patient replies on Unifonic"), so its adapter has no parser
// rather than one guessed from an undocumented payload.
type InboundParser interface {
	ParseInboundWebhook(r *http.Request, publicURL string) (*Inbound, error)
}

// StatusWebhookParser is implemented by providers that post delivery reports: it verifies
// a report (a signature over publicURL, where the vendor signs) and reads it. An
// unauthenticated request wraps ErrBadSignature; an unreadable one is any other error.
type StatusWebhookParser interface {
	ParseStatusWebhook(r *http.Request, publicURL string) (*StatusUpdate, error)
}

// Error classes. Every error a provider returns wraps exactly one of them.
var (
	// ErrRetryable: the provider did not do the work (429, 5xx before acceptance, refused
	// connection); sending again later is safe.
	ErrRetryable = errors.New("retryable")
	// ErrPermanent: sending again cannot succeed (invalid number, opted out, bad credentials).
	ErrPermanent = errors.New("permanent")
	// ErrUnknown: the request may have been accepted (timeout after it was written); the
	// attempt must be reconciled with the provider before any resend.
	ErrUnknown = errors.New("unknown outcome")
)

// ErrBadSignature is returned by webhook parsers when a callback's signature or secret does
// not verify; the route answers 403 and changes nothing.
var ErrBadSignature = errors.New("webhook signature does not verify")

// Error is a classified vendor failure.
type Error struct {
	Provider   string
	Class      error // ErrRetryable, ErrPermanent or ErrUnknown
	HTTPStatus int
	Code       string // the vendor's error code, e.g. "21211"
	Message    string
	RetryAfter time.Duration // a hint from the vendor for ErrRetryable, 0 if none
	Err        error
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	if e.Code != "" {
		return fmt.Sprintf("%s: %s error %s: %s", e.Provider, e.Class, e.Code, msg)
	}
	return fmt.Sprintf("%s: %s error: %s", e.Provider, e.Class, msg)
}

// Unwrap lets errors.Is match both the class and the underlying cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Class}
	}
	return []error{e.Class, e.Err}
}

// ClassOf returns the class of err; an unclassified error counts as unknown because the
// work may have been done.
func ClassOf(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrPermanent):
		return ErrPermanent
	case errors.Is(err, ErrRetryable):
		return ErrRetryable
	default:
		return ErrUnknown
	}
}

// AsError returns the classified error inside err, if any.
func AsError(err error) (*Error, bool) {
	var pe *Error
	ok := errors.As(err, &pe)
	return pe, ok
}

// IsOptedOut reports whether a provider's error code (of a send or of a delivery report)
// says the recipient opted out at the carrier, so that the appliance records the opt-out
// in the patient's preferences. Vendor codes stay here, at the vendor edge.
func IsOptedOut(provider, code string) bool {
	switch provider {
	case "twilio":
		return code == TwilioCodeOptedOut
	}
	return false
}
