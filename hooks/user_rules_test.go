package hooks_test

import "testing"

// TestUsersNeedClinicAndRole: a clinic account without its clinic or role is refused when
// saved, naming the field, instead of failing only when it signs in.
func TestUsersNeedClinicAndRole(t *testing.T) {
	e := newEnv(t)
	scenarios := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"no clinic", map[string]any{"role": "staff"}, "clinic"},
		{"no role", map[string]any{"clinic": e.clinicA.Id}, "role"},
		{"both", map[string]any{"clinic": e.clinicA.Id, "role": "staff"}, ""},
	}
	for i, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			body := map[string]any{"email": "new" + string(rune('a'+i)) + "@clinic.example", "password": "a-long-password-1", "passwordConfirm": "a-long-password-1"}
			for k, v := range s.body {
				body[k] = v
			}
			res := e.do("POST", "/api/collections/users/records", "superuser", body)
			if s.field == "" {
				must(t, res.Status == 200, "expected the user saved, got %d %s", res.Status, res.Raw)
				return
			}
			must(t, res.Status == 400 && len(res.errorFields()) == 1 && res.errorFields()[0] == s.field, "expected 400 naming %s, got %d %s", s.field, res.Status, res.Raw)
			_, err := e.app.FindAuthRecordByEmail("users", body["email"].(string))
			must(t, err != nil, "nothing may be saved")
		})
	}
}
