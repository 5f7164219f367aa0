package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"clinicmsg/hooks"
	"clinicmsg/providers"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase"
	"github.com/pocketbase/pocketbase/core"
	"github.com/spf13/cobra"
)

// doctorItem is one line of `clinicmsg doctor`: what was checked, what was found and, when
// it is missing, the command or setting that fixes it.
type doctorItem struct {
	name  string
	ok    bool
	found string
	fix   string
	// optional items are reported but do not make doctor exit 1: the appliance serves and
	// sends without them.
	optional bool
}

// newDoctorCommand is `clinicmsg doctor`: it reads the data folder (--dir) and the
// environment and prints what a new installation still lacks. It exits 1 when an essential
// item is missing. cfg and setupErr are what main.go got from hooks.ConfigFromEnv and
// hooks.Register, so doctor judges the settings exactly as serve does.
func newDoctorCommand(app *pocketbase.PocketBase, cfg hooks.Config, setupErr error) *cobra.Command {
	return &cobra.Command{
		Use:          "doctor",
		Short:        "Check the data folder and the settings, and print how to fix what is missing",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		// Bootstrapping would create a data folder that doctor must report missing.
		Annotations: map[string]string{annotationStandalone: "true"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			items := diagnose(app, cfg, setupErr)
			if missing := printDoctor(cmd.OutOrStdout(), app.DataDir(), items); missing > 0 {
				return fmt.Errorf("doctor: %d essential item(s) missing", missing)
			}
			return nil
		},
	}
}

// diagnose checks the data folder, then the settings.
func diagnose(app *pocketbase.PocketBase, cfg hooks.Config, setupErr error) []doctorItem {
	folder, opened := openDataFolder(app)
	if opened {
		defer app.ClearBootstrap()
	}
	items := []doctorItem{folder}
	items = append(items, dataItems(app, opened)...)
	items = append(items, settingsItems(cfg, setupErr)...)
	return append(items, emailItem(app, opened))
}

// openDataFolder bootstraps app on its data folder when the folder holds a database, and
// reports on the folder. A missing or new folder is left as it is.
func openDataFolder(app *pocketbase.PocketBase) (doctorItem, bool) {
	dir := app.DataDir()
	item := doctorItem{name: "data folder"}
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		item.found = dir + " does not exist"
		item.fix = "check --dir for a typo; for a new appliance: clinicmsg serve --init --dir " + dir
		return item, false
	case err != nil:
		item.found = fmt.Sprintf("cannot read %s: %v", dir, err)
		item.fix = "give the user that runs clinicmsg access to the folder"
		return item, false
	case !st.IsDir():
		item.found = dir + " is a file, not a folder"
		item.fix = "point --dir at the data folder"
		return item, false
	}
	if _, err := os.Stat(filepath.Join(dir, "data.db")); err != nil {
		item.ok, item.found = true, dir+" (new: serve creates the database on first start)"
		return item, false
	}
	if err := app.Bootstrap(); err != nil {
		item.found = fmt.Sprintf("cannot open the database in %s: %v", dir, err)
		item.fix = "check the folder's owner and permissions, and that it is a clinicmsg data folder"
		return item, false
	}
	item.ok, item.found = true, dir+" (existing)"
	return item, true
}

// dataItems checks the records an appliance needs before staff can send: a superuser and
// a clinic.
func dataItems(app core.App, opened bool) []doctorItem {
	dir := app.DataDir()
	superuser := doctorItem{name: "superuser", found: "none yet",
		fix: "clinicmsg superuser upsert you@clinic.example 'a-long-password' --dir " + dir + " (or open the installer link serve prints)"}
	clinic := doctorItem{name: "clinic", found: "none yet",
		fix: "start clinicmsg serve --dir " + dir + ", then add a record to the clinics collection in the admin UI (/_/)"}
	if !opened {
		return []doctorItem{superuser, clinic}
	}
	// The installer's temporary account (made while no superuser exists) is no one's login.
	n, err := app.CountRecords(core.CollectionNameSuperusers, dbx.Not(dbx.HashExp{"email": core.DefaultInstallerEmail}))
	switch {
	case err != nil:
		superuser.found = fmt.Sprintf("cannot count superusers: %v", err)
	case n > 0:
		superuser.ok, superuser.found = true, fmt.Sprintf("%d", n)
	}
	if _, err := app.FindCollectionByNameOrId("clinics"); err != nil {
		// The collections are made by migrations that serve applies on start.
		clinic.found = "the clinicmsg collections are not there yet"
		return []doctorItem{superuser, clinic}
	}
	n, err = app.CountRecords("clinics")
	switch {
	case err != nil:
		clinic.found = fmt.Sprintf("cannot count clinics: %v", err)
	case n > 0:
		clinic.ok, clinic.found = true, fmt.Sprintf("%d", n)
	default:
		clinic.fix = "admin UI (/_/) → Collections → clinics → New record"
	}
	return []doctorItem{superuser, clinic}
}

// settingsItems checks each channel's provider and its credentials, and the URL providers
// report deliveries to. Credentials are checked by the adapters' own constructors, the
// same checks serve runs.
func settingsItems(cfg hooks.Config, setupErr error) []doctorItem {
	var items []doctorItem
	sms, whatsapp := orMock(cfg.SMSProvider), orMock(cfg.WhatsAppProvider)
	items = append(items,
		channelItem("SMS", "SMS_PROVIDER", sms, []string{"mock", "twilio", "unifonic"}, map[string]string{
			"twilio":   senderIssue(cfg.TwilioFromNumber+cfg.TwilioMessagingServiceSID, "TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID"),
			"unifonic": senderIssue(cfg.UnifonicSenderID, "UNIFONIC_SENDER_ID (the sender name registered with Unifonic)"),
		}),
		channelItem("WhatsApp", "WHATSAPP_PROVIDER", whatsapp, []string{"mock", "twilio"}, map[string]string{
			"twilio": senderIssue(cfg.TwilioWhatsAppNumber+cfg.TwilioMessagingServiceSID, "TWILIO_WHATSAPP_NUMBER or TWILIO_MESSAGING_SERVICE_SID"),
		}),
	)
	used := map[string]bool{sms: true, whatsapp: true, cfg.SMSFallbackProvider: true}
	if used["twilio"] {
		_, err := providers.NewTwilio(providers.TwilioOptions{
			AccountSID:          cfg.TwilioAccountSID,
			AuthToken:           cfg.TwilioAuthToken,
			FromNumber:          cfg.TwilioFromNumber,
			WhatsAppNumber:      cfg.TwilioWhatsAppNumber,
			MessagingServiceSID: cfg.TwilioMessagingServiceSID,
			BaseURL:             cfg.TwilioAPIURL,
		})
		items = append(items, credentialsItem("Twilio credentials", err,
			"TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are set and well-formed",
			"set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN as shown in the Twilio console (letters and digits only: no quotes, spaces or dashes)"))
	}
	if used["unifonic"] {
		_, err := providers.NewUnifonic(providers.UnifonicOptions{AppSID: cfg.UnifonicAppSID, BaseURL: cfg.UnifonicAPIURL})
		items = append(items, credentialsItem("Unifonic credentials", err,
			"UNIFONIC_APP_SID is set", "set UNIFONIC_APP_SID (Unifonic console → Applications)"))
	}

	// serve's own verdict, which also covers settings checked nowhere else above.
	start := doctorItem{name: "serve starts", ok: true, found: "serve accepts the environment's settings"}
	if setupErr != nil {
		start.ok, start.found = false, "no: "+setupErr.Error()
		start.fix = "correct the setting named here (README: Configuration); serve exits 1 until then"
	}
	items = append(items, start)

	public := doctorItem{name: "public URL", optional: true, ok: cfg.PublicURL != "", found: cfg.PublicURL}
	if !public.ok {
		public.found = "CLINICMSG_PUBLIC_URL is not set: providers cannot report deliveries, so messages stay at sent"
		public.fix = "CLINICMSG_PUBLIC_URL=https://msg.clinic.example (the address Twilio or Unifonic can reach)"
	}
	items = append(items, public)
	if used["unifonic"] && cfg.WebhookSecret == "" {
		items = append(items, doctorItem{name: "webhook secret", optional: true,
			found: "CLINICMSG_WEBHOOK_SECRET is not set: Unifonic's delivery reports have no URL to go to",
			fix:   "CLINICMSG_WEBHOOK_SECRET=<a long random string> (docs/PROVIDERS.md)"})
	}
	return items
}

// orMock is a provider setting with its default.
func orMock(name string) string {
	if name == "" {
		return "mock"
	}
	return name
}

// channelItem reports which provider carries a channel; senderIssues holds, per provider,
// what is missing for it to send on this channel ("" when nothing).
func channelItem(channel, env, name string, allowed []string, senderIssues map[string]string) doctorItem {
	item := doctorItem{name: channel + " provider", ok: true, found: name}
	switch {
	case !slices.Contains(allowed, name):
		item.ok = false
		item.found = fmt.Sprintf("%s=%s is not a provider for %s", env, name, channel)
		item.fix = fmt.Sprintf("set %s to one of %s", env, strings.Join(allowed, ", "))
	case name == "mock":
		item.found = "mock: nothing is really sent (set " + env + " to send through a provider)"
	case senderIssues[name] != "":
		item.ok = false
		item.found = name + " with no sender"
		item.fix = "set " + senderIssues[name]
	}
	return item
}

// senderIssue is what to set when sender, the concatenated sender settings, is empty.
func senderIssue(sender, settings string) string {
	if sender != "" {
		return ""
	}
	return settings
}

func credentialsItem(name string, err error, found, fix string) doctorItem {
	if err != nil {
		return doctorItem{name: name, found: err.Error(), fix: fix}
	}
	return doctorItem{name: name, ok: true, found: found}
}

// emailItem reports whether the email channel has an SMTP server (PocketBase's settings).
func emailItem(app core.App, opened bool) doctorItem {
	item := doctorItem{name: "email (SMTP)", optional: true,
		found: "not configured: email messages fail",
		fix:   "admin UI (/_/) → Settings → Mail settings → Use SMTP mail server"}
	if opened && app.Settings().SMTP.Enabled {
		smtp := app.Settings().SMTP
		item.ok, item.found, item.fix = true, fmt.Sprintf("%s:%d", smtp.Host, smtp.Port), ""
	}
	return item
}

// printDoctor writes the report and returns how many essential items are missing.
func printDoctor(w io.Writer, dir string, items []doctorItem) int {
	fmt.Fprintf(w, "clinicmsg doctor: data folder %s\n\n", dir)
	missing := 0
	for _, it := range items {
		status, name := "OK", it.name
		if !it.ok {
			status = "MISSING"
			if it.optional {
				name += " (optional)"
			} else {
				missing++
			}
		}
		fmt.Fprintf(w, "%-8s %-24s %s\n", status, name, it.found)
		if !it.ok && it.fix != "" {
			fmt.Fprintf(w, "%-8s %-24s fix: %s\n", "", "", it.fix)
		}
	}
	if missing == 0 {
		fmt.Fprintln(w, "\nNothing essential is missing.")
	} else {
		fmt.Fprintf(w, "\n%d essential item(s) missing.\n", missing)
	}
	return missing
}
