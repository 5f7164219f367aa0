package hooks_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

type realtimeEvent struct {
	Action string         `json:"action"`
	Record map[string]any `json:"record"`
}

// subscribe opens PocketBase's realtime stream as who and subscribes to topic.
func (e *env) subscribe(who, topic string) <-chan realtimeEvent {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/api/realtime", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	events := make(chan realtimeEvent, 100)
	clientID := make(chan string, 1)
	go func() {
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		name := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event:"):
				name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
			case strings.HasPrefix(line, "data:"):
				data := strings.TrimSpace(strings.TrimPrefix(line, "data:"))
				if name == "PB_CONNECT" {
					var c struct {
						ClientID string `json:"clientId"`
					}
					_ = json.Unmarshal([]byte(data), &c)
					clientID <- c.ClientID
					continue
				}
				var ev realtimeEvent
				if json.Unmarshal([]byte(data), &ev) == nil {
					events <- ev
				}
			}
		}
	}()
	var id string
	select {
	case id = <-clientID:
	case <-time.After(5 * time.Second):
		e.t.Fatal("no realtime connection")
	}
	r := e.do("POST", "/api/realtime", who, map[string]any{"clientId": id, "subscriptions": []string{topic}})
	if r.Status != 204 {
		e.t.Fatalf("subscribe: %d %s", r.Status, r.Raw)
	}
	return events
}

// TestRealtimeSeesEveryChange: a subscribed dashboard sees a new message and each of its
// status changes, including those written on the hot path without app.Save.
func TestRealtimeSeesEveryChange(t *testing.T) {
	e := newEnv(t)
	events := e.subscribe("staffA", "messages")
	other := e.subscribe("staffB", "messages")
	res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "body": "x"})
	must(t, res.Status == 200, "create: %s", res.Raw)

	seen := []string{}
	var last realtimeEvent
	deadline := time.After(5 * time.Second)
	for !strings.Contains(strings.Join(seen, ","), "update:delivered") {
		select {
		case ev := <-events:
			if ev.Record["id"] == res.str("id") {
				seen = append(seen, ev.Action+":"+ev.Record["status"].(string))
				last = ev
			}
		case <-deadline:
			t.Fatalf("expected create and updates up to delivered, saw %v", seen)
		}
	}
	// The create is announced after its commit, so a claim by the dispatcher's sweep can
	// be announced first; subscribers get both either way.
	must(t, strings.Contains(strings.Join(seen, ","), "create:queued"), "expected the create, saw %v", seen)
	must(t, strings.Contains(strings.Join(seen, ","), "update:sending") && strings.Contains(strings.Join(seen, ","), "update:sent"), "expected each status, saw %v", seen)
	// A change is announced as stored, down to when the row was last written.
	stored := e.message(res.str("id")).GetDateTime("updated").String()
	must(t, last.Record["updated"] == stored, "the delivered change was announced with updated %v; the row says %s", last.Record["updated"], stored)
	select {
	case ev := <-other:
		t.Fatalf("clinic B must not see clinic A's message: %v", ev)
	case <-time.After(200 * time.Millisecond):
	}
}
