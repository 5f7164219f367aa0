package providers

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"clinicmsg/providers/providertest"
)

// The fuzz targets below run their committed seed corpora (testdata/fuzz/FuzzXxx/) with
// every `go test`, and search for new inputs with `make fuzz`. None may panic, hang or
// allocate more than its input warrants.

// fuzzDeadline is how long one call may take before the fuzz target calls it a hang: every
// function here is linear in its (at most 64 KiB) input.
const fuzzDeadline = 2 * time.Second

// knownStatuses are the clinicmsg statuses a provider report may carry.
var knownStatuses = map[string]bool{
	StatusSent: true, StatusDelivered: true, StatusRead: true, StatusFailed: true,
	StatusUndelivered: true, StatusCanceled: true,
}

// FuzzSegments checks Segments against its definition: GSM-7 exactly when every character
// is in the GSM 03.38 tables, one segment up to 160 (70) units, otherwise between
// ceil(units/153) and ceil(units/152) segments (a split escape or surrogate pair wastes at
// most one unit per segment).
func FuzzSegments(f *testing.F) {
	for _, seed := range []string{"", "a", strings.Repeat("a", 160), strings.Repeat("a", 161), strings.Repeat("€", 80),
		strings.Repeat("م", 70), strings.Repeat("م", 71), "😀", strings.Repeat("😀", 35), "\xff\xfe", "{}[]~^|\\"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		start := time.Now()
		enc, n := Segments(body)
		if d := time.Since(start); d > fuzzDeadline {
			t.Fatalf("Segments took %v for %d bytes", d, len(body))
		}
		gsm := true
		units := 0
		for _, r := range body {
			c, ok := gsm7Cost[r]
			if !ok {
				gsm = false
				break
			}
			units += c
		}
		single, multi := 160, 153
		wantEnc := EncodingGSM7
		if !gsm {
			wantEnc, single, multi = EncodingUCS2, 70, 67
			units = 0
			for _, r := range body {
				units += utf16.RuneLen(r)
			}
		}
		if enc != wantEnc {
			t.Fatalf("%q: expected encoding %s, got %s", body, wantEnc, enc)
		}
		if n < 1 || n > len(body)+1 {
			t.Fatalf("%q: expected 1..%d segments, got %d", body, len(body)+1, n)
		}
		if units <= single {
			if n != 1 {
				t.Fatalf("%q: %d units fit one segment, got %d", body, units, n)
			}
			return
		}
		lo, hi := (units+multi-1)/multi, (units+multi-2)/(multi-1)
		if n < lo || n > hi {
			t.Fatalf("%q: %d %s units need %d..%d segments, got %d", body, units, enc, lo, hi, n)
		}
	})
}

const fuzzPublicURL = "https://msg.clinic.example"

func fuzzTwilio(t *testing.T) *Twilio {
	t.Helper()
	p, err := NewTwilio(TwilioOptions{AccountSID: providertest.TwilioAccountSID, AuthToken: providertest.TwilioAuthToken,
		FromNumber: "+15005550006", BaseURL: "http://127.0.0.1:9"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// twilioRequest builds a webhook POST to path with form as its body. sign: 0 none, 1 the
// correct signature over the parsed form, 2 a well-formed wrong one, 3 correct but for
// another URL (a replay).
func twilioRequest(t *testing.T, path, form string, sign byte) (*http.Request, bool) {
	t.Helper()
	u := fuzzPublicURL + path
	r, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form))
	if err != nil {
		return nil, false // the path is not a URL: the router would never call the parser
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	params, perr := url.ParseQuery(form)
	single := perr == nil
	for _, vs := range params {
		single = single && len(vs) == 1
	}
	switch sign % 4 {
	case 1:
		r.Header.Set("X-Twilio-Signature", providertest.TwilioSignature(providertest.TwilioAuthToken, fuzzPublicURL+r.URL.RequestURI(), params))
	case 2:
		r.Header.Set("X-Twilio-Signature", "bm90IGEgc2lnbmF0dXJlIGF0IGFsbA==")
	case 3:
		r.Header.Set("X-Twilio-Signature", providertest.TwilioSignature(providertest.TwilioAuthToken, "https://evil.example"+r.URL.RequestURI(), params))
	}
	_, qerr := url.ParseQuery(r.URL.RawQuery)
	// A legitimate callback: signed for this URL, well-formed (body and query), each
	// parameter once, in bounds.
	return r, sign%4 == 1 && single && qerr == nil && len(form) <= 64<<10
}

// FuzzTwilioStatusWebhook: a status callback is accepted only with the right signature, and
// an accepted one always names a message and a known status.
func FuzzTwilioStatusWebhook(f *testing.F) {
	f.Add("MessageSid=SM0123&MessageStatus=delivered&AccountSid=AC1", byte(1), "/api/clinicmsg/webhooks/twilio/status")
	f.Add("MessageSid=SM0123&MessageStatus=delivered", byte(0), "/api/clinicmsg/webhooks/twilio/status")
	f.Add("MessageSid=SM0123&MessageStatus=delivered", byte(2), "/api/clinicmsg/webhooks/twilio/status")
	f.Add("MessageSid=SM0123&MessageStatus=delivered", byte(3), "/api/clinicmsg/webhooks/twilio/status")
	f.Add("SmsSid=SM1&SmsStatus=undelivered&ErrorCode=30003", byte(1), "/api/clinicmsg/webhooks/twilio/status?x=1")
	f.Add("MessageSid=%zz&MessageStatus=sent", byte(1), "/api/clinicmsg/webhooks/twilio/status")
	f.Add("MessageSid=SM1;MessageStatus=sent", byte(1), "/api/clinicmsg/webhooks/twilio/status")
	f.Add("MessageSid=SM1&MessageSid=SM2&MessageStatus=read", byte(1), "/")
	f.Add("MessageStatus=delivered", byte(1), "/")
	f.Add("MessageSid=\xff\xfe&MessageStatus=\xc3", byte(1), "/")
	f.Fuzz(func(t *testing.T, form string, sign byte, path string) {
		p := fuzzTwilio(t)
		r, legit := twilioRequest(t, path, form, sign)
		if r == nil {
			return
		}
		start := time.Now()
		u, err := p.ParseStatusWebhook(r, fuzzPublicURL)
		if d := time.Since(start); d > fuzzDeadline {
			t.Fatalf("ParseStatusWebhook took %v", d)
		}
		if sign%4 != 1 && err == nil {
			t.Fatalf("accepted a callback without its signature (mode %d): %+v", sign%4, u)
		}
		if sign%4 == 0 && !errors.Is(err, ErrBadSignature) {
			t.Fatalf("an unsigned callback must be refused as unsigned, got %v", err)
		}
		if err != nil {
			if u != nil {
				t.Fatalf("an error must come without an update, got %+v", u)
			}
			if legit {
				params, _ := url.ParseQuery(form)
				if first(params.Get("MessageSid"), params.Get("SmsSid")) != "" && first(params.Get("MessageStatus"), params.Get("SmsStatus")) != "" {
					t.Fatalf("refused a correctly signed callback %q: %v", form, err)
				}
			}
			return
		}
		if u.ProviderMessageID == "" || !knownStatuses[u.Status] || u.ProviderStatus == "" {
			t.Fatalf("accepted an update without a sid or a known status: %+v", u)
		}
	})
}

// FuzzTwilioInboundWebhook: the same contract for a patient's incoming message.
func FuzzTwilioInboundWebhook(f *testing.F) {
	f.Add("From=%2B966501234567&To=%2B15005550006&Body=STOP&MessageSid=SM1", byte(1), "/api/clinicmsg/webhooks/twilio/inbound")
	f.Add("From=whatsapp%3A%2B966501234567&Body=%D9%86%D8%B9%D9%85&SmsMessageSid=SM2", byte(1), "/api/clinicmsg/webhooks/twilio/inbound")
	f.Add("From=%2B966501234567&Body=x", byte(2), "/api/clinicmsg/webhooks/twilio/inbound")
	f.Add("From=%2B966501234567&Body=x", byte(3), "/api/clinicmsg/webhooks/twilio/inbound")
	f.Add("Body=no+sender", byte(1), "/")
	f.Add("From=%ZZ", byte(1), "/")
	f.Fuzz(func(t *testing.T, form string, sign byte, path string) {
		p := fuzzTwilio(t)
		r, legit := twilioRequest(t, path, form, sign)
		if r == nil {
			return
		}
		start := time.Now()
		in, err := p.ParseInboundWebhook(r, fuzzPublicURL)
		if d := time.Since(start); d > fuzzDeadline {
			t.Fatalf("ParseInboundWebhook took %v", d)
		}
		if sign%4 != 1 && err == nil {
			t.Fatalf("accepted an incoming message without its signature (mode %d): %+v", sign%4, in)
		}
		if err != nil {
			if legit {
				params, _ := url.ParseQuery(form)
				if params.Get("From") != "" {
					t.Fatalf("refused a correctly signed incoming message %q: %v", form, err)
				}
			}
			return
		}
		// (A From of just "whatsapp:" comes out empty; only a correctly signed request gets
		// here, so that is Twilio's to send, and the reply then matches no message.)
		if strings.HasPrefix(in.From, "whatsapp:") || (in.Channel != ChannelSMS && in.Channel != ChannelWhatsApp) {
			t.Fatalf("accepted an incoming message without a plain sender or a channel: %+v", in)
		}
	})
}

// FuzzUnifonicDLRWebhook: a delivery report in JSON or form encoding, with any content type,
// either names a message with a known status or is refused; the body is read to 64 KiB at most.
func FuzzUnifonicDLRWebhook(f *testing.F) {
	f.Add([]byte(`{"MessageID":"1000000001","DLR":"Delivered","CorrelationID":"abc"}`), "application/json", "")
	f.Add([]byte(`{"data":{"messageId":123456789012345678901,"status":"Sent"}}`), "application/json", "")
	f.Add([]byte("MessageID=1&DLR=Undeliverable&ErrorCode=ER04"), "application/x-www-form-urlencoded", "")
	f.Add([]byte(""), "", "MessageID=2&Status=Queued")
	f.Add([]byte("{"), "application/json", "")
	f.Add([]byte(`[1,2,3]`), "application/json", "")
	f.Add([]byte(`{"a":{"b":{"c":{"MessageID":"x"}}}}`), "text/plain", "")
	f.Add([]byte("%zz=1"), "application/x-www-form-urlencoded; charset=utf-8", "")
	f.Add([]byte(`{"MessageID":"1","NumberOfUnits":"99999999999999999999","Cost":"NaN"}`), "application/json", "")
	p, err := NewUnifonic(UnifonicOptions{AppSID: providertest.UnifonicAppSID, SenderID: "Clinic", BaseURL: "http://127.0.0.1:9"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, contentType, query string) {
		r, err := http.NewRequest(http.MethodPost, fuzzPublicURL+"/api/clinicmsg/webhooks/unifonic/secret", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		r.URL.RawQuery = query
		r.Header.Set("Content-Type", contentType)
		start := time.Now()
		u, err := p.ParseDLRWebhook(r)
		if d := time.Since(start); d > fuzzDeadline {
			t.Fatalf("ParseDLRWebhook took %v for %d bytes", d, len(body))
		}
		if err != nil {
			return
		}
		if u.MessageID == "" && u.ProviderMessageID == "" {
			t.Fatalf("accepted a report that names no message: %+v", u)
		}
		if !knownStatuses[u.Status] {
			t.Fatalf("accepted a report with status %q", u.Status)
		}
	})
}
