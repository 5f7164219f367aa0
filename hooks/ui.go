package hooks

import (
	"net/http"

	"clinicmsg/ui"

	"github.com/pocketbase/pocketbase/apis"
	"github.com/pocketbase/pocketbase/core"
)

// dashboardCSP keeps the dashboard to its own files and its own API: no inline script, no
// third-party origin, not framed by another site.
const dashboardCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"

// registerUI serves the staff dashboard (ui/, embedded) at /app/. Unknown paths fall back
// to index.html; the app routes by the URL fragment.
func (s *Service) registerUI(se *core.ServeEvent) {
	se.Router.GET("/app", func(e *core.RequestEvent) error {
		return e.Redirect(http.StatusMovedPermanently, "/app/")
	})
	se.Router.GET("/app/{path...}", apis.Static(ui.FS, true)).BindFunc(func(e *core.RequestEvent) error {
		h := e.Response.Header()
		// Revalidate on every load, so that an upgraded binary's files are picked up at once.
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Security-Policy", dashboardCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		return e.Next()
	})
}
