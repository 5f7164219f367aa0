package hooks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"
)

// onReadableCreateRequest refuses a message or campaign create whose fields cannot be read,
// on PocketBase's own create paths (multipart, expand, fields, /api/batch, the admin UI).
func (s *Service) onReadableCreateRequest(e *core.RecordRequestEvent) error {
	body, err := callerFields(e.RequestEvent)
	if err != nil {
		return e.BadRequestError("Failed to read the request body.", err)
	}
	if err := s.rules.CheckReadable(body); err != nil {
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
