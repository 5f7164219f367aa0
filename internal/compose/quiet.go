package compose

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"
	_ "time/tzdata" // clinics' time zones must load on a VM without a zoneinfo package

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"
)

// defaultQuietCategories are held during a clinic's quiet hours unless the clinic lists
// its own; results, confirmations and cancellations go at once.
var defaultQuietCategories = []string{"marketing", "general", "reminder"}

// QuietEnd returns when the clinic's quiet window that contains t ends, or the zero time
// if t is outside it (or the clinic has none). start and end are "HH:MM" in loc; a window
// may cross midnight (21:00–08:00). Dates are built in loc, so daylight-saving days come out
// right.
func QuietEnd(t time.Time, loc *time.Location, start, end string) time.Time {
	sh, sm, ok1 := parseClock(start)
	eh, em, ok2 := parseClock(end)
	if !ok1 || !ok2 || (sh == eh && sm == em) {
		return time.Time{}
	}
	local := t.In(loc)
	y, m, d := local.Date()
	startAt := time.Date(y, m, d, sh, sm, 0, 0, loc)
	endAt := time.Date(y, m, d, eh, em, 0, 0, loc)
	if startAt.Before(endAt) { // e.g. 13:00–15:00
		if !local.Before(startAt) && local.Before(endAt) {
			return endAt
		}
		return time.Time{}
	}
	switch { // crosses midnight
	case !local.Before(startAt):
		return time.Date(y, m, d+1, eh, em, 0, 0, loc)
	case local.Before(endAt):
		return endAt
	}
	return time.Time{}
}

func parseClock(s string) (int, int, bool) {
	var h, m int
	if len(s) != 5 {
		return 0, 0, false
	}
	if _, err := fmt.Sscanf(s, "%02d:%02d", &h, &m); err != nil || h > 23 || m > 59 {
		return 0, 0, false
	}
	return h, m, true
}

// quietCategories are the categories the clinic holds during its quiet hours.
func quietCategories(clinic *core.Record) []string {
	if raw, ok := clinic.Get("quiet_categories").(types.JSONRaw); ok && len(raw) > 0 && string(raw) != "null" {
		var cats []string
		if err := json.Unmarshal(raw, &cats); err == nil {
			return cats
		}
	}
	return defaultQuietCategories
}

// HoldForQuietHours moves a send time that falls in the clinic's quiet window to its end,
// for the categories the clinic holds. It returns the (possibly moved) time and whether
// it moved.
func HoldForQuietHours(clinic *core.Record, category string, at time.Time) (time.Time, bool) {
	if category == "" {
		category = "general"
	}
	if !slices.Contains(quietCategories(clinic), category) {
		return at, false
	}
	if endAt := QuietEnd(at, ClinicLocation(clinic), clinic.GetString("quiet_start"), clinic.GetString("quiet_end")); !endAt.IsZero() {
		return endAt.UTC(), true
	}
	return at, false
}

// locations holds loaded time zones; only names that load are kept, so it is bounded by
// the IANA database (about 600 names) whatever callers send.
var locations sync.Map // IANA name -> *time.Location

// LoadLocation loads an IANA time zone once.
func LoadLocation(name string) (*time.Location, error) {
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location), nil
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	locations.Store(name, l)
	return l, nil
}

// ClinicLocation is the clinic's time zone, UTC when it has none that loads.
func ClinicLocation(clinic *core.Record) *time.Location {
	loc, err := LoadLocation(clinic.GetString("timezone"))
	if err != nil {
		return time.UTC
	}
	return loc
}
