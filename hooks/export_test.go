package hooks

import (
	"errors"
	"fmt"

	"github.com/pocketbase/pocketbase/core"

	"clinicmsg/providers"
)

// Internals the external tests reach.
var QuietEnd = quietEnd

// NewDispatcherForBench replaces a stopped dispatcher with a fresh one, so a benchmark can
// seed the queue first and time only the sending.
func NewDispatcherForBench(s *Service) *Dispatcher {
	s.Dispatcher = newDispatcher(s)
	return s.Dispatcher
}

// SendOutcomeAfter claims the next due message as the dispatcher does, runs between (a
// delivery report overtaking the provider's answer, say), and then writes a successful
// send outcome with receipt. It returns the message id.
func SendOutcomeAfter(s *Service, between func(id string), receipt *providers.Receipt) (string, error) {
	c, err := claimOne(s)
	if err != nil {
		return "", err
	}
	if between != nil {
		between(c.rec.Id)
	}
	s.Dispatcher.finish(c, receipt, nil, "")
	return c.rec.Id, nil
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

// ClaimDue claims up to n due messages as the dispatcher does and returns the records the
// sends would be made from.
func ClaimDue(s *Service, n int) ([]*core.Record, error) {
	batch, err := s.Dispatcher.claim(n)
	if err != nil {
		return nil, err
	}
	recs := make([]*core.Record, len(batch))
	for i, c := range batch {
		recs[i] = c.rec
	}
	return recs, nil
}

// SendOutcomeAfterARolledBackGroup claims the next due message and writes a successful
// send outcome for it first in a group that then fails (and rolls back), then again on its
// own, as the writer does when one op of a group fails. It returns the message id.
func SendOutcomeAfterARolledBackGroup(s *Service, receipt *providers.Receipt) (string, error) {
	c, err := claimOne(s)
	if err != nil {
		return "", err
	}
	failed := errors.New("a neighbour failed")
	err = s.app.RunInTransaction(func(tx core.App) error {
		if done, err := s.markSentLeased(tx, c, receipt, ""); !done || err != nil {
			return errors.Join(errors.New("the outcome was not written in the group"), err)
		}
		return failed
	})
	if !errors.Is(err, failed) {
		return "", err
	}
	s.Dispatcher.finish(c, receipt, nil, "")
	return c.rec.Id, nil
}

// claimOne claims the next due message as the dispatcher does.
func claimOne(s *Service) (claimed, error) {
	batch, err := s.Dispatcher.claim(1)
	if err != nil {
		return claimed{}, err
	}
	if len(batch) != 1 {
		return claimed{}, errors.New("nothing was due")
	}
	return batch[0], nil
}
