package store_test

import (
	"strings"
	"testing"

	"github.com/pocketbase/pocketbase/tests"

	_ "clinicmsg/pb_migrations"

	"clinicmsg/internal/store"
)

// TestClaimReadsItsIndexes: single messages are found on their own partial index, each
// clinic's campaign messages on the campaign index by clinic, and the clinics themselves by
// seeking from one to the next, so no part walks another kind's or another clinic's backlog.
func TestClaimReadsItsIndexes(t *testing.T) {
	app, err := tests.NewTestApp()
	if err != nil {
		t.Fatal(err)
	}
	defer app.Cleanup()
	plan := func(q string) string {
		q = strings.NewReplacer("{:now}", "'2030-01-01'", "{:lease}", "'2030-01-01'", "{:n}", "16", "{:k}", "8", "{:cl0}", "'a'", "{:cl1}", "'b'").Replace(q)
		rows, err := app.DB().NewQuery("EXPLAIN QUERY PLAN " + q).Rows()
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var lines []string
		for rows.Next() {
			var id, parent, notUsed int
			var detail string
			if err := rows.Scan(&id, &parent, &notUsed, &detail); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, detail)
		}
		return strings.Join(lines, "\n")
	}
	claim := plan(store.ClaimSQL(2))
	for _, want := range []string{"USING INDEX idx_messages_due_single", "USING INDEX idx_messages_due_campaign (clinic=? AND next_attempt_at<?)"} {
		if !strings.Contains(claim, want) {
			t.Fatalf("expected the claim's plan to use %s, got:\n%s", want, claim)
		}
	}
	if strings.Contains(claim, "idx_messages_due ") || strings.Contains(claim, "SCAN messages") || strings.Contains(claim, "TEMP B-TREE") {
		t.Fatalf("expected no walk or sort of the queue, got:\n%s", claim)
	}
	clinics := plan(store.CampaignClinicsSQL)
	if strings.Contains(clinics, "SCAN messages") || !strings.Contains(clinics, "idx_messages_due_campaign") {
		t.Fatalf("expected the clinics found by seeks on the campaign index, got:\n%s", clinics)
	}
}
