package main

import (
	"fmt"
	"runtime/debug"
)

// versionString is what `clinicmsg --version` prints after "version": the release version,
// the commit and the build date. A binary built without `make release` still names its
// commit and the commit's date when the Go toolchain recorded them from git, so a support
// question about a hand-built appliance can be answered too.
func versionString() string {
	v, c, d := version, commit, date
	if info, ok := debug.ReadBuildInfo(); ok {
		modified := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if c == "" {
					c = s.Value[:min(len(s.Value), 12)]
				}
			case "vcs.time":
				if d == "" {
					d = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if commit == "" && c != "" && modified {
			c += "-dirty"
		}
	}
	if v == "" {
		v = "dev"
	}
	if c == "" {
		c = "unknown"
	}
	if d == "" {
		d = "unknown"
	}
	return fmt.Sprintf("%s (commit %s, built %s)", v, c, d)
}
