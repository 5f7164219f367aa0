package hooks

import (
	"net/http"
	"slices"
	"strings"

	"github.com/pocketbase/pocketbase/apis"
	"github.com/pocketbase/pocketbase/core"

	"clinicmsg/internal/store"
	"clinicmsg/ui"
)

// registerRoutes is the route table: every route and middleware clinicmsg adds to
// PocketBase's router, and the PocketBase record routes it takes over. Nothing else in the
// project registers a route.
func (s *Service) registerRoutes(se *core.ServeEvent) {
	// Middleware, outermost first.
	se.Router.BindFunc(s.scrubRequestLog)    // no secret or patient data in the request log (privacy.go)
	se.Router.Bind(s.authCache.middleware()) // the auth record behind a token, cached (auth_cache.go)
	s.bindRecordRouteOverrides(se)           // see recordRouteOverrides below

	api := se.Router.Group("/api/clinicmsg")
	// Messages (message_*.go, send.go).
	api.POST("/send", s.handleSend).Bind(apis.RequireAuth("users", "_superusers"))
	api.POST("/preview", s.handlePreview).Bind(apis.RequireAuth())
	msgs := api.Group("/messages").Bind(apis.RequireAuth())
	msgs.POST("/{id}/retry", s.handleRetry)
	msgs.POST("/{id}/refresh", s.handleRefresh)
	api.GET("/lists", handleLists)
	// Campaigns (campaign*.go).
	api.GET("/campaigns/{id}/summary", s.handleCampaignSummary).Bind(apis.RequireAuth())
	// Operations (stats.go, health.go, metrics.go).
	api.GET("/stats", s.handleStats).Bind(apis.RequireAuth())
	api.GET("/health", s.handleHealth)
	se.Router.GET("/metrics", s.handleMetrics)
	// Provider webhooks (webhooks.go, replies.go). Delivery reports come several per
	// message; an accepted one is not worth a request-log row each (the metrics count
	// them, and the message's audit trail records what it changed). Refused and failed
	// ones are still logged.
	se.Router.POST(twilioStatusPath, s.handleTwilioStatus).Bind(apis.SkipSuccessActivityLog())
	se.Router.POST(twilioInboundPath, s.handleTwilioInbound)
	se.Router.POST(unifonicDLRPrefix+"{secret}", s.handleUnifonicDLR).Bind(apis.SkipSuccessActivityLog())
	// The staff dashboard (ui.go).
	se.Router.GET("/app", redirectToApp)
	se.Router.GET("/app/{path...}", apis.Static(ui.FS, true)).BindFunc(dashboardHeaders)
}

// recordRouteOverride is one of PocketBase's record routes that clinicmsg serves itself,
// for some requests, before PocketBase's own handler: handle calls e.Next() for the
// requests it leaves to PocketBase. PocketBase's record handlers are not exported, so a
// take-over is a middleware matched here, in one place, rather than a route of its own.
type recordRouteOverride struct {
	method      string
	collections []string
	withID      bool // /records/{id} rather than /records
	handle      func(e *core.RequestEvent, col *core.Collection) error
}

// recordRouteOverrides are the take-overs, outermost first.
func (s *Service) recordRouteOverrides() []recordRouteOverride {
	return []recordRouteOverride{
		// A guest's create is a 401 saying a token is needed (the rules answer a bare 400).
		{http.MethodPost, clinicScoped, false, refuseGuestCreate},
		// A clinic user's JSON message create takes the send route's group commit, which
		// makes the guard's checks itself (message_send.go).
		{http.MethodPost, []string{"messages"}, false, s.fastCreate},
		// A JSON campaign create reads its recipient list as it arrives, before anything
		// reads the whole body into memory (campaign_create.go); the rest goes on.
		{http.MethodPost, []string{"campaigns"}, false, s.streamCampaignCreate},
		// A clinic user's create or update names the field that crosses clinics or is
		// server-only; a clinic's senders and webhooks are a superuser's (access.go).
		{http.MethodPost, clinicScoped, false, s.guardClinicWrites},
		{http.MethodPatch, clinicScoped, true, s.guardClinicWrites},
		{http.MethodPost, []string{"clinics"}, false, s.guardClinicSettings},
		{http.MethodPatch, []string{"clinics"}, true, s.guardClinicSettings},
		// A clinic user's list names their clinic in the filter, so that it is served by an
		// index rather than a scan (access.go).
		{http.MethodGet, clinicListed, false, scopeClinicList},
	}
}

// bindRecordRouteOverrides binds each take-over as a middleware that acts only on its
// method and collections' record route.
func (s *Service) bindRecordRouteOverrides(se *core.ServeEvent) {
	for _, o := range s.recordRouteOverrides() {
		se.Router.BindFunc(func(e *core.RequestEvent) error {
			name, withID, ok := recordRoute(e.Request.URL.Path)
			if !ok || e.Request.Method != o.method || withID != o.withID {
				return e.Next()
			}
			// The path may name the collection by id; PocketBase's route answers an
			// unknown one.
			col, err := e.App.FindCachedCollectionByNameOrId(name)
			if err != nil || !slices.Contains(o.collections, col.Name) {
				return e.Next()
			}
			return o.handle(e, col)
		})
	}
}

// refuseGuestCreate answers a create without a token.
func refuseGuestCreate(e *core.RequestEvent, _ *core.Collection) error {
	if e.Auth == nil {
		return e.UnauthorizedError("The request requires a clinic user's or an app's token in the Authorization header.", nil)
	}
	return e.Next()
}

// recordRoute reads /api/collections/{collection}/records[/{id}].
func recordRoute(path string) (collection string, withID bool, ok bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) < 4 || len(parts) > 5 || parts[0] != "api" || parts[1] != "collections" || parts[3] != "records" {
		return "", false, false
	}
	return parts[2], len(parts) == 5, true
}

// handleLists answers the shared lists (statuses, channels, categories), so that the
// dashboard and apps read them from the appliance instead of keeping a copy.
func handleLists(e *core.RequestEvent) error {
	return e.JSON(http.StatusOK, map[string]any{
		"statuses": store.Statuses, "terminal": store.Terminal, "channels": store.Channels,
		"categories": store.Categories, "campaign_statuses": store.CampaignStatuses,
	})
}
