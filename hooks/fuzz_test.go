package hooks

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pocketbase/pocketbase/tools/types"
)

// The campaign list's fuzz target (phone numbers and rendering are fuzzed in
// internal/compose): a panic here is worse than a 500, since the campaign runner reads the
// same list in a goroutine of its own, where a panic ends the process, and the unchanged
// checkpoint makes it panic again after every restart.

// fuzzDeadline is how long one call may take before it counts as a hang.
const fuzzDeadline = 2 * time.Second

// FuzzParseRecipients: a campaign's recipient list is a JSON list of numbers or objects; any
// other input is refused with a message, never a panic, and never more recipients than the
// input has elements.
func FuzzParseRecipients(f *testing.F) {
	for _, s := range []string{`["0501234567","+966501234568"]`, `[{"to":"0501234567","patient_id":"P1","context":{"name":"Sara"}}]`,
		`[]`, `null`, `{}`, `[1]`, `[null]`, `[["0501234567"]]`, `[{"to":1}]`, `["a",{"to":"b"},"c"]`, `[` + strings.Repeat(`"x",`, 100) + `"y"]`,
		`[{"context":{"a":{"b":{"c":[]}}}}]`, `["\u0000"]`, `[{"to":"x","TO":"y"}]`, `[`, "\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		out, err := parseRecipients(types.JSONRaw(data))
		if d := time.Since(start); d > fuzzDeadline {
			t.Fatalf("parseRecipients took %v for %d bytes", d, len(data))
		}
		if err != nil {
			if out != nil {
				t.Fatalf("an error must come without recipients, got %d", len(out))
			}
			if err.Error() == "" {
				t.Fatalf("an empty error message")
			}
			return
		}
		if len(out) > len(data)/2 {
			t.Fatalf("%d recipients from %d bytes", len(out), len(data))
		}
		// The same list given as Go values (as the admin UI's JSON field delivers it).
		var asAny any
		if json.Unmarshal(data, &asAny) == nil {
			again, err := parseRecipients(asAny)
			if err != nil || len(again) != len(out) {
				t.Fatalf("the decoded list parses differently: %d recipients, %v (raw: %d)", len(again), err, len(out))
			}
		}
	})
}
