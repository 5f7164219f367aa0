package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

// TwilioCodeOptedOut is Twilio's error code for a recipient who opted out (replied STOP):
// a send to them is refused with it, and a caller that sees it (in an *Error's Code or a
// StatusUpdate's ErrorCode) should record the patient as opted out rather than retry.
const TwilioCodeOptedOut = "21610"

const (
	twilioDefaultBaseURL = "https://api.twilio.com"
	twilioDefaultTimeout = 10 * time.Second
	// twilioReconcileSkew widens the reconciliation window for clock skew between this
	// host and Twilio.
	twilioReconcileSkew = 2 * time.Minute
	// twilioReconcilePage is how many of a number's most recent messages reconciliation reads.
	twilioReconcilePage = 50
)

// TwilioOptions configures the Twilio adapter. Zero values get defaults in NewTwilio.
type TwilioOptions struct {
	AccountSID string
	AuthToken  string
	// FromNumber is the SMS sender (E.164 or an alphanumeric sender ID) when a message names
	// none. MessagingServiceSID, when set, lets Twilio pick the sender instead.
	FromNumber          string
	WhatsAppNumber      string // E.164, with or without the "whatsapp:" prefix
	MessagingServiceSID string // "MG..."
	// BaseURL replaces scheme and host (and prefixes the path) of every API call; default
	// https://api.twilio.com. Tests and benchmarks point it at providertest.NewTwilio.
	BaseURL string
	// StatusCallbackURL is the public URL of the status webhook; empty sends no callbacks.
	StatusCallbackURL string
	// Timeout bounds each HTTP request (default 10s). twilio-go sends every request with
	// context.Background, so this is the only limit on a hung call.
	Timeout time.Duration
	// HTTPClient, if set, lends its Transport (and its Timeout when Timeout is zero).
	HTTPClient *http.Client
}

// Twilio sends SMS and WhatsApp through the Twilio Messages API, using the official twilio-go
// client against a configurable base URL.
type Twilio struct {
	opts      TwilioOptions
	base      *url.URL
	creds     *client.Credentials
	transport http.RoundTripper
	timeout   time.Duration
	validator client.RequestValidator
}

var (
	_ Provider            = (*Twilio)(nil)
	_ StatusFetcher       = (*Twilio)(nil)
	_ StatusWebhookParser = (*Twilio)(nil)
	_ Reconciler          = (*Twilio)(nil)
	_ Checker             = (*Twilio)(nil)
	_ InboundParser       = (*Twilio)(nil)
)

var (
	alphanumeric = regexp.MustCompile(`^[A-Za-z0-9]+$`)
	// phoneLike finds phone numbers in vendor texts, so that errors never carry a full one.
	phoneLike = regexp.MustCompile(`\+?[0-9]{7,15}`)
)

// NewTwilio checks opts and fills their defaults.
func NewTwilio(opts TwilioOptions) (*Twilio, error) {
	if opts.AccountSID == "" || opts.AuthToken == "" {
		return nil, errors.New("twilio: account SID and auth token are required")
	}
	// twilio-go refuses non-alphanumeric credentials on every request (21222/21224).
	if !alphanumeric.MatchString(opts.AccountSID) || !alphanumeric.MatchString(opts.AuthToken) {
		return nil, errors.New("twilio: account SID and auth token must be alphanumeric")
	}
	if opts.FromNumber == "" && opts.WhatsAppNumber == "" && opts.MessagingServiceSID == "" {
		return nil, errors.New("twilio: a from number, WhatsApp number or messaging service SID is required")
	}
	if opts.BaseURL == "" {
		opts.BaseURL = twilioDefaultBaseURL
	}
	base, err := url.Parse(opts.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("twilio: invalid base URL %q", opts.BaseURL)
	}
	if opts.StatusCallbackURL != "" {
		if u, err := url.Parse(opts.StatusCallbackURL); err != nil || !u.IsAbs() {
			return nil, fmt.Errorf("twilio: invalid status callback URL %q", opts.StatusCallbackURL)
		}
	}
	p := &Twilio{
		opts:      opts,
		base:      base,
		creds:     client.NewCredentials(opts.AccountSID, opts.AuthToken),
		timeout:   opts.Timeout,
		validator: client.NewRequestValidator(opts.AuthToken),
	}
	if opts.HTTPClient != nil {
		p.transport = opts.HTTPClient.Transport
		if p.timeout <= 0 {
			p.timeout = opts.HTTPClient.Timeout
		}
	}
	if p.transport == nil {
		p.transport = newTransport()
	}
	if p.timeout <= 0 {
		p.timeout = twilioDefaultTimeout
	}
	return p, nil
}

// maxIdlePerHost keeps a connection for every send the dispatcher may have in flight (its
// learned bound stops at 1,024): a vendor is one host, and with fewer kept, most of a
// busy dispatcher's requests opened a new connection (a TLS handshake at the vendor)
// instead of reusing one. Idle connections close after 90 s.
const maxIdlePerHost = 1024

// newTransport is the default transport of an adapter: keep-alive connections enough for a
// dispatcher sending in parallel.
func newTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = maxIdlePerHost
	t.MaxIdleConnsPerHost = maxIdlePerHost
	t.IdleConnTimeout = 90 * time.Second
	return t
}

// Send creates one message. SMS goes from m.From, else FromNumber, or through the
// Messaging Service; WhatsApp goes between "whatsapp:" addresses, as a content template
// (ContentSid + ContentVariables) when m.ContentSID is set, else as free-form Body.
func (p *Twilio) Send(ctx context.Context, m *Message) (*Receipt, error) {
	if err := ctx.Err(); err != nil {
		return nil, &Error{Provider: "twilio", Class: ErrRetryable, Message: "not sent: shutting down", Err: err}
	}
	params, err := p.createParams(m)
	if err != nil {
		return nil, err
	}
	api, call, done := p.api(ctx)
	defer done()
	msg, err := api.CreateMessage(params)
	if err != nil {
		return nil, p.classify(call, "send message", err, true)
	}
	if msg.Sid == nil || *msg.Sid == "" {
		return nil, &Error{Provider: "twilio", Class: ErrUnknown, HTTPStatus: call.httpStatus(), Message: "Twilio accepted the request but its reply has no message sid"}
	}
	return twilioReceipt(msg), nil
}

func (p *Twilio) createParams(m *Message) (*openapi.CreateMessageParams, error) {
	config := func(msg string) error {
		return &Error{Provider: "twilio", Class: ErrPermanent, Code: "config", Message: msg}
	}
	params := &openapi.CreateMessageParams{}
	to := strings.TrimPrefix(m.To, "whatsapp:")
	switch m.Channel {
	case ChannelWhatsApp:
		params.SetTo("whatsapp:" + to)
		from := m.From
		if from == "" {
			from = p.opts.WhatsAppNumber
		}
		switch {
		case from != "":
			params.SetFrom("whatsapp:" + strings.TrimPrefix(from, "whatsapp:"))
		case p.opts.MessagingServiceSID != "":
			params.SetMessagingServiceSid(p.opts.MessagingServiceSID)
		default:
			return nil, config("no Twilio WhatsApp sender configured")
		}
		if m.ContentSID != "" {
			params.SetContentSid(m.ContentSID)
			if len(m.ContentVariables) > 0 {
				vars, err := json.Marshal(m.ContentVariables)
				if err != nil {
					return nil, &Error{Provider: "twilio", Class: ErrPermanent, Message: "content variables do not encode", Err: err}
				}
				params.SetContentVariables(string(vars))
			}
		} else {
			params.SetBody(m.Body)
		}
	case ChannelSMS, "":
		params.SetTo(to)
		from := m.From
		if from == "" && p.opts.MessagingServiceSID == "" {
			from = p.opts.FromNumber
		}
		if p.opts.MessagingServiceSID != "" {
			params.SetMessagingServiceSid(p.opts.MessagingServiceSID)
		} else if from == "" {
			return nil, config("no Twilio SMS sender configured")
		}
		if from != "" {
			params.SetFrom(from)
		}
		params.SetBody(m.Body)
	default:
		return nil, config("Twilio does not carry the " + m.Channel + " channel")
	}
	if p.opts.StatusCallbackURL != "" {
		params.SetStatusCallback(p.opts.StatusCallbackURL)
	}
	return params, nil
}

// FetchStatus fetches a message by its sid.
func (p *Twilio) FetchStatus(ctx context.Context, providerMessageID string) (*StatusUpdate, error) {
	if !alphanumeric.MatchString(providerMessageID) {
		return nil, &Error{Provider: "twilio", Class: ErrPermanent, Code: "not-found", Message: "not a Twilio message sid"}
	}
	api, call, done := p.api(ctx)
	defer done()
	msg, err := api.FetchMessage(providerMessageID, nil)
	if err != nil {
		return nil, p.classify(call, "fetch message status", err, false)
	}
	return twilioUpdate(msg), nil
}

// Reconcile looks for the message that an attempt with an unknown outcome may have created.
//
// Twilio has no idempotency key and the Message resource does not echo ContentSid, so a
// match is an outbound message to the same address (To, with "whatsapp:" for WhatsApp)
// created at or after ClaimedAt minus a two-minute skew, whose body equals m.Body. For a
// content template Twilio stores its own rendering of the template, so when no body matches
// the earliest such message to that address counts: only a second template message to the
// same patient in the same minutes could be taken for it, and resending is the worse error
// (the patient gets the reminder twice).
//
// It lists the number's messages sent since the claim day (To + DateSent>=); a message still
// in Twilio's queue has no date_sent and may be left out of that filter, so when nothing
// matches it also reads the number's latest messages without a date filter.
func (p *Twilio) Reconcile(ctx context.Context, m *Message) (*Receipt, error) {
	to := strings.TrimPrefix(m.To, "whatsapp:")
	if m.Channel == ChannelWhatsApp {
		to = "whatsapp:" + to
	}
	var since time.Time
	if !m.ClaimedAt.IsZero() {
		since = m.ClaimedAt.Add(-twilioReconcileSkew).UTC()
	}
	api, call, done := p.api(ctx)
	defer done()

	queries := []*openapi.ListMessageParams{}
	if !since.IsZero() {
		day := time.Date(since.Year(), since.Month(), since.Day(), 0, 0, 0, 0, time.UTC)
		q := &openapi.ListMessageParams{}
		queries = append(queries, q.SetTo(to).SetDateSentAfter(day).SetPageSize(twilioReconcilePage).SetLimit(twilioReconcilePage))
	}
	q := &openapi.ListMessageParams{}
	queries = append(queries, q.SetTo(to).SetPageSize(twilioReconcilePage).SetLimit(twilioReconcilePage))

	for _, q := range queries {
		page, err := api.PageMessage(q, "", "")
		if err != nil {
			return nil, p.classify(call, "list messages to reconcile", err, false)
		}
		if msg := twilioMatch(page.Messages, to, since, m); msg != nil {
			return twilioReceipt(msg), nil
		}
	}
	return nil, nil
}

// twilioMatch picks the message an attempt created, if any; see Reconcile.
func twilioMatch(msgs []openapi.ApiV2010Message, to string, since time.Time, m *Message) *openapi.ApiV2010Message {
	var byBody, earliest *openapi.ApiV2010Message
	var byBodyAt, earliestAt time.Time
	for i := range msgs {
		msg := &msgs[i]
		if deref(msg.To) != to || (msg.Direction != nil && !strings.HasPrefix(*msg.Direction, "outbound")) {
			continue
		}
		created, err := time.Parse(time.RFC1123Z, deref(msg.DateCreated))
		if err == nil && !since.IsZero() && created.Before(since) {
			continue
		}
		if err != nil {
			created = time.Time{} // undated: in the window, and earliest
		}
		if strings.TrimSpace(deref(msg.Body)) == strings.TrimSpace(m.Body) && (byBody == nil || created.Before(byBodyAt)) {
			byBody, byBodyAt = msg, created
		}
		if earliest == nil || created.Before(earliestAt) {
			earliest, earliestAt = msg, created
		}
	}
	if byBody != nil {
		return byBody
	}
	if m.ContentSID != "" {
		return earliest
	}
	return nil
}

// Check fetches the account: it answers when Twilio is reachable, the credentials work and
// the account is active.
func (p *Twilio) Check(ctx context.Context) error {
	api, call, done := p.api(ctx)
	defer done()
	acct, err := api.FetchAccount(p.opts.AccountSID)
	if err != nil {
		return p.classify(call, "fetch account", err, false)
	}
	if s := deref(acct.Status); s != "" && s != "active" {
		return &Error{Provider: "twilio", Class: ErrPermanent, Code: "account-" + s, Message: "the Twilio account is " + s}
	}
	return nil
}

// ParseStatusWebhook verifies a status callback's X-Twilio-Signature over publicURL +
// r.URL.RequestURI() (the URL Twilio called, so publicURL is the appliance's public scheme
// and host as Twilio sees them) and every posted parameter, then reads MessageSid,
// MessageStatus and ErrorCode. A missing or wrong signature returns an error wrapping
// ErrBadSignature. Duplicate deliveries carry the same I-Twilio-Idempotency-Token header,
// which the caller may use to drop them.
func (p *Twilio) ParseStatusWebhook(r *http.Request, publicURL string) (*StatusUpdate, error) {
	params, err := p.verifiedForm(r, publicURL, "status callback")
	if err != nil {
		return nil, err
	}
	sid := first(params["MessageSid"], params["SmsSid"])
	status := first(params["MessageStatus"], params["SmsStatus"])
	if sid == "" || status == "" {
		return nil, errors.New("twilio status callback has no MessageSid or MessageStatus")
	}
	return &StatusUpdate{
		ProviderMessageID: sid,
		Status:            TwilioStatus(status),
		ProviderStatus:    status,
		ErrorCode:         params["ErrorCode"],
		ErrorMessage:      params["ErrorMessage"],
		At:                time.Now().UTC(),
	}, nil
}

// verifiedForm reads a Twilio webhook's form and checks X-Twilio-Signature over publicURL
// plus the request's path and query and every posted parameter.
func (p *Twilio) verifiedForm(r *http.Request, publicURL, what string) (map[string]string, error) {
	sig := r.Header.Get("X-Twilio-Signature")
	if sig == "" {
		return nil, fmt.Errorf("twilio %s has no X-Twilio-Signature: %w", what, ErrBadSignature)
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
	}
	if err := r.ParseForm(); err != nil {
		return nil, fmt.Errorf("failed to parse twilio %s: %w", what, err)
	}
	params := make(map[string]string, len(r.PostForm))
	for k, vs := range r.PostForm {
		if len(vs) > 0 {
			params[k] = vs[0]
		}
	}
	fullURL := strings.TrimSuffix(publicURL, "/") + r.URL.RequestURI()
	if !p.validator.Validate(fullURL, params, sig) {
		return nil, fmt.Errorf("twilio %s signature does not match: %w", what, ErrBadSignature)
	}
	return params, nil
}

// ParseInboundWebhook verifies and reads Twilio's incoming-message webhook, signed like a
// status callback (see ParseStatusWebhook); a missing or wrong signature wraps ErrBadSignature.
func (p *Twilio) ParseInboundWebhook(r *http.Request, publicURL string) (*Inbound, error) {
	params, err := p.verifiedForm(r, publicURL, "incoming message")
	if err != nil {
		return nil, err
	}
	from := params["From"]
	if from == "" {
		return nil, errors.New("twilio incoming message has no From")
	}
	in := &Inbound{
		Channel:           ChannelSMS,
		From:              strings.TrimPrefix(from, "whatsapp:"),
		To:                strings.TrimPrefix(params["To"], "whatsapp:"),
		Body:              params["Body"],
		ProviderMessageID: first(params["MessageSid"], params["SmsMessageSid"], params["SmsSid"]),
		OptOutType:        params["OptOutType"],
	}
	if strings.HasPrefix(from, "whatsapp:") {
		in.Channel = ChannelWhatsApp
	}
	return in, nil
}

// TwilioStatus maps a Twilio message status onto a clinicmsg status. Statuses of a message
// still on its way (queued, accepted, scheduled, sending, sent, and any Twilio adds later)
// are "sent"; the status machine is monotonic, so an early word never undoes a later one.
func TwilioStatus(s string) string {
	switch s {
	case "delivered", "partially_delivered":
		return StatusDelivered
	case "read":
		return StatusRead
	case "undelivered":
		return StatusUndelivered
	case "failed":
		return StatusFailed
	case "canceled":
		return StatusCanceled
	default:
		return StatusSent
	}
}

// TwilioOptedOut reports whether err is Twilio's refusal to message an opted-out recipient.
func TwilioOptedOut(err error) bool {
	pe, ok := AsError(err)
	return ok && IsOptedOut(pe.Provider, pe.Code)
}

// twilioPermanent are Twilio codes that no resend can fix: invalid or non-mobile number,
// opted out, region or sender not allowed, bad credentials, blocked/unknown/landline/filtered,
// WhatsApp free-form outside the 24 h window.
var twilioPermanent = map[int]bool{
	20003: true, 21211: true, 21408: true, 21606: true, 21610: true, 21614: true,
	30004: true, 30005: true, 30006: true, 30007: true, 63016: true,
}

// twilioClass classifies a Twilio API error reply.
func twilioClass(status, code int) (error, time.Duration) {
	switch {
	case code == 20429:
		return ErrRetryable, 0
	case code == 21611: // the sender's queue holds 10 h of messages: later, not now
		return ErrRetryable, 10 * time.Minute
	case twilioPermanent[code]:
		return ErrPermanent, 0
	case status == http.StatusTooManyRequests || status >= 500:
		return ErrRetryable, 0
	case status >= 400 || (status == 0 && code != 0):
		// Other 4xx, and twilio-go's own refusals made before any HTTP (21222/21224).
		return ErrPermanent, 0
	default:
		return ErrUnknown, 0
	}
}

// classify turns a twilio-go error into a classified *Error. sideEffect says whether the
// request may have changed something at Twilio (a create): a failure after the request was
// written is then unknown; for reads it is retryable.
//
// "Written" is observed, not guessed: each call's transport records, through httptrace,
// that the whole request was written to the connection (WroteRequest without error), and
// the status of any reply. A dial error, refused connection or TLS failure leaves it unset.
func (p *Twilio) classify(call *twilioCall, op string, err error, sideEffect bool) error {
	e := &Error{Provider: "twilio", Class: ErrUnknown, HTTPStatus: call.httpStatus(), Err: fmt.Errorf("failed to %s: %w", op, err)}
	var rest *client.TwilioRestError
	var ue *url.Error
	switch {
	case errors.As(err, &rest):
		if e.HTTPStatus == 0 {
			e.HTTPStatus = rest.Status
		}
		if rest.Code != 0 {
			e.Code = strconv.Itoa(rest.Code)
		}
		e.Message = redactNumbers(rest.Message)
		var hint time.Duration
		e.Class, hint = twilioClass(e.HTTPStatus, rest.Code)
		if e.Class == ErrRetryable {
			e.RetryAfter = max(call.retryAfterHint(), hint)
		}
	case e.HTTPStatus >= 400:
		// An error reply twilio-go could not decode: an HTML page from Twilio's edge or a proxy.
		e.Class, _ = twilioClass(e.HTTPStatus, 0)
		e.Message = fmt.Sprintf("HTTP %d with a body that is not a Twilio error", e.HTTPStatus)
		if e.Class == ErrRetryable {
			e.RetryAfter = call.retryAfterHint()
		}
	case e.HTTPStatus >= 300 && e.HTTPStatus < 400:
		// Redirects are not followed: BaseURL points at the wrong place (http for https?).
		e.Class = ErrPermanent
		e.Code = "config"
		e.Message = fmt.Sprintf("HTTP %d redirect: check the Twilio base URL", e.HTTPStatus)
	case e.HTTPStatus != 0:
		// A success reply that did not decode: the work was done but its answer is lost.
		e.Class = ErrRetryable
		if sideEffect {
			e.Class = ErrUnknown
		}
		e.Message = fmt.Sprintf("HTTP %d with a body that does not decode", e.HTTPStatus)
	default:
		cause := err
		if errors.As(err, &ue) {
			cause = ue.Err // the URL may carry a phone number (list by To)
		}
		if call.wrote.Load() {
			e.Message = "no reply after the request was written: " + cause.Error()
			e.Class = ErrRetryable
			if sideEffect {
				e.Class = ErrUnknown
			}
		} else {
			e.Message = "request not sent: " + cause.Error()
			e.Class = ErrRetryable
		}
	}
	return e
}

// api returns a twilio-go API service for one call. Each call gets its own client whose
// transport carries ctx (twilio-go itself sends with context.Background) and records
// whether the request was written and how Twilio answered; connections are shared.
func (p *Twilio) api(ctx context.Context) (*openapi.ApiService, *twilioCall, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	call := &twilioCall{ctx: ctx}
	c := &client.Client{
		Credentials: p.creds,
		HTTPClient: &http.Client{
			Transport:     &twilioTransport{base: p.transport, call: call},
			Timeout:       p.timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	c.SetAccountSid(p.opts.AccountSID)
	return openapi.NewApiServiceWithClient(&twilioClient{Client: c, base: p.base}), call, cancel
}

// twilioClient points twilio-go at BaseURL: it rewrites scheme and host (and prefixes the
// path) of every URL the SDK builds, pagination links included.
type twilioClient struct {
	*client.Client
	base *url.URL
}

func (c *twilioClient) SendRequest(method, rawURL string, data url.Values, headers map[string]interface{}, body ...byte) (*http.Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("failed to parse twilio URL: %w", err)
	}
	u.Scheme, u.Host = c.base.Scheme, c.base.Host
	if prefix := strings.TrimSuffix(c.base.Path, "/"); prefix != "" {
		u.Path, u.RawPath = prefix+u.Path, ""
	}
	return c.Client.SendRequest(method, u.String(), data, headers, body...)
}

// twilioCall is what one call's transport observed.
type twilioCall struct {
	ctx        context.Context
	wrote      atomic.Bool
	status     atomic.Int32
	retryAfter atomic.Int64
}

func (c *twilioCall) httpStatus() int               { return int(c.status.Load()) }
func (c *twilioCall) retryAfterHint() time.Duration { return time.Duration(c.retryAfter.Load()) }

type twilioTransport struct {
	base http.RoundTripper
	call *twilioCall
}

func (t *twilioTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// The request's context carries the http.Client timeout; the call's context adds the
	// caller's cancellation.
	ctx, cancel := context.WithCancel(req.Context())
	stop := context.AfterFunc(t.call.ctx, cancel)
	trace := &httptrace.ClientTrace{WroteRequest: func(info httptrace.WroteRequestInfo) {
		if info.Err == nil {
			t.call.wrote.Store(true)
		}
	}}
	resp, err := t.base.RoundTrip(req.WithContext(httptrace.WithClientTrace(ctx, trace)))
	if err != nil {
		stop()
		cancel()
		return nil, err
	}
	t.call.status.Store(int32(resp.StatusCode))
	t.call.retryAfter.Store(int64(parseRetryAfter(resp.Header.Get("Retry-After"))))
	// The request context must live until the body is read; it ends when the body is
	// closed or, at the latest, when the call returns (AfterFunc on the call's context).
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: func() { stop(); cancel() }}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel func()
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// parseRetryAfter reads a Retry-After header in seconds or as an HTTP date.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

func twilioReceipt(msg *openapi.ApiV2010Message) *Receipt {
	r := &Receipt{
		ProviderMessageID: deref(msg.Sid),
		Status:            TwilioStatus(deref(msg.Status)),
		Cost:              twilioPrice(msg.Price),
		Currency:          strings.ToUpper(deref(msg.PriceUnit)),
	}
	r.Segments, _ = strconv.Atoi(deref(msg.NumSegments))
	return r
}

func twilioUpdate(msg *openapi.ApiV2010Message) *StatusUpdate {
	u := &StatusUpdate{
		ProviderMessageID: deref(msg.Sid),
		Status:            TwilioStatus(deref(msg.Status)),
		ProviderStatus:    deref(msg.Status),
		ErrorMessage:      deref(msg.ErrorMessage),
		Cost:              twilioPrice(msg.Price),
		Currency:          strings.ToUpper(deref(msg.PriceUnit)),
		At:                time.Now().UTC(),
	}
	if msg.ErrorCode != nil && *msg.ErrorCode != 0 {
		u.ErrorCode = strconv.Itoa(*msg.ErrorCode)
	}
	u.Segments, _ = strconv.Atoi(deref(msg.NumSegments))
	if t, err := time.Parse(time.RFC1123Z, deref(msg.DateUpdated)); err == nil {
		u.At = t.UTC()
	}
	return u
}

// twilioPrice turns Twilio's price ("-0.00790", null until rated) into a positive cost.
func twilioPrice(p *string) float64 {
	if p == nil {
		return 0
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(*p), 64)
	if err != nil {
		return 0
	}
	if v < 0 {
		v = -v
	}
	return v
}

// redactNumbers masks phone numbers in a vendor's text ("+966501234567" -> "+966XXXXXXXX67").
func redactNumbers(s string) string {
	return phoneLike.ReplaceAllStringFunc(s, func(n string) string {
		d := strings.TrimPrefix(n, "+")
		return n[:len(n)-len(d)] + d[:3] + strings.Repeat("X", len(d)-5) + d[len(d)-2:]
	})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
