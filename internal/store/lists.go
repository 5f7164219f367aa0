package store

import (
	"clinicmsg/providers"

	"github.com/pocketbase/pocketbase/core"
)

// The shared lists of the message tables. The migration declares its select fields from
// them, the create checks validate against them and the dashboard reads them from
// GET /api/clinicmsg/lists, so a new status or category is added here once.
var (
	// Statuses are every status a message can have, in the order of its life.
	Statuses = []string{
		providers.StatusScheduled, providers.StatusQueued, providers.StatusSending,
		providers.StatusSent, providers.StatusDelivered, providers.StatusRead,
		providers.StatusFailed, providers.StatusUndelivered, providers.StatusCanceled,
		providers.StatusSkipped,
	}
	// Terminal statuses are those the dispatcher never moves a message out of by itself.
	// failed is terminal for the dispatcher, though a retry may queue it again.
	Terminal = []string{
		providers.StatusDelivered, providers.StatusRead, providers.StatusFailed,
		providers.StatusUndelivered, providers.StatusCanceled, providers.StatusSkipped,
	}
	// Waiting statuses are those of a message that has not reached a provider yet.
	Waiting = []string{providers.StatusScheduled, providers.StatusQueued}
	// Channels are the ways a message can reach a patient.
	Channels = []string{providers.ChannelSMS, providers.ChannelWhatsApp, providers.ChannelEmail}
	// Categories are what a message is about; patients may turn each off.
	Categories = []string{"reminder", "confirmation", "cancellation", "results", "general", "marketing"}
	// CampaignStatuses are a campaign's states.
	CampaignStatuses = []string{CampaignDraft, CampaignScheduled, CampaignRunning, CampaignDone, CampaignCanceled}
)

// Campaign states.
const (
	CampaignDraft     = "draft"
	CampaignScheduled = "scheduled"
	CampaignRunning   = "running"
	CampaignDone      = "done"
	CampaignCanceled  = "canceled"
)

// Rank orders the statuses a provider can move a message through. A provider's report
// applies only if it ranks above the current status, so a late "sent" never overwrites
// "delivered" and a repeated report is a no-op. failed and undelivered rank below
// delivered because a delivery receipt is the stronger evidence.
var Rank = map[string]int{
	providers.StatusScheduled:   0,
	providers.StatusQueued:      1,
	providers.StatusSending:     2,
	providers.StatusSent:        3,
	providers.StatusFailed:      4,
	providers.StatusUndelivered: 4,
	providers.StatusDelivered:   5,
	providers.StatusRead:        6,
}

// moves are the status changes the appliance makes itself (not provider reports, which
// follow Rank). Everything else is refused by Transition: canceled and skipped are final,
// and nothing goes back to scheduled.
var moves = map[string][]string{
	providers.StatusScheduled: {providers.StatusQueued, providers.StatusCanceled, providers.StatusSkipped},
	providers.StatusQueued:    {providers.StatusSending, providers.StatusCanceled, providers.StatusSkipped, providers.StatusFailed},
	// sending → queued: released without an attempt, or a retry after a failed attempt.
	providers.StatusSending: {providers.StatusQueued, providers.StatusSent, providers.StatusDelivered, providers.StatusRead,
		providers.StatusFailed, providers.StatusUndelivered, providers.StatusSkipped},
	// failed → queued is a retry; failed → sent is a send the provider turned out to have.
	providers.StatusFailed: {providers.StatusQueued, providers.StatusSkipped, providers.StatusSent},
}

// CanMove reports whether a message may go from one status to another: either a change
// the appliance makes itself, or a provider's report that ranks above the current status.
func CanMove(from, to string) bool {
	if from == providers.StatusCanceled || from == providers.StatusSkipped {
		return false
	}
	for _, s := range moves[from] {
		if s == to {
			return true
		}
	}
	return Reported(from, to)
}

// Reported reports whether a provider's status report moves a message forward.
func Reported(from, to string) bool {
	if from == providers.StatusCanceled || from == providers.StatusSkipped {
		return false
	}
	r, ok := Rank[to]
	return ok && to != providers.StatusScheduled && to != providers.StatusQueued && to != providers.StatusSending && r > Rank[from]
}

// IsTerminal reports whether status is one of Terminal.
func IsTerminal(status string) bool {
	for _, s := range Terminal {
		if s == status {
			return true
		}
	}
	return false
}

// App event states (the outbox of events for a clinic's own app).
const (
	EventPending   = "pending"
	EventDelivered = "delivered"
	EventFailed    = "failed"
)

// SetCampaignStatus sets a campaign record's status (saved by the caller through
// PocketBase, whose campaign hooks check who may make the move).
func SetCampaignStatus(rec *core.Record, status string) {
	rec.Set("status", status)
}

// SetEventStatus sets an app event record's status (saved by the caller).
func SetEventStatus(rec *core.Record, status string) {
	rec.Set("status", status)
}
