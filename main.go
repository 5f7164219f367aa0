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
	app := pocketbase.New()

	// Migrations are Go code compiled into the binary; never generate them from admin UI edits.
	migratecmd.MustRegister(app, app.RootCmd, migratecmd.Config{Automigrate: false})

	cfg, err := hooks.ConfigFromEnv()
	if err != nil {
		log.Fatal(err)
	}
	if _, err := hooks.Register(app, cfg); err != nil {
		log.Fatal(err)
	}
	if err := app.Start(); err != nil {
		log.Fatal(err)
	}
}
