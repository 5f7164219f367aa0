package compose_test

import (
	"testing"
	"time"

	"clinicmsg/internal/compose"
)

func TestQuietEnd(t *testing.T) {
	riyadh, _ := time.LoadLocation("Asia/Riyadh")
	berlin, _ := time.LoadLocation("Europe/Berlin")
	at := func(loc *time.Location, y int, m time.Month, d, h, min int) time.Time {
		return time.Date(y, m, d, h, min, 0, 0, loc)
	}
	scenarios := []struct {
		name       string
		t          time.Time
		loc        *time.Location
		start, end string
		want       time.Time
	}{
		{"inside, before midnight", at(riyadh, 2026, 11, 28, 22, 30), riyadh, "21:00", "08:00", at(riyadh, 2026, 11, 29, 8, 0)},
		{"inside, after midnight", at(riyadh, 2026, 11, 29, 3, 0), riyadh, "21:00", "08:00", at(riyadh, 2026, 11, 29, 8, 0)},
		{"at the start", at(riyadh, 2026, 11, 28, 21, 0), riyadh, "21:00", "08:00", at(riyadh, 2026, 11, 29, 8, 0)},
		{"at the end", at(riyadh, 2026, 11, 29, 8, 0), riyadh, "21:00", "08:00", time.Time{}},
		{"outside", at(riyadh, 2026, 11, 28, 12, 0), riyadh, "21:00", "08:00", time.Time{}},
		{"same-day window", at(riyadh, 2026, 11, 28, 13, 30), riyadh, "13:00", "14:00", at(riyadh, 2026, 11, 28, 14, 0)},
		{"no window", at(riyadh, 2026, 11, 28, 22, 0), riyadh, "", "", time.Time{}},
		{"end of month", at(riyadh, 2026, 11, 30, 23, 0), riyadh, "21:00", "08:00", at(riyadh, 2026, 12, 1, 8, 0)},
		// Berlin springs forward on 2026-03-29 at 02:00: the night is an hour shorter.
		{"dst spring forward", at(berlin, 2026, 3, 28, 23, 0), berlin, "22:00", "07:00", at(berlin, 2026, 3, 29, 7, 0)},
		{"dst fall back", at(berlin, 2026, 10, 24, 23, 0), berlin, "22:00", "07:00", at(berlin, 2026, 10, 25, 7, 0)},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			got := compose.QuietEnd(s.t, s.loc, s.start, s.end)
			if !got.Equal(s.want) {
				t.Fatalf("expected %v, got %v", s.want, got)
			}
		})
	}
	// The spring-forward night lasts 8 hours in UTC, the fall-back night 10.
	spring := compose.QuietEnd(at(berlin, 2026, 3, 28, 22, 0), berlin, "22:00", "07:00").Sub(at(berlin, 2026, 3, 28, 22, 0))
	fall := compose.QuietEnd(at(berlin, 2026, 10, 24, 22, 0), berlin, "22:00", "07:00").Sub(at(berlin, 2026, 10, 24, 22, 0))
	if spring != 8*time.Hour || fall != 10*time.Hour {
		t.Fatalf("expected DST nights of 8h and 10h, got %v and %v", spring, fall)
	}
}
