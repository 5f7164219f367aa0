package store_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// statusWrite matches Go code that writes a status (a record's Set("status", ...)) or
// writes the tables the store owns: messages, message_logs, campaign_recipients, job_runs
// and the statistics roll-ups.
var statusWrite = regexp.MustCompile(`Set\("status"|(?i)(UPDATE|DELETE\s+FROM|INSERT(\s+OR\s+REPLACE)?\s+INTO)\s+(\{\{)?(messages|message_logs|campaign_recipients|job_runs|clinicmsg_stats_\w+)\b|(Update|Delete|Insert)\("(messages|message_logs|campaign_recipients|job_runs)"`)

// TestOnlyTheStoreWritesStatus fails when a non-test Go file outside internal/store writes
// a status or the message tables: every status change goes through the store's
// Transition (and its ordering rule and audit row), so a second writer is a bug waiting
// for its first difference.
func TestOnlyTheStoreWritesStatus(t *testing.T) {
	root := filepath.Join("..", "..")
	var offenders []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			switch rel {
			// Migrations create these tables and move their data once; the bench seeds them.
			case ".git", "bench", "bin", "dist", "pb_data", "pb_migrations", filepath.Join("internal", "store"), filepath.Join("ui", "vendor"):
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if statusWrite.MatchString(line) {
				offenders = append(offenders, fmt.Sprintf("%s:%d: %s", rel, i+1, strings.TrimSpace(line)))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(offenders) > 0 {
		t.Fatalf("expected only internal/store to write a status or the tables it owns, found:\n%s", strings.Join(offenders, "\n"))
	}
}
