package hooks

import (
	"bytes"
	"clinicmsg/internal/compose"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"
)

// onReadableCreateRequest refuses a create or update of a clinic's record whose fields
// cannot be read, on PocketBase's own paths (multipart, expand, fields, /api/batch, the
// admin UI): PocketBase would store "yes" for a switch as off and "tomorrow" for a date as
// none. The send route checks its items the same way (message_send.go).
func (s *Service) onReadableCreateRequest(e *core.RecordRequestEvent) error {
	body, err := callerFields(e.RequestEvent)
	if err != nil {
		return e.BadRequestError("Failed to read the request body.", err)
	}
	if err := s.rules.CheckReadable(body); err != nil {
		return err
	}
	if err := checkFieldTypes(e.Collection, body); err != nil {
		return err
	}
	return e.Next()
}

// checkFieldTypes refuses a switch or a number the caller wrote in a form PocketBase would
// read as something else: a switch takes true/false (or "true"/"false", "1"/"0" from a
// form), a number a number.
func checkFieldTypes(col *core.Collection, body map[string]any) error {
	for name, v := range body {
		if v == nil {
			continue
		}
		switch col.Fields.GetByName(name).(type) {
		case *core.BoolField:
			switch x := v.(type) {
			case bool:
			case string:
				if x != "" && x != "true" && x != "false" && x != "1" && x != "0" {
					return compose.BadField(name, "validation_invalid_bool", fmt.Sprintf("%s must be true or false", name))
				}
			default:
				return compose.BadField(name, "validation_invalid_bool", fmt.Sprintf("%s must be true or false", name))
			}
		case *core.NumberField:
			switch x := v.(type) {
			case float64, json.Number:
			case string:
				if _, err := strconv.ParseFloat(strings.TrimSpace(x), 64); x != "" && err != nil {
					return compose.BadField(name, "validation_invalid_number", fmt.Sprintf("%s must be a number", name))
				}
			default:
				return compose.BadField(name, "validation_invalid_number", fmt.Sprintf("%s must be a number", name))
			}
		}
	}
	return nil
}

// callerFields are the fields of a create as the caller sent them, before PocketBase casts
// them to the collection's types (which reads an unreadable date as empty): a JSON body
// read again (PocketBase keeps request bodies re-readable), or a form's values and its
// @jsonPayload part.
func callerFields(e *core.RequestEvent) (map[string]any, error) {
	out := map[string]any{}
	if strings.HasPrefix(e.Request.Header.Get("Content-Type"), "multipart/") && e.Request.MultipartForm == nil {
		// Not parsed yet (a middleware runs before PocketBase's handler): reading the
		// request info parses it.
		if _, err := e.RequestInfo(); err != nil {
			return nil, err
		}
	}
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
