package providers_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"clinicmsg/providers"
	"clinicmsg/providers/providertest"
)

const (
	testPatient     = "+966501234567"
	testCallbackURL = "https://clinic.example/api/clinicmsg/webhooks/twilio/status"
)

func newTestTwilio(t *testing.T, fake *providertest.Twilio, mod func(*providers.TwilioOptions)) *providers.Twilio {
	t.Helper()
	opts := providers.TwilioOptions{
		AccountSID:        fake.AccountSID,
		AuthToken:         fake.AuthToken,
		FromNumber:        "+15005550006",
		WhatsAppNumber:    "+14155238886",
		BaseURL:           fake.URL,
		StatusCallbackURL: testCallbackURL,
		Timeout:           2 * time.Second,
	}
	if mod != nil {
		mod(&opts)
	}
	p, err := providers.NewTwilio(opts)
	if err != nil {
		t.Fatalf("expected no error from NewTwilio, got %v", err)
	}
	return p
}

// lastSend returns the form of the last message create the fake received.
func lastSend(t *testing.T, reqs []providertest.Request) url.Values {
	t.Helper()
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].Method == http.MethodPost {
			return reqs[i].Form
		}
	}
	t.Fatalf("expected a send request, got none in %d requests", len(reqs))
	return nil
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatalf("failed to read testdata: %v", err)
	}
	return string(b)
}

func TestTwilioSend(t *testing.T) {
	fake := providertest.NewTwilio(t)
	scenarios := []struct {
		name     string
		mod      func(*providers.TwilioOptions)
		msg      providers.Message
		wantForm map[string]string // "" means the field must be absent
		segments int
	}{
		{
			name: "sms from the configured number",
			msg:  providers.Message{ID: "m1", Channel: providers.ChannelSMS, To: testPatient, Body: "Your appointment is tomorrow at 10:00."},
			wantForm: map[string]string{
				"To": testPatient, "From": "+15005550006", "Body": "Your appointment is tomorrow at 10:00.",
				"StatusCallback": testCallbackURL, "MessagingServiceSid": "", "ContentSid": "",
			},
			segments: 1,
		},
		{
			name:     "sms from the clinic's own sender",
			msg:      providers.Message{ID: "m2", Channel: providers.ChannelSMS, To: testPatient, From: "ClinicA", Body: "hello"},
			wantForm: map[string]string{"From": "ClinicA"},
			segments: 1,
		},
		{
			name:     "sms through a messaging service",
			mod:      func(o *providers.TwilioOptions) { o.MessagingServiceSID = "MG00000000000000000000000000000001" },
			msg:      providers.Message{ID: "m3", Channel: providers.ChannelSMS, To: testPatient, Body: "hello"},
			wantForm: map[string]string{"MessagingServiceSid": "MG00000000000000000000000000000001", "From": ""},
			segments: 0, // Twilio says "0" until the service picks a sender
		},
		{
			name:     "arabic sms in two segments",
			msg:      providers.Message{ID: "m4", Channel: providers.ChannelSMS, To: testPatient, Body: strings.Repeat("موعدك غداً ", 8)},
			wantForm: map[string]string{"To": testPatient},
			segments: 2,
		},
		{
			name: "whatsapp free-form",
			msg:  providers.Message{ID: "m5", Channel: providers.ChannelWhatsApp, To: testPatient, Body: "hello"},
			wantForm: map[string]string{
				"To": "whatsapp:" + testPatient, "From": "whatsapp:+14155238886", "Body": "hello", "ContentSid": "",
			},
			segments: 1,
		},
		{
			name: "whatsapp content template",
			msg: providers.Message{
				ID: "m6", Channel: providers.ChannelWhatsApp, To: testPatient, Body: "informational",
				ContentSID: "HX00000000000000000000000000000001", ContentVariables: map[string]string{"1": "12/1", "2": "3pm"},
			},
			wantForm: map[string]string{
				"To": "whatsapp:" + testPatient, "ContentSid": "HX00000000000000000000000000000001",
				"ContentVariables": `{"1":"12/1","2":"3pm"}`, "Body": "",
			},
			segments: 1,
		},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			p := newTestTwilio(t, fake, s.mod)
			msg := s.msg
			rc, err := p.Send(context.Background(), &msg)
			if err != nil {
				t.Fatalf("expected no error, got %v", err)
			}
			if !strings.HasPrefix(rc.ProviderMessageID, "SM") || len(rc.ProviderMessageID) != 34 {
				t.Fatalf("expected an SM sid, got %q", rc.ProviderMessageID)
			}
			if rc.Status != providers.StatusSent {
				t.Fatalf("expected status %q, got %q", providers.StatusSent, rc.Status)
			}
			if rc.Segments != s.segments {
				t.Fatalf("expected %d segments, got %d", s.segments, rc.Segments)
			}
			if rc.Cost != 0 || rc.Currency != "USD" {
				t.Fatalf("expected no cost yet in USD, got %v %q", rc.Cost, rc.Currency)
			}
			form := lastSend(t, fake.Requests())
			for k, want := range s.wantForm {
				got, present := form.Get(k), form.Has(k)
				if want == "" && present {
					t.Fatalf("expected no %s, got %q", k, got)
				}
				if want != "" && got != want {
					t.Fatalf("expected %s %q, got %q", k, want, got)
				}
			}
		})
	}
}

func TestTwilioSendRecordedReply(t *testing.T) {
	fake := providertest.NewTwilio(t)
	fake.ReplyNext(1, providertest.Reply{Status: http.StatusCreated, Body: readTestdata(t, "twilio/message_created.json")})
	p := newTestTwilio(t, fake, nil)
	rc, err := p.Send(context.Background(), &providers.Message{ID: "m1", Channel: providers.ChannelSMS, To: testPatient, Body: "x"})
	if err != nil {
		t.Fatalf("expected no error, got %v", err)
	}
	want := providers.Receipt{ProviderMessageID: "SM3f1e4a6b8c2d4e0f9a7b5c3d1e2f4a6b", Status: providers.StatusSent, Segments: 2, Cost: 0.0158, Currency: "USD"}
	if *rc != want {
		t.Fatalf("expected %+v, got %+v", want, *rc)
	}
}

func TestTwilioSendErrors(t *testing.T) {
	refused := closedURL(t)
	scenarios := []struct {
		name       string
		script     func(f *providertest.Twilio)
		mod        func(*providers.TwilioOptions)
		ctx        func() (context.Context, context.CancelFunc)
		msg        providers.Message
		class      error
		code       string
		httpStatus int
		retryAfter time.Duration
	}{
		{name: "invalid number", script: func(f *providertest.Twilio) { f.ReplyToNumber(testPatient, providertest.TwilioError(21211)) },
			class: providers.ErrPermanent, code: "21211", httpStatus: 400},
		{name: "invalid number rejected by the fake's own validation", msg: providers.Message{To: "+12"},
			class: providers.ErrPermanent, code: "21211", httpStatus: 400},
		{name: "recorded 21211 reply naming the full number", script: func(f *providertest.Twilio) {
			f.ReplyNext(1, providertest.Reply{Status: http.StatusBadRequest, Body: readTestdata(t, "twilio/error_21211.json")})
		}, class: providers.ErrPermanent, code: "21211", httpStatus: 400},
		{name: "opted out", script: func(f *providertest.Twilio) { f.ReplyToNumber(testPatient, providertest.TwilioError(21610)) },
			class: providers.ErrPermanent, code: providers.TwilioCodeOptedOut, httpStatus: 400},
		{name: "not a mobile number", script: func(f *providertest.Twilio) { f.ReplyToNumber(testPatient, providertest.TwilioError(21614)) },
			class: providers.ErrPermanent, code: "21614", httpStatus: 400},
		{name: "whatsapp outside the 24h window", script: func(f *providertest.Twilio) { f.ReplyToNumber(testPatient, providertest.TwilioError(63016)) },
			msg: providers.Message{Channel: providers.ChannelWhatsApp}, class: providers.ErrPermanent, code: "63016", httpStatus: 400},
		{name: "region not enabled", script: func(f *providertest.Twilio) { f.ReplyNext(1, providertest.TwilioError(21408)) },
			class: providers.ErrPermanent, code: "21408", httpStatus: 400},
		{name: "other 4xx", script: func(f *providertest.Twilio) { f.ReplyNext(1, providertest.TwilioError(21617)) },
			class: providers.ErrPermanent, code: "21617", httpStatus: 400},
		{name: "bad credentials", mod: func(o *providers.TwilioOptions) { o.AuthToken = "wrongtoken" },
			class: providers.ErrPermanent, code: "20003", httpStatus: 401},
		{name: "too many requests", script: func(f *providertest.Twilio) { f.ReplyNext(1, providertest.TwilioError(20429)) },
			class: providers.ErrRetryable, code: "20429", httpStatus: 429, retryAfter: time.Second},
		{name: "sender queue full", script: func(f *providertest.Twilio) { f.ReplyNext(1, providertest.TwilioError(21611)) },
			class: providers.ErrRetryable, code: "21611", httpStatus: 400, retryAfter: 10 * time.Minute},
		{name: "json 500", script: func(f *providertest.Twilio) { f.ReplyNext(1, providertest.TwilioServerError()) },
			class: providers.ErrRetryable, code: "20500", httpStatus: 500},
		{name: "html 503 from the edge", script: func(f *providertest.Twilio) { f.ReplyNext(1, providertest.HTMLUnavailable()) },
			class: providers.ErrRetryable, httpStatus: 503},
		{name: "connection refused", mod: func(o *providers.TwilioOptions) { o.BaseURL = refused },
			class: providers.ErrRetryable},
		{name: "canceled before sending", ctx: func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, class: providers.ErrRetryable},
		{name: "hang past the client timeout", script: func(f *providertest.Twilio) { f.ReplyNext(1, providertest.Reply{Hang: true}) },
			mod: func(o *providers.TwilioOptions) { o.Timeout = 300 * time.Millisecond }, class: providers.ErrUnknown},
		{name: "canceled while waiting for the reply", script: func(f *providertest.Twilio) { f.ReplyNext(1, providertest.Reply{Hang: true}) },
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 200*time.Millisecond)
			},
			class: providers.ErrUnknown},
		{name: "connection reset after the request was read", script: func(f *providertest.Twilio) { f.ReplyNext(1, providertest.Reply{Reset: true}) },
			class: providers.ErrUnknown},
		{name: "redirect from a wrong base URL", script: func(f *providertest.Twilio) {
			f.ReplyNext(1, providertest.Reply{Status: http.StatusMovedPermanently, Header: http.Header{"Location": {"https://api.twilio.com/"}}})
		}, class: providers.ErrPermanent, code: "config", httpStatus: 301},
		{name: "success reply that does not decode", script: func(f *providertest.Twilio) {
			f.ReplyNext(1, providertest.Reply{Status: http.StatusCreated, Body: `{"sid": "SM`})
		}, class: providers.ErrUnknown, httpStatus: 201},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			fake := providertest.NewTwilio(t)
			if s.script != nil {
				s.script(fake)
			}
			p := newTestTwilio(t, fake, s.mod)
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if s.ctx != nil {
				ctx, cancel = s.ctx()
			}
			defer cancel()
			msg := s.msg
			msg.ID = "m1"
			if msg.To == "" {
				msg.To = testPatient
			}
			if msg.Channel == "" {
				msg.Channel = providers.ChannelSMS
			}
			msg.Body = "Your appointment is tomorrow."
			start := time.Now()
			rc, err := p.Send(ctx, &msg)
			if err == nil {
				t.Fatalf("expected an error, got receipt %+v", rc)
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("expected a prompt failure, took %v", time.Since(start))
			}
			if got := providers.ClassOf(err); got != s.class {
				t.Fatalf("expected class %v, got %v (%v)", s.class, got, err)
			}
			pe, ok := providers.AsError(err)
			if !ok {
				t.Fatalf("expected a *providers.Error, got %T", err)
			}
			if pe.Provider != "twilio" || pe.Code != s.code || pe.HTTPStatus != s.httpStatus {
				t.Fatalf("expected twilio code %q status %d, got %s code %q status %d", s.code, s.httpStatus, pe.Provider, pe.Code, pe.HTTPStatus)
			}
			if pe.RetryAfter != s.retryAfter {
				t.Fatalf("expected retry after %v, got %v", s.retryAfter, pe.RetryAfter)
			}
			if strings.Contains(err.Error(), testPatient) {
				t.Fatalf("expected no full phone number in %q", err.Error())
			}
			if want := s.code == providers.TwilioCodeOptedOut; providers.TwilioOptedOut(err) != want {
				t.Fatalf("expected TwilioOptedOut %v for %v", want, err)
			}
		})
	}
}

func TestTwilioReconcile(t *testing.T) {
	scenarios := []struct {
		name  string
		msg   providers.Message
		setup func(t *testing.T, f *providertest.Twilio, p *providers.Twilio, m *providers.Message)
		found bool
	}{
		{
			name: "timeout after Twilio accepted: found",
			setup: func(t *testing.T, f *providertest.Twilio, p *providers.Twilio, m *providers.Message) {
				f.ReplyNext(1, providertest.Reply{Hang: true, Accept: true})
				if _, err := p.Send(context.Background(), m); !errors.Is(err, providers.ErrUnknown) {
					t.Fatalf("expected an unknown outcome, got %v", err)
				}
			},
			found: true,
		},
		{
			name: "timeout before Twilio accepted: not found",
			setup: func(t *testing.T, f *providertest.Twilio, p *providers.Twilio, m *providers.Message) {
				f.ReplyNext(1, providertest.Reply{Hang: true})
				if _, err := p.Send(context.Background(), m); !errors.Is(err, providers.ErrUnknown) {
					t.Fatalf("expected an unknown outcome, got %v", err)
				}
			},
		},
		{
			name: "still in Twilio's queue (no date_sent): found",
			setup: func(t *testing.T, f *providertest.Twilio, p *providers.Twilio, m *providers.Message) {
				f.ReplyNext(1, providertest.Reply{Reset: true, Accept: true})
				if _, err := p.Send(context.Background(), m); !errors.Is(err, providers.ErrUnknown) {
					t.Fatalf("expected an unknown outcome, got %v", err)
				}
				f.SetStatus(f.Messages()[0].Sid, "queued", 0)
			},
			found: true,
		},
		{
			name: "another message to the same number: not found",
			setup: func(t *testing.T, f *providertest.Twilio, p *providers.Twilio, m *providers.Message) {
				other := *m
				other.Body = "A different reminder."
				if _, err := p.Send(context.Background(), &other); err != nil {
					t.Fatalf("expected no error, got %v", err)
				}
			},
		},
		{
			name: "the same text sent before the claim: not found",
			setup: func(t *testing.T, f *providertest.Twilio, p *providers.Twilio, m *providers.Message) {
				if _, err := p.Send(context.Background(), m); err != nil {
					t.Fatalf("expected no error, got %v", err)
				}
				m.ClaimedAt = time.Now().Add(10 * time.Minute)
			},
		},
		{
			name: "whatsapp template rendered by Twilio: found",
			msg: providers.Message{Channel: providers.ChannelWhatsApp, ContentSID: "HX00000000000000000000000000000001",
				ContentVariables: map[string]string{"1": "12/1"}},
			setup: func(t *testing.T, f *providertest.Twilio, p *providers.Twilio, m *providers.Message) {
				f.ReplyNext(1, providertest.Reply{Hang: true, Accept: true})
				if _, err := p.Send(context.Background(), m); !errors.Is(err, providers.ErrUnknown) {
					t.Fatalf("expected an unknown outcome, got %v", err)
				}
			},
			found: true,
		},
		{
			name: "whatsapp template, nothing sent on whatsapp: not found",
			msg:  providers.Message{Channel: providers.ChannelWhatsApp, ContentSID: "HX00000000000000000000000000000001"},
			setup: func(t *testing.T, f *providertest.Twilio, p *providers.Twilio, m *providers.Message) {
				sms := *m
				sms.Channel, sms.ContentSID = providers.ChannelSMS, ""
				if _, err := p.Send(context.Background(), &sms); err != nil {
					t.Fatalf("expected no error, got %v", err)
				}
			},
		},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			fake := providertest.NewTwilio(t)
			p := newTestTwilio(t, fake, func(o *providers.TwilioOptions) { o.Timeout = 300 * time.Millisecond })
			m := s.msg
			m.ID, m.To, m.Body, m.ClaimedAt = "m1", testPatient, "Your appointment is tomorrow at 10:00.", time.Now()
			if m.Channel == "" {
				m.Channel = providers.ChannelSMS
			}
			s.setup(t, fake, p, &m)
			rc, err := p.Reconcile(context.Background(), &m)
			if err != nil {
				t.Fatalf("expected no error, got %v", err)
			}
			if !s.found {
				if rc != nil {
					t.Fatalf("expected not found, got %+v", rc)
				}
				return
			}
			if rc == nil {
				t.Fatalf("expected the accepted message to be found")
			}
			msgs := fake.Messages()
			if want := msgs[len(msgs)-1].Sid; rc.ProviderMessageID != want {
				t.Fatalf("expected sid %s, got %s", want, rc.ProviderMessageID)
			}
		})
	}
}

func TestTwilioReconcileUsesTheList(t *testing.T) {
	fake := providertest.NewTwilio(t)
	p := newTestTwilio(t, fake, nil)
	m := &providers.Message{ID: "m1", Channel: providers.ChannelSMS, To: testPatient, Body: "x", ClaimedAt: time.Now()}
	if _, err := p.Reconcile(context.Background(), m); err != nil {
		t.Fatalf("expected no error, got %v", err)
	}
	reqs := fake.Requests()
	if len(reqs) != 2 {
		t.Fatalf("expected a dated and an undated list request, got %d requests", len(reqs))
	}
	for i, r := range reqs {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.Path, "/Messages.json") || r.Query.Get("To") != testPatient {
			t.Fatalf("expected GET Messages.json?To=..., got %s %s %v", r.Method, r.Path, r.Query)
		}
		if hasDate := r.Query.Get("DateSent>") != ""; hasDate != (i == 0) {
			t.Fatalf("expected DateSent> only on the first request, got %v", r.Query)
		}
	}
}

func TestTwilioFetchStatus(t *testing.T) {
	fake := providertest.NewTwilio(t)
	p := newTestTwilio(t, fake, nil)
	scenarios := []struct {
		twilio string
		code   int
		want   string
	}{
		{"queued", 0, providers.StatusSent},
		{"accepted", 0, providers.StatusSent},
		{"scheduled", 0, providers.StatusSent},
		{"sending", 0, providers.StatusSent},
		{"sent", 0, providers.StatusSent},
		{"delivered", 0, providers.StatusDelivered},
		{"read", 0, providers.StatusRead},
		{"undelivered", 30003, providers.StatusUndelivered},
		{"failed", 30007, providers.StatusFailed},
		{"canceled", 0, providers.StatusCanceled},
	}
	for _, s := range scenarios {
		t.Run(s.twilio, func(t *testing.T) {
			rc, err := p.Send(context.Background(), &providers.Message{ID: "m-" + s.twilio, Channel: providers.ChannelSMS, To: testPatient, Body: "hello"})
			if err != nil {
				t.Fatalf("expected no error, got %v", err)
			}
			fake.SetStatus(rc.ProviderMessageID, s.twilio, s.code)
			u, err := p.FetchStatus(context.Background(), rc.ProviderMessageID)
			if err != nil {
				t.Fatalf("expected no error, got %v", err)
			}
			if u.Status != s.want || u.ProviderStatus != s.twilio || u.ProviderMessageID != rc.ProviderMessageID {
				t.Fatalf("expected %s (%s), got %+v", s.want, s.twilio, u)
			}
			wantCode := ""
			if s.code != 0 {
				wantCode = strconv.Itoa(s.code)
			}
			if u.ErrorCode != wantCode {
				t.Fatalf("expected error code %q, got %q", wantCode, u.ErrorCode)
			}
			if u.Segments != 1 {
				t.Fatalf("expected 1 segment, got %d", u.Segments)
			}
			if rated := s.twilio != "queued" && s.twilio != "accepted" && s.twilio != "scheduled"; rated != (u.Cost > 0) {
				t.Fatalf("expected cost > 0 to be %v, got %v", rated, u.Cost)
			}
		})
	}

	t.Run("recorded undelivered reply", func(t *testing.T) {
		f := providertest.NewTwilio(t)
		p := newTestTwilio(t, f, nil)
		body := readTestdata(t, "twilio/message_undelivered.json")
		f.SetOutage(&providertest.Reply{Body: body})
		u, err := p.FetchStatus(context.Background(), "SM3f1e4a6b8c2d4e0f9a7b5c3d1e2f4a6b")
		if err != nil {
			t.Fatalf("expected no error, got %v", err)
		}
		want := providers.StatusUpdate{ProviderMessageID: "SM3f1e4a6b8c2d4e0f9a7b5c3d1e2f4a6b", Status: providers.StatusUndelivered,
			ProviderStatus: "undelivered", ErrorCode: "30003", ErrorMessage: "Unreachable destination handset", Segments: 1,
			Cost: 0.0079, Currency: "USD", At: time.Date(2023, 8, 24, 5, 2, 10, 0, time.UTC)}
		if *u != want {
			t.Fatalf("expected %+v, got %+v", want, *u)
		}
	})

	t.Run("unknown sid", func(t *testing.T) {
		_, err := p.FetchStatus(context.Background(), "SM00000000000000000000000000000000")
		if pe, ok := providers.AsError(err); !ok || pe.Class != providers.ErrPermanent || pe.Code != "20404" {
			t.Fatalf("expected a permanent 20404, got %v", err)
		}
		_, err = p.FetchStatus(context.Background(), "../Accounts")
		if !errors.Is(err, providers.ErrPermanent) {
			t.Fatalf("expected a permanent error for a malformed sid, got %v", err)
		}
	})

	t.Run("timeout on a read is retryable", func(t *testing.T) {
		f := providertest.NewTwilio(t)
		p := newTestTwilio(t, f, func(o *providers.TwilioOptions) { o.Timeout = 300 * time.Millisecond })
		f.SetOutage(&providertest.Reply{Hang: true})
		_, err := p.FetchStatus(context.Background(), "SM00000000000000000000000000000000")
		if !errors.Is(err, providers.ErrRetryable) {
			t.Fatalf("expected retryable, got %v", err)
		}
	})
}

func TestTwilioStatusMapping(t *testing.T) {
	scenarios := map[string]string{
		"queued": providers.StatusSent, "accepted": providers.StatusSent, "scheduled": providers.StatusSent,
		"sending": providers.StatusSent, "sent": providers.StatusSent, "delivered": providers.StatusDelivered,
		"read": providers.StatusRead, "undelivered": providers.StatusUndelivered, "failed": providers.StatusFailed,
		"canceled": providers.StatusCanceled, "partially_delivered": providers.StatusDelivered, "something_new": providers.StatusSent,
	}
	for in, want := range scenarios {
		if got := providers.TwilioStatus(in); got != want {
			t.Fatalf("expected %s -> %s, got %s", in, want, got)
		}
	}
}

func TestTwilioCheck(t *testing.T) {
	scenarios := []struct {
		name   string
		script func(f *providertest.Twilio)
		mod    func(*providers.TwilioOptions)
		class  error // nil: healthy
	}{
		{name: "active account"},
		{name: "suspended account", script: func(f *providertest.Twilio) { f.SetAccountStatus("suspended") }, class: providers.ErrPermanent},
		{name: "bad credentials", mod: func(o *providers.TwilioOptions) { o.AuthToken = "wrongtoken" }, class: providers.ErrPermanent},
		{name: "html 503", script: func(f *providertest.Twilio) { r := providertest.HTMLUnavailable(); f.SetOutage(&r) }, class: providers.ErrRetryable},
		{name: "unreachable", mod: func(o *providers.TwilioOptions) { o.BaseURL = closedURL(t) }, class: providers.ErrRetryable},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			fake := providertest.NewTwilio(t)
			if s.script != nil {
				s.script(fake)
			}
			err := newTestTwilio(t, fake, s.mod).Check(context.Background())
			if s.class == nil {
				if err != nil {
					t.Fatalf("expected healthy, got %v", err)
				}
				return
			}
			if got := providers.ClassOf(err); got != s.class {
				t.Fatalf("expected %v, got %v (%v)", s.class, got, err)
			}
		})
	}
}

func TestTwilioStatusWebhook(t *testing.T) {
	fake := providertest.NewTwilio(t)
	p := newTestTwilio(t, fake, nil)
	const public = "https://clinic.example"
	params := url.Values{
		"AccountSid": {fake.AccountSID}, "ApiVersion": {"2010-04-01"}, "From": {"+15005550006"}, "To": {testPatient},
		"MessageSid": {"SM3f1e4a6b8c2d4e0f9a7b5c3d1e2f4a6b"}, "SmsSid": {"SM3f1e4a6b8c2d4e0f9a7b5c3d1e2f4a6b"},
		"MessageStatus": {"undelivered"}, "SmsStatus": {"undelivered"}, "ErrorCode": {"21610"}, "RawDlrDoneDate": {"2308240502"},
	}
	signed := func(target string, p url.Values, token string) *http.Request {
		r, err := providertest.SignedStatusCallback(target, p, token)
		if err != nil {
			t.Fatalf("failed to sign: %v", err)
		}
		return r
	}
	scenarios := []struct {
		name    string
		req     func() *http.Request
		wantErr error
	}{
		{name: "signed by Twilio", req: func() *http.Request { return signed(testCallbackURL, params, fake.AuthToken) }},
		{name: "signed with a query string", req: func() *http.Request { return signed(testCallbackURL+"?clinic=c1", params, fake.AuthToken) }},
		{name: "no signature", wantErr: providers.ErrBadSignature, req: func() *http.Request {
			r := signed(testCallbackURL, params, fake.AuthToken)
			r.Header.Del("X-Twilio-Signature")
			return r
		}},
		{name: "forged with another token", wantErr: providers.ErrBadSignature, req: func() *http.Request {
			return signed(testCallbackURL, params, "n0tth3t0k3n")
		}},
		{name: "signed for another URL", wantErr: providers.ErrBadSignature, req: func() *http.Request {
			r := signed("https://attacker.example/api/clinicmsg/webhooks/twilio/status", params, fake.AuthToken)
			r.URL, _ = url.Parse(testCallbackURL)
			return r
		}},
		{name: "parameter changed after signing", wantErr: providers.ErrBadSignature, req: func() *http.Request {
			r := signed(testCallbackURL, params, fake.AuthToken)
			tampered := url.Values{}
			for k, v := range params {
				tampered[k] = v
			}
			tampered.Set("MessageStatus", "delivered")
			r.Body = io.NopCloser(strings.NewReader(tampered.Encode()))
			return r
		}},
		{name: "parameter added after signing", wantErr: providers.ErrBadSignature, req: func() *http.Request {
			r := signed(testCallbackURL, params, fake.AuthToken)
			r.Body = io.NopCloser(strings.NewReader(params.Encode() + "&Extra=1"))
			return r
		}},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			u, err := p.ParseStatusWebhook(s.req(), public)
			if s.wantErr != nil {
				if !errors.Is(err, s.wantErr) {
					t.Fatalf("expected %v, got %v", s.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("expected no error, got %v", err)
			}
			if u.ProviderMessageID != "SM3f1e4a6b8c2d4e0f9a7b5c3d1e2f4a6b" || u.Status != providers.StatusUndelivered || u.ProviderStatus != "undelivered" {
				t.Fatalf("expected the undelivered update, got %+v", u)
			}
			if u.ErrorCode != providers.TwilioCodeOptedOut {
				t.Fatalf("expected error code %s, got %q", providers.TwilioCodeOptedOut, u.ErrorCode)
			}
		})
	}
}

// TestTwilioCallbacksEndToEnd lets the fake act out a send and post its signed callbacks
// to a real server, where the adapter verifies and parses them.
func TestTwilioCallbacksEndToEnd(t *testing.T) {
	fake := providertest.NewTwilio(t)
	fake.SetAutoCallbacks(20 * time.Millisecond)
	fake.SetOutcome("+966501234568", "undelivered", 30003)

	var (
		mu      sync.Mutex
		got     []string
		p       *providers.Twilio
		public  string
		arrived = make(chan struct{}, 8)
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := p.ParseStatusWebhook(r, public)
		if err != nil {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		if r.Header.Get("I-Twilio-Idempotency-Token") == "" {
			http.Error(w, "no idempotency token", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, u.Status+"/"+u.ErrorCode)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		arrived <- struct{}{}
	}))
	defer srv.Close()
	public = srv.URL
	p = newTestTwilio(t, fake, func(o *providers.TwilioOptions) {
		o.StatusCallbackURL = srv.URL + "/api/clinicmsg/webhooks/twilio/status"
	})

	for _, to := range []string{testPatient, "+966501234568"} {
		if _, err := p.Send(context.Background(), &providers.Message{ID: "m" + to, Channel: providers.ChannelSMS, To: to, Body: "hello"}); err != nil {
			t.Fatalf("expected no error, got %v", err)
		}
	}
	for range 4 {
		select {
		case <-arrived:
		case <-time.After(3 * time.Second):
			t.Fatalf("expected 4 callbacks, got %v", got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	counts := map[string]int{}
	for _, g := range got {
		counts[g]++
	}
	want := map[string]int{"sent/": 2, "delivered/": 1, "undelivered/30003": 1}
	for k, n := range want {
		if counts[k] != n {
			t.Fatalf("expected callbacks %v, got %v", want, got)
		}
	}
}

func TestNewTwilioOptions(t *testing.T) {
	valid := providers.TwilioOptions{AccountSID: providertest.TwilioAccountSID, AuthToken: providertest.TwilioAuthToken, FromNumber: "+15005550006"}
	scenarios := []struct {
		name string
		mod  func(*providers.TwilioOptions)
		ok   bool
	}{
		{name: "valid, defaults filled", ok: true},
		{name: "messaging service only", mod: func(o *providers.TwilioOptions) { o.FromNumber, o.MessagingServiceSID = "", "MG1" }, ok: true},
		{name: "no account", mod: func(o *providers.TwilioOptions) { o.AccountSID = "" }},
		{name: "token with symbols", mod: func(o *providers.TwilioOptions) { o.AuthToken = "abc-123" }},
		{name: "no sender", mod: func(o *providers.TwilioOptions) { o.FromNumber = "" }},
		{name: "relative base URL", mod: func(o *providers.TwilioOptions) { o.BaseURL = "api.twilio.com" }},
		{name: "relative callback URL", mod: func(o *providers.TwilioOptions) { o.StatusCallbackURL = "/status" }},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			o := valid
			if s.mod != nil {
				s.mod(&o)
			}
			_, err := providers.NewTwilio(o)
			if (err == nil) != s.ok {
				t.Fatalf("expected ok=%v, got %v", s.ok, err)
			}
		})
	}
}

func TestTwilioBaseURLWithPath(t *testing.T) {
	fake := providertest.NewTwilio(t)
	target, _ := url.Parse(fake.URL)
	proxy := httptest.NewServer(http.StripPrefix("/twilio", httpProxy(target)))
	defer proxy.Close()
	p := newTestTwilio(t, fake, func(o *providers.TwilioOptions) { o.BaseURL = proxy.URL + "/twilio/" })
	if _, err := p.Send(context.Background(), &providers.Message{ID: "m1", Channel: providers.ChannelSMS, To: testPatient, Body: "hi"}); err != nil {
		t.Fatalf("expected no error through a path prefix, got %v", err)
	}
}

// httpProxy forwards requests to target, as a reverse proxy in front of the vendor would.
func httpProxy(target *url.URL) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := r.Clone(r.Context())
		out.RequestURI = ""
		out.URL.Scheme, out.URL.Host = target.Scheme, target.Host
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
}

// closedURL is a loopback URL where nothing listens, so connections are refused.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("failed to listen: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}
