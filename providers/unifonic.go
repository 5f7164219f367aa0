package providers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

const (
	unifonicDefaultBaseURL = "https://el.cloud.unifonic.com"
	unifonicDefaultTimeout = 10 * time.Second
	unifonicPathSend       = "/rest/SMS/messages"
	unifonicPathDetails    = "/rest/SMS/Messages/GetMessagesDetails"
	// unifonicHealthID is a CorrelationID no message has; looking it up proves the API
	// answers and the AppSid works without sending anything.
	unifonicHealthID = "clinicmsg-health-check"
)

// UnifonicOptions configures the Unifonic adapter. Zero values get defaults in NewUnifonic.
type UnifonicOptions struct {
	AppSID   string
	SenderID string // the sender when a message names none
	// BaseURL defaults to https://el.cloud.unifonic.com; tests and benchmarks point it at
	// providertest.NewUnifonic.
	BaseURL string
	// StatusCallbackURL, if set, is sent as each message's statusCallback (the DLR webhook,
	// with its secret in the path); otherwise Unifonic uses the account's DLR webhook, if any.
	StatusCallbackURL string
	Timeout           time.Duration // per HTTP request, default 10s
	// HTTPClient, if set, is used (a copy, with Timeout applied when Timeout is set).
	HTTPClient *http.Client
}

// Unifonic sends SMS through Unifonic's REST API (el.cloud.unifonic.com), where Saudi
// sender IDs are registered. It passes the clinicmsg message id as CorrelationID, which is
// how an attempt with an unknown outcome is found again. It is no InboundParser: Unifonic
// documents delivery reports for SMS but no webhook for a patient's reply (its documented
// inbound webhook is the WhatsApp Conversation platform's, a different API), so replies
// reach clinicmsg through Twilio only (docs/PROVIDERS.md).
type Unifonic struct {
	opts UnifonicOptions
	base string
	http *http.Client
}

var (
	_ Provider            = (*Unifonic)(nil)
	_ StatusFetcher       = (*Unifonic)(nil)
	_ StatusWebhookParser = (*Unifonic)(nil)
	_ Reconciler          = (*Unifonic)(nil)
	_ Checker             = (*Unifonic)(nil)
)

// NewUnifonic checks opts and fills their defaults.
func NewUnifonic(opts UnifonicOptions) (*Unifonic, error) {
	if opts.AppSID == "" {
		return nil, errors.New("unifonic: AppSid is required")
	}
	if opts.BaseURL == "" {
		opts.BaseURL = unifonicDefaultBaseURL
	}
	base, err := url.Parse(opts.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("unifonic: invalid base URL %q", opts.BaseURL)
	}
	var hc http.Client
	if opts.HTTPClient != nil {
		hc = *opts.HTTPClient
	} else {
		hc = http.Client{
			Transport:     newTransport(),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if opts.Timeout > 0 {
		hc.Timeout = opts.Timeout
	}
	if hc.Timeout <= 0 {
		hc.Timeout = unifonicDefaultTimeout
	}
	return &Unifonic{opts: opts, base: strings.TrimSuffix(opts.BaseURL, "/"), http: &hc}, nil
}

// Send sends one SMS: Recipient is the E.164 number without "+", CorrelationID the
// clinicmsg message id.
func (p *Unifonic) Send(ctx context.Context, m *Message) (*Receipt, error) {
	if err := ctx.Err(); err != nil {
		return nil, &Error{Provider: "unifonic", Class: ErrRetryable, Message: "not sent: shutting down", Err: err}
	}
	if m.Channel != "" && m.Channel != ChannelSMS {
		return nil, &Error{Provider: "unifonic", Class: ErrPermanent, Code: "config", Message: "Unifonic does not carry the " + m.Channel + " channel"}
	}
	sender := m.From
	if sender == "" {
		sender = p.opts.SenderID
	}
	if sender == "" {
		return nil, &Error{Provider: "unifonic", Class: ErrPermanent, Code: "config", Message: "no Unifonic sender ID configured"}
	}
	form := url.Values{
		"AppSid":        {p.opts.AppSID},
		"SenderID":      {sender},
		"Recipient":     {unifonicRecipient(m.To)},
		"Body":          {m.Body},
		"CorrelationID": {m.ID},
		"responseType":  {"JSON"},
	}
	if p.opts.StatusCallbackURL != "" {
		form.Set("statusCallback", p.opts.StatusCallbackURL)
	}
	res, err := p.post(ctx, unifonicPathSend, form)
	if err != nil {
		return nil, unifonicNetworkError("send message", res, err, true)
	}
	switch {
	case res.status == http.StatusConflict:
		// A duplicate: Unifonic already has a message with this CorrelationID, so this
		// attempt's work was done before. Its record is the receipt.
		rc, rerr := p.Reconcile(ctx, m)
		if rerr == nil && rc != nil {
			return rc, nil
		}
		return nil, &Error{Provider: "unifonic", Class: ErrUnknown, HTTPStatus: res.status, Code: "409",
			Message: "Unifonic reports this message as a duplicate but its record was not found", Err: rerr}
	case res.status < 200 || res.status > 299:
		return nil, unifonicStatusError("send message", res, true)
	}
	env, err := decodeUnifonic(res.body)
	if err != nil {
		return nil, &Error{Provider: "unifonic", Class: ErrUnknown, HTTPStatus: res.status, Message: "HTTP 200 with a body that does not decode", Err: err}
	}
	if !env.Success {
		return nil, &Error{Provider: "unifonic", Class: ErrPermanent, HTTPStatus: res.status, Code: string(env.ErrorCode), Message: redactNumbers(string(env.Message))}
	}
	var data unifonicMessage
	if err := json.Unmarshal(env.Data, &data); err != nil || data.MessageID == "" {
		if err == nil {
			err = errors.New("no MessageID")
		}
		return nil, &Error{Provider: "unifonic", Class: ErrUnknown, HTTPStatus: res.status, Message: "Unifonic accepted the request but its reply has no message id", Err: err}
	}
	return data.receipt(), nil
}

// FetchStatus looks a message up by its Unifonic MessageID.
func (p *Unifonic) FetchStatus(ctx context.Context, providerMessageID string) (*StatusUpdate, error) {
	if providerMessageID == "" || strings.Trim(providerMessageID, "0123456789") != "" {
		return nil, &Error{Provider: "unifonic", Class: ErrPermanent, Code: "not-found", Message: "not a Unifonic message id"}
	}
	msgs, err := p.details(ctx, "fetch message status", url.Values{"MessageID": {providerMessageID}})
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if string(m.MessageID) == providerMessageID || m.MessageID == "" {
			u := m.update()
			u.ProviderMessageID = providerMessageID
			return u, nil
		}
	}
	return nil, &Error{Provider: "unifonic", Class: ErrPermanent, Code: "not-found", Message: "Unifonic has no message with this id"}
}

// Reconcile looks the attempt up by its CorrelationID (the clinicmsg message id): a record
// means Unifonic took the message; none means a resend is safe.
func (p *Unifonic) Reconcile(ctx context.Context, m *Message) (*Receipt, error) {
	msgs, err := p.details(ctx, "look up message to reconcile", url.Values{"CorrelationID": {m.ID}})
	if err != nil {
		return nil, err
	}
	rcpt := unifonicRecipient(m.To)
	for _, d := range msgs {
		if d.MessageID == "" {
			continue
		}
		// A record that does not echo the CorrelationID must at least be to this recipient.
		if string(d.CorrelationID) == m.ID || (d.CorrelationID == "" && (d.Recipient == "" || string(d.Recipient) == rcpt)) {
			return d.receipt(), nil
		}
	}
	return nil, nil
}

// Check looks up a CorrelationID no message has: any answer but a refused AppSid or a
// server failure means Unifonic is reachable and the credentials work.
func (p *Unifonic) Check(ctx context.Context) error {
	form := url.Values{"AppSid": {p.opts.AppSID}, "CorrelationID": {unifonicHealthID}}
	res, err := p.post(ctx, unifonicPathDetails, form)
	if err != nil {
		return unifonicNetworkError("check the Unifonic API", res, err, false)
	}
	if res.status < 200 || res.status > 299 {
		return unifonicStatusError("check the Unifonic API", res, false)
	}
	if env, err := decodeUnifonic(res.body); err == nil && !env.Success && env.ErrorCode == "ER-01" {
		return &Error{Provider: "unifonic", Class: ErrPermanent, HTTPStatus: res.status, Code: "ER-01", Message: redactNumbers(string(env.Message))}
	}
	return nil
}

// details calls GetMessagesDetails and returns its data.messages.
func (p *Unifonic) details(ctx context.Context, op string, query url.Values) ([]unifonicMessage, error) {
	query.Set("AppSid", p.opts.AppSID)
	res, err := p.post(ctx, unifonicPathDetails, query)
	if err != nil {
		return nil, unifonicNetworkError(op, res, err, false)
	}
	if res.status < 200 || res.status > 299 {
		return nil, unifonicStatusError(op, res, false)
	}
	env, err := decodeUnifonic(res.body)
	if err != nil {
		return nil, &Error{Provider: "unifonic", Class: ErrRetryable, HTTPStatus: res.status, Message: "message details do not decode", Err: err}
	}
	if !env.Success {
		// Not documented as "no such message": that is success with no messages. A refusal
		// here must not be taken for "not found", or an unknown attempt would be resent.
		return nil, &Error{Provider: "unifonic", Class: ErrPermanent, HTTPStatus: res.status, Code: string(env.ErrorCode), Message: redactNumbers(string(env.Message))}
	}
	data := bytes.TrimSpace(env.Data)
	if len(data) == 0 || string(data) == "null" || string(data) == `""` {
		return nil, nil
	}
	if data[0] == '[' {
		var list []unifonicMessage
		if err := json.Unmarshal(data, &list); err != nil {
			return nil, &Error{Provider: "unifonic", Class: ErrRetryable, HTTPStatus: res.status, Message: "message details do not decode", Err: err}
		}
		return list, nil
	}
	var wrapped struct {
		Messages []unifonicMessage `json:"messages"`
	}
	if err := json.Unmarshal(data, &wrapped); err != nil {
		return nil, &Error{Provider: "unifonic", Class: ErrRetryable, HTTPStatus: res.status, Message: "message details do not decode", Err: err}
	}
	return wrapped.Messages, nil
}

// unifonicResult is one HTTP exchange with Unifonic.
type unifonicResult struct {
	status int
	header http.Header
	body   []byte
	wrote  bool // the whole request reached the connection
}

func (p *Unifonic) post(ctx context.Context, path string, form url.Values) (*unifonicResult, error) {
	res := &unifonicResult{}
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{WroteRequest: func(info httptrace.WroteRequestInfo) {
		if info.Err == nil {
			wrote.Store(true)
		}
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost, p.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		return res, fmt.Errorf("failed to build unifonic request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := p.http.Do(req)
	res.wrote = wrote.Load()
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	res.status, res.header = resp.StatusCode, resp.Header
	res.body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return res, fmt.Errorf("failed to read unifonic reply: %w", err)
	}
	return res, nil
}

// unifonicNetworkError classifies a failed exchange: nothing written is retryable; after the
// request was written (a timeout or reset, or a reply cut short) it is unknown for a send
// and retryable for a lookup.
func unifonicNetworkError(op string, res *unifonicResult, err error, sideEffect bool) error {
	e := &Error{Provider: "unifonic", Class: ErrRetryable, HTTPStatus: res.status, Err: fmt.Errorf("failed to %s: %w", op, err)}
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err
	}
	switch {
	case res.status != 0 && (res.status == 429 || res.status >= 500):
		e.Message = "reply cut short: " + cause.Error()
	case res.wrote:
		e.Message = "no reply after the request was written: " + cause.Error()
		if sideEffect {
			e.Class = ErrUnknown
		}
	default:
		e.Message = "request not sent: " + cause.Error()
	}
	return e
}

// unifonicStatusError classifies an HTTP error status: 429, 599 and other 5xx are retryable
// (Unifonic did not take the message); 401, 402, 449, 480, 482 and any other status are
// permanent (credentials, sender, body or number).
func unifonicStatusError(op string, res *unifonicResult, sideEffect bool) error {
	e := &Error{Provider: "unifonic", Class: ErrPermanent, HTTPStatus: res.status, Code: strconv.Itoa(res.status)}
	if res.status == http.StatusTooManyRequests || res.status >= 500 {
		e.Class = ErrRetryable
		e.RetryAfter = parseRetryAfter(res.header.Get("Retry-After"))
	}
	msg := fmt.Sprintf("failed to %s: HTTP %d", op, res.status)
	if env, err := decodeUnifonic(res.body); err == nil && env.Message != "" {
		msg += ": " + redactNumbers(string(env.Message))
	}
	e.Message = msg
	return e
}

// unifonicEnvelope is Unifonic's reply. Its types vary between endpoints and accounts, so
// every field decodes leniently.
type unifonicEnvelope struct {
	Success   flexBool        `json:"success"`
	Message   flexString      `json:"message"`
	ErrorCode flexString      `json:"errorCode"`
	Data      json.RawMessage `json:"data"`
}

func decodeUnifonic(body []byte) (*unifonicEnvelope, error) {
	var env unifonicEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("failed to decode unifonic reply: %w", err)
	}
	return &env, nil
}

// unifonicMessage is a message as Unifonic describes it in a send reply or in message
// details. MessageID is a large integer kept as its decimal text.
type unifonicMessage struct {
	MessageID     flexString `json:"MessageID"`
	CorrelationID flexString `json:"CorrelationID"`
	Recipient     flexString `json:"Recipient"`
	Status        flexString `json:"Status"`
	DLR           flexString `json:"DLR"`
	NumberOfUnits flexString `json:"NumberOfUnits"`
	Cost          flexString `json:"Cost"`
	CurrencyCode  flexString `json:"CurrencyCode"`
}

func (m *unifonicMessage) receipt() *Receipt {
	r := &Receipt{
		ProviderMessageID: string(m.MessageID),
		Status:            UnifonicStatus(string(m.Status), string(m.DLR)),
		Currency:          strings.ToUpper(string(m.CurrencyCode)),
	}
	r.Segments, _ = strconv.Atoi(string(m.NumberOfUnits))
	r.Cost, _ = strconv.ParseFloat(string(m.Cost), 64)
	return r
}

func (m *unifonicMessage) update() *StatusUpdate {
	rc := m.receipt()
	return &StatusUpdate{
		MessageID:         string(m.CorrelationID),
		ProviderMessageID: rc.ProviderMessageID,
		Status:            rc.Status,
		ProviderStatus:    first(string(m.DLR), string(m.Status)),
		Segments:          rc.Segments,
		Cost:              rc.Cost,
		Currency:          rc.Currency,
		At:                time.Now().UTC(),
	}
}

// UnifonicStatus maps Unifonic's message Status and delivery report (DLR) onto a clinicmsg
// status; the DLR, when there is one, decides.
func UnifonicStatus(status, dlr string) string {
	switch strings.ToLower(strings.TrimSpace(dlr)) {
	case "delivered", "delivrd":
		return StatusDelivered
	case "undeliverable", "undelivered", "undeliv", "failed", "expired", "rejected":
		return StatusUndelivered
	}
	switch strings.ToLower(strings.TrimSpace(status)) {
	case "delivered":
		return StatusDelivered
	case "undeliverable", "undelivered":
		return StatusUndelivered
	case "failed", "rejected":
		return StatusFailed
	default: // Sent, Queued, Pending, Scheduled: on its way
		return StatusSent
	}
}

// ParseStatusWebhook is ParseDLRWebhook: Unifonic signs nothing, so the route that takes
// its reports carries the appliance's webhook secret instead, checked by the caller.
func (p *Unifonic) ParseStatusWebhook(r *http.Request, _ string) (*StatusUpdate, error) {
	return p.ParseDLRWebhook(r)
}

// ParseDLRWebhook reads a Unifonic delivery report posted as JSON or as a form, with keys in
// any case: MessageID, DLR (Delivered/Undeliverable), Status, and CorrelationID when Unifonic
// echoes it. Unifonic signs nothing: the route checks the secret in the callback path before
// calling this. At is when the report arrived (Unifonic's timestamps name no time zone).
func (p *Unifonic) ParseDLRWebhook(r *http.Request) (*StatusUpdate, error) {
	fields := map[string]string{}
	for k, vs := range r.URL.Query() {
		if len(vs) > 0 {
			fields[strings.ToLower(k)] = vs[0]
		}
	}
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			return nil, fmt.Errorf("failed to read unifonic delivery report: %w", err)
		}
		body = bytes.TrimSpace(b)
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case len(body) == 0:
	case ct == "application/json" || body[0] == '{':
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			return nil, fmt.Errorf("failed to decode unifonic delivery report: %w", err)
		}
		flattenInto(fields, obj)
	default:
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("failed to parse unifonic delivery report: %w", err)
		}
		for k, vs := range vals {
			if len(vs) > 0 {
				fields[strings.ToLower(k)] = vs[0]
			}
		}
	}
	// Unifonic's WhatsApp webhook (its Conversation platform) posts a patient's message with a
	// messageId of its own: read as a delivery report it would be acknowledged and lost. A
	// refusal makes a webhook pointed here by mistake fail where the clinic can see it.
	if strings.EqualFold(fields["eventtype"], "message.received") {
		return nil, errors.New("unifonic webhook is an incoming message (eventType message.received), not a delivery report; clinicmsg takes no incoming messages from Unifonic")
	}
	id, corr := fields["messageid"], fields["correlationid"]
	if id == "" && corr == "" {
		return nil, errors.New("unifonic delivery report has no MessageID or CorrelationID")
	}
	dlr, status := fields["dlr"], fields["status"]
	u := &StatusUpdate{
		MessageID:         corr,
		ProviderMessageID: id,
		Status:            UnifonicStatus(status, dlr),
		ProviderStatus:    first(dlr, status),
		ErrorCode:         fields["errorcode"],
		At:                time.Now().UTC(),
	}
	u.Segments, _ = strconv.Atoi(fields["numberofunits"])
	u.Cost, _ = strconv.ParseFloat(fields["cost"], 64)
	return u, nil
}

// flattenInto copies obj's scalar values into fields under lower-case keys; a nested object
// (a "data" wrapper) adds its keys without overriding.
func flattenInto(fields map[string]string, obj map[string]any) {
	var nested []map[string]any
	for k, v := range obj {
		switch v := v.(type) {
		case string:
			fields[strings.ToLower(k)] = v
		case json.Number:
			fields[strings.ToLower(k)] = v.String()
		case bool:
			fields[strings.ToLower(k)] = strconv.FormatBool(v)
		case map[string]any:
			nested = append(nested, v)
		}
	}
	for _, n := range nested {
		inner := map[string]string{}
		flattenInto(inner, n)
		for k, v := range inner {
			if _, ok := fields[k]; !ok {
				fields[k] = v
			}
		}
	}
}

// unifonicRecipient is Unifonic's form of a number: international digits without "+" or "00".
func unifonicRecipient(to string) string {
	to = strings.TrimPrefix(strings.TrimSpace(to), "whatsapp:")
	if strings.HasPrefix(to, "00") {
		return to[2:]
	}
	return strings.TrimPrefix(to, "+")
}

// flexBool decodes true, false, "true", "false", 1, 0 and null.
type flexBool bool

func (b *flexBool) UnmarshalJSON(data []byte) error {
	s := strings.ToLower(strings.Trim(string(bytes.TrimSpace(data)), `"`))
	switch s {
	case "true", "1":
		*b = true
	case "false", "0", "", "null":
		*b = false
	default:
		return fmt.Errorf("not a boolean: %.20s", s)
	}
	return nil
}

// flexString decodes a string, or a number or boolean as its literal text (so a large
// integer keeps every digit); null is empty.
type flexString string

func (s *flexString) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch {
	case len(data) == 0 || string(data) == "null":
		*s = ""
	case data[0] == '"':
		var v string
		if err := json.Unmarshal(data, &v); err != nil {
			return err
		}
		*s = flexString(strings.TrimSpace(v))
	case data[0] == '{' || data[0] == '[':
		return errors.New("not a scalar")
	default:
		*s = flexString(data)
	}
	return nil
}
