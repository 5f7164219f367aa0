package store_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pocketbase/pocketbase/tests"

	_ "clinicmsg/pb_migrations"

	"clinicmsg/internal/store"
)

// TestClaimReadsItsIndexes: each half of the claim reads its own partial index, so neither
// single messages nor campaign messages are found by walking the other kind's backlog.
func TestClaimReadsItsIndexes(t *testing.T) {
	app, err := tests.NewTestApp()
	if err != nil {
		t.Fatal(err)
	}
	defer app.Cleanup()
	q := strings.NewReplacer("{:now}", "'2030-01-01'", "{:lease}", "'2030-01-01'", "{:n}", "16").Replace(fmt.Sprintf(store.ClaimSQL, ""))
	rows, err := app.DB().NewQuery("EXPLAIN QUERY PLAN " + q).Rows()
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notUsed int
		var detail string
		if err := rows.Scan(&id, &parent, &notUsed, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	text := strings.Join(plan, "\n")
	for _, want := range []string{"USING INDEX idx_messages_due_single", "USING INDEX idx_messages_due_campaign"} {
		if !strings.Contains(text, want) {
			t.Fatalf("expected the claim's plan to use %s, got:\n%s", want, text)
		}
	}
	if strings.Contains(text, "idx_messages_due ") || strings.Contains(text, "SCAN messages") {
		t.Fatalf("expected no walk of the whole queue, got:\n%s", text)
	}
}
