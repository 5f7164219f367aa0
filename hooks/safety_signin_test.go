package hooks_test

import (
	"fmt"
	"testing"
)

// TestSignInIsThrottled: password guessing from one address is cut off after a few tries a
// minute, while the high-volume routes (record creates, sends) are never limited.
func TestSignInIsThrottled(t *testing.T) {
	e := newEnv(t).quiet()
	signIn := func(collection, identity, password string) int {
		return e.do("POST", "/api/collections/"+collection+"/auth-with-password", "", map[string]any{"identity": identity, "password": password}).Status
	}

	t.Run("an app signing in once is let in", func(t *testing.T) {
		must(t, signIn("users", "appa@example.com", "password123456") == 200, "the first sign-in must pass")
	})
	for _, s := range []struct{ collection, identity string }{{"users", "admina@example.com"}, {"_superusers", "test@example.com"}} {
		t.Run("40 wrong passwords for "+s.collection, func(t *testing.T) {
			codes := map[int]int{}
			for i := range 40 {
				codes[signIn(s.collection, s.identity, fmt.Sprintf("guess-%d", i))]++
			}
			must(t, codes[429] >= 25 && codes[200] == 0 && codes[400]+codes[429] == 40, "expected most guesses answered 429, got %v", codes)
			must(t, signIn(s.collection, s.identity, "password123456") == 429, "the address stays throttled for the rest of the minute")
		})
	}
	t.Run("requesting OTPs and password resets is throttled", func(t *testing.T) {
		for _, route := range []string{"request-otp", "request-password-reset"} {
			codes := map[int]int{}
			for range 20 {
				codes[e.do("POST", "/api/collections/users/"+route, "", map[string]any{"email": "admina@example.com"}).Status]++
			}
			must(t, codes[429] > 0, "%s: expected some 429, got %v", route, codes)
		}
	})
	t.Run("record creates and sends are not limited", func(t *testing.T) {
		codes := map[int]int{}
		for i := range 60 {
			codes[e.do("POST", "/api/collections/messages/records", "appA", map[string]any{"channel": "sms", "to": "0501234567", "body": fmt.Sprintf("Reminder %d", i)}).Status]++
		}
		for i := range 40 {
			codes[e.do("POST", "/api/clinicmsg/send", "appA", map[string]any{"channel": "sms", "to": "0501234567", "body": fmt.Sprintf("Send %d", i)}).Status]++
		}
		must(t, codes[200] == 100, "expected every create and send accepted, got %v", codes)
	})
}
