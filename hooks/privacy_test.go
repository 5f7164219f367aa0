package hooks_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"clinicmsg/hooks"

	"github.com/pocketbase/pocketbase/apis"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tests"
	"github.com/pocketbase/pocketbase/tools/hook"
)

// TestRequestLogHoldsNoPatientData: what PocketBase's request logger reads of a request once
// it ends has no query values and no webhook secret.
func TestRequestLogHoldsNoPatientData(t *testing.T) {
	app, err := tests.NewTestAppWithConfig(core.BaseAppConfig{DataDir: templateDir, DBConnect: hooks.DBConnect})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Cleanup()
	cfg := testConfig()
	cfg.WebhookSecret = "dlr-secret-987"
	if _, err := hooks.Register(app, cfg); err != nil {
		t.Fatal(err)
	}
	r, err := apis.NewRouter(app)
	if err != nil {
		t.Fatal(err)
	}
	var logged []string
	err = app.OnServe().Trigger(&core.ServeEvent{App: app, Router: r}, func(se *core.ServeEvent) error {
		// Where PocketBase's activity logger sits: outside every clinicmsg middleware.
		se.Router.Bind(&hook.Handler[*core.RequestEvent]{Priority: apis.DefaultActivityLoggerMiddlewarePriority, Func: func(e *core.RequestEvent) error {
			err := e.Next()
			logged = append(logged, e.Request.URL.RequestURI())
			return err
		}})
		mux, err := se.Router.BuildMux()
		if err != nil {
			return err
		}
		srv := httptest.NewServer(mux)
		defer srv.Close()
		for _, path := range []string{
			"/api/collections/messages/records?filter=" + "to%3D%27%2B966501234567%27&sort=-created",
			"/api/clinicmsg/webhooks/unifonic/dlr-secret-987",
		} {
			res, err := http.Get(srv.URL + path)
			if err != nil {
				return err
			}
			res.Body.Close()
		}
		return nil
	})
	app.Cron().Stop()
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(logged, "\n")
	must(t, len(logged) == 2, "expected 2 logged requests, got %v", logged)
	must(t, !strings.Contains(all, "966501234567") && !strings.Contains(all, "dlr-secret-987"), "the log must hold no phone number or secret: %s", all)
	must(t, strings.Contains(all, "filter=x") && strings.Contains(all, "unifonic/REDACTED"), "the log keeps the request's shape: %s", all)
}
