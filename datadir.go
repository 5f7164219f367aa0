package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/pocketbase/pocketbase"
	"github.com/pocketbase/pocketbase/core"
	"github.com/spf13/cobra"
)

// initEnv is the environment's form of `serve --init`, for service files and containers
// that set the environment more easily than the command line.
const initEnv = "CLINICMSG_INIT"

// errNoDataDir is returned by `serve` for a --dir that does not exist.
var errNoDataDir = errors.New("data folder does not exist")

// guardDataDir makes `serve` refuse a --dir that does not exist, unless it is the default
// data folder or --init (CLINICMSG_INIT=1) asks for a new one: a mistyped --dir would
// otherwise start a new, empty appliance that looks like a clinic's messages were lost, and
// a restart of the service later would serve the real folder again with a gap in between.
func guardDataDir(app *pocketbase.PocketBase, serve *cobra.Command) {
	serve.Flags().Bool("init", false, "create the --dir data folder if it does not exist yet ("+initEnv+"=1 does the same)")
	// PocketBase creates the data folder while bootstrapping, before cobra parses serve's
	// flags; so the guard runs as the first bootstrap handler and reads --init itself, as
	// PocketBase reads --dir.
	app.OnBootstrap().BindFunc(func(e *core.BootstrapEvent) error {
		if target, _, err := app.RootCmd.Find(os.Args[1:]); err != nil || target != serve {
			return e.Next()
		}
		if err := checkDataDir(app.DataDir(), defaultDataDirs(app), initRequested(os.Args[1:])); err != nil {
			return err
		}
		return e.Next()
	})
}

// checkDataDir returns errNoDataDir, with the fix, when dir does not exist and is neither
// one of defaults nor to be created.
func checkDataDir(dir string, defaults []string, create bool) error {
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		// An existing folder, or one PocketBase will report it cannot use.
		return nil
	}
	if create || sameDir(dir, defaults...) {
		return nil
	}
	return fmt.Errorf("%w: %s; check --dir for a typo, or add --init (or set %s=1) to start a new, empty appliance there", errNoDataDir, dir, initEnv)
}

// defaultDataDirs are the folders `serve` may create without --init: PocketBase's default
// (pb_data beside the binary) and pb_data in the working directory, which is what `make run`
// and the docs' examples name.
func defaultDataDirs(app *pocketbase.PocketBase) []string {
	dirs := []string{"pb_data"}
	if f := app.RootCmd.PersistentFlags().Lookup("dir"); f != nil {
		dirs = append(dirs, f.DefValue)
	}
	return dirs
}

// sameDir reports whether dir names the same path as one of others.
func sameDir(dir string, others ...string) bool {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for _, o := range others {
		if oAbs, err := filepath.Abs(o); err == nil && oAbs == abs {
			return true
		}
	}
	return false
}

// initRequested reads --init from args the way cobra will later, and CLINICMSG_INIT.
func initRequested(args []string) bool {
	if on, err := strconv.ParseBool(os.Getenv(initEnv)); err == nil && on {
		return true
	}
	scratch := &cobra.Command{FParseErrWhitelist: cobra.FParseErrWhitelist{UnknownFlags: true}}
	scratch.SetErr(io.Discard)
	on := scratch.Flags().Bool("init", false, "")
	_ = scratch.ParseFlags(args)
	return *on
}
