// clinicmsg is a self-hosted patient-messaging appliance: one binary that stores, renders,
// checks, sends and tracks a clinic's SMS, WhatsApp and email messages.
package main

import (
	"log"
	"os"
	"runtime/debug"
	"runtime/pprof"

	"clinicmsg/bench"
	"clinicmsg/hooks"
	_ "clinicmsg/pb_migrations"

	"github.com/pocketbase/pocketbase"
	"github.com/pocketbase/pocketbase/cmd"
	"github.com/pocketbase/pocketbase/plugins/migratecmd"
)

// version, commit and date are set by `make release` with -ldflags "-X main.version=...";
// a plain `go build` leaves them empty and `--version` falls back to what the Go toolchain
// recorded from git (version.go).
var (
	version string
	commit  string
	date    string
)

// defaultMemoryLimit is the heap the Go runtime aims to stay under when GOMEMLIMIT is not
// set: a clinic's VM is small, and without a limit the heap may grow to twice what is live
// (a 100,000-recipient campaign) before the garbage collector runs. It is a soft limit: a
// larger live heap still works, with more frequent collections.
const defaultMemoryLimit = 100 << 20

// defaultGCPercent lets the heap grow to three times what is live (Go's default: twice)
// before a collection, within the memory limit above. The send pipeline's garbage is
// short-lived, and collecting half as often saved 10–20 % of the CPU per message in
// `clinicmsg bench` (B2, B3) for about 15 MB more resident memory. GOGC overrides it.
const defaultGCPercent = 200

func main() {
	stopProfile := startCPUProfile(os.Getenv("CLINICMSG_CPUPROFILE"))
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}

	// Never guess dev mode from the binary's path: dev mode echoes every SQL statement,
	// patient data included, to the log. `--dev` still turns it on explicitly.
	// hooks.DBConnect: PocketBase's pragmas with immediate write transactions, so that another
	// process committing (a `jobs run`, Litestream) never fails a write halfway.
	app := pocketbase.NewWithConfig(pocketbase.Config{DefaultDev: false, DBConnect: hooks.DBConnect})

	app.RootCmd.Version = versionString()

	// Migrations are Go code compiled into the binary; never generate them from admin UI edits.
	migratecmd.MustRegister(app, app.RootCmd, migratecmd.Config{Automigrate: false})

	// A settings error stops every command but `doctor` (which reports it) and `healthcheck`
	// (which never reads them): see run.
	cfg, setupErr := hooks.ConfigFromEnv()
	var svc *hooks.Service
	if setupErr == nil {
		svc, setupErr = hooks.Register(app, cfg)
	}

	// PocketBase's Start adds these two and executes; adding them here gives serve its --init
	// flag and lets our banner, which names the staff dashboard, replace PocketBase's.
	serve := cmd.NewServeCommand(app, false)
	guardDataDir(app, serve)
	bindStartBanner(app, serve, os.Stdout)
	app.RootCmd.AddCommand(cmd.NewSuperuserCommand(app), serve)
	// `clinicmsg jobs list` and `clinicmsg jobs run <name>`: the maintenance jobs on demand
	// (without settings they cannot run, and run stops at the settings error first).
	if svc != nil {
		app.RootCmd.AddCommand(hooks.NewJobsCommand(app, svc))
	}
	// `clinicmsg bench`: throughput, latency and memory on this machine (docs/BENCHMARKS.md).
	app.RootCmd.AddCommand(bench.NewCommand())
	// `clinicmsg doctor`: what a new installation still lacks, and how to fix each item.
	app.RootCmd.AddCommand(newDoctorCommand(app, cfg, setupErr))
	// `clinicmsg healthcheck`: the container's HEALTHCHECK (distroless has no curl).
	app.RootCmd.AddCommand(newHealthcheckCommand())

	if err := run(app, setupErr); err != nil {
		stopProfile()
		log.Fatal(err)
	}
	stopProfile()
}

// annotationStandalone marks a command that run executes without PocketBase's bootstrap.
const annotationStandalone = "clinicmsg.standalone"

// run executes the command line. Commands annotated standalone run without PocketBase's
// bootstrap, which would create the data folder and open its database: `doctor` must not
// create a folder it reports missing, and `healthcheck` runs beside a serving process.
// The bare root command (`clinicmsg`, `clinicmsg --version`) needs no data folder either.
func run(app *pocketbase.PocketBase, setupErr error) error {
	target, _, err := app.RootCmd.Find(os.Args[1:])
	if err == nil && (target == app.RootCmd || target.Annotations[annotationStandalone] != "") {
		return app.RootCmd.Execute()
	}
	if setupErr != nil {
		return setupErr
	}
	return app.Execute()
}

// startCPUProfile writes a CPU profile of the whole process to path until the returned
// function is called; an empty path does nothing. CLINICMSG_CPUPROFILE is a hidden setting
// (not in the README): `clinicmsg bench --profile` sets it for the appliances it starts
// (docs/BENCHMARKS.md).
func startCPUProfile(path string) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		log.Printf("CLINICMSG_CPUPROFILE: %v", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		log.Printf("CLINICMSG_CPUPROFILE: %v", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
