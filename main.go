// clinicmsg is a self-hosted patient-messaging appliance: one binary that stores, renders,
// checks, sends and tracks a clinic's SMS, WhatsApp and email messages.
package main

import (
	"log"

	"clinicmsg/hooks"
	_ "clinicmsg/pb_migrations"

	"github.com/pocketbase/pocketbase"
	"github.com/pocketbase/pocketbase/plugins/migratecmd"
)

func main() {
	// Never guess dev mode from the binary's path: dev mode echoes every SQL statement,
	// patient data included, to the log. `--dev` still turns it on explicitly.
	app := pocketbase.NewWithConfig(pocketbase.Config{DefaultDev: false})

	// Migrations are Go code compiled into the binary; never generate them from admin UI edits.
	migratecmd.MustRegister(app, app.RootCmd, migratecmd.Config{Automigrate: false})

	cfg, err := hooks.ConfigFromEnv()
	if err != nil {
		log.Fatal(err)
	}
	svc, err := hooks.Register(app, cfg)
	if err != nil {
		log.Fatal(err)
	}
	// `clinicmsg jobs list` and `clinicmsg jobs run <name>`: the maintenance jobs on demand.
	app.RootCmd.AddCommand(hooks.NewJobsCommand(app, svc))
	if err := app.Start(); err != nil {
		log.Fatal(err)
	}
}
