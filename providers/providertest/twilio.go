package providertest

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Default credentials of a fake Twilio account. Both are alphanumeric, as twilio-go requires.
const (
	TwilioAccountSID = "AC00000000000000000000000000000001"
	TwilioAuthToken  = "f4k3a0th70k3n0000000000000000001"
)

// twilioDate is the RFC 2822 layout of Twilio's date_* fields ("Thu, 30 Jul 2015 20:12:31 +0000").
const twilioDate = time.RFC1123Z

// Twilio is a fake Twilio REST API (2010-04-01 Messages and Accounts) on 127.0.0.1. It checks
// basic auth, validates sends as Twilio does, answers in Twilio's snake_case JSON and error
// bodies, stores every accepted message for fetch and list, and can post signed status
// callbacks.
//
// Scripting (promoted from the shared script): SetLatency, SetLatencyFunc, ReplyNext,
// ReplyToNumber, SetOutage, SetHistoryLimit, Requests.
type Twilio struct {
	*script
	URL        string // base URL, e.g. http://127.0.0.1:41234; give it to TwilioOptions.BaseURL
	AccountSID string
	AuthToken  string

	srv *httptest.Server

	mu            sync.Mutex
	messages      map[string]*TwilioMessage
	order         []string // sids, oldest first
	accountStatus string
	autoDelay     time.Duration
	outcomes      map[string]twilioOutcome
	callbacks     *http.Client
	onCreated     func(sid string, arrived time.Time)
}

// TwilioMessage is a message the fake accepted, as Twilio stores it.
type TwilioMessage struct {
	Sid                 string
	To                  string
	From                string // empty when a Messaging Service has not picked a sender
	MessagingServiceSid string
	Body                string
	ContentSid          string
	ContentVariables    string
	StatusCallback      string
	ValidityPeriod      string
	Status              string
	ErrorCode           int
	ErrorMessage        string
	NumSegments         int
	Price               string // negative, "" until rated
	PriceUnit           string
	DateCreated         time.Time
	DateSent            time.Time // zero while queued
	DateUpdated         time.Time
}

type twilioOutcome struct {
	status string
	code   int
}

// TwilioOption configures a fake Twilio.
type TwilioOption func(*Twilio)

// WithTwilioAccount sets the account SID and auth token the fake accepts and signs with.
func WithTwilioAccount(accountSID, authToken string) TwilioOption {
	return func(f *Twilio) { f.AccountSID, f.AuthToken = accountSID, authToken }
}

// NewTwilio starts a fake Twilio on loopback. With a non-nil tb it is closed when the test
// ends; otherwise the caller closes it.
func NewTwilio(tb testing.TB, opts ...TwilioOption) *Twilio {
	f := &Twilio{
		script:        newScript(),
		AccountSID:    TwilioAccountSID,
		AuthToken:     TwilioAuthToken,
		messages:      map[string]*TwilioMessage{},
		accountStatus: "active",
		outcomes:      map[string]twilioOutcome{},
		callbacks:     &http.Client{Timeout: 5 * time.Second},
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

// Close releases hung requests, stops background callbacks and shuts the server down.
func (f *Twilio) Close() {
	f.shutdown()
	f.srv.Close()
}

// SetAccountStatus sets the status the account fetch reports ("active", "suspended", "closed").
func (f *Twilio) SetAccountStatus(status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.accountStatus = status
}

// OnCreated makes fn run for every message the fake accepts, with the time its request
// arrived, once the answer is written: a load generator schedules its own delivery reports
// with it.
func (f *Twilio) OnCreated(fn func(sid string, arrived time.Time)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onCreated = fn
}

// SetAutoCallbacks makes the fake act out each accepted message that has a StatusCallback:
// after delay it is "sent", after another delay it reaches its outcome (delivered unless
// SetOutcome says otherwise), and each change is posted, signed, to the StatusCallback URL.
// Twilio posts no callback for the first status (queued/accepted), and neither does the fake.
// Zero turns this off.
func (f *Twilio) SetAutoCallbacks(delay time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.autoDelay = delay
}

// SetOutcome sets the final status of messages to number when auto callbacks act them out,
// e.g. ("undelivered", 30003) or ("failed", 63016).
func (f *Twilio) SetOutcome(number, status string, errorCode int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outcomes[digits(number)] = twilioOutcome{status: status, code: errorCode}
}

// Messages returns copies of the stored messages, oldest first.
func (f *Twilio) Messages() []TwilioMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]TwilioMessage, 0, len(f.order))
	for _, sid := range f.order {
		out = append(out, *f.messages[sid])
	}
	return out
}

// Message returns a copy of the stored message sid.
func (f *Twilio) Message(sid string) (TwilioMessage, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.messages[sid]
	if !ok {
		return TwilioMessage{}, false
	}
	return *m, true
}

// SetStatus changes a stored message's status (and error code, 0 for none), as the carrier
// would. It reports whether the message exists.
func (f *Twilio) SetStatus(sid, status string, errorCode int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.messages[sid]
	if !ok {
		return false
	}
	m.setStatus(status, errorCode, time.Now().UTC())
	return true
}

func (m *TwilioMessage) setStatus(status string, code int, now time.Time) {
	m.Status, m.ErrorCode, m.ErrorMessage = status, code, ""
	if code != 0 {
		m.ErrorMessage = twilioErrorText(code)
	}
	switch status {
	case "queued", "accepted", "scheduled":
		m.DateSent, m.Price = time.Time{}, ""
	default:
		if m.DateSent.IsZero() {
			m.DateSent = now
		}
		if m.Price == "" && status != "canceled" {
			unit := 0.0079
			if strings.HasPrefix(m.To, "whatsapp:") {
				unit = 0.005
			}
			m.Price = fmt.Sprintf("-%.5f", unit*float64(m.NumSegments))
		}
	}
	m.DateUpdated = now
}

var (
	twilioPathMessages = regexp.MustCompile(`^/2010-04-01/Accounts/([^/]+)/Messages\.json$`)
	twilioPathMessage  = regexp.MustCompile(`^/2010-04-01/Accounts/([^/]+)/Messages/([^/]+)\.json$`)
	twilioPathAccount  = regexp.MustCompile(`^/2010-04-01/Accounts/([^/]+)\.json$`)
	twilioAddress      = regexp.MustCompile(`^(whatsapp:)?\+[1-9][0-9]{6,14}$`)
)

func (f *Twilio) serveHTTP(w http.ResponseWriter, r *http.Request) {
	arrived := f.record(r).At
	send := r.Method == http.MethodPost && twilioPathMessages.MatchString(r.URL.Path)
	to := ""
	if send {
		to = r.PostForm.Get("To")
	}
	if f.intercept(w, r, send, to, func() {
		if m, fault := f.validate(r); fault == nil {
			f.store(m)
		}
	}) {
		return
	}

	user, pass, ok := r.BasicAuth()
	if !ok || user != f.AccountSID || pass != f.AuthToken {
		writeTwilioError(w, 20003, "")
		return
	}

	switch p := r.URL.Path; {
	case twilioPathMessages.MatchString(p):
		acct := twilioPathMessages.FindStringSubmatch(p)[1]
		if acct != f.AccountSID {
			writeTwilioError(w, 20404, p)
			return
		}
		switch r.Method {
		case http.MethodPost:
			f.create(w, r, arrived)
		case http.MethodGet:
			f.list(w, r)
		default:
			writeTwilioError(w, 20004, "")
		}
	case twilioPathMessage.MatchString(p) && r.Method == http.MethodGet:
		sm := twilioPathMessage.FindStringSubmatch(p)
		f.mu.Lock()
		m, ok := f.messages[sm[2]]
		var body []byte
		if ok && sm[1] == f.AccountSID {
			body, _ = json.Marshal(f.messageJSON(m))
		}
		f.mu.Unlock()
		if body == nil {
			writeTwilioError(w, 20404, p)
			return
		}
		writeJSON(w, http.StatusOK, body)
	case twilioPathAccount.MatchString(p) && r.Method == http.MethodGet:
		if twilioPathAccount.FindStringSubmatch(p)[1] != f.AccountSID {
			writeTwilioError(w, 20404, p)
			return
		}
		f.account(w)
	default:
		writeTwilioError(w, 20404, p)
	}
}

// validate checks a create request as Twilio does and returns the message to store, or the
// error reply.
func (f *Twilio) validate(r *http.Request) (*TwilioMessage, *twilioFault) {
	form := r.PostForm
	to, from, mg := form.Get("To"), form.Get("From"), form.Get("MessagingServiceSid")
	body, content := form.Get("Body"), form.Get("ContentSid")
	switch {
	case to == "":
		return nil, &twilioFault{code: 21604}
	case from == "" && mg == "":
		return nil, &twilioFault{code: 21603}
	case body == "" && content == "" && form.Get("MediaUrl") == "":
		return nil, &twilioFault{code: 21602}
	case !twilioAddress.MatchString(to):
		return nil, &twilioFault{code: 21211, detail: to}
	case from != "" && strings.HasPrefix(to, "whatsapp:") != strings.HasPrefix(from, "whatsapp:"):
		return nil, &twilioFault{code: 21910}
	case len([]rune(body)) > 1600:
		return nil, &twilioFault{code: 21617}
	}
	if cv := form.Get("ContentVariables"); cv != "" && !json.Valid([]byte(cv)) {
		return nil, &twilioFault{code: 21656}
	}
	if vp := form.Get("ValidityPeriod"); vp != "" {
		if n, err := strconv.Atoi(vp); err != nil || n < 1 || n > 36000 {
			return nil, &twilioFault{code: 21623}
		}
	}
	now := time.Now().UTC()
	m := &TwilioMessage{
		Sid:                 "SM" + randomHex(16),
		To:                  to,
		From:                from,
		MessagingServiceSid: mg,
		Body:                body,
		ContentSid:          content,
		ContentVariables:    form.Get("ContentVariables"),
		StatusCallback:      form.Get("StatusCallback"),
		ValidityPeriod:      form.Get("ValidityPeriod"),
		Status:              "queued",
		NumSegments:         smsSegments(body),
		PriceUnit:           "USD",
		DateCreated:         now,
		DateUpdated:         now,
	}
	if mg != "" {
		m.Status = "accepted"
	}
	return m, nil
}

// store keeps an accepted message. Its stored copy moves on to "sent" at once (a later fetch
// or list sees it sent), while the create reply shows the first status.
func (f *Twilio) store(m *TwilioMessage) *TwilioMessage {
	first := *m
	f.mu.Lock()
	defer f.mu.Unlock()
	if first.From == "" && first.MessagingServiceSid != "" {
		// The service picks a sender once the message leaves the queue.
		m.From = "+15005550006"
		if strings.HasPrefix(m.To, "whatsapp:") {
			m.From = "whatsapp:+15005550006"
		}
	}
	m.setStatus("sent", 0, m.DateCreated)
	f.messages[m.Sid] = m
	f.order = append(f.order, m.Sid)
	if f.limit > 0 && len(f.order) > 2*f.limit {
		drop := f.order[:len(f.order)-f.limit]
		for _, sid := range drop {
			delete(f.messages, sid)
		}
		f.order = append(f.order[:0:0], f.order[len(f.order)-f.limit:]...)
	}
	if f.autoDelay > 0 && m.StatusCallback != "" {
		delay, sid := f.autoDelay, m.Sid
		out, ok := f.outcomes[digits(m.To)]
		if !ok {
			out = twilioOutcome{status: "delivered"}
		}
		f.goBackground(func() { f.actOut(sid, delay, out) })
	}
	return &first
}

func (f *Twilio) actOut(sid string, delay time.Duration, out twilioOutcome) {
	for _, step := range []twilioOutcome{{status: "sent"}, out} {
		if !f.sleep(delay) {
			return
		}
		f.mu.Lock()
		m, ok := f.messages[sid]
		if ok {
			m.setStatus(step.status, step.code, time.Now().UTC())
		}
		f.mu.Unlock()
		if !ok {
			return
		}
		params, cb, ok := f.callbackParams(sid)
		if !ok || cb == "" {
			return
		}
		if resp, err := f.PostStatusCallback(f.ctx, cb, params); err == nil {
			resp.Body.Close()
		}
	}
}

func (f *Twilio) create(w http.ResponseWriter, r *http.Request, arrived time.Time) {
	m, fault := f.validate(r)
	if fault != nil {
		writeTwilioError(w, fault.code, fault.detail)
		return
	}
	first := f.store(m)
	f.mu.Lock()
	body, _ := json.Marshal(f.messageJSON(first))
	onCreated := f.onCreated
	f.mu.Unlock()
	writeJSON(w, http.StatusCreated, body)
	if onCreated != nil {
		onCreated(first.Sid, arrived)
	}
}

// list answers GET Messages.json with Twilio's filters (To, From, DateSent, DateSent<,
// DateSent>) and paging (PageSize, Page), most recent first. Messages still queued have no
// date_sent and are left out by any DateSent filter.
func (f *Twilio) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	size := 50
	if v, err := strconv.Atoi(q.Get("PageSize")); err == nil && v > 0 {
		size = min(v, 1000)
	}
	page, _ := strconv.Atoi(q.Get("Page"))
	if page < 0 {
		page = 0
	}
	type bound struct {
		op  string
		at  time.Time
		day bool
	}
	var bounds []bound
	for _, key := range []string{"DateSent", "DateSent<", "DateSent>"} {
		v := q.Get(key)
		if v == "" {
			continue
		}
		at, day, ok := parseTwilioDateFilter(v)
		if !ok {
			writeTwilioError(w, 20001, "Invalid "+key)
			return
		}
		bounds = append(bounds, bound{op: key, at: at, day: day})
	}

	f.mu.Lock()
	var matched []*TwilioMessage
	for i := len(f.order) - 1; i >= 0; i-- {
		m := f.messages[f.order[i]]
		if v := q.Get("To"); v != "" && m.To != v {
			continue
		}
		if v := q.Get("From"); v != "" && m.From != v {
			continue
		}
		keep := true
		for _, b := range bounds {
			if m.DateSent.IsZero() {
				keep = false
				break
			}
			sent := m.DateSent
			switch b.op {
			case "DateSent":
				keep = keep && !sent.Before(b.at) && sent.Before(b.at.Add(24*time.Hour))
			case "DateSent<":
				end := b.at
				if b.day {
					end = end.Add(24 * time.Hour)
				}
				keep = keep && sent.Before(end)
			case "DateSent>":
				keep = keep && !sent.Before(b.at)
			}
		}
		if keep {
			matched = append(matched, m)
		}
	}
	// Most recent first: unsent (queued) messages, then by date_sent, then by creation.
	sort.SliceStable(matched, func(i, j int) bool {
		a, b := matched[i], matched[j]
		if a.DateSent.IsZero() != b.DateSent.IsZero() {
			return a.DateSent.IsZero()
		}
		if !a.DateSent.Equal(b.DateSent) {
			return a.DateSent.After(b.DateSent)
		}
		return a.DateCreated.After(b.DateCreated)
	})
	start := min(page*size, len(matched))
	end := min(start+size, len(matched))
	msgs := make([]twilioMessageJSON, 0, end-start)
	for _, m := range matched[start:end] {
		msgs = append(msgs, f.messageJSON(m))
	}
	f.mu.Unlock()

	base := r.URL.Path
	pageURI := func(p int) string {
		v := url.Values{}
		for k, vs := range q {
			if k != "Page" && k != "PageToken" {
				v[k] = vs
			}
		}
		v.Set("PageSize", strconv.Itoa(size))
		v.Set("Page", strconv.Itoa(p))
		if p > 0 {
			v.Set("PageToken", "PASM"+randomHex(16))
		}
		return base + "?" + v.Encode()
	}
	resp := map[string]any{
		"messages":          msgs,
		"end":               max(end-1, 0),
		"first_page_uri":    pageURI(0),
		"next_page_uri":     nil,
		"page":              page,
		"page_size":         size,
		"previous_page_uri": nil,
		"start":             start,
		"uri":               r.URL.RequestURI(),
	}
	if end < len(matched) {
		resp["next_page_uri"] = pageURI(page + 1)
	}
	if page > 0 {
		resp["previous_page_uri"] = pageURI(page - 1)
	}
	body, _ := json.Marshal(resp)
	writeJSON(w, http.StatusOK, body)
}

// parseTwilioDateFilter reads a DateSent filter: Twilio documents YYYY-MM-DD (GMT); twilio-go
// sends RFC 3339.
func parseTwilioDateFilter(v string) (at time.Time, day, ok bool) {
	if t, err := time.Parse("2006-01-02", v); err == nil {
		return t, true, true
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC(), false, true
	}
	return time.Time{}, false, false
}

func (f *Twilio) account(w http.ResponseWriter) {
	f.mu.Lock()
	status := f.accountStatus
	f.mu.Unlock()
	created := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC).Format(twilioDate)
	body, _ := json.Marshal(map[string]any{
		"auth_token":        f.AuthToken,
		"date_created":      created,
		"date_updated":      created,
		"friendly_name":     "clinicmsg test account",
		"owner_account_sid": f.AccountSID,
		"sid":               f.AccountSID,
		"status":            status,
		"subresource_uris":  map[string]string{"messages": "/2010-04-01/Accounts/" + f.AccountSID + "/Messages.json"},
		"type":              "Full",
		"uri":               "/2010-04-01/Accounts/" + f.AccountSID + ".json",
	})
	writeJSON(w, http.StatusOK, body)
}

// twilioMessageJSON is Twilio's Message resource; nil pointers are JSON nulls, as Twilio sends.
type twilioMessageJSON struct {
	AccountSid          string            `json:"account_sid"`
	APIVersion          string            `json:"api_version"`
	Body                string            `json:"body"`
	DateCreated         string            `json:"date_created"`
	DateSent            *string           `json:"date_sent"`
	DateUpdated         string            `json:"date_updated"`
	Direction           string            `json:"direction"`
	ErrorCode           *int              `json:"error_code"`
	ErrorMessage        *string           `json:"error_message"`
	From                *string           `json:"from"`
	MessagingServiceSid *string           `json:"messaging_service_sid"`
	NumMedia            string            `json:"num_media"`
	NumSegments         string            `json:"num_segments"`
	Price               *string           `json:"price"`
	PriceUnit           string            `json:"price_unit"`
	Sid                 string            `json:"sid"`
	Status              string            `json:"status"`
	SubresourceURIs     map[string]string `json:"subresource_uris"`
	To                  string            `json:"to"`
	URI                 string            `json:"uri"`
}

func (f *Twilio) messageJSON(m *TwilioMessage) twilioMessageJSON {
	uri := "/2010-04-01/Accounts/" + f.AccountSID + "/Messages/" + m.Sid
	j := twilioMessageJSON{
		AccountSid:  f.AccountSID,
		APIVersion:  "2010-04-01",
		Body:        m.Body,
		DateCreated: m.DateCreated.Format(twilioDate),
		DateUpdated: m.DateUpdated.Format(twilioDate),
		Direction:   "outbound-api",
		NumMedia:    "0",
		NumSegments: strconv.Itoa(m.NumSegments),
		PriceUnit:   m.PriceUnit,
		Sid:         m.Sid,
		Status:      m.Status,
		SubresourceURIs: map[string]string{
			"media":    uri + "/Media.json",
			"feedback": uri + "/Feedback.json",
		},
		To:  m.To,
		URI: uri + ".json",
	}
	if !m.DateSent.IsZero() {
		s := m.DateSent.Format(twilioDate)
		j.DateSent = &s
	}
	if m.ErrorCode != 0 {
		c, msg := m.ErrorCode, m.ErrorMessage
		j.ErrorCode, j.ErrorMessage = &c, &msg
	}
	if m.From != "" {
		s := m.From
		j.From = &s
	}
	if m.MessagingServiceSid != "" {
		s := m.MessagingServiceSid
		j.MessagingServiceSid = &s
		if m.Status == "accepted" {
			j.NumSegments = "0" // no sender picked yet, so not yet segmented
		}
	}
	if m.Price != "" {
		s := m.Price
		j.Price = &s
	}
	return j
}

type twilioFault struct {
	code   int
	detail string
}

// twilioErrors are the API errors the fake knows: HTTP status and message.
var twilioErrors = map[int]struct {
	status  int
	message string
}{
	20001: {400, "Invalid parameter"},
	20003: {401, "Authenticate"},
	20004: {405, "Method not allowed"},
	20404: {404, "The requested resource %s was not found"},
	20429: {429, "Too Many Requests"},
	20500: {500, "An internal server error has occurred"},
	20503: {503, "Service unavailable"},
	21211: {400, "Invalid 'To' Phone Number: %s"},
	21408: {400, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number"},
	21602: {400, "Message body is required."},
	21603: {400, "A 'From' phone number is required."},
	21604: {400, "A 'To' phone number is required."},
	21606: {400, "The 'From' phone number provided is not a valid message-capable Twilio phone number for this destination."},
	21610: {400, "Attempt to send to unsubscribed recipient"},
	21611: {400, "This 'From' number has exceeded the maximum number of queued messages"},
	21614: {400, "'To' number is not a valid mobile number"},
	21617: {400, "The concatenated message body exceeds the 1600 character limit"},
	21623: {400, "The ValidityPeriod parameter is invalid"},
	21656: {400, "The ContentVariables Parameter is invalid"},
	21910: {400, "Invalid From and To pair. From and To should be of the same channel"},
	30004: {400, "Message blocked"},
	30005: {400, "Unknown destination handset"},
	30006: {400, "Landline or unreachable carrier"},
	30007: {400, "Message filtered"},
	63016: {400, "Failed to send freeform message because you are outside the allowed window. If you are using WhatsApp, please use a Message Template."},
}

func twilioErrorText(code int) string {
	e, ok := twilioErrors[code]
	if !ok {
		return "Error " + strconv.Itoa(code)
	}
	return strings.ReplaceAll(e.message, " %s", "")
}

// twilioErrorBody builds Twilio's error reply for code; detail fills the message's
// placeholder (a number is masked).
func twilioErrorBody(code int, detail string) (int, []byte) {
	e, ok := twilioErrors[code]
	if !ok {
		e.status, e.message = http.StatusBadRequest, "Error "+strconv.Itoa(code)
	}
	msg := e.message
	if strings.Contains(msg, "%s") {
		if code == 21211 {
			detail = maskNumber(detail)
		}
		msg = fmt.Sprintf(msg, detail)
	}
	body, _ := json.Marshal(map[string]any{
		"code":      code,
		"message":   msg,
		"more_info": "https://www.twilio.com/docs/errors/" + strconv.Itoa(code),
		"status":    e.status,
	})
	return e.status, body
}

func writeTwilioError(w http.ResponseWriter, code int, detail string) {
	status, body := twilioErrorBody(code, detail)
	writeJSON(w, status, body)
}

// TwilioError is Twilio's error reply for code (e.g. 21211, 21610, 21614, 63016, 20429 with
// HTTP 429, 20003 with 401), with the HTTP status Twilio uses for it (400 when unknown).
func TwilioError(code int) Reply {
	status, body := twilioErrorBody(code, "+966500000000")
	r := Reply{Status: status, Body: string(body)}
	if code == 20429 {
		r.Header = http.Header{"Retry-After": {"1"}}
	}
	return r
}

// TwilioServerError is Twilio's JSON 500 reply.
func TwilioServerError() Reply {
	return TwilioError(20500)
}

// TwilioSignature computes X-Twilio-Signature as Twilio does: base64(HMAC-SHA1(authToken,
// url followed by each parameter name and its value, names sorted)).
func TwilioSignature(authToken, url string, params url.Values) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(url)
	for _, k := range keys {
		for _, v := range params[k] {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// SignedStatusCallback builds the form POST Twilio makes to a StatusCallback URL, signed
// with authToken and carrying a fresh I-Twilio-Idempotency-Token.
func SignedStatusCallback(callbackURL string, params url.Values, authToken string) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, callbackURL, strings.NewReader(params.Encode()))
	if err != nil {
		return nil, fmt.Errorf("failed to build status callback: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	req.Header.Set("User-Agent", "TwilioProxy/1.1")
	req.Header.Set("X-Twilio-Signature", TwilioSignature(authToken, callbackURL, params))
	req.Header.Set("I-Twilio-Idempotency-Token", randomHex(16))
	return req, nil
}

// StatusCallbackParams are the parameters Twilio posts for a stored message in status
// (the message's own status and error code when status is empty). ok is false for an
// unknown sid.
func (f *Twilio) StatusCallbackParams(sid, status string, errorCode int) (url.Values, bool) {
	f.mu.Lock()
	m, ok := f.messages[sid]
	if !ok {
		f.mu.Unlock()
		return nil, false
	}
	c := *m
	f.mu.Unlock()
	if status != "" {
		c.Status, c.ErrorCode = status, errorCode
	}
	return f.paramsFor(&c), true
}

func (f *Twilio) callbackParams(sid string) (url.Values, string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.messages[sid]
	if !ok {
		return nil, "", false
	}
	return f.paramsFor(m), m.StatusCallback, true
}

func (f *Twilio) paramsFor(m *TwilioMessage) url.Values {
	p := url.Values{
		"AccountSid":    {f.AccountSID},
		"ApiVersion":    {"2010-04-01"},
		"From":          {m.From},
		"MessageSid":    {m.Sid},
		"MessageStatus": {m.Status},
		"SmsSid":        {m.Sid},
		"SmsStatus":     {m.Status},
		"To":            {m.To},
	}
	if m.MessagingServiceSid != "" {
		p.Set("MessagingServiceSid", m.MessagingServiceSid)
	}
	if m.ErrorCode != 0 && (m.Status == "failed" || m.Status == "undelivered") {
		p.Set("ErrorCode", strconv.Itoa(m.ErrorCode))
	}
	if strings.HasPrefix(m.To, "whatsapp:") {
		p.Set("ChannelPrefix", "whatsapp")
		p.Set("ChannelToAddress", strings.TrimPrefix(m.To, "whatsapp:"))
	} else if m.Status == "delivered" || m.Status == "undelivered" {
		p.Set("RawDlrDoneDate", time.Now().UTC().Format("0601021504"))
	}
	return p
}

// PostStatusCallback posts params to callbackURL signed with the fake's auth token, as
// Twilio does. The caller closes the response body.
func (f *Twilio) PostStatusCallback(ctx context.Context, callbackURL string, params url.Values) (*http.Response, error) {
	req, err := SignedStatusCallback(callbackURL, params, f.AuthToken)
	if err != nil {
		return nil, err
	}
	resp, err := f.callbacks.Do(req.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("failed to post status callback: %w", err)
	}
	return resp, nil
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
