package hooks

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"sync"

	"clinicmsg/internal/dispatch"
	"clinicmsg/providers"

	"github.com/pocketbase/pocketbase/core"
)

const (
	twilioStatusPath  = "/api/clinicmsg/webhooks/twilio/status"
	unifonicDLRPrefix = "/api/clinicmsg/webhooks/unifonic/"
)

// handleTwilioStatus takes Twilio's signed status callbacks. A missing or wrong signature
// is a 403 and changes nothing; the answer comes after the change is committed, so a
// callback Twilio saw acknowledged is never lost.
func (s *Service) handleTwilioStatus(e *core.RequestEvent) error {
	parser, ok := s.statusParsers["twilio"]
	if !ok {
		return e.NotFoundError("Twilio is not configured.", nil)
	}
	u, err := parser.ParseStatusWebhook(e.Request, s.publicBase(e))
	if errors.Is(err, providers.ErrBadSignature) {
		s.countWebhook("twilio", "forbidden")
		s.app.Logger().Warn("refused a twilio status callback", "reason", "bad signature", "ip", e.RealIP())
		return e.ForbiddenError("The request signature does not verify.", nil)
	}
	if err != nil {
		s.countWebhook("twilio", "bad_request")
		return e.BadRequestError("The status callback could not be read.", nil)
	}
	// Twilio may deliver one callback more than once; the token says it is the same one. It
	// is remembered only once the change is stored, so a retry after a failure is applied.
	tok := e.Request.Header.Get("I-Twilio-Idempotency-Token")
	if tok != "" && s.webhookIDs.has("twilio:"+tok) {
		s.countWebhook("twilio", "duplicate")
		return e.NoContent(http.StatusNoContent)
	}
	if err := s.applyWebhook(e, *u, "twilio"); err != nil {
		return err
	}
	if tok != "" && e.Status() < 300 {
		s.webhookIDs.add("twilio:" + tok)
	}
	return nil
}

// handleUnifonicDLR takes Unifonic's delivery reports. Unifonic signs nothing, so the
// route carries CLINICMSG_WEBHOOK_SECRET; a wrong secret is a 403.
func (s *Service) handleUnifonicDLR(e *core.RequestEvent) error {
	parser, ok := s.statusParsers["unifonic"]
	if !ok || s.cfg.WebhookSecret == "" {
		return e.NotFoundError("Unifonic delivery reports are not configured.", nil)
	}
	if subtle.ConstantTimeCompare([]byte(e.Request.PathValue("secret")), []byte(s.cfg.WebhookSecret)) != 1 {
		s.countWebhook("unifonic", "forbidden")
		s.app.Logger().Warn("refused a unifonic delivery report", "reason", "wrong secret", "ip", e.RealIP())
		return e.ForbiddenError("The webhook secret does not match.", nil)
	}
	u, err := parser.ParseStatusWebhook(e.Request, "")
	if err != nil {
		s.countWebhook("unifonic", "bad_request")
		return e.BadRequestError("The delivery report could not be read.", nil)
	}
	return s.applyWebhook(e, *u, "unifonic")
}

func (s *Service) applyWebhook(e *core.RequestEvent, u providers.StatusUpdate, provider string) error {
	changed, err := s.ApplyStatus(u, provider, "webhook")
	switch {
	case errors.Is(err, dispatch.ErrMessageNotFound):
		// Not ours, or already removed by retention: acknowledge so the vendor stops retrying.
		s.countWebhook(provider, "unknown_message")
		return e.NoContent(http.StatusNoContent)
	case err != nil:
		s.countWebhook(provider, "error")
		s.app.Logger().Error("failed to apply a delivery report", "provider", provider, "provider_message_id", u.ProviderMessageID, "error", err)
		// A 5xx makes the vendor retry the callback later.
		return e.Error(http.StatusServiceUnavailable, "The delivery report could not be stored; retry later.", nil)
	case changed:
		s.countWebhook(provider, "applied")
	default:
		s.countWebhook(provider, "no_change")
	}
	return e.NoContent(http.StatusNoContent)
}

// publicBase is the URL the vendor called us on, which is what it signed: the configured
// public URL, else this request's own scheme and host.
func (s *Service) publicBase(e *core.RequestEvent) string {
	if s.cfg.PublicURL != "" {
		return s.cfg.PublicURL
	}
	scheme := "http"
	if e.Request.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + e.Request.Host
}

// recentSet remembers the last n keys, to drop repeated webhook deliveries cheaply. The
// status machine makes a repeat harmless anyway; this only saves the database work.
type recentSet struct {
	mu    sync.Mutex
	keys  map[string]struct{}
	order []string
	n     int
}

func newRecentSet(n int) *recentSet {
	return &recentSet{keys: make(map[string]struct{}, n), n: n}
}

// has reports whether key was recorded.
func (r *recentSet) has(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.keys[key]
	return ok
}

// add records key, forgetting the oldest beyond the set's size.
func (r *recentSet) add(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.keys[key]; ok {
		return
	}
	r.keys[key] = struct{}{}
	r.order = append(r.order, key)
	if len(r.order) > r.n {
		delete(r.keys, r.order[0])
		r.order = r.order[1:]
	}
}
