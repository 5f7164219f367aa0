package hooks_test

import (
	"strings"
	"testing"
	"time"
)

// TestAuthCacheFollowsChanges: the auth record behind a token is cached, but a change to
// the user through the appliance (another clinic, a new password, a deletion) applies to
// the very next request, and a token is refused once it expires.
func TestAuthCacheFollowsChanges(t *testing.T) {
	e := newEnv(t)
	res := e.do("POST", "/api/collections/messages/records", "staffB", map[string]any{"channel": "sms", "to": "0501234567", "body": "B's"})
	must(t, res.Status == 200, "setup: %s", res.Raw)
	clinicOfList := func(who string) string {
		t.Helper()
		res := e.do("GET", "/api/collections/messages/records", who, nil)
		must(t, res.Status == 200, "list as %s: %d %s", who, res.Status, res.Raw)
		items, _ := res.Body["items"].([]any)
		if len(items) == 0 {
			return ""
		}
		return items[0].(map[string]any)["clinic"].(string)
	}
	must(t, clinicOfList("staffA") == "", "staffA sees B's message before the move")

	staff, err := e.app.FindAuthRecordByEmail("users", "staffa@example.com")
	must(t, err == nil, "find staffA: %v", err)
	res = e.do("PATCH", "/api/collections/users/records/"+staff.Id, "superuser", map[string]any{"clinic": e.clinicB.Id})
	must(t, res.Status == 200, "move staffA: %d %s", res.Status, res.Raw)
	must(t, clinicOfList("staffA") == e.clinicB.Id, "staffA's next list is still its old clinic's")

	res = e.do("PATCH", "/api/collections/users/records/"+staff.Id, "superuser", map[string]any{"password": "a-new-password-1", "passwordConfirm": "a-new-password-1"})
	must(t, res.Status == 200, "change staffA's password: %d %s", res.Status, res.Raw)
	res = e.do("POST", "/api/clinicmsg/send", "staffA", map[string]any{"channel": "sms", "to": "0501234567", "body": "x"})
	must(t, res.Status == 401, "a token from before a password change is still accepted: %d %s", res.Status, res.Raw)

	must(t, e.do("GET", "/api/collections/messages/records", "appA", nil).Status == 200, "appA signs in")
	app, err := e.app.FindAuthRecordByEmail("users", "appa@example.com")
	must(t, err == nil, "find appA: %v", err)
	res = e.do("DELETE", "/api/collections/users/records/"+app.Id, "superuser", nil)
	must(t, res.Status == 204, "delete appA: %d %s", res.Status, res.Raw)
	res = e.do("POST", "/api/clinicmsg/send", "appA", map[string]any{"channel": "sms", "to": "0501234567", "body": "x"})
	must(t, res.Status == 401, "a deleted user's token is still accepted: %d %s", res.Status, res.Raw)

	admin, err := e.app.FindAuthRecordByEmail("users", "admina@example.com")
	must(t, err == nil, "find adminA: %v", err)
	short, err := admin.NewStaticAuthToken(2 * time.Second)
	must(t, err == nil, "token: %v", err)
	e.tokens["short"] = short
	must(t, e.do("GET", "/api/collections/messages/records", "short", nil).Status == 200, "a fresh token is refused")
	time.Sleep(2100 * time.Millisecond) // the token's own lifetime, which the cache must not extend
	res = e.do("POST", "/api/clinicmsg/send", "short", map[string]any{"channel": "sms", "to": "0501234567", "body": "x"})
	must(t, res.Status == 401 && strings.Contains(res.Raw, "token"), "an expired token is still accepted: %d %s", res.Status, res.Raw)
}
