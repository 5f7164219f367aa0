package store

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
)

// The claim leases due queued rows: status "sending", one more attempt, next_attempt_at =
// the lease's end. Single messages (no campaign) are claimed ahead of campaign messages, so
// a lab result or an appointment change never waits behind a campaign's backlog, and
// campaign messages are taken clinic by clinic, a share each, so one clinic's long
// campaign never holds another clinic's. Each part names its partial index
// (idx_messages_due_single, idx_messages_due_campaign on clinic, next_attempt_at): left to
// itself SQLite walks idx_messages_due and filters, which reads the whole backlog of the
// other kind on every claim (measured in clinicmsg bench B3: the claim's cost doubled). A
// canceled campaign's queued messages are left for the campaign runner to cancel. Each
// LIMIT is written +{:n}: SQLite plans a LIMIT that is a bare parameter with its bound
// value, so every new value would make it parse and plan the cached statement again
// (internal/stmtcache), which cost as much as the claim's execution.
const (
	claimSingles = `SELECT id FROM (SELECT id FROM messages INDEXED BY idx_messages_due_single
		WHERE status = 'queued' AND campaign = '' AND next_attempt_at <= {:now} ORDER BY next_attempt_at LIMIT +{:n})`
	claimCampaignOf = `SELECT id FROM (SELECT id FROM messages INDEXED BY idx_messages_due_campaign
		WHERE status = 'queued' AND campaign != '' AND clinic = {:cl%d} AND next_attempt_at <= {:now}
			AND campaign NOT IN (SELECT id FROM campaigns WHERE status = 'canceled')
		ORDER BY next_attempt_at LIMIT +{:k})`
	claimUpdate = `UPDATE messages SET status = 'sending', attempts = attempts + 1, next_attempt_at = {:lease}, updated = {:now}%s
	WHERE id IN (%s LIMIT +{:n})
	RETURNING *`
	// campaignClinicsSQL lists the clinics with queued campaign messages by skipping from
	// one clinic to the next on the index: a seek per clinic, whatever the backlog.
	campaignClinicsSQL = `WITH RECURSIVE c(clinic) AS (
		SELECT (SELECT MIN(clinic) FROM messages INDEXED BY idx_messages_due_campaign WHERE status = 'queued' AND campaign != '')
		UNION ALL
		SELECT (SELECT MIN(clinic) FROM messages INDEXED BY idx_messages_due_campaign WHERE status = 'queued' AND campaign != '' AND clinic > c.clinic)
		FROM c WHERE c.clinic IS NOT NULL LIMIT 64)
	SELECT clinic FROM c WHERE clinic IS NOT NULL`
)

// claimSQL is the claim for campaign messages of clinics clinics (0: singles only).
func claimSQL(clinics int, setProvider string) string {
	parts := []string{claimSingles}
	for i := range clinics {
		parts = append(parts, fmt.Sprintf(claimCampaignOf, i))
	}
	return fmt.Sprintf(claimUpdate, setProvider, strings.Join(parts, "\n\t\tUNION ALL\n\t\t"))
}

// Claim leases up to n due queued messages until lease, in tx, and returns them as they
// are after the claim (from the UPDATE's own RETURNING: reading them again was a second
// query per claim). routes names the provider of each channel whose route does not depend
// on the attempt; the claim writes it in the same UPDATE, and the caller routes the others
// with Route.
func (s *Store) Claim(tx core.App, n int, now, lease time.Time, routes map[string]string) ([]*core.Record, error) {
	params := dbx.Params{"now": FormatTime(now), "lease": FormatTime(lease), "n": n}
	var route strings.Builder
	i := 0
	for ch, name := range routes {
		fmt.Fprintf(&route, " WHEN {:ch%d} THEN {:pr%d}", i, i)
		params["ch"+strconv.Itoa(i)], params["pr"+strconv.Itoa(i)] = ch, name
		i++
	}
	setProvider := ""
	if route.Len() > 0 {
		setProvider = ", provider = CASE channel" + route.String() + " ELSE provider END"
	}
	var clinics []string
	if err := CachedQuery(tx, campaignClinicsSQL).Column(&clinics); err != nil {
		return nil, fmt.Errorf("failed to find the clinics with campaign messages: %w", err)
	}
	// Each clinic's share; the claim as a whole still takes at most n.
	params["k"] = max(1, (n+len(clinics)-1)/max(len(clinics), 1))
	for i, c := range clinics {
		params["cl"+strconv.Itoa(i)] = c
	}
	col, err := tx.FindCachedCollectionByNameOrId("messages")
	if err != nil {
		return nil, fmt.Errorf("failed to claim due messages: %w", err)
	}
	rows, err := CachedQuery(tx, claimSQL(len(clinics), setProvider)).Bind(params).Rows()
	if err != nil {
		return nil, fmt.Errorf("failed to claim due messages: %w", err)
	}
	recs, err := ScanRecords(col, rows.Rows)
	if err != nil {
		return nil, fmt.Errorf("failed to read claimed messages: %w", err)
	}
	return recs, nil
}

// Route sets the provider of claimed messages whose channel the claim could not route.
func Route(tx core.App, provider string, ids []any) error {
	if _, err := tx.DB().Update("messages", dbx.Params{"provider": provider}, dbx.In("id", ids...)).Execute(); err != nil {
		return fmt.Errorf("failed to route claimed messages: %w", err)
	}
	return nil
}
