package hooks

import (
	"net/http"

	"github.com/pocketbase/pocketbase/core"
)

// dashboardCSP keeps the dashboard to its own files and its own API: no inline script, no
// third-party origin, not framed by another site.
const dashboardCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"

// redirectToApp sends /app to /app/, where the dashboard's relative links resolve.
func redirectToApp(e *core.RequestEvent) error {
	return e.Redirect(http.StatusMovedPermanently, "/app/")
}

// dashboardHeaders are the staff dashboard's (ui/, embedded, at /app/) security and cache
// headers. Unknown paths fall back to index.html; the app routes by the URL fragment.
func dashboardHeaders(e *core.RequestEvent) error {
	h := e.Response.Header()
	// Revalidate on every load, so that an upgraded binary's files are picked up at once.
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	return e.Next()
}
