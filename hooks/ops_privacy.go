package hooks

import (
	"net/url"
	"sort"
	"strings"

	"github.com/pocketbase/pocketbase/core"
)

// scrubRequestLog keeps patient data and secrets out of PocketBase's request log, which
// records each request's URL when the request ends: query values (a list filtered by a
// phone number or a name) are replaced by "x", and the webhook secret in the Unifonic
// delivery-report path by "REDACTED". It runs inside PocketBase's request logger, after the
// handler, so the handler saw the real request.
func (s *Service) scrubRequestLog(e *core.RequestEvent) error {
	err := e.Next()
	r := *e.Request
	u := *r.URL
	u.RawQuery = scrubQuery(u.RawQuery)
	if secret := s.cfg.WebhookSecret; secret != "" && strings.Contains(u.Path, secret) {
		u.Path = strings.ReplaceAll(u.Path, secret, "REDACTED")
		u.RawPath = ""
	}
	r.URL = &u
	e.Request = &r
	return err
}

// scrubQuery keeps a query's keys and drops its values.
func scrubQuery(raw string) string {
	if raw == "" {
		return ""
	}
	values, err := url.ParseQuery(raw)
	if err != nil {
		return "[unreadable query]"
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, url.QueryEscape(k)+"=x")
	}
	sort.Strings(keys)
	return strings.Join(keys, "&")
}
