package migrations

import (
	"slices"

	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// authRateLimits throttle sign-in per client IP so that passwords and one-time codes cannot
// be guessed at speed, while an app that signs in once an hour, or staff who mistype a
// password twice, never notice. Superusers' own requests are never limited (PocketBase skips
// them), so impersonation is limited only for callers who are not yet superusers.
// Nothing else is limited: sends, bulk creates and provider webhooks come in bursts from few
// addresses, and a 429 there would drop patients' messages or delivery reports.
var authRateLimits = []core.RateLimitRule{
	{Label: "*:authWithPassword", MaxRequests: 10, Duration: 60},
	{Label: "*:authWithOTP", MaxRequests: 10, Duration: 60},
	{Label: "*:requestOTP", MaxRequests: 5, Duration: 60},
	{Label: "*:requestPasswordReset", MaxRequests: 5, Duration: 60},
	{Label: "*:auth", MaxRequests: 10, Duration: 60}, // OAuth2, and any sign-in PocketBase adds
	{Label: "POST /api/collections/users/impersonate/", MaxRequests: 10, Duration: 60},
	{Label: "POST /api/collections/_superusers/impersonate/", MaxRequests: 10, Duration: 60},
}

// pocketBaseDefaultLabels are the rules PocketBase ships (disabled). Enabled as shipped they
// would limit record creates to 20 per 5 s and /api/ to 300 per 10 s per IP, which an
// integration sending reminders exceeds in its first second, so they are dropped; an
// operator's own rules are kept.
var pocketBaseDefaultLabels = []string{"*:auth", "*:create", "/api/batch", "/api/"}

func init() {
	m.Register(func(app core.App) error {
		s := app.Settings()
		rules := []core.RateLimitRule{}
		for _, r := range s.RateLimits.Rules {
			if slices.Contains(pocketBaseDefaultLabels, r.Label) || hasLabel(authRateLimits, r.Label) {
				continue
			}
			rules = append(rules, r)
		}
		s.RateLimits.Rules = append(rules, authRateLimits...)
		s.RateLimits.Enabled = true
		return app.Save(s)
	}, func(app core.App) error {
		s := app.Settings()
		rules := []core.RateLimitRule{}
		for _, r := range s.RateLimits.Rules {
			if !hasLabel(authRateLimits, r.Label) {
				rules = append(rules, r)
			}
		}
		s.RateLimits.Rules = rules
		s.RateLimits.Enabled = false
		return app.Save(s)
	})
}

func hasLabel(rules []core.RateLimitRule, label string) bool {
	return slices.ContainsFunc(rules, func(r core.RateLimitRule) bool { return r.Label == label })
}
