package hooks

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"clinicmsg/internal/compose"
	"clinicmsg/internal/dispatch"
	"clinicmsg/internal/store"
	"clinicmsg/providers"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"
)

// messageForCaller loads a message the caller may act on; another clinic's message is
// answered exactly like a missing one.
func (s *Service) messageForCaller(e *core.RequestEvent) (*core.Record, error) {
	id := e.Request.PathValue("id")
	rec, err := e.App.FindRecordById("messages", id)
	if err != nil {
		return nil, e.NotFoundError("Message not found.", nil)
	}
	if e.HasSuperuserAuth() {
		return rec, nil
	}
	if e.Auth.Collection().Name != "users" || e.Auth.GetString("clinic") == "" || e.Auth.GetString("clinic") != rec.GetString("clinic") {
		return nil, e.NotFoundError("Message not found.", nil)
	}
	return rec, nil
}

// handleRetry queues a failed message again (the original spec's retry_failed_message),
// while attempts remain.
func (s *Service) handleRetry(e *core.RequestEvent) error {
	rec, err := s.messageForCaller(e)
	if err != nil {
		return err
	}
	var apiErr *router.ApiError
	err = e.App.RunInTransaction(func(tx core.App) error {
		rec, err := tx.FindRecordById("messages", rec.Id)
		if err != nil {
			return err
		}
		if st := rec.GetString("status"); st != providers.StatusFailed {
			apiErr = compose.BadField("status", "validation_not_failed", fmt.Sprintf("only failed messages can be retried; this one is %s", st))
			return nil
		}
		if n := rec.GetInt("attempts"); n >= s.cfg.MaxAttempts {
			apiErr = compose.BadField("attempts", "validation_attempts_exhausted", fmt.Sprintf("the message has used %d of %d attempts", n, s.cfg.MaxAttempts))
			return nil
		}
		return s.Dispatcher.Requeue(tx, rec, store.Entry{Detail: map[string]any{"user": e.Auth.Id}, IP: e.RealIP(), UserAgent: e.Request.UserAgent()})
	})
	if apiErr != nil {
		return apiErr
	}
	if err != nil {
		return e.InternalServerError("Failed to queue the retry.", err)
	}
	s.Dispatcher.Wake()
	rec, _ = e.App.FindRecordById("messages", rec.Id)
	return e.JSON(http.StatusOK, rec)
}

// handleRefresh asks the provider for the message's current status now (the original
// spec's update_message_status) and applies it.
func (s *Service) handleRefresh(e *core.RequestEvent) error {
	rec, err := s.messageForCaller(e)
	if err != nil {
		return err
	}
	pid, name := rec.GetString("provider_message_id"), rec.GetString("provider")
	if pid == "" {
		return compose.BadField("provider_message_id", "validation_not_sent", "the message has not reached a provider yet, so there is no status to ask for")
	}
	p, ok := s.Router.Provider(name)
	fetcher, canFetch := p.(providers.StatusFetcher)
	if !ok || !canFetch {
		return compose.BadField("provider", "validation_cannot_refresh", fmt.Sprintf("provider %q cannot report a message's status", name))
	}
	ctx, cancel := context.WithTimeout(e.Request.Context(), s.cfg.SendTimeout)
	defer cancel()
	u, err := fetcher.FetchStatus(ctx, pid)
	if err != nil {
		return router.NewApiError(http.StatusBadGateway, fmt.Sprintf("The provider %s did not answer: %s", name, providers.ClassOf(err)), nil)
	}
	u.MessageID = rec.Id
	changed, err := s.ApplyStatus(*u, name, "refresh")
	if err != nil && !errors.Is(err, dispatch.ErrMessageNotFound) {
		return e.InternalServerError("Failed to apply the provider's status.", err)
	}
	rec, _ = e.App.FindRecordById("messages", rec.Id)
	return e.JSON(http.StatusOK, map[string]any{"success": true, "status": rec.GetString("status"), "updated": changed, "message": rec})
}
