package hooks_test

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// TestTenantIsolation: a clinic's users see and write only their own clinic's records.
func TestTenantIsolation(t *testing.T) {
	e := newEnv(t)
	msgA := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "body": "A's message"})
	must(t, msgA.Status == 200, "setup: %s", msgA.Raw)
	tplA := e.save("templates", map[string]any{"code": "a_only", "channel": "sms", "active": true, "body_en": "A", "clinic": e.clinicA.Id})
	e.save("templates", map[string]any{"code": "shared", "channel": "sms", "active": true, "body_en": "Shared"})
	prefA := e.save("preferences", map[string]any{"clinic": e.clinicA.Id, "patient_id": "PA", "sms": true})
	campA := e.save("campaigns", map[string]any{"clinic": e.clinicA.Id, "name": "A campaign", "channel": "sms", "body": "x", "status": "draft", "recipients": []string{"0501234567"}})

	lists := []struct {
		collection string
		who        string
		want       int
	}{
		{"messages", "staffA", 1}, {"messages", "appA", 1}, {"messages", "staffB", 0}, {"messages", "", 0},
		{"message_logs", "staffA", -1}, {"message_logs", "staffB", 0}, {"message_logs", "", 0},
		{"templates", "staffA", 2}, {"templates", "staffB", 1}, {"templates", "", 0},
		{"preferences", "staffA", 1}, {"preferences", "staffB", 0}, {"preferences", "", 0},
		{"campaigns", "staffA", 1}, {"campaigns", "staffB", 0}, {"campaigns", "", 0},
		{"clinics", "staffA", 1}, {"clinics", "", 0},
	}
	for _, s := range lists {
		t.Run(fmt.Sprintf("list %s as %q", s.collection, s.who), func(t *testing.T) {
			res := e.do("GET", "/api/collections/"+s.collection+"/records", s.who, nil)
			must(t, res.Status == 200, "expected 200, got %d: %s", res.Status, res.Raw)
			n := int(res.Body["totalItems"].(float64))
			if s.want < 0 {
				must(t, n > 0, "expected some rows, got none")
				return
			}
			must(t, n == s.want, "expected %d rows, got %d", s.want, n)
		})
	}

	views := []struct {
		path   string
		who    string
		status int
	}{
		{"/api/collections/messages/records/" + msgA.str("id"), "staffB", 404},
		{"/api/collections/messages/records/" + msgA.str("id"), "", 404},
		{"/api/collections/messages/records/" + msgA.str("id"), "appA", 200},
		{"/api/collections/templates/records/" + tplA.Id, "staffB", 404},
		{"/api/collections/preferences/records/" + prefA.Id, "staffB", 404},
		{"/api/collections/campaigns/records/" + campA.Id, "staffB", 404},
		{"/api/collections/clinics/records/" + e.clinicA.Id, "staffB", 404},
	}
	for _, s := range views {
		t.Run("view "+s.path+" as "+s.who, func(t *testing.T) {
			res := e.do("GET", s.path, s.who, nil)
			must(t, res.Status == s.status, "expected %d, got %d: %s", s.status, res.Status, res.Raw)
		})
	}

	writes := []struct {
		name   string
		method string
		path   string
		who    string
		body   map[string]any
		status int
	}{
		{"B creates a message in A", "POST", "/api/collections/messages/records", "staffB", map[string]any{"clinic": e.clinicA.Id, "channel": "sms", "to": "0501234567", "body": "x"}, 403},
		{"B creates a template in A", "POST", "/api/collections/templates/records", "adminB", map[string]any{"clinic": e.clinicA.Id, "code": "x", "channel": "sms", "body_en": "x"}, 403},
		{"B creates a preference in A", "POST", "/api/collections/preferences/records", "staffB", map[string]any{"clinic": e.clinicA.Id, "patient_id": "X"}, 403},
		{"B creates a campaign in A", "POST", "/api/collections/campaigns/records", "staffB", map[string]any{"clinic": e.clinicA.Id, "channel": "sms", "body": "x"}, 403},
		{"B's admin updates A's template", "PATCH", "/api/collections/templates/records/" + tplA.Id, "adminB", map[string]any{"body_en": "hacked"}, 404},
		{"B's admin updates A's preference", "PATCH", "/api/collections/preferences/records/" + prefA.Id, "adminB", map[string]any{"opted_out": true}, 404},
		{"A's staff updates a template", "PATCH", "/api/collections/templates/records/" + tplA.Id, "staffA", map[string]any{"body_en": "changed"}, 404},
		{"A's admin moves a template to B", "PATCH", "/api/collections/templates/records/" + tplA.Id, "adminA", map[string]any{"clinic": e.clinicB.Id}, 403},
		{"A updates a message", "PATCH", "/api/collections/messages/records/" + msgA.str("id"), "staffA", map[string]any{"body": "changed"}, 403},
		{"A sets a message's status", "PATCH", "/api/collections/messages/records/" + msgA.str("id"), "adminA", map[string]any{"status": "delivered"}, 400},
		{"B deletes A's message", "DELETE", "/api/collections/messages/records/" + msgA.str("id"), "adminB", nil, 403},
		{"A's admin updates another clinic", "PATCH", "/api/collections/clinics/records/" + e.clinicB.Id, "adminA", map[string]any{"name": "x"}, 404},
		{"guest creates a message", "POST", "/api/collections/messages/records", "", map[string]any{"clinic": e.clinicA.Id, "channel": "sms", "to": "0501234567", "body": "x"}, 401},
	}
	for _, s := range writes {
		t.Run(s.name, func(t *testing.T) {
			res := e.do(s.method, s.path, s.who, s.body)
			must(t, res.Status == s.status, "expected %d, got %d: %s", s.status, res.Status, res.Raw)
		})
	}

	t.Run("nothing changed", func(t *testing.T) {
		must(t, e.countMessages("") == 1, "expected 1 message, got %d", e.countMessages(""))
		tpl, err := e.app.FindRecordById("templates", tplA.Id)
		must(t, err == nil && tpl.GetString("body_en") == "A" && tpl.GetString("clinic") == e.clinicA.Id, "template changed: %v %v", tpl, err)
		pref, err := e.app.FindRecordById("preferences", prefA.Id)
		must(t, err == nil && !pref.GetBool("opted_out"), "preference changed: %v %v", pref, err)
		msg := e.message(msgA.str("id"))
		must(t, msg.GetString("body") == "A's message", "message changed")
	})

	t.Run("admin updates own clinic's template and preference", func(t *testing.T) {
		res := e.do("PATCH", "/api/collections/templates/records/"+tplA.Id, "adminA", map[string]any{"body_en": "Updated"})
		must(t, res.Status == 200 && res.str("body_en") == "Updated", "expected 200, got %d: %s", res.Status, res.Raw)
		res = e.do("PATCH", "/api/collections/preferences/records/"+prefA.Id, "adminA", map[string]any{"opted_out": true})
		must(t, res.Status == 200, "expected 200, got %d: %s", res.Status, res.Raw)
		res = e.do("DELETE", "/api/collections/templates/records/"+tplA.Id, "adminA", nil)
		must(t, res.Status == 204, "expected 204, got %d: %s", res.Status, res.Raw)
	})

	t.Run("users cannot change their own clinic or role", func(t *testing.T) {
		u, err := e.app.FindAuthRecordByEmail("users", "staffa@example.com")
		must(t, err == nil, "staffA: %v", err)
		res := e.do("PATCH", "/api/collections/users/records/"+u.Id, "staffA", map[string]any{"clinic": e.clinicB.Id})
		must(t, res.Status >= 400 && res.Status < 500, "expected 4xx, got %d", res.Status)
		res = e.do("PATCH", "/api/collections/users/records/"+u.Id, "staffA", map[string]any{"role": "admin"})
		must(t, res.Status >= 400 && res.Status < 500, "expected 4xx, got %d", res.Status)
		u, err = e.app.FindAuthRecordByEmail("users", "staffa@example.com")
		must(t, err == nil && u.GetString("clinic") == e.clinicA.Id && u.GetString("role") == "staff", "user changed: %v %v", u, err)
	})

	t.Run("superuser sees every clinic", func(t *testing.T) {
		e.do("POST", "/api/collections/messages/records", "staffB", map[string]any{"channel": "sms", "to": "0501234567", "body": "B"})
		res := e.do("GET", "/api/collections/messages/records", "superuser", nil)
		must(t, int(res.Body["totalItems"].(float64)) == 2, "expected 2, got %v", res.Body["totalItems"])
	})
}

// TestClinicListUsesIndex: a clinic user's message list is the rule's rows, whatever the
// filter adds, and read newest first SQLite finds them through the index on clinic and
// created rather than reading the table (the list rule alone compiles to a condition no
// index serves).
func TestClinicListUsesIndex(t *testing.T) {
	var mu sync.Mutex
	var lists []string
	e := newEnvLoggingQueries(t, func(q string) {
		if strings.HasPrefix(q, "SELECT DISTINCT `messages`.*") {
			mu.Lock()
			lists = append(lists, q)
			mu.Unlock()
		}
	})
	for _, who := range []string{"staffA", "staffB"} {
		res := e.do("POST", "/api/collections/messages/records", who, map[string]any{"channel": "sms", "to": "0501234567", "body": "hello"})
		must(t, res.Status == 200, "setup: %s", res.Raw)
	}
	brackets := regexp.MustCompile(`\[\[(\w+)\.(\w+)\]\]`)
	filters := []struct {
		filter  string
		want    int
		indexed bool
	}{
		{"", 1, true},
		{`channel = "sms"`, 1, true},
		{`channel = "email"`, 0, true},
		{fmt.Sprintf(`clinic = %q || id != ""`, e.clinicB.Id), 1, true}, // the rule still holds
		{`channel = "sms" // from the dashboard`, 1, true},
		// A quote inside a comment does not parse once wrapped: the rule alone answers.
		{`channel = "sms" // the dashboard's`, 1, false},
	}
	for _, f := range filters {
		mu.Lock()
		lists = nil
		mu.Unlock()
		q := "/api/collections/messages/records?perPage=51&sort=-created,-id&skipTotal=1&filter=" + url.QueryEscape(f.filter)
		res := e.do("GET", q, "staffA", nil)
		must(t, res.Status == 200, "filter %q: expected 200, got %d: %s", f.filter, res.Status, res.Raw)
		items, _ := res.Body["items"].([]any)
		must(t, len(items) == f.want, "filter %q: expected %d rows, got %d", f.filter, f.want, len(items))
		for _, it := range items {
			must(t, it.(map[string]any)["clinic"] == e.clinicA.Id, "filter %q listed another clinic's message", f.filter)
		}
		if !f.indexed {
			continue
		}
		mu.Lock()
		logged := lists
		mu.Unlock()
		must(t, len(logged) == 1, "filter %q: expected one list query, logged %d", f.filter, len(logged))
		var plan []struct {
			Detail string `db:"detail"`
		}
		sql := brackets.ReplaceAllString(logged[0], "`$1`.`$2`")
		must(t, e.app.DB().NewQuery("EXPLAIN QUERY PLAN "+sql).All(&plan) == nil, "failed to explain %s", sql)
		var steps []string
		for _, p := range plan {
			steps = append(steps, p.Detail)
		}
		must(t, strings.Contains(strings.Join(steps, "; "), "SEARCH messages USING INDEX idx_messages_clinic_created (clinic=?)"),
			"filter %q: the list reads messages without the clinic index: %v\n%s", f.filter, steps, sql)
	}
	// A list in another order (a count of a status, say) is left to the rule alone.
	res := e.do("GET", "/api/collections/messages/records?filter="+url.QueryEscape(`channel = "sms"`), "staffA", nil)
	must(t, res.Status == 200 && res.Body["totalItems"].(float64) == 1, "staffA counts its SMS: %s", res.Raw)
	res = e.do("GET", "/api/collections/messages/records", "superuser", nil)
	must(t, res.Status == 200 && res.Body["totalItems"].(float64) == 2, "a superuser lists every clinic's messages: %s", res.Raw)
}
