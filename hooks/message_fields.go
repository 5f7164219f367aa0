package hooks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"clinicmsg/internal/store"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"
)

// PocketBase reads a field it cannot parse as empty: "send_at": "tomorrow" would be stored
// as no send_at, and a message meant for tomorrow would go out now. Every create path reads
// the caller's own values through checkReadable first, so a value that cannot be read is a
// 400 naming its field and nothing is stored.

// sendAtLayouts are the send_at formats accepted: RFC 3339 with an offset, and the way
// PocketBase writes dates (UTC, "2026-12-03 09:00:00.000Z"). A time without a zone is
// refused: the appliance cannot know which clinic's clock it was read from.
var sendAtLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.000Z07:00", "2006-01-02 15:04:05Z07:00"}

// parseSendAt reads a caller's send_at.
func parseSendAt(v string) (time.Time, bool) {
	v = strings.TrimSpace(v)
	for _, layout := range sendAtLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// checkReadable checks the values a caller sent for a message or campaign (the request
// body as decoded JSON, or a form's strings) before PocketBase casts them.
func checkReadable(body map[string]any) error {
	for _, f := range []string{"send_at", "language", "category", "channel", "template", "to", "patient_id", "idempotency_key", "campaign"} {
		v, ok := body[f]
		if !ok || v == nil {
			continue
		}
		s, isString := v.(string)
		if st, ok := v.(fmt.Stringer); ok && !isString {
			s, isString = st.String(), true // a value PocketBase has already read (a date)
		}
		if !isString {
			return badField(f, "validation_invalid_type", fmt.Sprintf("%s must be a string", f))
		}
		if s == "" {
			continue
		}
		switch f {
		case "send_at":
			if _, ok := parseSendAt(s); !ok {
				return badField(f, "validation_invalid_send_at", fmt.Sprintf("send_at %q cannot be read; use RFC 3339 with an offset (2026-12-03T09:00:00+03:00) or 2026-12-03 06:00:00.000Z", store.Truncate(s, 40)))
			}
		case "language":
			if s != "en" && s != "ar" {
				return badField(f, "validation_invalid_language", "language must be en or ar")
			}
		case "category":
			if !slices.Contains(store.Categories, s) {
				return badField(f, "validation_invalid_category", fmt.Sprintf("category must be one of %s", strings.Join(store.Categories, ", ")))
			}
		}
	}
	if v, ok := body["context"]; ok && v != nil {
		if _, isObject := v.(map[string]any); !isObject {
			if s, isString := v.(string); !isString || (strings.TrimSpace(s) != "" && !strings.HasPrefix(strings.TrimSpace(s), "{")) {
				return badField("context", "validation_invalid_context", "context must be a JSON object of template variables")
			}
		}
	}
	return nil
}

// onReadableCreateRequest refuses a message or campaign create whose fields cannot be read,
// on PocketBase's own create paths (multipart, expand, fields, /api/batch, the admin UI).
func (s *Service) onReadableCreateRequest(e *core.RecordRequestEvent) error {
	body, err := callerFields(e.RequestEvent)
	if err != nil {
		return e.BadRequestError("Failed to read the request body.", err)
	}
	if err := checkReadable(body); err != nil {
		return err
	}
	return e.Next()
}

// callerFields are the fields of a create as the caller sent them, before PocketBase casts
// them to the collection's types (which reads an unreadable date as empty): a JSON body
// read again (PocketBase keeps request bodies re-readable), or a form's values and its
// @jsonPayload part.
func callerFields(e *core.RequestEvent) (map[string]any, error) {
	out := map[string]any{}
	if form := e.Request.MultipartForm; form != nil {
		for k, vs := range form.Value {
			if k != "@jsonPayload" && len(vs) > 0 {
				out[k] = vs[len(vs)-1]
			}
		}
		for _, payload := range form.Value["@jsonPayload"] {
			if err := json.Unmarshal([]byte(payload), &out); err != nil {
				return nil, fmt.Errorf("failed to read @jsonPayload: %w", err)
			}
		}
		return out, nil
	}
	if e.Request.Body == nil || !strings.Contains(e.Request.Header.Get("Content-Type"), "json") {
		return out, nil
	}
	raw, err := io.ReadAll(e.Request.Body)
	if rr, ok := e.Request.Body.(router.Rereader); ok {
		rr.Reread()
	}
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return out, nil
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("failed to read the JSON body: %w", err)
	}
	return out, nil
}
