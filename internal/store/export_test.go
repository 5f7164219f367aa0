package store

// ClaimSQL is the claim's statement, for the test that reads its query plan.
var ClaimSQL = claimSQL
