package hooks

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"clinicmsg/internal/compose"
	"clinicmsg/internal/store"
	"clinicmsg/internal/worker"
	"clinicmsg/providers"

	"github.com/pocketbase/dbx"
	validation "github.com/pocketbase/ozzo-validation/v4"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"
	"github.com/pocketbase/pocketbase/tools/types"
)

// Campaign statuses (the shared list is store.CampaignStatuses).
const (
	campaignDraft     = store.CampaignDraft
	campaignScheduled = store.CampaignScheduled
	campaignRunning   = store.CampaignRunning
	campaignDone      = store.CampaignDone
	campaignCanceled  = store.CampaignCanceled
)

// maxRecipients bounds one campaign; bigger lists belong in several campaigns.
const maxRecipients = 100_000

// recipient is one entry of a campaign's recipient list: a phone number (or email address),
// or {to, patient_id, context}.
type recipient struct {
	To        string         `json:"to"`
	PatientID string         `json:"patient_id,omitempty"`
	Context   map[string]any `json:"context,omitempty"`
}

func parseRecipients(raw any) ([]recipient, error) {
	var b []byte
	switch v := raw.(type) {
	case types.JSONRaw:
		b = v
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			return nil, err
		}
	}
	var items []json.RawMessage
	if err := json.Unmarshal(b, &items); err != nil {
		return nil, errors.New("recipients must be a JSON list of phone numbers or {to, patient_id, context} objects")
	}
	out := make([]recipient, len(items))
	for i, it := range items {
		r, err := parseRecipient(i, it)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// parseRecipient reads recipient i of a list: a phone number (or email address) or an
// object {to, patient_id, context}.
func parseRecipient(i int, raw json.RawMessage) (recipient, error) {
	var r recipient
	if err := json.Unmarshal(raw, &r.To); err == nil {
		return r, nil
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return recipient{}, fmt.Errorf("recipient %d must be a phone number or an object {to, patient_id, context}", i)
	}
	return r, nil
}

// skippedRecipient records why a recipient got no message.
type skippedRecipient struct {
	Index  int    `json:"index"`
	To     string `json:"to"`
	Field  string `json:"field,omitempty"`
	Code   string `json:"code,omitempty"` // the error code a create answers, for the dashboard to translate
	Reason string `json:"reason"`
}

type campaignResult struct {
	Skipped []skippedRecipient `json:"skipped"`
}

// onCampaignCreate checks a new campaign and decides whether it starts now, later or
// when a person starts it.
func (s *Service) onCampaignCreate(e *core.RecordEvent) error {
	r := e.Record
	clinic, err := s.clinicOf(e.App, r.GetString("clinic"))
	if err != nil {
		return err
	}
	channel := r.GetString("channel")
	if err := s.rules.CheckChannel(channel); err != nil {
		return err
	}
	if code := r.GetString("template"); code != "" {
		tpl, err := findTemplate(e.App, clinic.Id, code)
		if err != nil {
			return err
		}
		if tpl == nil || !tpl.GetBool("active") {
			return compose.BadField("template", "validation_unknown_template", fmt.Sprintf("template %q does not exist or is not active", code))
		}
		if tc := tpl.GetString("channel"); tc != "any" && tc != channel {
			return compose.BadField("template", "validation_template_channel", fmt.Sprintf("template %q is for the %s channel", code, tc))
		}
	} else if strings.TrimSpace(r.GetString("body")) == "" {
		return compose.BadField("body", "validation_required", "either body or template is required")
	}
	list, _ := r.Get(streamedListKey).(*recipientParts) // read as the request arrived
	if list == nil {
		parsed, err := parseRecipients(r.Get("recipients"))
		if err != nil {
			return compose.BadField("recipients", "validation_invalid_recipients", err.Error())
		}
		if list, err = partsOf(parsed); err != nil {
			return err
		}
	}
	if list.err != nil {
		return compose.BadField("recipients", "validation_invalid_recipients", list.err.Error())
	}
	if list.count == 0 {
		return compose.BadField("recipients", "validation_required", "recipients must list at least one phone number")
	}
	if list.count > maxRecipients {
		return compose.BadField("recipients", "validation_too_many_recipients", fmt.Sprintf("a campaign takes at most %d recipients; this one has %d", maxRecipients, list.count))
	}

	for _, f := range []string{"queued", "sent", "delivered", "failed", "skipped", "cursor"} {
		r.Set(f, 0)
	}
	r.Set("total", list.count)
	r.Set("result", campaignResult{Skipped: []skippedRecipient{}})
	r.Set("started_at", "")
	r.Set("finished_at", "")
	switch st := r.GetString("status"); {
	case st == campaignDraft:
	case st != "" && st != campaignRunning:
		return compose.BadField("status", "validation_invalid_status", "a new campaign is draft or running")
	case isFuture(r.GetDateTime("send_at")):
		store.SetCampaignStatus(r, campaignScheduled)
	default:
		store.SetCampaignStatus(r, campaignRunning)
		r.Set("started_at", types.NowDateTime())
	}
	// The list is stored in parts beside the campaign (campaign_recipients), in the same
	// transaction: kept in the row, megabytes would be read and rewritten with every
	// counter update.
	r.Set("recipients", nil)
	r.Set(streamedListKey, nil)
	return saveWith(e, func(tx core.App) error { return store.InsertRecipients(tx, r.Id, list.parts) })
}

// recipientsPerPart is how many recipients one campaign_recipients row holds.
const recipientsPerPart = 1000

// onCampaignUpdateRequest lets clinic users start a draft or cancel a campaign, and
// nothing else.
func (s *Service) onCampaignUpdateRequest(e *core.RecordRequestEvent) error {
	before := e.Record.Original().GetString("status")
	after := e.Record.GetString("status")
	if before != after {
		ok := (before == campaignDraft && after == campaignRunning) ||
			(after == campaignCanceled && (before == campaignDraft || before == campaignScheduled || before == campaignRunning))
		if !ok {
			return compose.BadField("status", "validation_invalid_transition", fmt.Sprintf("a %s campaign cannot become %s", before, after))
		}
	}
	return e.Next()
}

// onCampaignUpdate settles what a status change means, for any writer.
func (s *Service) onCampaignUpdate(e *core.RecordEvent) error {
	r := e.Record
	if raw, ok := r.Get("recipients").(types.JSONRaw); ok && len(raw) > 0 && string(raw) != "null" {
		// The list lives in campaign_recipients from the create on (superusers reach here
		// through the admin UI; clinic users are stopped by the update rule).
		return compose.BadField("recipients", "validation_read_only", "recipients cannot change after a campaign is created; create a new campaign")
	}
	before, after := r.Original().GetString("status"), r.GetString("status")
	if before == campaignDraft && after == campaignRunning {
		if isFuture(r.GetDateTime("send_at")) {
			store.SetCampaignStatus(r, campaignScheduled)
		} else {
			r.Set("started_at", types.NowDateTime())
		}
	}
	if err := e.Next(); err != nil {
		return err
	}
	if before != after {
		s.Campaigns.Wake()
	}
	return nil
}

func isFuture(dt types.DateTime) bool {
	return !dt.IsZero() && dt.Time().After(time.Now())
}

// Campaigns fans campaigns out into messages, cancels them, and keeps their counters
// current. The fan-out moves a checkpoint (cursor) in the same transaction as the messages
// of each batch, so a restart resumes exactly where the last commit left it.
type Campaigns struct {
	*worker.Worker
	s *Service

	lists sync.Map // campaign id -> *parsedPart
}

func newCampaigns(s *Service) *Campaigns {
	return &Campaigns{Worker: worker.New(), s: s}
}

// Start starts the runner; safe to call more than once.
func (c *Campaigns) Start() {
	c.Worker.Start(c.s.cfg.CampaignInterval, func(ctx context.Context, _ bool) {
		if err := c.RunOnce(ctx); err != nil && ctx.Err() == nil {
			c.s.app.Logger().Error("campaign runner failed; it will try again", "error", err)
		}
	})
}

// RunOnce starts due scheduled campaigns, fans out running ones to the end of their list
// (batch by batch, stopping between batches if ctx ends), cancels the unsent messages of
// canceled ones, and refreshes every active campaign's counters.
func (c *Campaigns) RunOnce(ctx context.Context) error {
	app := c.s.app
	now := store.FormatTime(time.Now().UTC())
	due, err := app.FindRecordsByFilter("campaigns", "status = 'scheduled' && send_at <= {:now}", "send_at", 100, 0, dbx.Params{"now": now})
	if err != nil {
		return fmt.Errorf("failed to find due campaigns: %w", err)
	}
	for _, r := range due {
		store.SetCampaignStatus(r, campaignRunning)
		r.Set("started_at", types.NowDateTime())
		if err := app.Save(r); err != nil {
			return fmt.Errorf("failed to start campaign %s: %w", r.Id, err)
		}
	}

	// Campaigns take turns, a share of batches each, and the list is read again every
	// round: a campaign created while another clinic's long list is being fanned out gets
	// its first messages in within a round, not after that list's end. Their messages'
	// due times interleave, so the claim interleaves them too.
	seen := map[string]bool{}
	var order []string
	for ctx.Err() == nil {
		active, err := app.FindRecordsByFilter("campaigns", "status = 'running' || (status = 'canceled' && finished_at = '')", "created", 0, 0)
		if err != nil {
			return fmt.Errorf("failed to find active campaigns: %w", err)
		}
		more := false
		for _, r := range active {
			if !seen[r.Id] {
				seen[r.Id] = true
				order = append(order, r.Id)
			}
			if r.GetString("status") == campaignRunning {
				left, err := c.fanOut(ctx, r.Id, fairShareBatches, c.othersActive(r.Id))
				if err != nil {
					return err
				}
				more = more || left
			} else if err := c.cancelBatch(r.Id); err != nil {
				return err
			}
			if ctx.Err() != nil {
				return nil
			}
		}
		if !more {
			break
		}
	}
	for _, id := range order {
		if err := c.refresh(id); err != nil {
			return err
		}
	}
	return nil
}

// fairShareBatches is how many batches a running campaign fans out before the next
// campaign's turn, when another one is waiting.
const fairShareBatches = 4

// othersActive reports, when asked, whether a campaign other than id is running or being
// canceled: one count over the (small) campaigns table per share of batches.
func (c *Campaigns) othersActive(id string) func() bool {
	return func() bool {
		n, err := c.s.app.CountRecords("campaigns", dbx.NewExp("id != {:id} AND (status = 'running' OR (status = 'canceled' AND finished_at = ''))", dbx.Params{"id": id}))
		return err != nil || n > 0
	}
}

// FanOutBatch creates the messages of the next batch of a running campaign's recipients
// and moves its checkpoint, all in one transaction. It reports whether recipients remain.
// The messages are checked before the transaction (bulk.go); the transaction stores them
// only if the checkpoint has not moved meanwhile.
func (c *Campaigns) FanOutBatch(id string) (bool, error) {
	camp, err := loadCampaign(c.s.app, id)
	if err != nil {
		return false, fmt.Errorf("failed to load campaign %s: %w", id, err)
	}
	if camp.GetString("status") != campaignRunning {
		return false, nil
	}
	b, err := c.prepareBatch(camp, camp.GetInt("cursor"))
	if err != nil || b == nil {
		return false, err
	}
	result := resultOf(camp)
	err = c.storeBatch(b, &result)
	if errors.Is(err, errCampaignMoved) {
		// Canceled, or another fan-out took this batch: look again from the top.
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return b.end < b.total, nil
}

// fanOut fans a running campaign out to the end of its list, or until ctx ends. Each batch
// is checked while the one before it is being stored, so that the checks (phone numbers,
// templates, preferences) and SQLite's single writer each keep a core busy.
func (c *Campaigns) fanOut(ctx context.Context, id string, share int, othersWaiting func() bool) (bool, error) {
	camp, err := loadCampaign(c.s.app, id)
	if err != nil {
		return false, fmt.Errorf("failed to load campaign %s: %w", id, err)
	}
	if camp.GetString("status") != campaignRunning {
		return false, nil
	}
	result := resultOf(camp)
	b, err := c.prepareBatch(camp, camp.GetInt("cursor"))
	type prepared struct {
		b   *fanBatch
		err error
	}
	for done := 1; b != nil && err == nil && ctx.Err() == nil; done++ {
		// The next batch is checked while this one is stored, except after the last of
		// this turn's share: the next turn resumes from the checkpoint.
		// A turn ends after its share only when another campaign is waiting for one: alone,
		// a campaign keeps its next batch checked while one is stored, to the end.
		last := done%share == 0 && othersWaiting()
		var next chan prepared
		if !last {
			next = make(chan prepared, 1)
			go func(start int) {
				nb, err := c.prepareBatch(camp, start)
				next <- prepared{nb, err}
			}(b.end)
		}
		err = c.storeBatch(b, &result)
		var p prepared
		if next != nil {
			p = <-next
		}
		if errors.Is(err, errCampaignMoved) {
			return false, nil // canceled, or taken by another fan-out: the next pass looks again
		}
		if last {
			return err == nil && b.end < b.total, err
		}
		if err == nil {
			b, err = p.b, p.err
		}
	}
	return false, err
}

// fanBatch is one batch of a campaign's recipients, checked and ready to store.
type fanBatch struct {
	id                string
	start, end, total int
	msgs              []*newMessage
	index             []int              // the recipient index of each of msgs
	skipped           []skippedRecipient // refused by the checks
}

func resultOf(camp *core.Record) campaignResult {
	var result campaignResult
	if raw, ok := camp.Get("result").(types.JSONRaw); ok && len(raw) > 0 {
		_ = json.Unmarshal(raw, &result) // written by storeBatch only
	}
	return result
}

// prepareBatch builds and checks the messages for recipients start… of camp, or answers
// nil once the list is done.
func (c *Campaigns) prepareBatch(camp *core.Record, start int) (*fanBatch, error) {
	id, total := camp.Id, camp.GetInt("total")
	end := min(start+c.s.cfg.CampaignBatch, total)
	if start >= end {
		return nil, nil
	}
	list, err := c.recipients(c.s.app, id, start, end)
	if err != nil {
		return nil, err
	}
	col, err := c.s.app.FindCachedCollectionByNameOrId("messages")
	if err != nil {
		return nil, err
	}
	campCtx := map[string]any{}
	if raw, ok := camp.Get("context").(types.JSONRaw); ok && len(raw) > 0 {
		_ = json.Unmarshal(raw, &campCtx)
	}
	var recs []*core.Record
	for i := start; i < end; i++ {
		rc := list[i-start]
		msg := core.NewRecord(col)
		msg.Set("clinic", camp.GetString("clinic"))
		msg.Set("channel", camp.GetString("channel"))
		msg.Set("to", rc.To)
		msg.Set("body", camp.GetString("body"))
		msg.Set("template", camp.GetString("template"))
		msg.Set("language", camp.GetString("language"))
		msg.Set("category", camp.GetString("category"))
		msg.Set("patient_id", rc.PatientID)
		msg.Set("campaign", camp.Id)
		// The key makes a second message for one recipient impossible, whatever happens.
		msg.Set("idempotency_key", fmt.Sprintf("campaign:%s:%d", camp.Id, i))
		vars := make(map[string]any, len(campCtx)+len(rc.Context))
		for k, v := range campCtx {
			vars[k] = v
		}
		for k, v := range rc.Context {
			vars[k] = v
		}
		msg.Set("context", vars)
		recs = append(recs, msg)
	}
	b := &fanBatch{id: id, start: start, end: end, total: total}
	seen := newBatchSeen(0) // campaign messages are exempt from the duplicate guard
	prepared, errs := c.s.prepareNew(recs, seen)
	for j, m := range prepared {
		i := start + j
		if err := errs[j]; err != nil {
			if apiErr := asAPIError(err); apiErr != nil {
				b.skipped = append(b.skipped, skippedRecipient{Index: i, To: list[j].To, Field: errorField(apiErr), Code: errorCode(apiErr), Reason: apiErr.Message})
				continue
			}
			return nil, fmt.Errorf("failed to check campaign message %d: %w", i, err)
		}
		b.msgs = append(b.msgs, m)
		b.index = append(b.index, i)
	}
	return b, nil
}

// storeBatch stores b's messages and moves the campaign's checkpoint past them, in one
// transaction, if the checkpoint is still where b begins; result (the campaign's skipped
// recipients so far) takes b's on success.
func (c *Campaigns) storeBatch(b *fanBatch, result *campaignResult) error {
	created := 0
	var batch campaignResult
	err := c.s.app.RunInTransaction(func(tx core.App) error {
		created = 0
		now, err := loadCampaign(tx, b.id)
		if err != nil {
			return fmt.Errorf("failed to load campaign %s: %w", b.id, err)
		}
		if now.GetString("status") != campaignRunning || now.GetInt("cursor") != b.start {
			return errCampaignMoved
		}
		refused, err := c.s.insertMessages(tx, b.msgs)
		if err != nil {
			return err
		}
		batch = campaignResult{Skipped: append(slices.Clone(result.Skipped), b.skipped...)}
		for j, m := range b.msgs {
			if r := refused[j]; r != nil {
				apiErr := asAPIError(r)
				batch.Skipped = append(batch.Skipped, skippedRecipient{Index: b.index[j], To: m.rec.GetString("to"), Field: errorField(apiErr), Code: errorCode(apiErr), Reason: apiErr.Message})
				continue
			}
			created++
		}
		resultJSON, err := json.Marshal(batch)
		if err != nil {
			return err
		}
		// The checkpoint alone: saving the record would re-validate it with every batch.
		_, err = tx.DB().Update("campaigns", dbx.Params{"cursor": b.end, "result": string(resultJSON), "updated": store.FormatTime(time.Now().UTC())}, dbx.HashExp{"id": b.id}).Execute()
		if err != nil {
			return fmt.Errorf("failed to checkpoint campaign %s: %w", b.id, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	*result = batch
	if created > 0 {
		c.s.Dispatcher.Wake()
	}
	return nil
}

// errCampaignMoved stops a fan-out batch whose campaign changed while it was checked.
var errCampaignMoved = errors.New("the campaign changed while its batch was checked")

// errorField is the field an API error names, or "".
// errorCode is the code of the field an API error names, or "".
func errorCode(apiErr *router.ApiError) string {
	for _, v := range apiErr.Data {
		switch x := v.(type) {
		case validation.Error:
			return x.Code()
		case map[string]any: // PocketBase's safe form of a field error
			code, _ := x["code"].(string)
			return code
		case map[string]string:
			return x["code"]
		}
	}
	return ""
}

func errorField(apiErr *router.ApiError) string {
	for k := range apiErr.Data {
		return k
	}
	return ""
}

// recipients reads recipients start to end (exclusive) of a campaign's list from its parts.
func (c *Campaigns) recipients(app core.App, id string, start, end int) ([]recipient, error) {
	var out []recipient
	for i := start; i < end; {
		n := i / recipientsPerPart
		part, err := c.part(app, id, n)
		if err != nil {
			return nil, err
		}
		from, to := i-n*recipientsPerPart, min(end-n*recipientsPerPart, len(part))
		if from >= to {
			return nil, fmt.Errorf("failed to read the recipients of campaign %s: recipient %d is missing", id, i)
		}
		out = append(out, part[from:to]...)
		i = n*recipientsPerPart + to
	}
	return out, nil
}

// parsedPart is the part of a campaign's list that the fan-out read last: a batch takes
// half a part, so each part is read and parsed once, and the whole list (tens of megabytes
// once parsed) is never in memory.
type parsedPart struct {
	n    int
	list []recipient
}

func (c *Campaigns) part(app core.App, id string, n int) ([]recipient, error) {
	if v, ok := c.lists.Load(id); ok && v.(*parsedPart).n == n {
		return v.(*parsedPart).list, nil
	}
	var raw string
	err := app.DB().NewQuery("SELECT recipients FROM campaign_recipients WHERE campaign = {:id} AND part = {:part}").
		Bind(dbx.Params{"id": id, "part": n}).Row(&raw)
	if err != nil {
		return nil, fmt.Errorf("failed to load part %d of the recipients of campaign %s: %w", n, id, err)
	}
	list, err := parseRecipients(types.JSONRaw(raw))
	if err != nil {
		return nil, fmt.Errorf("failed to read the recipients of campaign %s: %w", id, err)
	}
	c.lists.Store(id, &parsedPart{n: n, list: list})
	return list, nil
}

// campaignColumns are every column of a campaign but its recipient list, which can be
// megabytes and is read once per process (Campaigns.recipients).
var campaignColumns = []string{"id", "clinic", "name", "channel", "template", "body", "context", "language", "category",
	"send_at", "status", "total", "queued", "sent", "delivered", "failed", "skipped", "cursor", "result",
	"started_at", "finished_at", "created", "updated"}

// loadCampaign loads a campaign without its recipient list.
func loadCampaign(app core.App, id string) (*core.Record, error) {
	rec := &core.Record{}
	cols := make([]string, len(campaignColumns))
	for i, c := range campaignColumns {
		cols[i] = "[[campaigns." + c + "]]"
	}
	err := app.RecordQuery("campaigns").Select(cols...).AndWhere(dbx.HashExp{"id": id}).Limit(1).One(rec)
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// cancelBatch cancels up to one batch of a canceled campaign's unsent messages.
func (c *Campaigns) cancelBatch(id string) error {
	return c.s.app.RunInTransaction(func(tx core.App) error {
		recs, err := tx.FindRecordsByFilter("messages", "campaign = {:c} && (status = 'queued' || status = 'scheduled')", "", c.s.cfg.CampaignBatch, 0, dbx.Params{"c": id})
		if err != nil {
			return fmt.Errorf("failed to find messages to cancel: %w", err)
		}
		for _, m := range recs {
			_, err := c.s.store.Transition(tx, m, store.Change{To: providers.StatusCanceled,
				Set:   map[string]any{"status_reason": "campaign_canceled: the campaign was canceled", "next_attempt_at": ""},
				Audit: store.Entry{Event: "canceled", Detail: map[string]any{"campaign": id}}})
			if err != nil {
				return fmt.Errorf("failed to cancel message %s: %w", m.Id, err)
			}
		}
		return nil
	})
}

// campaignCounts is a campaign's progress, counted from its messages.
type campaignCounts struct {
	Total     int    `json:"total"`
	Queued    int    `json:"queued"`
	Sent      int    `json:"sent"`
	Delivered int    `json:"delivered"`
	Failed    int    `json:"failed"`
	Skipped   int    `json:"skipped"`
	Canceled  int    `json:"canceled"`
	Status    string `json:"status"`
}

func countCampaign(app core.App, camp *core.Record) (campaignCounts, error) {
	var rows []struct {
		Status string `db:"status"`
		N      int    `db:"n"`
	}
	err := app.DB().NewQuery("SELECT status, COUNT(*) AS n FROM messages WHERE campaign = {:c} GROUP BY status").
		Bind(dbx.Params{"c": camp.Id}).All(&rows)
	if err != nil {
		return campaignCounts{}, fmt.Errorf("failed to count campaign messages: %w", err)
	}
	c := campaignCounts{Total: camp.GetInt("total"), Status: camp.GetString("status")}
	for _, r := range rows {
		switch r.Status {
		case providers.StatusScheduled, providers.StatusQueued, providers.StatusSending:
			c.Queued += r.N
		case providers.StatusSent:
			c.Sent += r.N
		case providers.StatusDelivered, providers.StatusRead:
			c.Delivered += r.N
		case providers.StatusFailed, providers.StatusUndelivered:
			c.Failed += r.N
		case providers.StatusSkipped:
			c.Skipped += r.N
		case providers.StatusCanceled:
			c.Canceled += r.N
		}
	}
	var result campaignResult
	if raw, ok := camp.Get("result").(types.JSONRaw); ok && len(raw) > 0 {
		_ = json.Unmarshal(raw, &result)
	}
	c.Skipped += len(result.Skipped)
	return c, nil
}

// refresh stores a campaign's counters when they changed (realtime subscribers see the
// progress) and ends it when nothing more will happen.
func (c *Campaigns) refresh(id string) error {
	return c.s.app.RunInTransaction(func(tx core.App) error {
		camp, err := loadCampaign(tx, id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		n, err := countCampaign(tx, camp)
		if err != nil {
			return err
		}
		changes := dbx.Params{}
		// The record's counters are the summary's numbers: sent counts every message that
		// went out (delivered ones too), skipped every one held back (canceled too).
		for field, v := range map[string]int{"queued": n.Queued, "sent": n.Sent + n.Delivered, "delivered": n.Delivered, "failed": n.Failed, "skipped": n.Skipped + n.Canceled} {
			if camp.GetInt(field) != v {
				changes[field] = v
			}
		}
		fannedOut := camp.GetInt("cursor") >= camp.GetInt("total")
		now := store.FormatTime(time.Now().UTC())
		switch camp.GetString("status") {
		case campaignRunning:
			if fannedOut && n.Queued == 0 && (n.Sent == 0 || !awaitingReports(tx, id)) {
				changes["status"] = campaignDone
				changes["finished_at"] = now
				c.lists.Delete(id)
			}
		case campaignCanceled:
			if n.Queued == 0 {
				changes["finished_at"] = now
				c.lists.Delete(id)
			}
		}
		if len(changes) == 0 {
			return nil
		}
		// A targeted update, announced like a save so that realtime subscribers see the
		// progress; the announced record leaves out the (possibly huge) recipient list.
		changes["updated"] = now
		if _, err := tx.DB().Update("campaigns", changes, dbx.HashExp{"id": id}).Execute(); err != nil {
			return fmt.Errorf("failed to update campaign %s: %w", id, err)
		}
		for k, v := range changes {
			camp.Set(k, v)
		}
		c.s.store.Announce(tx, camp)
		return nil
	})
}

// awaitingReports reports whether some of a campaign's sent messages may still get a
// delivery report. Carriers that never report leave a message "sent"; after the day the
// status poll covers, such a message no longer holds its campaign open.
func awaitingReports(app core.App, id string) bool {
	since := store.FormatTime(time.Now().UTC().Add(-24 * time.Hour))
	n, err := app.CountRecords("messages", dbx.NewExp("campaign = {:c} AND status = 'sent' AND sent_at > {:since}", dbx.Params{"c": id, "since": since}))
	return err != nil || n > 0
}

// handleCampaignSummary answers the original spec's send_bulk_messages shape,
// {total, sent, failed}, with the rest of the counts beside it.
func (s *Service) handleCampaignSummary(e *core.RequestEvent) error {
	camp, err := e.App.FindRecordById("campaigns", e.Request.PathValue("id"))
	if err != nil || (!e.HasSuperuserAuth() && (e.Auth.GetString("clinic") == "" || camp.GetString("clinic") != e.Auth.GetString("clinic"))) {
		return e.NotFoundError("Campaign not found.", nil)
	}
	n, err := countCampaign(e.App, camp)
	if err != nil {
		return e.InternalServerError("Failed to count the campaign.", err)
	}
	return e.JSON(http.StatusOK, map[string]any{
		"total": n.Total, "sent": n.Sent + n.Delivered, "failed": n.Failed,
		"queued": n.Queued, "delivered": n.Delivered, "skipped": n.Skipped + n.Canceled, "canceled": n.Canceled, "status": n.Status,
	})
}
