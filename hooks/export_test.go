package hooks

import (
	"fmt"

	"github.com/pocketbase/pocketbase/core"

	"clinicmsg/internal/dispatch"
	"clinicmsg/providers"
)

// Internals the external tests reach.

// NewDispatcherForBench replaces a stopped dispatcher with a fresh one, so a benchmark can
// seed the queue first and time only the sending.
func NewDispatcherForBench(s *Service) *dispatch.Dispatcher {
	s.Dispatcher = s.newDispatcher()
	return s.Dispatcher
}

// SendOutcomeAfter: see dispatch.Dispatcher.SendOutcomeAfter.
func SendOutcomeAfter(s *Service, between func(id string), receipt *providers.Receipt) (string, error) {
	return s.Dispatcher.SendOutcomeAfter(between, receipt)
}

// BulkLookups are the texts of the create path's batched reads: preferences and the
// duplicate window's messages, by each column alone and together, for one value or several.
func BulkLookups() map[string]string {
	out := map[string]string{}
	for _, n := range []int{1, 2} {
		one := []any{"a"}
		if n == 2 {
			one = []any{"a", "b"}
		}
		for _, cols := range [][]string{{"phone"}, {"email"}, {"patient_id"}, {"patient_id", "phone"}, {"email", "patient_id"}} {
			var cv []columnValues
			for _, c := range cols {
				cv = append(cv, columnValues{c, one})
			}
			text, _, _ := unionQuery(cv, preferencesPart, "")
			out[fmt.Sprintf("preferences.%v/%d", cols, n)] = text
		}
		for _, cols := range [][]string{{"to"}, {"patient_id", "to"}} {
			var cv []columnValues
			for _, c := range cols {
				cv = append(cv, columnValues{c, one})
			}
			text, _, _ := unionQuery(cv, recentPart, "", "")
			out[fmt.Sprintf("messages.%v/%d", cols, n)] = text
		}
	}
	out["messages.idempotency"] = takenKeysQuery
	return out
}

// ClaimDue: see dispatch.Dispatcher.ClaimDue.
func ClaimDue(s *Service, n int) ([]*core.Record, error) {
	return s.Dispatcher.ClaimDue(n)
}

// SendOutcomeAfterARolledBackGroup: see dispatch.Dispatcher.SendOutcomeAfterARolledBackGroup.
func SendOutcomeAfterARolledBackGroup(s *Service, receipt *providers.Receipt) (string, error) {
	return s.Dispatcher.SendOutcomeAfterARolledBackGroup(receipt)
}
