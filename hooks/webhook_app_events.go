package hooks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"clinicmsg/internal/dispatch"
	"clinicmsg/internal/store"
	"clinicmsg/internal/worker"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"
)

// appEventMaxAttempts bounds deliveries of one event to the clinic's app (about a day of
// doubling backoff from 30 seconds).
const appEventMaxAttempts = 12

// queueAppEvent stores an event for the clinic's app in the caller's transaction; the
// AppEvents worker delivers it. Nothing is stored when the clinic has no app webhook of its
// own and none is configured for the appliance.
func (s *Service) queueAppEvent(tx core.App, clinic, eventType string, data map[string]any) error {
	c, err := tx.FindRecordById("clinics", clinic)
	if err != nil {
		return fmt.Errorf("failed to load the clinic of an app event: %w", err)
	}
	if url, _ := s.appWebhook(c); url == "" {
		return nil
	}
	col, err := tx.FindCachedCollectionByNameOrId("app_events")
	if err != nil {
		return err
	}
	ev := core.NewRecord(col)
	ev.Set("clinic", clinic)
	ev.Set("type", eventType)
	ev.Set("payload", data)
	store.SetEventStatus(ev, store.EventPending)
	ev.Set("next_attempt_at", types.NowDateTime())
	if err := tx.Save(ev); err != nil {
		return fmt.Errorf("failed to queue an app event: %w", err)
	}
	if t := tx.TxInfo(); t != nil {
		t.OnComplete(func(txErr error) error {
			if txErr == nil {
				s.AppEvents.Wake()
			}
			return nil
		})
	}
	return nil
}

// AppEvents delivers events (replies, appointment answers) to the clinic's app over its
// webhook, signed with HMAC-SHA256 and retried with backoff. Delivery is at least once:
// the app deduplicates on the X-Clinicmsg-Delivery header.
type AppEvents struct {
	*worker.Worker
	s      *Service
	client *http.Client
}

func newAppEvents(s *Service) *AppEvents {
	return &AppEvents{Worker: worker.New(), s: s, client: &http.Client{Timeout: 10 * time.Second}}
}

// Start starts the sender. It runs even without CLINICMSG_APP_WEBHOOK_URL: a superuser may
// give any clinic a webhook of its own at any time.
func (a *AppEvents) Start() {
	a.Worker.Start(a.s.cfg.SweepInterval, func(ctx context.Context, _ bool) { a.deliverDue(ctx) })
}

// appWebhook is where a clinic's events go and the secret that signs them: the clinic's own
// webhook, else the appliance's. A clinic's own secret never signs for the appliance's URL,
// nor the reverse, so one clinic's system can never verify (or forge) another's events.
func (s *Service) appWebhook(clinic *core.Record) (url, secret string) {
	if u := clinic.GetString("app_webhook_url"); u != "" {
		return u, clinic.GetString("app_webhook_secret")
	}
	return s.cfg.AppWebhookURL, s.cfg.AppWebhookSecret
}

func (a *AppEvents) deliverDue(ctx context.Context) {
	for ctx.Err() == nil {
		due, err := a.s.app.FindRecordsByFilter("app_events", "status = 'pending' && next_attempt_at <= {:now}", "next_attempt_at", 50, 0, dbx.Params{"now": store.FormatTime(time.Now().UTC())})
		if err != nil {
			a.s.app.Logger().Error("failed to find app events to deliver", "error", err)
			return
		}
		for _, ev := range due {
			if ctx.Err() != nil {
				return
			}
			a.deliver(ctx, ev)
		}
		if len(due) < 50 {
			return
		}
	}
}

// deliver posts one event and records the outcome on it.
func (a *AppEvents) deliver(ctx context.Context, ev *core.Record) {
	body, err := json.Marshal(map[string]any{
		"id": ev.Id, "type": ev.GetString("type"), "clinic": ev.GetString("clinic"),
		"created": ev.GetDateTime("created").String(), "data": ev.Get("payload"),
	})
	if err != nil {
		a.s.app.Logger().Error("failed to encode an app event", "event", ev.Id, "error", err)
		return
	}
	var code int
	var postErr error
	clinic, err := a.s.app.FindRecordById("clinics", ev.GetString("clinic"))
	if err != nil {
		postErr = fmt.Errorf("failed to load the event's clinic: %w", err)
	} else if url, secret := a.s.appWebhook(clinic); url == "" {
		// The webhook was removed after the event was queued: nowhere to send it.
		postErr = fmt.Errorf("no app webhook is configured for the clinic")
	} else {
		code, postErr = a.post(ctx, ev, body, url, secret)
	}
	attempt := ev.GetInt("attempts") + 1
	ev.Set("attempts", attempt)
	ev.Set("last_status_code", code)
	switch {
	case postErr == nil && code >= 200 && code < 300:
		store.SetEventStatus(ev, store.EventDelivered)
		ev.Set("last_error", "")
		ev.Set("next_attempt_at", "")
	case attempt >= appEventMaxAttempts:
		store.SetEventStatus(ev, store.EventFailed)
		ev.Set("last_error", errText(postErr, code))
		ev.Set("next_attempt_at", "")
	default:
		ev.Set("last_error", errText(postErr, code))
		ev.Set("next_attempt_at", time.Now().UTC().Add(dispatch.Backoff(a.s.cfg.RetryBackoff, attempt, 0)))
	}
	a.s.app.Logger().Info("app event delivery", "event", ev.Id, "type", ev.GetString("type"), "attempt", attempt, "status_code", code, "outcome", ev.GetString("status"))
	if err := a.s.app.Save(ev); err != nil {
		a.s.app.Logger().Error("failed to record an app event delivery", "event", ev.Id, "error", err)
	}
}

func (a *AppEvents) post(ctx context.Context, ev *core.Record, body []byte, url, secret string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("failed to build the app webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "clinicmsg")
	req.Header.Set("X-Clinicmsg-Event", ev.GetString("type"))
	req.Header.Set("X-Clinicmsg-Delivery", ev.Id)
	req.Header.Set("X-Clinicmsg-Signature", "sha256="+SignAppEvent(secret, body))
	res, err := a.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("failed to reach the app webhook: %w", err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	return res.StatusCode, nil
}

// SignAppEvent is the hex HMAC-SHA256 of body with secret, as sent in
// X-Clinicmsg-Signature ("sha256=<hex>"); the clinic's app recomputes it to check an event.
func SignAppEvent(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

func errText(err error, code int) string {
	if err != nil {
		return store.Truncate(err.Error(), 500)
	}
	return fmt.Sprintf("the app answered HTTP %d", code)
}
