package compose

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// PocketBase reads a field it cannot parse as empty: "send_at": "tomorrow" would be stored
// as no send_at, and a message meant for tomorrow would go out now. Every create path reads
// the caller's own values through CheckReadable first, so a value that cannot be read is a
// 400 naming its field and nothing is stored.

// sendAtLayouts are the send_at formats accepted: RFC 3339 with an offset, and the way
// PocketBase writes dates (UTC, "2026-12-03 09:00:00.000Z"). A time without a zone is
// refused: the appliance cannot know which clinic's clock it was read from.
var sendAtLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.000Z07:00", "2006-01-02 15:04:05Z07:00"}

// ParseSendAt reads a caller's send_at.
func ParseSendAt(v string) (time.Time, bool) {
	v = strings.TrimSpace(v)
	for _, layout := range sendAtLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// CheckReadable checks the values a caller sent for a message or campaign (the request
// body as decoded JSON, or a form's strings) before PocketBase casts them.
func (r *Rules) CheckReadable(body map[string]any) error {
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
			return BadField(f, "validation_invalid_type", fmt.Sprintf("%s must be a string", f))
		}
		if s == "" {
			continue
		}
		switch f {
		case "send_at":
			if _, ok := ParseSendAt(s); !ok {
				return BadField(f, "validation_invalid_send_at", fmt.Sprintf("send_at %.40q cannot be read; use RFC 3339 with an offset (2026-12-03T09:00:00+03:00) or 2026-12-03 06:00:00.000Z", s))
			}
		case "language":
			if s != "en" && s != "ar" {
				return BadField(f, "validation_invalid_language", "language must be en or ar")
			}
		case "category":
			if !slices.Contains(r.Categories, s) {
				return BadField(f, "validation_invalid_category", fmt.Sprintf("category must be one of %s", strings.Join(r.Categories, ", ")))
			}
		}
	}
	if v, ok := body["context"]; ok && v != nil {
		if _, isObject := v.(map[string]any); !isObject {
			if s, isString := v.(string); !isString || (strings.TrimSpace(s) != "" && !strings.HasPrefix(strings.TrimSpace(s), "{")) {
				return BadField("context", "validation_invalid_context", "context must be a JSON object of template variables")
			}
		}
	}
	return nil
}
