package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pocketbase/pocketbase"
	"github.com/pocketbase/pocketbase/core"
	"github.com/spf13/cobra"
)

// bindStartBanner prints the start-up banner once serve holds its port. It replaces
// PocketBase's (serve is made with its banner off) to name the staff dashboard, the address
// a clinic's front desk needs, next to the admin UI. The first line keeps PocketBase's
// wording: tests and `clinicmsg bench` wait for it (loopback.StartedBanner).
func bindStartBanner(app *pocketbase.PocketBase, serve *cobra.Command, out io.Writer) {
	var domains []string
	serve.PreRun = func(_ *cobra.Command, args []string) { domains = args }
	app.OnServe().BindFunc(func(e *core.ServeEvent) error {
		// PocketBase listens in the last step of the chain; after it the port is ours.
		if err := e.Next(); err != nil {
			return err
		}
		httpsAddr := ""
		if f := serve.Flags().Lookup("https"); f != nil {
			httpsAddr = f.Value.String()
		}
		// One write, so that a reader waiting for the first line finds the others with it.
		fmt.Fprint(out, startBanner(time.Now(), bannerBaseURL(e.Server.Addr, httpsAddr, domains)))
		return nil
	})
}

// startBanner is the banner's text for the appliance at base.
func startBanner(now time.Time, base string) string {
	return fmt.Sprintf("%s Server started at %s\n"+
		"├─ REST API:        %s/api/\n"+
		"├─ Admin UI:        %s/_/\n"+
		"└─ Staff dashboard: %s/app/\n",
		now.Format("2006/01/02 15:04:05"), base, base, base, base)
}

// bannerBaseURL is the base URL PocketBase's banner would show: https when serve has an
// HTTPS address or domains (for which it defaults to 0.0.0.0:443), with the first domain
// as host if any.
func bannerBaseURL(addr, httpsAddr string, domains []string) string {
	if httpsAddr == "" && len(domains) == 0 {
		return "http://" + bannerHost(addr)
	}
	if len(domains) > 0 {
		return "https://" + domains[0]
	}
	return "https://" + bannerHost(addr)
}

func bannerHost(addr string) string {
	if addr == "" || strings.HasSuffix(addr, ":http") || strings.HasSuffix(addr, ":https") {
		return "127.0.0.1"
	}
	return addr
}
