package providers_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"clinicmsg/providers"
	"clinicmsg/providers/providertest"
)

const testCallbackUnifonic = "https://clinic.example/api/clinicmsg/webhooks/unifonic/s3cr3t"

func newTestUnifonic(t *testing.T, fake *providertest.Unifonic, mod func(*providers.UnifonicOptions)) *providers.Unifonic {
	t.Helper()
	opts := providers.UnifonicOptions{
		AppSID:            fake.AppSID,
		SenderID:          "ClinicA",
		BaseURL:           fake.URL,
		StatusCallbackURL: testCallbackUnifonic,
		Timeout:           2 * time.Second,
	}
	if mod != nil {
		mod(&opts)
	}
	p, err := providers.NewUnifonic(opts)
	if err != nil {
		t.Fatalf("expected no error from NewUnifonic, got %v", err)
	}
	return p
}

func testSMS(id string) *providers.Message {
	return &providers.Message{ID: id, Channel: providers.ChannelSMS, To: testPatient, Body: "Your appointment is tomorrow at 10:00.", ClaimedAt: time.Now()}
}

func TestUnifonicSend(t *testing.T) {
	scenarios := []struct {
		name    string
		script  func(f *providertest.Unifonic)
		msg     *providers.Message
		want    providers.Receipt
		wantFrm map[string]string
	}{
		{
			name: "json numbers",
			msg:  testSMS("msg0000000000001"),
			want: providers.Receipt{ProviderMessageID: "42000348806924", Status: providers.StatusSent, Segments: 1, Cost: 0.05, Currency: "SAR"},
			wantFrm: map[string]string{
				"AppSid": providertest.UnifonicAppSID, "SenderID": "ClinicA", "Recipient": "966501234567",
				"Body": "Your appointment is tomorrow at 10:00.", "CorrelationID": "msg0000000000001",
				"responseType": "JSON", "statusCallback": testCallbackUnifonic,
			},
		},
		{
			name:   "string success and values, MessageID beyond float64",
			script: func(f *providertest.Unifonic) { f.SetStringValues(true); f.SetNextMessageID(18446744073709551557) },
			msg:    testSMS("msg0000000000002"),
			want:   providers.Receipt{ProviderMessageID: "18446744073709551557", Status: providers.StatusSent, Segments: 1, Cost: 0.05, Currency: "SAR"},
		},
		{
			name: "recorded reply with string values",
			script: func(f *providertest.Unifonic) {
				f.ReplyNext(1, providertest.Reply{Body: readTestdata(t, "unifonic/send_string_values.json")})
			},
			msg:  testSMS("msg0000000000001"),
			want: providers.Receipt{ProviderMessageID: "9223372036854775807", Status: providers.StatusSent, Segments: 2, Cost: 0.1, Currency: "SAR"},
		},
		{
			name:    "clinic's own sender, arabic body",
			msg:     &providers.Message{ID: "msg3", Channel: providers.ChannelSMS, To: testPatient, From: "ClinicB", Body: strings.Repeat("موعدك غداً ", 8)},
			want:    providers.Receipt{ProviderMessageID: "42000348806924", Status: providers.StatusSent, Segments: 2, Cost: 0.1, Currency: "SAR"},
			wantFrm: map[string]string{"SenderID": "ClinicB"},
		},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			fake := providertest.NewUnifonic(t)
			if s.script != nil {
				s.script(fake)
			}
			p := newTestUnifonic(t, fake, nil)
			rc, err := p.Send(context.Background(), s.msg)
			if err != nil {
				t.Fatalf("expected no error, got %v", err)
			}
			if *rc != s.want {
				t.Fatalf("expected %+v, got %+v", s.want, *rc)
			}
			form := lastSend(t, fake.Requests())
			for k, want := range s.wantFrm {
				if got := form.Get(k); got != want {
					t.Fatalf("expected %s %q, got %q", k, want, got)
				}
			}
		})
	}
}

func TestUnifonicSendErrors(t *testing.T) {
	refused := closedURL(t)
	scenarios := []struct {
		name       string
		fakeOpts   []providertest.UnifonicOption
		script     func(f *providertest.Unifonic)
		mod        func(*providers.UnifonicOptions)
		msg        func(m *providers.Message)
		class      error
		code       string
		httpStatus int
		retryAfter time.Duration
	}{
		{name: "wrong AppSid", mod: func(o *providers.UnifonicOptions) { o.AppSID = "wrong" },
			class: providers.ErrPermanent, code: "401", httpStatus: 401},
		{name: "no AppSid", script: func(f *providertest.Unifonic) { f.ReplyNext(1, providertest.UnifonicHTTPError(402)) },
			class: providers.ErrPermanent, code: "402", httpStatus: 402},
		{name: "empty body", msg: func(m *providers.Message) { m.Body = "" },
			class: providers.ErrPermanent, code: "449", httpStatus: 449},
		{name: "sender not allowed", fakeOpts: []providertest.UnifonicOption{providertest.WithUnifonicSenders("ClinicZ")},
			class: providers.ErrPermanent, code: "480", httpStatus: 480},
		{name: "invalid destination", script: func(f *providertest.Unifonic) { f.ReplyToNumber(testPatient, providertest.UnifonicHTTPError(482)) },
			class: providers.ErrPermanent, code: "482", httpStatus: 482},
		{name: "number too short (success:false)", msg: func(m *providers.Message) { m.To = "+96650" },
			class: providers.ErrPermanent, code: "ER-04", httpStatus: 200},
		{name: "recorded ER-04 reply", script: func(f *providertest.Unifonic) {
			f.ReplyNext(1, providertest.Reply{Body: readTestdata(t, "unifonic/send_er04.json")})
		}, class: providers.ErrPermanent, code: "ER-04", httpStatus: 200},
		{name: "too many requests", script: func(f *providertest.Unifonic) { f.ReplyNext(1, providertest.UnifonicHTTPError(429)) },
			class: providers.ErrRetryable, code: "429", httpStatus: 429, retryAfter: 2 * time.Second},
		{name: "request failed 599", script: func(f *providertest.Unifonic) { f.ReplyNext(1, providertest.UnifonicHTTPError(599)) },
			class: providers.ErrRetryable, code: "599", httpStatus: 599},
		{name: "500", script: func(f *providertest.Unifonic) { f.ReplyNext(1, providertest.UnifonicHTTPError(500)) },
			class: providers.ErrRetryable, code: "500", httpStatus: 500},
		{name: "html 503", script: func(f *providertest.Unifonic) { f.ReplyNext(1, providertest.HTMLUnavailable()) },
			class: providers.ErrRetryable, code: "503", httpStatus: 503},
		{name: "connection refused", mod: func(o *providers.UnifonicOptions) { o.BaseURL = refused },
			class: providers.ErrRetryable},
		{name: "hang past the client timeout", script: func(f *providertest.Unifonic) { f.ReplyNext(1, providertest.Reply{Hang: true}) },
			mod: func(o *providers.UnifonicOptions) { o.Timeout = 300 * time.Millisecond }, class: providers.ErrUnknown},
		{name: "connection reset after the request was read", script: func(f *providertest.Unifonic) { f.ReplyNext(1, providertest.Reply{Reset: true}) },
			class: providers.ErrUnknown},
		{name: "200 that is not JSON", script: func(f *providertest.Unifonic) {
			f.ReplyNext(1, providertest.Reply{ContentType: "text/html", Body: "<html>ok</html>"})
		}, class: providers.ErrUnknown, httpStatus: 200},
		{name: "redirect from a wrong base URL", script: func(f *providertest.Unifonic) {
			f.ReplyNext(1, providertest.Reply{Status: http.StatusFound, Header: http.Header{"Location": {"https://el.cloud.unifonic.com/"}}})
		}, class: providers.ErrPermanent, code: "302", httpStatus: 302},
		{name: "whatsapp is not carried", msg: func(m *providers.Message) { m.Channel = providers.ChannelWhatsApp },
			class: providers.ErrPermanent, code: "config"},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			fake := providertest.NewUnifonic(t, s.fakeOpts...)
			if s.script != nil {
				s.script(fake)
			}
			p := newTestUnifonic(t, fake, s.mod)
			m := testSMS("msg1")
			if s.msg != nil {
				s.msg(m)
			}
			rc, err := p.Send(context.Background(), m)
			if err == nil {
				t.Fatalf("expected an error, got receipt %+v", rc)
			}
			if got := providers.ClassOf(err); got != s.class {
				t.Fatalf("expected class %v, got %v (%v)", s.class, got, err)
			}
			pe, ok := providers.AsError(err)
			if !ok {
				t.Fatalf("expected a *providers.Error, got %T", err)
			}
			if pe.Provider != "unifonic" || pe.Code != s.code || pe.HTTPStatus != s.httpStatus || pe.RetryAfter != s.retryAfter {
				t.Fatalf("expected code %q status %d retry %v, got %q %d %v", s.code, s.httpStatus, s.retryAfter, pe.Code, pe.HTTPStatus, pe.RetryAfter)
			}
			if strings.Contains(err.Error(), "966501234567") {
				t.Fatalf("expected no full phone number in %q", err.Error())
			}
		})
	}
}

func TestUnifonicDuplicate(t *testing.T) {
	fake := providertest.NewUnifonic(t)
	p := newTestUnifonic(t, fake, nil)

	t.Run("409 for a message Unifonic has: its receipt", func(t *testing.T) {
		first, err := p.Send(context.Background(), testSMS("dup1"))
		if err != nil {
			t.Fatalf("expected no error, got %v", err)
		}
		again, err := p.Send(context.Background(), testSMS("dup1"))
		if err != nil {
			t.Fatalf("expected the duplicate to be reconciled, got %v", err)
		}
		if again.ProviderMessageID != first.ProviderMessageID {
			t.Fatalf("expected %s, got %s", first.ProviderMessageID, again.ProviderMessageID)
		}
		if n := len(fake.Messages()); n != 1 {
			t.Fatalf("expected 1 stored message, got %d", n)
		}
	})

	t.Run("409 without a record: unknown", func(t *testing.T) {
		fake.ReplyNext(1, providertest.UnifonicHTTPError(http.StatusConflict))
		_, err := p.Send(context.Background(), testSMS("dup2"))
		if pe, ok := providers.AsError(err); !ok || pe.Class != providers.ErrUnknown || pe.HTTPStatus != 409 {
			t.Fatalf("expected an unknown 409, got %v", err)
		}
	})
}

func TestUnifonicReconcile(t *testing.T) {
	scenarios := []struct {
		name  string
		reply providertest.Reply
		found bool
	}{
		{name: "timeout after Unifonic accepted: found", reply: providertest.Reply{Hang: true, Accept: true}, found: true},
		{name: "timeout before Unifonic accepted: not found", reply: providertest.Reply{Hang: true}},
		{name: "reset after Unifonic accepted: found", reply: providertest.Reply{Reset: true, Accept: true}, found: true},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			fake := providertest.NewUnifonic(t)
			p := newTestUnifonic(t, fake, func(o *providers.UnifonicOptions) { o.Timeout = 300 * time.Millisecond })
			fake.ReplyNext(1, s.reply)
			m := testSMS("msg-reconcile")
			if _, err := p.Send(context.Background(), m); !errors.Is(err, providers.ErrUnknown) {
				t.Fatalf("expected an unknown outcome, got %v", err)
			}
			rc, err := p.Reconcile(context.Background(), m)
			if err != nil {
				t.Fatalf("expected no error, got %v", err)
			}
			if !s.found {
				if rc != nil {
					t.Fatalf("expected not found, got %+v", rc)
				}
				if _, err := p.Send(context.Background(), m); err != nil {
					t.Fatalf("expected the resend to succeed, got %v", err)
				}
				return
			}
			stored := fake.Messages()
			if rc == nil || len(stored) != 1 || rc.ProviderMessageID != stored[0].MessageID {
				t.Fatalf("expected the stored message %v, got %+v", stored, rc)
			}
			if rc.Segments != 1 || rc.Cost != 0.05 || rc.Currency != "SAR" {
				t.Fatalf("expected units, cost and currency, got %+v", rc)
			}
		})
	}

	t.Run("records without CorrelationID match on the recipient only", func(t *testing.T) {
		fake := providertest.NewUnifonic(t)
		p := newTestUnifonic(t, fake, nil)
		body := `{"success":true,"data":{"messages":[{"MessageID":1,"Recipient":"966500000009","DLR":"Delivered"}]}}`
		fake.SetOutage(&providertest.Reply{Body: body})
		if rc, err := p.Reconcile(context.Background(), testSMS("m")); err != nil || rc != nil {
			t.Fatalf("expected not found for another recipient, got %+v %v", rc, err)
		}
		fake.SetOutage(&providertest.Reply{Body: strings.Replace(body, "966500000009", "966501234567", 1)})
		if rc, err := p.Reconcile(context.Background(), testSMS("m")); err != nil || rc == nil || rc.Status != providers.StatusDelivered {
			t.Fatalf("expected the record to this recipient, got %+v %v", rc, err)
		}
	})

	t.Run("lookup refused is an error, not 'not found'", func(t *testing.T) {
		fake := providertest.NewUnifonic(t)
		p := newTestUnifonic(t, fake, nil)
		r := providertest.UnifonicFailure("ER-09", "temporarily unavailable")
		fake.SetOutage(&r)
		rc, err := p.Reconcile(context.Background(), testSMS("m"))
		if err == nil {
			t.Fatalf("expected an error, got %+v", rc)
		}
	})
}

func TestUnifonicFetchStatus(t *testing.T) {
	fake := providertest.NewUnifonic(t)
	p := newTestUnifonic(t, fake, nil)
	scenarios := []struct {
		dlr  string
		want string
	}{
		{"", providers.StatusSent},
		{"Delivered", providers.StatusDelivered},
		{"Undeliverable", providers.StatusUndelivered},
	}
	for i, s := range scenarios {
		t.Run("dlr "+s.dlr, func(t *testing.T) {
			rc, err := p.Send(context.Background(), testSMS("fetch"+string(rune('a'+i))))
			if err != nil {
				t.Fatalf("expected no error, got %v", err)
			}
			fake.SetDLR(rc.ProviderMessageID, s.dlr)
			u, err := p.FetchStatus(context.Background(), rc.ProviderMessageID)
			if err != nil {
				t.Fatalf("expected no error, got %v", err)
			}
			if u.Status != s.want || u.ProviderMessageID != rc.ProviderMessageID || u.MessageID != "fetch"+string(rune('a'+i)) {
				t.Fatalf("expected %s, got %+v", s.want, u)
			}
		})
	}

	t.Run("recorded details", func(t *testing.T) {
		f := providertest.NewUnifonic(t)
		p := newTestUnifonic(t, f, nil)
		r := providertest.Reply{Body: readTestdata(t, "unifonic/details_delivered.json")}
		f.SetOutage(&r)
		u, err := p.FetchStatus(context.Background(), "42000348806924")
		if err != nil {
			t.Fatalf("expected no error, got %v", err)
		}
		if u.Status != providers.StatusDelivered || u.ProviderStatus != "Delivered" || u.MessageID != "msg0000000000001" ||
			u.Segments != 1 || u.Cost != 0.05 || u.Currency != "SAR" {
			t.Fatalf("expected the delivered details, got %+v", u)
		}
	})

	t.Run("unknown id", func(t *testing.T) {
		for _, id := range []string{"1", "not-a-number"} {
			if _, err := p.FetchStatus(context.Background(), id); !errors.Is(err, providers.ErrPermanent) {
				t.Fatalf("expected permanent for %q, got %v", id, err)
			}
		}
	})
}

func TestUnifonicStatusMapping(t *testing.T) {
	scenarios := []struct{ status, dlr, want string }{
		{"Sent", "", providers.StatusSent},
		{"Queued", "", providers.StatusSent},
		{"Sent", "Delivered", providers.StatusDelivered},
		{"Sent", "delivered", providers.StatusDelivered},
		{"Sent", "Undeliverable", providers.StatusUndelivered},
		{"Rejected", "", providers.StatusFailed},
		{"Failed", "", providers.StatusFailed},
		{"", "Pending", providers.StatusSent},
	}
	for _, s := range scenarios {
		if got := providers.UnifonicStatus(s.status, s.dlr); got != s.want {
			t.Fatalf("expected %q/%q -> %s, got %s", s.status, s.dlr, s.want, got)
		}
	}
}

func TestUnifonicCheck(t *testing.T) {
	scenarios := []struct {
		name   string
		script func(f *providertest.Unifonic)
		mod    func(*providers.UnifonicOptions)
		class  error
	}{
		{name: "healthy"},
		{name: "wrong AppSid", mod: func(o *providers.UnifonicOptions) { o.AppSID = "wrong" }, class: providers.ErrPermanent},
		{name: "outage", script: func(f *providertest.Unifonic) { r := providertest.UnifonicHTTPError(503); f.SetOutage(&r) }, class: providers.ErrRetryable},
		{name: "unreachable", mod: func(o *providers.UnifonicOptions) { o.BaseURL = closedURL(t) }, class: providers.ErrRetryable},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			fake := providertest.NewUnifonic(t)
			if s.script != nil {
				s.script(fake)
			}
			err := newTestUnifonic(t, fake, s.mod).Check(context.Background())
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

func TestUnifonicDLRWebhook(t *testing.T) {
	fake := providertest.NewUnifonic(t)
	p := newTestUnifonic(t, fake, nil)
	post := func(ct, body string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, testCallbackUnifonic, strings.NewReader(body))
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		return r
	}
	scenarios := []struct {
		name    string
		req     *http.Request
		want    providers.StatusUpdate
		wantErr bool
	}{
		{
			name: "recorded JSON, camel-case keys",
			req:  post("application/json", readTestdata(t, "unifonic/dlr.json")),
			want: providers.StatusUpdate{MessageID: "msg0000000000001", ProviderMessageID: "42000348806924", Status: providers.StatusUndelivered, ProviderStatus: "Undeliverable"},
		},
		{
			name: "recorded form",
			req:  post("application/x-www-form-urlencoded", readTestdata(t, "unifonic/dlr_form.txt")),
			want: providers.StatusUpdate{ProviderMessageID: "42000348806924", Status: providers.StatusDelivered, ProviderStatus: "Delivered"},
		},
		{
			name: "JSON without a content type, big MessageID, wrapped in data",
			req:  post("", `{"data":{"MESSAGEID":18446744073709551557,"Dlr":"Delivered","correlationid":"m9"}}`),
			want: providers.StatusUpdate{MessageID: "m9", ProviderMessageID: "18446744073709551557", Status: providers.StatusDelivered, ProviderStatus: "Delivered"},
		},
		{
			name: "status only",
			req:  post("application/x-www-form-urlencoded", "messageid=42&status=Sent"),
			want: providers.StatusUpdate{ProviderMessageID: "42", Status: providers.StatusSent, ProviderStatus: "Sent"},
		},
		{name: "no id", req: post("application/json", `{"DLR":"Delivered"}`), wantErr: true},
		// Unifonic's WhatsApp webhook pointed at the delivery-report URL by mistake: its
		// messageId must not pass for a delivery report, or the patient's reply is lost.
		{name: "incoming WhatsApp message", req: post("application/json", readTestdata(t, "unifonic/whatsapp_received.json")), wantErr: true},
		{name: "incoming message as a form", req: post("application/x-www-form-urlencoded", "messageId=abc&EVENTTYPE=Message.Received"), wantErr: true},
		{name: "broken JSON", req: post("application/json", `{"MessageID":`), wantErr: true},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			u, err := p.ParseDLRWebhook(s.req)
			if s.wantErr {
				if err == nil {
					t.Fatalf("expected an error, got %+v", u)
				}
				return
			}
			if err != nil {
				t.Fatalf("expected no error, got %v", err)
			}
			u.At = time.Time{}
			if *u != s.want {
				t.Fatalf("expected %+v, got %+v", s.want, *u)
			}
		})
	}
}

// TestUnifonicDLREndToEnd lets the fake report deliveries to a real server, as JSON to the
// per-message statusCallback and as a form built by the helper.
func TestUnifonicDLREndToEnd(t *testing.T) {
	fake := providertest.NewUnifonic(t)
	fake.SetAutoDLR(20*time.Millisecond, "")
	fake.SetOutcome("+966501234568", "Undeliverable")
	var (
		mu      sync.Mutex
		got     = map[string]string{}
		p       *providers.Unifonic
		arrived = make(chan struct{}, 8)
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/s3cr3t") {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		u, err := p.ParseDLRWebhook(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got[u.MessageID] = u.Status
		mu.Unlock()
		arrived <- struct{}{}
	}))
	defer srv.Close()
	p = newTestUnifonic(t, fake, func(o *providers.UnifonicOptions) {
		o.StatusCallbackURL = srv.URL + "/api/clinicmsg/webhooks/unifonic/s3cr3t"
	})
	for id, to := range map[string]string{"a": testPatient, "b": "+966501234568"} {
		m := testSMS(id)
		m.To = to
		if _, err := p.Send(context.Background(), m); err != nil {
			t.Fatalf("expected no error, got %v", err)
		}
	}
	for range 2 {
		select {
		case <-arrived:
		case <-time.After(3 * time.Second):
			t.Fatalf("expected 2 reports, got %v", got)
		}
	}
	// A form-encoded report through the helper.
	var delivered string // the message sent as "a", which the fake delivers
	for _, m := range fake.Messages() {
		if m.CorrelationID == "a" {
			delivered = m.MessageID
		}
	}
	d, ok := fake.DLRFor(delivered)
	if !ok {
		t.Fatalf("expected the stored message's report")
	}
	d.CorrelationID = "c"
	resp, err := fake.PostDLR(context.Background(), srv.URL+"/x/s3cr3t", d, false)
	if err != nil {
		t.Fatalf("expected no error, got %v", err)
	}
	resp.Body.Close()
	<-arrived
	mu.Lock()
	defer mu.Unlock()
	want := map[string]string{"a": providers.StatusDelivered, "b": providers.StatusUndelivered, "c": providers.StatusDelivered}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("expected %v, got %v", want, got)
		}
	}
}

func TestNewUnifonicOptions(t *testing.T) {
	if _, err := providers.NewUnifonic(providers.UnifonicOptions{}); err == nil {
		t.Fatalf("expected an error without AppSid")
	}
	if _, err := providers.NewUnifonic(providers.UnifonicOptions{AppSID: "x", BaseURL: "ftp://x"}); err == nil {
		t.Fatalf("expected an error for a non-HTTP base URL")
	}
	p, err := providers.NewUnifonic(providers.UnifonicOptions{AppSID: "x"})
	if err != nil || p == nil {
		t.Fatalf("expected defaults to be filled, got %v", err)
	}
	_, err = p.Send(context.Background(), &providers.Message{ID: "m", Channel: providers.ChannelSMS, To: testPatient, Body: "x"})
	if pe, ok := providers.AsError(err); !ok || pe.Class != providers.ErrPermanent || pe.Code != "config" {
		t.Fatalf("expected a permanent config error without a sender, got %v", err)
	}
}
