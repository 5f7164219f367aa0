package hooks

import (
	"encoding/json"
	"strings"
	"testing"
	"testing/iotest"
)

// A list is read into parts as it streams in; when the decoder cannot see that the value
// is an array yet, it is kept whole for the create hook, and both give the same list.
func TestReadCampaignBody(t *testing.T) {
	body := `{"channel":"sms", "recipients" : ["0501", {"to":"0502","patient_id":"P-2","context":{"name":"Sara"}}], "body":"x"}`

	fields, list, err := readCampaignBody(strings.NewReader(body))
	if err != nil || list == nil {
		t.Fatalf("expected a streamed list: %v %v", list, err)
	}
	if _, ok := fields["recipients"]; ok || string(fields["body"]) != `"x"` || string(fields["channel"]) != `"sms"` {
		t.Fatalf("expected the other members as they were and no recipients: %s", fields)
	}
	want := `[{"to":"0501"},{"to":"0502","patient_id":"P-2","context":{"name":"Sara"}}]`
	if list.count != 2 || len(list.parts) != 1 || string(list.parts[0]) != want || list.err != nil {
		t.Fatalf("expected one part %s, got %d %q %v", want, list.count, list.parts, list.err)
	}

	fields, list, err = readCampaignBody(iotest.OneByteReader(strings.NewReader(body)))
	if err != nil || list != nil {
		t.Fatalf("a byte at a time, the list is not streamed: %v %v", list, err)
	}
	parsed, err := parseRecipients([]byte(fields["recipients"]))
	if err != nil {
		t.Fatal(err)
	}
	whole, err := partsOf(parsed)
	if err != nil {
		t.Fatal(err)
	}
	if string(whole.parts[0]) != want {
		t.Fatalf("the whole list encodes as the streamed one: %s", whole.parts[0])
	}

	t.Run("parts of a thousand", func(t *testing.T) {
		var items []string
		for range 2_500 {
			items = append(items, `"0501234567"`)
		}
		_, list, err := readCampaignBody(strings.NewReader(`{"recipients":[` + strings.Join(items, ",") + `]}`))
		if err != nil || list.count != 2_500 || len(list.parts) != 3 {
			t.Fatalf("expected 2,500 recipients in 3 parts: %v %v", list, err)
		}
		var last []recipient
		_ = json.Unmarshal(list.parts[2], &last)
		if len(last) != 500 {
			t.Fatalf("expected 500 in the last part, got %d", len(last))
		}
	})

	t.Run("a bad recipient is named, and the rest is still read", func(t *testing.T) {
		fields, list, err := readCampaignBody(strings.NewReader(`{"recipients":["0501", 7, "0503"], "body":"y"}`))
		if err != nil || list.err == nil || !strings.Contains(list.err.Error(), "recipient 1 ") || string(fields["body"]) != `"y"` {
			t.Fatalf("expected recipient 1 refused and body read: %v %v %s", list, err, fields)
		}
	})

	for _, bad := range []string{`{"recipients":[1,`, `{"a":1} {"b":2}`, `{"recipients":["x"]`} {
		if _, _, err := readCampaignBody(strings.NewReader(bad)); err == nil {
			t.Errorf("%s: expected an error", bad)
		}
	}
}
