package store

// ClaimSQL is the claim's statement for campaign messages of clinics clinics, for the test
// that reads its query plan; CampaignClinicsSQL the clinics' list.
func ClaimSQL(clinics int) string { return claimSQL(clinics, "") }

// CampaignClinicsSQL lists the clinics with queued campaign messages.
const CampaignClinicsSQL = campaignClinicsSQL

// SeedGroupSizes makes n the usual group size of w, which has not started.
func SeedGroupSizes(w *Writer, n int) {
	for range len(w.sizes.last) {
		w.sizes.add(n)
	}
}
