package reliability

import (
	"encoding/json"
	"os"
	"testing"
)

// TestRecordFuzzFigures files the figures of a `make fuzz` run (reliability/fuzz.sh passes
// them as JSON in CLINICMSG_FUZZ_FIGURES); without them it has nothing to do.
func TestRecordFuzzFigures(t *testing.T) {
	raw := os.Getenv("CLINICMSG_FUZZ_FIGURES")
	if raw == "" {
		t.Skip("only `make fuzz` records fuzz figures")
	}
	figures := map[string]any{}
	if err := json.Unmarshal([]byte(raw), &figures); err != nil {
		t.Fatalf("CLINICMSG_FUZZ_FIGURES is not JSON: %v", err)
	}
	if err := Record("fuzz", figures); err != nil {
		t.Fatal(err)
	}
}
