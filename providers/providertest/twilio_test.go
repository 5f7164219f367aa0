package providertest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twilio/twilio-go/client"

	"clinicmsg/providers/providertest"
)

// twilioDo sends one request to the fake with the fake's credentials (unless noAuth) and
// decodes the JSON reply.
func twilioDo(t *testing.T, f *providertest.Twilio, method, path string, form url.Values, noAuth bool) (int, map[string]any) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, f.URL+path, body)
	if err != nil {
		t.Fatalf("failed to build request: %v", err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if !noAuth {
		req.SetBasicAuth(f.AccountSID, f.AuthToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("expected a reply, got %v", err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("expected a JSON reply, got %v", err)
	}
	return resp.StatusCode, out
}

func messagesPath(f *providertest.Twilio) string {
	return "/2010-04-01/Accounts/" + f.AccountSID + "/Messages.json"
}

func TestTwilioCreateWire(t *testing.T) {
	f := providertest.NewTwilio(t)
	scenarios := []struct {
		name string
		form url.Values
		want map[string]any // nil value: JSON null
	}{
		{
			name: "from a number",
			form: url.Values{"To": {"+966501234567"}, "From": {"+15005550006"}, "Body": {"hello"}},
			want: map[string]any{"status": "queued", "num_segments": "1", "price": nil, "price_unit": "USD",
				"error_code": nil, "error_message": nil, "date_sent": nil, "from": "+15005550006", "to": "+966501234567",
				"body": "hello", "direction": "outbound-api", "api_version": "2010-04-01"},
		},
		{
			name: "through a messaging service",
			form: url.Values{"To": {"+966501234567"}, "MessagingServiceSid": {"MG1"}, "Body": {"hello"}},
			want: map[string]any{"status": "accepted", "num_segments": "0", "from": nil, "messaging_service_sid": "MG1"},
		},
	}
	sid := regexp.MustCompile(`^SM[0-9a-f]{32}$`)
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			status, got := twilioDo(t, f, http.MethodPost, messagesPath(f), s.form, false)
			if status != http.StatusCreated {
				t.Fatalf("expected 201, got %d %v", status, got)
			}
			if !sid.MatchString(got["sid"].(string)) {
				t.Fatalf("expected an SM sid, got %v", got["sid"])
			}
			if _, err := time.Parse(time.RFC1123Z, got["date_created"].(string)); err != nil {
				t.Fatalf("expected an RFC 2822 date_created, got %v", got["date_created"])
			}
			for k, want := range s.want {
				v, ok := got[k]
				if !ok || v != want {
					t.Fatalf("expected %s = %v, got %v (present %v)", k, want, v, ok)
				}
			}
		})
	}
}

func TestTwilioErrors(t *testing.T) {
	f := providertest.NewTwilio(t)
	valid := url.Values{"To": {"+966501234567"}, "From": {"+15005550006"}, "Body": {"hello"}}
	with := func(k, v string) url.Values {
		c := url.Values{}
		for key, vs := range valid {
			c[key] = vs
		}
		if v == "" {
			c.Del(k)
		} else {
			c.Set(k, v)
		}
		return c
	}
	scenarios := []struct {
		name   string
		method string
		path   string
		form   url.Values
		noAuth bool
		status int
		code   float64
	}{
		{name: "no credentials", method: http.MethodPost, path: messagesPath(f), form: valid, noAuth: true, status: 401, code: 20003},
		{name: "another account", method: http.MethodPost, path: "/2010-04-01/Accounts/AC0/Messages.json", form: valid, status: 404, code: 20404},
		{name: "no To", method: http.MethodPost, path: messagesPath(f), form: with("To", ""), status: 400, code: 21604},
		{name: "no From", method: http.MethodPost, path: messagesPath(f), form: with("From", ""), status: 400, code: 21603},
		{name: "no Body", method: http.MethodPost, path: messagesPath(f), form: with("Body", ""), status: 400, code: 21602},
		{name: "bad To", method: http.MethodPost, path: messagesPath(f), form: with("To", "0501234567"), status: 400, code: 21211},
		{name: "channel mismatch", method: http.MethodPost, path: messagesPath(f), form: with("To", "whatsapp:+966501234567"), status: 400, code: 21910},
		{name: "bad ContentVariables", method: http.MethodPost, path: messagesPath(f), form: with("ContentVariables", "{"), status: 400, code: 21656},
		{name: "body too long", method: http.MethodPost, path: messagesPath(f), form: with("Body", strings.Repeat("a", 1601)), status: 400, code: 21617},
		{name: "unknown message", method: http.MethodGet, path: "/2010-04-01/Accounts/" + f.AccountSID + "/Messages/SM0.json", status: 404, code: 20404},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			status, got := twilioDo(t, f, s.method, s.path, s.form, s.noAuth)
			if status != s.status || got["code"] != s.code || got["status"] != float64(s.status) {
				t.Fatalf("expected %d/%v, got %d %v", s.status, s.code, status, got)
			}
			if _, ok := got["message"].(string); !ok || !strings.HasPrefix(got["more_info"].(string), "https://www.twilio.com/docs/errors/") {
				t.Fatalf("expected message and more_info, got %v", got)
			}
			if strings.Contains(got["message"].(string), "501234567") {
				t.Fatalf("expected the number masked, got %v", got["message"])
			}
		})
	}
}

func TestTwilioListAndFetch(t *testing.T) {
	f := providertest.NewTwilio(t)
	var sids []string
	for _, to := range []string{"+966501234567", "+966501234568", "+966501234567"} {
		_, got := twilioDo(t, f, http.MethodPost, messagesPath(f), url.Values{"To": {to}, "From": {"+15005550006"}, "Body": {"hi"}}, false)
		sids = append(sids, got["sid"].(string))
	}
	f.SetStatus(sids[0], "queued", 0)
	today := time.Now().UTC().Format("2006-01-02")
	tomorrow := time.Now().UTC().Add(24 * time.Hour).Format("2006-01-02")
	scenarios := []struct {
		name  string
		query url.Values
		want  []string
		next  bool
	}{
		{name: "by To, queued first", query: url.Values{"To": {"+966501234567"}}, want: []string{sids[0], sids[2]}},
		{name: "sent today (queued has no date_sent)", query: url.Values{"To": {"+966501234567"}, "DateSent>": {today}}, want: []string{sids[2]}},
		{name: "sent since tomorrow", query: url.Values{"DateSent>": {tomorrow}}, want: []string{}},
		{name: "RFC 3339 as twilio-go sends it", query: url.Values{"DateSent>": {time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)}}, want: []string{sids[2], sids[1]}},
		{name: "first page", query: url.Values{"PageSize": {"1"}}, want: []string{sids[0]}, next: true},
		{name: "second page", query: url.Values{"PageSize": {"1"}, "Page": {"1"}}, want: []string{sids[2]}, next: true},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			status, got := twilioDo(t, f, http.MethodGet, messagesPath(f)+"?"+s.query.Encode(), nil, false)
			if status != http.StatusOK {
				t.Fatalf("expected 200, got %d %v", status, got)
			}
			msgs := got["messages"].([]any)
			ids := []string{}
			for _, m := range msgs {
				ids = append(ids, m.(map[string]any)["sid"].(string))
			}
			if strings.Join(ids, ",") != strings.Join(s.want, ",") {
				t.Fatalf("expected %v, got %v", s.want, ids)
			}
			if hasNext := got["next_page_uri"] != nil; hasNext != s.next {
				t.Fatalf("expected next_page_uri %v, got %v", s.next, got["next_page_uri"])
			}
			for _, k := range []string{"first_page_uri", "page", "page_size", "start", "end", "uri"} {
				if _, ok := got[k]; !ok {
					t.Fatalf("expected paging field %s, got %v", k, got)
				}
			}
		})
	}

	status, got := twilioDo(t, f, http.MethodGet, "/2010-04-01/Accounts/"+f.AccountSID+"/Messages/"+sids[1]+".json", nil, false)
	if status != http.StatusOK || got["status"] != "sent" || got["price"] == nil || got["date_sent"] == nil {
		t.Fatalf("expected the sent message with a price, got %d %v", status, got)
	}
	status, got = twilioDo(t, f, http.MethodGet, "/2010-04-01/Accounts/"+f.AccountSID+".json", nil, false)
	if status != http.StatusOK || got["status"] != "active" || got["sid"] != f.AccountSID {
		t.Fatalf("expected the active account, got %d %v", status, got)
	}
}

func TestTwilioSignature(t *testing.T) {
	// twilio-go's own test vector.
	params := url.Values{
		"Digits": {"1234"}, "CallSid": {"CA1234567890ABCDE"}, "To": {"+18005551212"}, "Caller": {"+14158675309"},
		"From": {"+14158675309"}, "ReasonConferenceEnded": {"test"}, "Reason": {"Participant"},
	}
	if got := providertest.TwilioSignature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params); got != "vOEb5UThFn24KEfnOFLQY2AE5FY=" {
		t.Fatalf("expected twilio-go's vector, got %s", got)
	}

	// A signed callback verifies with twilio-go's validator, by parameters and by body.
	const target = "https://clinic.example/api/clinicmsg/webhooks/twilio/status?c=1"
	cb := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}, "AccountSid": {providertest.TwilioAccountSID}}
	req, err := providertest.SignedStatusCallback(target, cb, providertest.TwilioAuthToken)
	if err != nil {
		t.Fatalf("expected no error, got %v", err)
	}
	if req.Header.Get("I-Twilio-Idempotency-Token") == "" {
		t.Fatalf("expected an idempotency token")
	}
	body, _ := io.ReadAll(req.Body)
	rv := client.NewRequestValidator(providertest.TwilioAuthToken)
	if !rv.ValidateBody(target, body, req.Header.Get("X-Twilio-Signature")) {
		t.Fatalf("expected twilio-go to accept the signature")
	}
	other := client.NewRequestValidator("0therT0ken")
	if other.ValidateBody(target, body, req.Header.Get("X-Twilio-Signature")) {
		t.Fatalf("expected another token to reject the signature")
	}
}

func TestTwilioScripting(t *testing.T) {
	send := url.Values{"To": {"+966501234567"}, "From": {"+15005550006"}, "Body": {"hello"}}

	t.Run("latency", func(t *testing.T) {
		f := providertest.NewTwilio(t)
		f.SetLatencyFunc(func() time.Duration { return 50 * time.Millisecond })
		start := time.Now()
		twilioDo(t, f, http.MethodPost, messagesPath(f), send, false)
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Fatalf("expected at least 50ms, got %v", d)
		}
	})

	t.Run("next replies are consumed in order", func(t *testing.T) {
		f := providertest.NewTwilio(t)
		f.ReplyNext(1, providertest.TwilioError(20429))
		f.ReplyNext(1, providertest.TwilioServerError())
		for _, want := range []int{429, 500, 201} {
			if status, _ := twilioDo(t, f, http.MethodPost, messagesPath(f), send, false); status != want {
				t.Fatalf("expected %d, got %d", want, status)
			}
		}
	})

	t.Run("per-number reply matches the whatsapp address", func(t *testing.T) {
		f := providertest.NewTwilio(t)
		f.ReplyToNumber("+966501234567", providertest.TwilioError(63016))
		wa := url.Values{"To": {"whatsapp:+966501234567"}, "From": {"whatsapp:+14155238886"}, "Body": {"hi"}}
		if status, got := twilioDo(t, f, http.MethodPost, messagesPath(f), wa, false); status != 400 || got["code"] != float64(63016) {
			t.Fatalf("expected 63016, got %d %v", status, got)
		}
	})

	t.Run("outage covers reads", func(t *testing.T) {
		f := providertest.NewTwilio(t)
		r := providertest.TwilioServerError()
		f.SetOutage(&r)
		if status, _ := twilioDo(t, f, http.MethodGet, "/2010-04-01/Accounts/"+f.AccountSID+".json", nil, false); status != 500 {
			t.Fatalf("expected 500, got %d", status)
		}
		f.SetOutage(nil)
		if status, _ := twilioDo(t, f, http.MethodGet, "/2010-04-01/Accounts/"+f.AccountSID+".json", nil, false); status != 200 {
			t.Fatalf("expected 200, got %d", status)
		}
	})

	t.Run("close releases a hung request", func(t *testing.T) {
		f := providertest.NewTwilio(nil)
		f.ReplyNext(1, providertest.Reply{Hang: true, Accept: true})
		done := make(chan error, 1)
		go func() {
			req, _ := http.NewRequest(http.MethodPost, f.URL+messagesPath(f), strings.NewReader(send.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(f.AccountSID, f.AuthToken)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		deadline := time.Now().Add(2 * time.Second)
		for len(f.Messages()) == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if len(f.Messages()) != 1 {
			t.Fatalf("expected the hung message to be stored")
		}
		closed := make(chan struct{})
		go func() { f.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(2 * time.Second):
			t.Fatalf("expected Close to release the hung request")
		}
		if err := <-done; err == nil {
			t.Fatalf("expected the hung request to fail")
		}
	})

	t.Run("requests are recorded under concurrency", func(t *testing.T) {
		f := providertest.NewTwilio(t)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodPost, f.URL+messagesPath(f), strings.NewReader(send.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(f.AccountSID, f.AuthToken)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			})
		}
		wg.Wait()
		reqs := f.Requests()
		if len(reqs) != 8 || len(f.Messages()) != 8 {
			t.Fatalf("expected 8 requests and messages, got %d and %d", len(reqs), len(f.Messages()))
		}
		if reqs[0].Form.Get("Body") != "hello" || reqs[0].Header.Get("Authorization") == "" {
			t.Fatalf("expected the form and headers recorded, got %+v", reqs[0])
		}
	})

	t.Run("history limit", func(t *testing.T) {
		f := providertest.NewTwilio(t)
		f.SetHistoryLimit(2)
		for range 5 {
			twilioDo(t, f, http.MethodPost, messagesPath(f), send, false)
		}
		if n := len(f.Requests()); n > 4 {
			t.Fatalf("expected at most 4 recorded requests, got %d", n)
		}
		if n := len(f.Messages()); n > 4 {
			t.Fatalf("expected at most 4 stored messages, got %d", n)
		}
	})
}

// OnCreated hears of each accepted message, with the time its request arrived (before the
// scripted latency), and of no refused one.
func TestTwilioOnCreated(t *testing.T) {
	f := providertest.NewTwilio(t)
	f.SetLatency(50 * time.Millisecond)
	type heard struct {
		sid     string
		arrived time.Time
	}
	got := make(chan heard, 4)
	f.OnCreated(func(sid string, arrived time.Time) { got <- heard{sid, arrived} })
	path := "/2010-04-01/Accounts/" + f.AccountSID + "/Messages.json"
	before := time.Now()
	code, body := twilioDo(t, f, "POST", path, url.Values{"To": {"+966501234567"}, "From": {"+15005550006"}, "Body": {"hi"}}, false)
	if code != http.StatusCreated {
		t.Fatalf("expected 201, got %d", code)
	}
	answered := time.Now()
	h := <-got
	// The 50 ms latency is spent after the request arrived.
	if h.sid != body["sid"] || h.arrived.Before(before) || h.arrived.After(answered.Add(-50*time.Millisecond)) {
		t.Fatalf("expected %v arriving between %v and 50 ms before %v, got %+v", body["sid"], before, answered, h)
	}
	if code, _ := twilioDo(t, f, "POST", path, url.Values{"To": {"12"}, "From": {"+15005550006"}, "Body": {"hi"}}, false); code != http.StatusBadRequest {
		t.Fatalf("expected 400 for a bad number, got %d", code)
	}
	f.OnCreated(nil)
	twilioDo(t, f, "POST", path, url.Values{"To": {"+966501234568"}, "From": {"+15005550006"}, "Body": {"hi"}}, false)
	select {
	case h := <-got:
		t.Fatalf("expected nothing after a refusal or once unset, got %+v", h)
	case <-time.After(100 * time.Millisecond):
	}
}
