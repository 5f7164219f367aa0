package store_test

import (
	"regexp"
	"testing"

	"clinicmsg/internal/store"
)

// TestGrowingIDs: the ids of bulk-created messages and audit rows are PocketBase ids (15
// of [a-z0-9]), unique, and each one sorts after the one before, so that the id index is
// appended to.
func TestGrowingIDs(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z0-9]{15}$`)
	seen := map[string]bool{}
	prev := ""
	for range 100_000 {
		id := store.GrowingID()
		if !valid.MatchString(id) {
			t.Fatalf("expected a 15-character id of [a-z0-9], got %q", id)
		}
		if seen[id] {
			t.Fatalf("expected unique ids, got %q twice", id)
		}
		if id[:10] <= prev {
			t.Fatalf("expected %q to sort after %q", id[:10], prev)
		}
		seen[id], prev = true, id[:10]
	}
}
