package compose

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"

	"clinicmsg/providers"
)

// ConsentReason is the patient's consent for a message: the strictest answer of every
// preference that matches it (by patient id, by phone, by email), so an opt-out by number
// holds whatever patient_id a message names. It says why the message may not go, or "".
func ConsentReason(prefs []*core.Record, channel, category string) string {
	best, bestRank := "", 0
	for _, p := range prefs {
		r := skipReason(p, channel, category)
		rank := 0
		switch {
		case strings.HasPrefix(r, "opted_out"):
			rank = 3
		case strings.HasPrefix(r, "channel_disabled"):
			rank = 2
		case r != "":
			rank = 1
		}
		if rank > bestRank {
			best, bestRank = r, rank
		}
	}
	return best
}

// skipReason says why preferences forbid this message, or "" if they allow it.
func skipReason(pref *core.Record, channel, category string) string {
	if pref == nil {
		return ""
	}
	if pref.GetBool("opted_out") {
		return "opted_out: the patient opted out of messages"
	}
	field := channel
	if channel == providers.ChannelEmail {
		field = "email_enabled"
	}
	if !pref.GetBool(field) {
		return fmt.Sprintf("channel_disabled: the patient turned off %s", channel)
	}
	if category == "" {
		category = "general"
	}
	var cats map[string]bool
	if raw, ok := pref.Get("categories").(types.JSONRaw); ok && len(raw) > 0 {
		_ = json.Unmarshal(raw, &cats) // a malformed map allows everything rather than silencing a patient
	}
	if allowed, ok := cats[category]; ok && !allowed {
		return fmt.Sprintf("category_disabled: the patient turned off %s messages", category)
	}
	return ""
}
