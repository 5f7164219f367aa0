package hooks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sync"

	"clinicmsg/internal/compose"
	"clinicmsg/providers"

	"github.com/pocketbase/pocketbase/apis"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"
)

// maxSendBatch is the most messages one POST /api/clinicmsg/send takes.
const maxSendBatch = 1000

// maxCreating is how many messages all requests together may be checking and storing at
// once; a request waits for room for its own. Each message in work holds its decoded body,
// record, checks and answer: 64 requests of 100 messages at once peaked at 176 MB (clinicmsg
// bench B1b/100@64) on a small VM. The CPU is the limit long before this bound.
const maxCreating = 2000

// sendItem is the answer for one message of a send request: the stored record, or the
// error a record create would have answered.
type sendItem struct {
	Status int `json:"status"`
	Body   any `json:"body"`
}

// handleSend takes one message object, or an array of up to 1,000, for apps that send in
// volume. Each message gets exactly the checks and answer of a record create; an array's
// messages are stored with prepared inserts in one group commit shared with other requests
// (bulk.go), and the answer comes after that commit, so every 2xx item is durable.
func (s *Service) handleSend(e *core.RequestEvent) error {
	skipSuccessLog(e)
	raw, err := readSendBody(e)
	if err != nil {
		return err
	}
	return s.send(e, bytes.TrimSpace(raw))
}

// maxSendBody bounds a send request's body: 1,000 messages of the largest WhatsApp text.
const maxSendBody = 16 << 20

// readSendBody reads a send or message-create body; one over maxSendBody is a 413 that
// says so, not a JSON error about a body cut short.
func readSendBody(e *core.RequestEvent) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(e.Request.Body, maxSendBody+1))
	if err != nil {
		return nil, e.BadRequestError("Failed to read the request body.", err)
	}
	if len(raw) > maxSendBody {
		return nil, e.Error(http.StatusRequestEntityTooLarge, fmt.Sprintf("The request body is larger than %d bytes; send at most %d messages per request.", maxSendBody, maxSendBatch), nil)
	}
	return raw, nil
}

// fastCreate serves a clinic user's JSON create of one message (what apps send) as the send
// route serves one message: the same checks, stored row and answer as PocketBase's record
// create (TestSendStoresWhatACreateStores), but the row is written in a group commit shared
// with other requests instead of a transaction of its own, and the request's reads are
// prepared once. Other creates (superusers and the admin UI, multipart forms, expand or
// fields in the query) go on to PocketBase's own create.
func (s *Service) fastCreate(e *core.RequestEvent, _ *core.Collection) error {
	if e.Auth == nil || e.HasSuperuserAuth() || e.Auth.Collection().Name != "users" {
		return e.Next()
	}
	if q := e.Request.URL.Query(); q.Has("expand") || q.Has("fields") {
		return e.Next()
	}
	if mt, _, _ := mime.ParseMediaType(e.Request.Header.Get("Content-Type")); mt != "application/json" {
		return e.Next()
	}
	raw, err := readSendBody(e)
	if err != nil {
		return err
	}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		e.Request.Body = io.NopCloser(bytes.NewReader(raw)) // PocketBase answers what is not one object
		return e.Next()
	}
	skipSuccessLog(e)
	return s.send(e, trimmed)
}

// skipSuccessLog keeps a request in PocketBase's request log only if it fails. An accepted
// message has its own audit row (who, IP, user agent) written with it; a second row per
// message in the request log cost a tenth of the appliance's CPU in `clinicmsg bench` B1
// and filled the log with patient traffic. It marks e as PocketBase's
// SkipSuccessActivityLog middleware does, with the mark that middleware sets (learnt once,
// on an empty event).
func skipSuccessLog(e *core.RequestEvent) {
	e.SetAll(successLogMark())
}

var successLogMark = sync.OnceValue(func() map[string]any {
	mark := &core.RequestEvent{}
	_ = apis.SkipSuccessActivityLog().Func(mark)
	return mark.GetAll()
})

// send serves raw, a message object or an array of them (see handleSend).
func (s *Service) send(e *core.RequestEvent, raw []byte) error {
	single := len(raw) > 0 && raw[0] == '{'
	var items []map[string]any
	if single {
		var one map[string]any
		if err := json.Unmarshal(raw, &one); err != nil {
			return e.BadRequestError("The request body is not a JSON object or array.", nil)
		}
		items = []map[string]any{one}
	} else if err := json.Unmarshal(raw, &items); err != nil {
		return e.BadRequestError("The request body is not a JSON object or array.", nil)
	}
	if len(items) == 0 {
		return compose.BadField("messages", "validation_required", "send at least one message")
	}
	if len(items) > maxSendBatch {
		return compose.BadField("messages", "validation_too_many", fmt.Sprintf("send at most %d messages per request; this one has %d", maxSendBatch, len(items)))
	}

	weight := min(int64(len(items)), s.creatingMax) // a request larger than the bound waits for all of it
	if err := s.creating.Acquire(e.Request.Context(), weight); err != nil {
		return e.Error(http.StatusServiceUnavailable, "The request ended before its messages could be checked; nothing was accepted.", err)
	}
	defer s.creating.Release(weight)

	col, err := e.App.FindCachedCollectionByNameOrId("messages")
	if err != nil {
		return e.InternalServerError("", err)
	}
	who := audit{IP: e.RealIP(), UserAgent: e.Request.UserAgent(), User: e.Auth.Id}
	out := make([]sendItem, len(items))
	seen := newBatchSeen(s.cfg.DuplicateWindow)
	var msgs []*newMessage
	var at []int // the item index of each of msgs
	var recs []*core.Record
	var recAt []int
	for i, item := range items {
		rec, err := s.sendRecord(e, col, item, who)
		if err != nil {
			apiErr := asAPIError(err)
			out[i] = sendItem{Status: apiErr.Status, Body: apiErr}
			continue
		}
		recs = append(recs, rec)
		recAt = append(recAt, i)
	}
	prepared, errs := s.prepareNew(recs, seen)
	for j, m := range prepared {
		i := recAt[j]
		if errs[j] != nil {
			apiErr := asAPIError(errs[j])
			if apiErr == nil {
				return e.Error(http.StatusServiceUnavailable, "The messages could not be checked; nothing was accepted. Retry later.", errs[j])
			}
			out[i] = sendItem{Status: apiErr.Status, Body: apiErr}
			continue
		}
		msgs = append(msgs, m)
		at = append(at, i)
	}
	var refused map[int]error
	if len(msgs) > 0 {
		err = s.writer.Do(func(tx core.App) error {
			var err error
			refused, err = s.insertMessages(tx, msgs)
			return err
		})
	}
	if err != nil {
		return e.Error(http.StatusServiceUnavailable, "The messages could not be stored; nothing was accepted. Retry later.", err)
	}
	// A skipped message (opted out, duplicate) is stored but will never be sent: it is
	// counted apart from the accepted ones, so an app never takes it for a send.
	accepted, skipped := 0, 0
	for j, m := range msgs {
		i := at[j]
		if r := refused[j]; r != nil {
			apiErr := asAPIError(r)
			out[i] = sendItem{Status: apiErr.Status, Body: apiErr}
			continue
		}
		out[i] = sendItem{Status: http.StatusOK, Body: m.rec}
		if m.rec.GetString("status") == providers.StatusSkipped {
			skipped++
		} else {
			accepted++
		}
	}
	if single {
		if apiErr, ok := out[0].Body.(*router.ApiError); ok {
			return apiErr // answered by PocketBase's error handler, and kept in the request log
		}
		return e.JSON(out[0].Status, out[0].Body)
	}
	return e.JSON(http.StatusOK, map[string]any{"accepted": accepted, "skipped": skipped, "rejected": len(items) - accepted - skipped, "items": out})
}

// sendRecord applies the request-level checks of a record create to one item.
func (s *Service) sendRecord(e *core.RequestEvent, col *core.Collection, item map[string]any, who audit) (*core.Record, error) {
	superuser := e.HasSuperuserAuth()
	if !superuser {
		own := e.Auth.GetString("clinic")
		if own == "" {
			return nil, compose.FieldError(http.StatusForbidden, "clinic", "validation_no_clinic", "your account belongs to no clinic; ask a superuser to assign one")
		}
		if c, _ := item["clinic"].(string); c != "" && c != own {
			return nil, compose.FieldError(http.StatusForbidden, "clinic", "validation_other_clinic", "clinic must be your own clinic")
		}
		item["clinic"] = own
	}
	if err := s.rules.CheckReadable(item); err != nil {
		return nil, err
	}
	for _, f := range readOnlyFields["messages"] {
		if _, ok := item[f]; ok {
			return nil, compose.BadField(f, "validation_read_only", fmt.Sprintf("%s is set by clinicmsg and cannot be written", f))
		}
	}
	rec := core.NewRecord(col)
	for k, v := range item {
		if k == "id" || col.Fields.GetByName(k) == nil {
			continue
		}
		rec.Set(k, v)
	}
	rec.Set(auditKey, who)
	return rec, nil
}
