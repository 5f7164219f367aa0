// Package reliability holds clinicmsg's reliability and security suites: the built binary
// killed and restarted under load, a webhook blackout, a full disk, and tenant isolation and
// webhook abuse, all driven over HTTP against a fake Twilio (see docs/RELIABILITY.md). The
// suites are tests; this file only records their figures, for them and for the fault suite
// in hooks, in docs/reliability-latest.json, which docs/RELIABILITY.md quotes.
package reliability

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// FiguresFile is where the suites record what their latest run measured, relative to the
// module root, when CLINICMSG_RECORD_FIGURES=1 (`make soak` and `make figures` set it); other
// runs write to scratchFiguresFile, so that `make test` leaves the committed file alone.
const (
	FiguresFile        = "docs/reliability-latest.json"
	scratchFiguresFile = "bin/reliability-latest.json"
)

func figuresFile() string {
	if os.Getenv("CLINICMSG_RECORD_FIGURES") == "1" {
		return FiguresFile
	}
	return scratchFiguresFile
}

// Soak reports whether the long form of the suites was asked for (CLINICMSG_SOAK=1, as
// `make soak` sets it).
func Soak() bool {
	return os.Getenv("CLINICMSG_SOAK") == "1"
}

// Mode is "soak" or "short", the key the figures of a run are filed under.
func Mode() string {
	if Soak() {
		return "soak"
	}
	return "short"
}

// Record files figures under suite and the current mode in FiguresFile, keeping the other
// suites' figures. Suites in several test binaries may record at once; a lock file orders them.
func Record(suite string, figures map[string]any) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	path := filepath.Join(root, figuresFile())
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	unlock, err := lock(path + ".lock")
	if err != nil {
		return err
	}
	defer unlock()

	all := map[string]map[string]any{}
	if raw, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(raw, &all) // a damaged file is replaced
	}
	if all[Mode()] == nil {
		all[Mode()] = map[string]any{}
	}
	figures["recorded_at"] = time.Now().UTC().Format(time.RFC3339)
	all[Mode()][suite] = figures
	out, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return fmt.Errorf("failed to encode the figures: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(out, '\n'), 0o644); err != nil {
		return fmt.Errorf("failed to write the figures: %w", err)
	}
	return os.Rename(tmp, path)
}

// moduleRoot is the nearest folder above the working directory holding go.mod (tests run
// in their package's folder).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("reliability: no go.mod above the working directory")
		}
		dir = parent
	}
}

// lock takes an exclusive lock file, waiting up to 10 seconds; a lock older than a minute
// was left by a killed test and is taken over.
func lock(path string) (func(), error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			f.Close()
			return func() { os.Remove(path) }, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("failed to lock the figures: %w", err)
		}
		if st, err := os.Stat(path); err == nil && time.Since(st.ModTime()) > time.Minute {
			os.Remove(path)
			continue
		}
		if time.Now().After(deadline) {
			return nil, errors.New("reliability: the figures file stayed locked for 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
