package providertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// UnifonicAppSID is the default AppSid of a fake Unifonic account.
const UnifonicAppSID = "f4k3Un1f0n1cAppS1d000000000001"

// unifonicTime is the layout of Unifonic's TimeCreated ("2022-09-06 14:06:25.979").
const unifonicTime = "2006-01-02 15:04:05.000"

// Unifonic is a fake Unifonic SMS REST API on 127.0.0.1: POST /rest/SMS/messages and
// POST /rest/SMS/Messages/GetMessagesDetails, with AppSid auth, Unifonic's JSON envelope
// ({"success","message","errorCode","data"}) and its non-standard HTTP error codes
// (401, 402, 409, 429, 449, 480, 482, 599). A CorrelationID already used is refused with
// 409, as a duplicate.
//
// Scripting (promoted from the shared script): SetLatency, SetLatencyFunc, ReplyNext,
// ReplyToNumber, SetOutage, SetHistoryLimit, Requests.
type Unifonic struct {
	*script
	URL    string // base URL; give it to UnifonicOptions.BaseURL
	AppSID string

	srv *httptest.Server

	mu         sync.Mutex
	messages   map[string]*UnifonicMessage // by MessageID
	order      []string
	byCorr     map[string]string // CorrelationID -> MessageID
	nextID     uint64
	balance    float64
	strings    bool
	senders    map[string]bool
	autoDelay  time.Duration
	autoURL    string
	outcomes   map[string]string
	dlrClient  *http.Client
	unitPrice  float64
	currency   string
	duplicates bool
}

// UnifonicMessage is a message the fake accepted.
type UnifonicMessage struct {
	MessageID      string // a large integer, kept as decimal text
	CorrelationID  string
	SenderID       string
	Recipient      string // international, without "+"
	Body           string
	StatusCallback string
	Status         string // "Sent"
	DLR            string // "" until reported, then "Delivered" or "Undeliverable"
	NumberOfUnits  int
	Cost           float64
	TimeCreated    time.Time
}

// UnifonicOption configures a fake Unifonic.
type UnifonicOption func(*Unifonic)

// WithUnifonicAppSID sets the AppSid the fake accepts.
func WithUnifonicAppSID(appSID string) UnifonicOption {
	return func(f *Unifonic) { f.AppSID = appSID }
}

// WithUnifonicSenders limits the SenderIDs the account may use (any non-empty one by default);
// others are refused with 480.
func WithUnifonicSenders(senderIDs ...string) UnifonicOption {
	return func(f *Unifonic) {
		f.senders = map[string]bool{}
		for _, s := range senderIDs {
			f.senders[s] = true
		}
	}
}

// NewUnifonic starts a fake Unifonic on loopback. With a non-nil tb it is closed when the
// test ends; otherwise the caller closes it.
func NewUnifonic(tb testing.TB, opts ...UnifonicOption) *Unifonic {
	f := &Unifonic{
		script:     newScript(),
		AppSID:     UnifonicAppSID,
		messages:   map[string]*UnifonicMessage{},
		byCorr:     map[string]string{},
		nextID:     42000348806924,
		balance:    1000,
		outcomes:   map[string]string{},
		dlrClient:  &http.Client{Timeout: 5 * time.Second},
		unitPrice:  0.05,
		currency:   "SAR",
		duplicates: true,
	}
	for _, o := range opts {
		o(f)
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serveHTTP))
	f.URL = f.srv.URL
	if tb != nil {
		tb.Cleanup(f.Close)
	}
	return f
}

// Close releases hung requests, stops background reports and shuts the server down.
func (f *Unifonic) Close() {
	f.shutdown()
	f.srv.Close()
}

// SetStringValues makes replies use strings where Unifonic sometimes does: "success":"true",
// NumberOfUnits, Cost, Balance and Recipient as strings. MessageID stays a bare integer.
func (f *Unifonic) SetStringValues(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.strings = on
}

// SetNextMessageID sets the MessageID the next accepted message gets.
func (f *Unifonic) SetNextMessageID(id uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID = id
}

// SetDuplicateCheck turns the 409 reply to a reused CorrelationID on (the default) or off.
func (f *Unifonic) SetDuplicateCheck(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.duplicates = on
}

// SetAutoDLR makes the fake report each accepted message's delivery after delay: the DLR
// (Delivered unless SetOutcome says otherwise) is stored and posted as JSON to the message's
// statusCallback, or to webhookURL (the account-level DLR webhook) when it has none. Zero
// turns this off.
func (f *Unifonic) SetAutoDLR(delay time.Duration, webhookURL string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.autoDelay, f.autoURL = delay, webhookURL
}

// SetOutcome sets the DLR ("Delivered", "Undeliverable") that auto reports give number.
func (f *Unifonic) SetOutcome(number, dlr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outcomes[digits(number)] = dlr
}

// SetDLR records a delivery report for a stored message; it reports whether it exists.
func (f *Unifonic) SetDLR(messageID, dlr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.messages[messageID]
	if ok {
		m.DLR = dlr
	}
	return ok
}

// Messages returns copies of the stored messages, oldest first.
func (f *Unifonic) Messages() []UnifonicMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]UnifonicMessage, 0, len(f.order))
	for _, id := range f.order {
		out = append(out, *f.messages[id])
	}
	return out
}

// Message returns a copy of the stored message with messageID.
func (f *Unifonic) Message(messageID string) (UnifonicMessage, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.messages[messageID]
	if !ok {
		return UnifonicMessage{}, false
	}
	return *m, true
}

func (f *Unifonic) serveHTTP(w http.ResponseWriter, r *http.Request) {
	f.record(r)
	// r.Form holds the query and the body: Unifonic's OpenAPI lists the fields as query
	// parameters, its curl examples send them urlencoded.
	path := strings.ToLower(r.URL.Path)
	send := r.Method == http.MethodPost && path == "/rest/sms/messages"
	if f.intercept(w, r, send, r.Form.Get("Recipient"), func() {
		if m, _, _ := f.validate(r.Form); m != nil {
			f.store(m)
		}
	}) {
		return
	}
	if r.Method != http.MethodPost {
		writeUnifonicStatus(w, http.StatusMethodNotAllowed)
		return
	}
	switch path {
	case "/rest/sms/messages":
	case "/rest/sms/messages/getmessagesdetails":
	default:
		writeUnifonicStatus(w, http.StatusNotFound)
		return
	}
	switch app := r.Form.Get("AppSid"); {
	case app == "":
		writeUnifonicStatus(w, http.StatusPaymentRequired)
		return
	case app != f.AppSID:
		writeUnifonicStatus(w, http.StatusUnauthorized)
		return
	}
	if path == "/rest/sms/messages" {
		f.send(w, r)
		return
	}
	f.details(w, r)
}

// validate checks a send as Unifonic does; it returns the message to store, or the HTTP
// status to refuse with (200 plus an ER- code for Unifonic's soft failures).
func (f *Unifonic) validate(form url.Values) (*UnifonicMessage, int, string) {
	body, sender, rcpt := form.Get("Body"), form.Get("SenderID"), form.Get("Recipient")
	f.mu.Lock()
	senders := f.senders
	f.mu.Unlock()
	switch {
	case strings.TrimSpace(body) == "":
		return nil, 449, ""
	case sender == "" || (senders != nil && !senders[sender]):
		return nil, 480, ""
	case rcpt == "" || digits(rcpt) != rcpt || len(rcpt) > 15:
		return nil, 482, ""
	case len(rcpt) < 10:
		return nil, http.StatusOK, "ER-04"
	}
	return &UnifonicMessage{
		CorrelationID:  form.Get("CorrelationID"),
		SenderID:       sender,
		Recipient:      rcpt,
		Body:           body,
		StatusCallback: form.Get("statusCallback"),
		Status:         "Sent",
		NumberOfUnits:  smsSegments(body),
		TimeCreated:    time.Now().UTC(),
	}, 0, ""
}

// store keeps an accepted message and gives it its MessageID; a reused CorrelationID
// returns nil.
func (f *Unifonic) store(m *UnifonicMessage) *UnifonicMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m.CorrelationID != "" && f.duplicates {
		if _, dup := f.byCorr[m.CorrelationID]; dup {
			return nil
		}
	}
	m.MessageID = strconv.FormatUint(f.nextID, 10)
	f.nextID++
	m.Cost = f.unitPrice * float64(m.NumberOfUnits)
	f.balance -= m.Cost
	f.messages[m.MessageID] = m
	f.order = append(f.order, m.MessageID)
	if m.CorrelationID != "" {
		f.byCorr[m.CorrelationID] = m.MessageID
	}
	if f.limit > 0 && len(f.order) > 2*f.limit {
		for _, id := range f.order[:len(f.order)-f.limit] {
			if old := f.messages[id]; old != nil {
				delete(f.byCorr, old.CorrelationID)
			}
			delete(f.messages, id)
		}
		f.order = append(f.order[:0:0], f.order[len(f.order)-f.limit:]...)
	}
	if f.autoDelay > 0 {
		target := m.StatusCallback
		if target == "" {
			target = f.autoURL
		}
		dlr, ok := f.outcomes[digits(m.Recipient)]
		if !ok {
			dlr = "Delivered"
		}
		if target != "" {
			delay, id := f.autoDelay, m.MessageID
			f.goBackground(func() {
				if !f.sleep(delay) || !f.SetDLR(id, dlr) {
					return
				}
				d, ok := f.DLRFor(id)
				if !ok {
					return
				}
				if resp, err := f.PostDLR(f.ctx, target, d, true); err == nil {
					resp.Body.Close()
				}
			})
		}
	}
	c := *m
	return &c
}

func (f *Unifonic) send(w http.ResponseWriter, r *http.Request) {
	m, status, code := f.validate(r.Form)
	if m == nil {
		if code != "" {
			writeUnifonicFailure(w, code, "Dest num is too short")
			return
		}
		writeUnifonicStatus(w, status)
		return
	}
	stored := f.store(m)
	if stored == nil {
		writeUnifonicStatus(w, http.StatusConflict)
		return
	}
	f.mu.Lock()
	str, balance := f.strings, f.balance
	f.mu.Unlock()
	data := map[string]any{
		"MessageID":     json.Number(stored.MessageID),
		"CorrelationID": stored.CorrelationID,
		"Status":        stored.Status,
		"NumberOfUnits": unifonicNumber(str, strconv.Itoa(stored.NumberOfUnits)),
		"Cost":          unifonicNumber(str, strconv.FormatFloat(stored.Cost, 'f', 4, 64)),
		"Balance":       unifonicNumber(str, strconv.FormatFloat(balance, 'f', 4, 64)),
		"Recipient":     unifonicNumber(str, stored.Recipient),
		"TimeCreated":   stored.TimeCreated.Format(unifonicTime),
		"CurrencyCode":  f.currency,
	}
	writeUnifonicSuccess(w, str, data)
}

func (f *Unifonic) details(w http.ResponseWriter, r *http.Request) {
	id, corr := r.Form.Get("MessageID"), r.Form.Get("CorrelationID")
	f.mu.Lock()
	str := f.strings
	var list []map[string]any
	for i := len(f.order) - 1; i >= 0 && len(list) < 100; i-- {
		m := f.messages[f.order[i]]
		if (id != "" && m.MessageID != id) || (corr != "" && m.CorrelationID != corr) {
			continue
		}
		list = append(list, map[string]any{
			"MessageID":     json.Number(m.MessageID),
			"CorrelationID": m.CorrelationID,
			"Body":          m.Body,
			"SenderID":      m.SenderID,
			"Recipient":     unifonicNumber(str, m.Recipient),
			"Status":        m.Status,
			"DLR":           m.DLR,
			"NumberOfUnits": unifonicNumber(str, strconv.Itoa(m.NumberOfUnits)),
			"Cost":          unifonicNumber(str, strconv.FormatFloat(m.Cost, 'f', 4, 64)),
			"CurrencyCode":  f.currency,
			"TimeCreated":   m.TimeCreated.Format(unifonicTime),
		})
	}
	f.mu.Unlock()
	if list == nil {
		list = []map[string]any{}
	}
	writeUnifonicSuccess(w, str, map[string]any{
		"messages":          list,
		"TotalTextMessages": unifonicNumber(str, strconv.Itoa(len(list))),
		"page":              unifonicNumber(str, "1"),
	})
}

func unifonicNumber(asString bool, n string) any {
	if asString {
		return n
	}
	return json.Number(n)
}

func writeUnifonicSuccess(w http.ResponseWriter, asString bool, data any) {
	var success any = true
	if asString {
		success = "true"
	}
	body, _ := json.Marshal(map[string]any{"success": success, "message": "", "errorCode": "ER-00", "data": data})
	writeJSON(w, http.StatusOK, body)
}

func writeUnifonicFailure(w http.ResponseWriter, code, message string) {
	body, _ := json.Marshal(map[string]any{"success": false, "message": message, "errorCode": code, "data": nil})
	writeJSON(w, http.StatusOK, body)
}

// unifonicStatusText are the fake's texts for Unifonic's non-standard HTTP error codes.
var unifonicStatusText = map[int]string{
	401: "Authentication failed",
	402: "Missing parameter: AppSid",
	404: "Not found",
	405: "Method not allowed",
	409: "Duplicate request",
	429: "Too many requests",
	449: "Message body is empty",
	480: "This user cannot use specified SenderID",
	482: "Invalid destination number",
	500: "Internal server error",
	599: "Request failed",
}

func unifonicErrorBody(status int) []byte {
	msg, ok := unifonicStatusText[status]
	if !ok {
		msg = http.StatusText(status)
	}
	code := ""
	if status == http.StatusUnauthorized {
		code = "ER-01"
	}
	body, _ := json.Marshal(map[string]any{"success": false, "message": msg, "errorCode": code, "data": nil})
	return body
}

func writeUnifonicStatus(w http.ResponseWriter, status int) {
	writeJSON(w, status, unifonicErrorBody(status))
}

// UnifonicHTTPError is Unifonic's reply with one of its HTTP error codes (401, 402, 409,
// 429, 449, 480, 482, 599, or any other status) and a JSON envelope with success:false.
func UnifonicHTTPError(status int) Reply {
	r := Reply{Status: status, Body: string(unifonicErrorBody(status))}
	if status == http.StatusTooManyRequests {
		r.Header = http.Header{"Retry-After": {"2"}}
	}
	return r
}

// UnifonicFailure is Unifonic's soft failure: HTTP 200 with success:false and an ER- code,
// e.g. ("ER-04", "Dest num is too short").
func UnifonicFailure(errorCode, message string) Reply {
	body, _ := json.Marshal(map[string]any{"success": false, "message": message, "errorCode": errorCode, "data": nil})
	return Reply{Status: http.StatusOK, Body: string(body)}
}

// UnifonicDLR is a delivery report as Unifonic posts it to a statusCallback or DLR webhook.
type UnifonicDLR struct {
	MessageID     string
	CorrelationID string // empty when not echoed
	Recipient     string
	DLR           string // "Delivered" or "Undeliverable"
	Status        string
	TimeCreated   string
	SCTS          string
	DLRTimestamp  string
}

// Values is the report as form fields.
func (d UnifonicDLR) Values() url.Values {
	v := url.Values{}
	for _, kv := range d.fields() {
		if kv[1] != "" {
			v.Set(kv[0], kv[1])
		}
	}
	return v
}

// JSON is the report as a JSON object, with MessageID as a bare integer when it is one.
func (d UnifonicDLR) JSON() []byte {
	obj := map[string]any{}
	for _, kv := range d.fields() {
		if kv[1] != "" {
			obj[kv[0]] = kv[1]
		}
	}
	if _, err := strconv.ParseUint(d.MessageID, 10, 64); err == nil {
		obj["MessageID"] = json.Number(d.MessageID)
	}
	b, _ := json.Marshal(obj)
	return b
}

func (d UnifonicDLR) fields() [][2]string {
	return [][2]string{
		{"MessageID", d.MessageID}, {"CorrelationID", d.CorrelationID}, {"Recipient", d.Recipient},
		{"DLR", d.DLR}, {"Status", d.Status}, {"TimeCreated", d.TimeCreated}, {"SCTS", d.SCTS},
		{"DLRTimestamp", d.DLRTimestamp},
	}
}

// UnifonicDLRRequest builds the POST carrying d to callbackURL, as JSON or as a form.
func UnifonicDLRRequest(callbackURL string, d UnifonicDLR, asJSON bool) (*http.Request, error) {
	var (
		body string
		ct   string
	)
	if asJSON {
		body, ct = string(d.JSON()), "application/json"
	} else {
		body, ct = d.Values().Encode(), "application/x-www-form-urlencoded"
	}
	req, err := http.NewRequest(http.MethodPost, callbackURL, strings.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("failed to build delivery report: %w", err)
	}
	req.Header.Set("Content-Type", ct)
	return req, nil
}

// DLRFor is the delivery report of a stored message, with its current DLR.
func (f *Unifonic) DLRFor(messageID string) (UnifonicDLR, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.messages[messageID]
	if !ok {
		return UnifonicDLR{}, false
	}
	now := time.Now().UTC()
	return UnifonicDLR{
		MessageID:     m.MessageID,
		CorrelationID: m.CorrelationID,
		Recipient:     m.Recipient,
		DLR:           m.DLR,
		Status:        m.Status,
		TimeCreated:   m.TimeCreated.Format(unifonicTime),
		SCTS:          now.Format("2006-01-02 15:04:05"),
		DLRTimestamp:  now.Format("2006-01-02 15:04:05"),
	}, true
}

// PostDLR posts d to callbackURL, as JSON or as a form. The caller closes the response body.
func (f *Unifonic) PostDLR(ctx context.Context, callbackURL string, d UnifonicDLR, asJSON bool) (*http.Response, error) {
	req, err := UnifonicDLRRequest(callbackURL, d, asJSON)
	if err != nil {
		return nil, err
	}
	resp, err := f.dlrClient.Do(req.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("failed to post delivery report: %w", err)
	}
	return resp, nil
}
