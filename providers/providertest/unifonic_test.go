package providertest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"clinicmsg/providers/providertest"
)

// unifonicPost posts form to the fake and returns the status and the raw reply.
func unifonicPost(t *testing.T, f *providertest.Unifonic, path string, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.Post(f.URL+path, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatalf("expected a reply, got %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func unifonicSend(to, corr string) url.Values {
	return url.Values{
		"AppSid": {providertest.UnifonicAppSID}, "SenderID": {"ClinicA"}, "Recipient": {to},
		"Body": {"hello"}, "CorrelationID": {corr}, "responseType": {"JSON"},
	}
}

func TestUnifonicSendWire(t *testing.T) {
	scenarios := []struct {
		name    string
		strings bool
		want    []string // substrings of the raw reply
	}{
		{name: "json numbers", want: []string{`"success":true`, `"MessageID":42000348806924`, `"NumberOfUnits":1`,
			`"Cost":0.0500`, `"Recipient":966501234567`, `"CurrencyCode":"SAR"`, `"Status":"Sent"`, `"errorCode":"ER-00"`}},
		{name: "string values", strings: true, want: []string{`"success":"true"`, `"MessageID":42000348806924`,
			`"NumberOfUnits":"1"`, `"Cost":"0.0500"`, `"Recipient":"966501234567"`}},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			f := providertest.NewUnifonic(t)
			f.SetStringValues(s.strings)
			status, body := unifonicPost(t, f, "/rest/SMS/messages", unifonicSend("966501234567", "c1"))
			if status != http.StatusOK {
				t.Fatalf("expected 200, got %d %s", status, body)
			}
			for _, w := range s.want {
				if !strings.Contains(body, w) {
					t.Fatalf("expected %s in %s", w, body)
				}
			}
		})
	}
}

func TestUnifonicRefusals(t *testing.T) {
	f := providertest.NewUnifonic(t, providertest.WithUnifonicSenders("ClinicA"))
	with := func(k, v string) url.Values {
		form := unifonicSend("966501234567", "")
		if v == "" {
			form.Del(k)
		} else {
			form.Set(k, v)
		}
		return form
	}
	scenarios := []struct {
		name   string
		form   url.Values
		status int
		want   string
	}{
		{name: "no AppSid", form: with("AppSid", ""), status: 402, want: `"success":false`},
		{name: "wrong AppSid", form: with("AppSid", "x"), status: 401, want: `"errorCode":"ER-01"`},
		{name: "empty body", form: with("Body", ""), status: 449},
		{name: "sender not allowed", form: with("SenderID", "Other"), status: 480},
		{name: "number with plus", form: with("Recipient", "+966501234567"), status: 482},
		{name: "number too short", form: with("Recipient", "96650"), status: 200, want: `"errorCode":"ER-04"`},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			status, body := unifonicPost(t, f, "/rest/SMS/messages", s.form)
			if status != s.status || !strings.Contains(body, s.want) {
				t.Fatalf("expected %d with %s, got %d %s", s.status, s.want, status, body)
			}
			if s.status == 200 && !strings.Contains(body, `"success":false`) {
				t.Fatalf("expected success:false, got %s", body)
			}
		})
	}

	t.Run("duplicate CorrelationID", func(t *testing.T) {
		if status, body := unifonicPost(t, f, "/rest/SMS/messages", unifonicSend("966501234567", "dup")); status != 200 {
			t.Fatalf("expected 200, got %d %s", status, body)
		}
		if status, _ := unifonicPost(t, f, "/rest/SMS/messages", unifonicSend("966501234567", "dup")); status != 409 {
			t.Fatalf("expected 409, got %d", status)
		}
		f.SetDuplicateCheck(false)
		if status, _ := unifonicPost(t, f, "/rest/SMS/messages", unifonicSend("966501234567", "dup")); status != 200 {
			t.Fatalf("expected 200 with the check off, got %d", status)
		}
	})
}

func TestUnifonicDetails(t *testing.T) {
	f := providertest.NewUnifonic(t)
	unifonicPost(t, f, "/rest/SMS/messages", unifonicSend("966501234567", "c1"))
	unifonicPost(t, f, "/rest/SMS/messages", unifonicSend("966501234568", "c2"))
	id := f.Messages()[1].MessageID
	f.SetDLR(id, "Delivered")
	scenarios := []struct {
		name  string
		query url.Values
		want  int
		dlr   string
	}{
		{name: "by CorrelationID", query: url.Values{"CorrelationID": {"c2"}}, want: 1, dlr: "Delivered"},
		{name: "by MessageID", query: url.Values{"MessageID": {id}}, want: 1, dlr: "Delivered"},
		{name: "unknown", query: url.Values{"CorrelationID": {"nope"}}, want: 0},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			s.query.Set("AppSid", f.AppSID)
			status, body := unifonicPost(t, f, "/rest/SMS/Messages/GetMessagesDetails", s.query)
			var got struct {
				Success bool `json:"success"`
				Data    struct {
					Messages []map[string]any `json:"messages"`
				} `json:"data"`
			}
			if err := json.Unmarshal([]byte(body), &got); err != nil || status != 200 || !got.Success {
				t.Fatalf("expected a successful reply, got %d %s (%v)", status, body, err)
			}
			if len(got.Data.Messages) != s.want {
				t.Fatalf("expected %d messages, got %s", s.want, body)
			}
			if s.want > 0 && got.Data.Messages[0]["DLR"] != s.dlr {
				t.Fatalf("expected DLR %s, got %v", s.dlr, got.Data.Messages[0])
			}
		})
	}
}

func TestUnifonicDLRRequest(t *testing.T) {
	d := providertest.UnifonicDLR{MessageID: "18446744073709551557", DLR: "Delivered", Recipient: "966501234567"}
	if got := string(d.JSON()); !strings.Contains(got, `"MessageID":18446744073709551557`) || !strings.Contains(got, `"DLR":"Delivered"`) {
		t.Fatalf("expected a bare integer MessageID, got %s", got)
	}
	req, err := providertest.UnifonicDLRRequest("https://clinic.example/x", d, false)
	if err != nil {
		t.Fatalf("expected no error, got %v", err)
	}
	if err := req.ParseForm(); err != nil || req.PostForm.Get("MessageID") != d.MessageID || req.PostForm.Get("DLR") != "Delivered" {
		t.Fatalf("expected the form fields, got %v (%v)", req.PostForm, err)
	}
}
