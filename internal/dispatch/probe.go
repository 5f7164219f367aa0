package dispatch

import (
	"errors"

	"github.com/pocketbase/pocketbase/core"

	"clinicmsg/providers"
)

// The probes below let the appliance's tests drive one step of the pipeline at a time
// (claim, then an outcome), so that an ordering race (a delivery report overtaking the
// provider's answer, a group rolled back) can be made to happen on purpose.

// ClaimDue claims up to n due messages as the loop does and returns the records the sends
// would be made from. The caller owns their leases.
func (d *Dispatcher) ClaimDue(n int) ([]*core.Record, error) {
	batch, err := d.claim(n)
	if err != nil {
		return nil, err
	}
	recs := make([]*core.Record, len(batch))
	for i, c := range batch {
		recs[i] = c.rec
	}
	return recs, nil
}

// SendOutcomeAfter claims the next due message, runs between (a delivery report
// overtaking the provider's answer, say), and then writes a successful send outcome with
// receipt. It returns the message id.
func (d *Dispatcher) SendOutcomeAfter(between func(id string), receipt *providers.Receipt) (string, error) {
	c, err := d.claimOne()
	if err != nil {
		return "", err
	}
	if between != nil {
		between(c.rec.Id)
	}
	d.finish(c, receipt, nil, "")
	return c.rec.Id, nil
}

// SendOutcomeAfterARolledBackGroup claims the next due message and writes a successful
// send outcome for it first in a group that then fails (and rolls back), then again on its
// own, as the writer does when one op of a group fails. It returns the message id.
func (d *Dispatcher) SendOutcomeAfterARolledBackGroup(receipt *providers.Receipt) (string, error) {
	c, err := d.claimOne()
	if err != nil {
		return "", err
	}
	failed := errors.New("a neighbour failed")
	err = d.app.RunInTransaction(func(tx core.App) error {
		if done, err := d.markSentLeased(tx, c, receipt, ""); !done || err != nil {
			return errors.Join(errors.New("the outcome was not written in the group"), err)
		}
		return failed
	})
	if !errors.Is(err, failed) {
		return "", err
	}
	d.finish(c, receipt, nil, "")
	return c.rec.Id, nil
}

func (d *Dispatcher) claimOne() (claimed, error) {
	batch, err := d.claim(1)
	if err != nil {
		return claimed{}, err
	}
	if len(batch) != 1 {
		return claimed{}, errors.New("nothing was due")
	}
	return batch[0], nil
}
