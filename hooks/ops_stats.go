package hooks

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"clinicmsg/internal/compose"
	"clinicmsg/internal/store"
	"clinicmsg/providers"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
)

// The statistics are read from a daily roll-up (pb_migrations/1764400000_jobs.go) for
// finished days and counted live from messages for today and for any day not rolled up
// yet; either way they are SQL aggregates over idx_messages_clinic_created, never records
// loaded one by one.

const (
	// statsRecentDays is how many finished days every roll-up recomputes: late delivery
	// reports and polls still change them. Older days are recomputed when a change to one
	// of their messages marks them dirty (markStatsDirty).
	statsRecentDays = 3
	// statsMaxDays is the widest range GET /stats accepts.
	statsMaxDays = 366
	// topErrors is how many error codes the statistics list.
	topErrors = 10
)

var statuses = []string{
	providers.StatusScheduled, providers.StatusQueued, providers.StatusSending, providers.StatusSent,
	providers.StatusDelivered, providers.StatusRead, providers.StatusFailed, providers.StatusUndelivered,
	providers.StatusCanceled, providers.StatusSkipped,
}

// outcome classifies a stored status for the success rates. A message is final when
// nothing more will be learned about its delivery: delivered, read, failed, undelivered,
// and an email accepted by the mail server ("sent"; email has no delivery receipts, so
// that is as far as it goes). Skipped and canceled messages were never meant to be sent
// and in-flight ones (scheduled, queued, sending, an SMS or WhatsApp "sent" waiting for
// its receipt) are not decided yet: neither counts.
func outcome(channel, status string) (final, success bool) {
	switch status {
	case providers.StatusDelivered, providers.StatusRead:
		return true, true
	case providers.StatusFailed, providers.StatusUndelivered:
		return true, false
	case providers.StatusSent:
		if channel == providers.ChannelEmail {
			return true, true
		}
	}
	return false, false
}

// Stats is the answer of GET /api/clinicmsg/stats (the original spec's
// get_message_statistics, and more). See docs/OPERATIONS.md for every definition.
type Stats struct {
	Clinic           string                        `json:"clinic"`
	Timezone         string                        `json:"timezone"`
	Days             int                           `json:"days"`
	From             string                        `json:"from"` // first local day, YYYY-MM-DD
	To               string                        `json:"to"`   // today, local
	Total            int                           `json:"total"`
	ByChannel        map[string]int                `json:"by_channel"`
	ByStatus         map[string]int                `json:"by_status"`
	Final            int                           `json:"final"`
	Successful       int                           `json:"successful"`
	SuccessRate      float64                       `json:"success_rate"`
	ByProvider       map[string]*ProviderStats     `json:"by_provider"`
	ByDay            []*DayStats                   `json:"by_day"`
	Latency          map[string]LatencyStats       `json:"latency"`
	Retried          int                           `json:"retried"`
	RetrySuccessRate float64                       `json:"retry_success_rate"`
	Cost             map[string]map[string]float64 `json:"cost"`
	TopErrors        []ErrorCount                  `json:"top_errors"`
	GeneratedAt      time.Time                     `json:"generated_at"`
}

// ProviderStats is one provider's share of the statistics.
type ProviderStats struct {
	Total       int     `json:"total"`
	Final       int     `json:"final"`
	Successful  int     `json:"successful"`
	SuccessRate float64 `json:"success_rate"`
}

// DayStats is one local day of the series.
type DayStats struct {
	Date        string  `json:"date"`
	Total       int     `json:"total"`
	Final       int     `json:"final"`
	Successful  int     `json:"successful"`
	Failed      int     `json:"failed"` // failed or undelivered
	SuccessRate float64 `json:"success_rate"`
}

// LatencyStats are percentiles of one latency, in seconds.
type LatencyStats struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_seconds"`
	P95   float64 `json:"p95_seconds"`
}

// ErrorCount is how many messages carry one provider error code.
type ErrorCount struct {
	Code  string `json:"code"`
	Count int    `json:"count"`
}

// countRow is one group of a day's messages, as rolled up or counted live.
type countRow struct {
	Day       string  `db:"day"`
	Channel   string  `db:"channel"`
	Status    string  `db:"status"`
	Provider  string  `db:"provider"`
	Currency  string  `db:"currency"`
	Retried   bool    `db:"retried"`
	ErrorCode string  `db:"error_code"`
	N         int     `db:"n"`
	Cost      float64 `db:"cost"`
}

type latencyRow struct {
	Kind   string `db:"kind"`
	Bucket int    `db:"bucket"`
	N      int    `db:"n"`
}

// statsDay is one local day with its bounds in UTC.
type statsDay struct {
	name       string
	start, end time.Time
}

// localDays lists the n local days ending today in loc.
func localDays(now time.Time, loc *time.Location, n int) []statsDay {
	l := now.In(loc)
	out := make([]statsDay, n)
	for i := range n {
		d := time.Date(l.Year(), l.Month(), l.Day()-(n-1)+i, 0, 0, 0, 0, loc)
		next := time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc)
		out[i] = statsDay{name: d.Format(time.DateOnly), start: d.UTC(), end: next.UTC()}
	}
	return out
}

// messageStats computes the statistics of clinic c for the days local days ending today.
func (s *Service) messageStats(app core.App, c clinicInfo, days int, now time.Time) (*Stats, error) {
	loc := c.location()
	tz := loc.String()
	dayList := localDays(now, loc, days)
	from, today := dayList[0].name, dayList[len(dayList)-1].name

	var rolled []string
	err := app.DB().NewQuery(`SELECT day FROM clinicmsg_stats_days
		WHERE clinic = {:clinic} AND tz = {:tz} AND day >= {:from} AND day < {:today}`).
		Bind(dbx.Params{"clinic": c.ID, "tz": tz, "from": from, "today": today}).Column(&rolled)
	if err != nil {
		return nil, fmt.Errorf("failed to read the statistics roll-up: %w", err)
	}
	var counts []countRow
	var lat []latencyRow
	if len(rolled) > 0 {
		params := dbx.Params{"clinic": c.ID, "tz": tz, "from": from, "today": today}
		inRolled := `day IN (SELECT day FROM clinicmsg_stats_days WHERE clinic = {:clinic} AND tz = {:tz} AND day >= {:from} AND day < {:today})`
		err := app.DB().NewQuery(`SELECT day, channel, status, provider, currency, retried, error_code, n, cost
			FROM clinicmsg_stats_counts WHERE clinic = {:clinic} AND day >= {:from} AND day < {:today} AND ` + inRolled).
			Bind(params).All(&counts)
		if err != nil {
			return nil, fmt.Errorf("failed to read rolled-up counts: %w", err)
		}
		err = app.DB().NewQuery(`SELECT kind, bucket, SUM(n) AS n FROM clinicmsg_stats_latency
			WHERE clinic = {:clinic} AND day >= {:from} AND day < {:today} AND ` + inRolled + ` GROUP BY kind, bucket`).
			Bind(params).All(&lat)
		if err != nil {
			return nil, fmt.Errorf("failed to read rolled-up latencies: %w", err)
		}
	}
	isRolled := map[string]bool{}
	for _, d := range rolled {
		isRolled[d] = true
	}
	for _, d := range dayList {
		if isRolled[d.name] {
			continue
		}
		dc, dl, err := countDay(app, c.ID, d)
		if err != nil {
			return nil, err
		}
		counts = append(counts, dc...)
		lat = append(lat, dl...)
	}
	return summarize(c, tz, dayList, counts, lat, now), nil
}

// countDay counts one day live from messages.
func countDay(app core.App, clinic string, d statsDay) ([]countRow, []latencyRow, error) {
	params := dbx.Params{"clinic": clinic, "start": store.FormatTime(d.start), "end": store.FormatTime(d.end)}
	var counts []countRow
	if err := app.DB().NewQuery(store.StatsCountSQL).Bind(params).All(&counts); err != nil {
		return nil, nil, fmt.Errorf("failed to count messages of %s: %w", d.name, err)
	}
	for i := range counts {
		counts[i].Day = d.name
	}
	var lat []latencyRow
	if err := app.DB().NewQuery(store.StatsLatencySQL).Bind(params).All(&lat); err != nil {
		return nil, nil, fmt.Errorf("failed to measure latencies of %s: %w", d.name, err)
	}
	return counts, lat, nil
}

func summarize(c clinicInfo, tz string, dayList []statsDay, counts []countRow, lat []latencyRow, now time.Time) *Stats {
	st := &Stats{
		Clinic: c.ID, Timezone: tz, Days: len(dayList), From: dayList[0].name, To: dayList[len(dayList)-1].name,
		ByChannel: map[string]int{}, ByStatus: map[string]int{}, ByProvider: map[string]*ProviderStats{},
		Cost: map[string]map[string]float64{}, TopErrors: []ErrorCount{}, GeneratedAt: now.UTC(),
	}
	for _, ch := range store.Channels {
		st.ByChannel[ch] = 0
	}
	for _, status := range statuses {
		st.ByStatus[status] = 0
	}
	byDay := map[string]*DayStats{}
	for _, d := range dayList {
		ds := &DayStats{Date: d.name}
		byDay[d.name] = ds
		st.ByDay = append(st.ByDay, ds)
	}
	errs := map[string]int{}
	retriedOK := 0
	for _, r := range counts {
		final, success := outcome(r.Channel, r.Status)
		st.Total += r.N
		st.ByChannel[r.Channel] += r.N
		st.ByStatus[r.Status] += r.N
		if ds := byDay[r.Day]; ds != nil {
			ds.Total += r.N
			if final {
				ds.Final += r.N
			}
			if success {
				ds.Successful += r.N
			}
			if r.Status == providers.StatusFailed || r.Status == providers.StatusUndelivered {
				ds.Failed += r.N
			}
		}
		if final {
			st.Final += r.N
			if r.Retried {
				st.Retried += r.N
			}
		}
		if success {
			st.Successful += r.N
			if r.Retried {
				retriedOK += r.N
			}
		}
		if r.Provider != "" {
			ps := st.ByProvider[r.Provider]
			if ps == nil {
				ps = &ProviderStats{}
				st.ByProvider[r.Provider] = ps
			}
			ps.Total += r.N
			if final {
				ps.Final += r.N
			}
			if success {
				ps.Successful += r.N
			}
		}
		if r.Cost != 0 && r.Currency != "" {
			if st.Cost[r.Channel] == nil {
				st.Cost[r.Channel] = map[string]float64{}
			}
			st.Cost[r.Channel][r.Currency] += r.Cost
		}
		if r.ErrorCode != "" {
			errs[r.ErrorCode] += r.N
		}
	}
	st.SuccessRate = percent(st.Successful, st.Final)
	st.RetrySuccessRate = percent(retriedOK, st.Retried)
	for _, ps := range st.ByProvider {
		ps.SuccessRate = percent(ps.Successful, ps.Final)
	}
	for _, ds := range st.ByDay {
		ds.SuccessRate = percent(ds.Successful, ds.Final)
	}
	for _, byCur := range st.Cost {
		for cur, v := range byCur {
			byCur[cur] = math.Round(v*10000) / 10000
		}
	}
	for code, n := range errs {
		st.TopErrors = append(st.TopErrors, ErrorCount{Code: code, Count: n})
	}
	slices.SortFunc(st.TopErrors, func(a, b ErrorCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Code, b.Code))
	})
	st.TopErrors = st.TopErrors[:min(len(st.TopErrors), topErrors)]
	st.Latency = latencies(lat)
	return st
}

// percent is part of whole in percent with two decimals; 0 when whole is 0.
func percent(part, whole int) float64 {
	if whole == 0 {
		return 0
	}
	return round2(100 * float64(part) / float64(whole))
}

// latencies merges histogram rows and reads p50 and p95 by nearest rank. A bucket stands
// for e^(b/10) ms, so a percentile is within about 5% of the exact value.
func latencies(rows []latencyRow) map[string]LatencyStats {
	hist := map[string]map[int]int{"queue": {}, "delivery": {}}
	for _, r := range rows {
		if hist[r.Kind] == nil {
			hist[r.Kind] = map[int]int{}
		}
		hist[r.Kind][r.Bucket] += r.N
	}
	out := map[string]LatencyStats{}
	for kind, h := range hist {
		buckets := make([]int, 0, len(h))
		total := 0
		for b, n := range h {
			buckets = append(buckets, b)
			total += n
		}
		slices.Sort(buckets)
		at := func(p float64) float64 {
			rank := int(math.Ceil(p * float64(total)))
			cum := 0
			for _, b := range buckets {
				cum += h[b]
				if cum >= rank {
					return math.Round(math.Exp(float64(b)/10)) / 1000
				}
			}
			return 0
		}
		ls := LatencyStats{Count: total}
		if total > 0 {
			ls.P50, ls.P95 = at(0.50), at(0.95)
		}
		out[kind] = ls
	}
	return out
}

// handleStats answers GET /api/clinicmsg/stats?days=7 for the caller's clinic; a superuser
// names the clinic with clinic=.
func (s *Service) handleStats(e *core.RequestEvent) error {
	q := e.Request.URL.Query()
	days := 7
	if q.Has("days") {
		n, err := strconv.Atoi(q.Get("days"))
		if err != nil || n < 1 || n > statsMaxDays || !isDigits(q.Get("days")) {
			return compose.BadField("days", "validation_invalid_days", fmt.Sprintf("days must be a whole number from 1 to %d", statsMaxDays))
		}
		days = n
	}
	clinicID := q.Get("clinic")
	switch {
	case e.HasSuperuserAuth():
		if clinicID == "" {
			return compose.BadField("clinic", "validation_required", "clinic is required: a superuser belongs to no clinic")
		}
	case e.Auth.Collection().Name != "users" || e.Auth.GetString("clinic") == "":
		return compose.FieldError(http.StatusForbidden, "clinic", "validation_no_clinic", "your account belongs to no clinic; ask a superuser to assign one")
	case clinicID != "" && clinicID != e.Auth.GetString("clinic"):
		return compose.FieldError(http.StatusForbidden, "clinic", "validation_other_clinic", "clinic must be your own clinic")
	default:
		clinicID = e.Auth.GetString("clinic")
	}
	var c clinicInfo
	err := e.App.DB().NewQuery("SELECT id, timezone, retention_days FROM clinics WHERE id = {:id}").Bind(dbx.Params{"id": clinicID}).One(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return compose.BadField("clinic", "validation_invalid_clinic", "no clinic has this id")
	}
	if err != nil {
		return e.InternalServerError("Failed to load the clinic.", err)
	}
	st, err := s.messageStats(e.App, c, days, time.Now())
	if err != nil {
		return e.InternalServerError("Failed to compute the statistics.", err)
	}
	return e.JSON(http.StatusOK, st)
}

func isDigits(v string) bool {
	for _, r := range v {
		if r < '0' || r > '9' {
			return false
		}
	}
	return v != ""
}

// rollupStats is rollup-message-stats: for every clinic it recomputes the last
// statsRecentDays finished days, and every finished day since its oldest message that has
// no roll-up in the clinic's current time zone (a new install, a dirty day, a time zone
// change). One day per transaction keeps the writer free.
func (s *Service) rollupStats(ctx context.Context, run *jobRun) error {
	clinics, err := s.clinics(s.app)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, c := range clinics {
		var first string
		err := s.app.DB().NewQuery("SELECT COALESCE(MIN(created), '') FROM messages WHERE clinic = {:clinic}").
			Bind(dbx.Params{"clinic": c.ID}).Row(&first)
		if err != nil {
			return fmt.Errorf("failed to find the clinic's oldest message: %w", err)
		}
		if first == "" {
			continue
		}
		firstAt, err := time.Parse("2006-01-02 15:04:05.000Z", first)
		if err != nil {
			return fmt.Errorf("failed to read a message date %q: %w", first, err)
		}
		loc := c.location()
		tz := loc.String()
		var marks []struct {
			Day string `db:"day"`
			TZ  string `db:"tz"`
		}
		err = s.app.DB().NewQuery("SELECT day, tz FROM clinicmsg_stats_days WHERE clinic = {:clinic}").
			Bind(dbx.Params{"clinic": c.ID}).All(&marks)
		if err != nil {
			return fmt.Errorf("failed to read the roll-up markers: %w", err)
		}
		done := map[string]bool{}
		for _, m := range marks {
			done[m.Day] = m.TZ == tz
		}
		l := now.In(loc)
		todayStart := time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)
		recentFrom := todayStart.AddDate(0, 0, -statsRecentDays)
		f := firstAt.In(loc)
		for d := time.Date(f.Year(), f.Month(), f.Day(), 0, 0, 0, 0, loc); d.Before(todayStart); d = time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc) {
			name := d.Format(time.DateOnly)
			if done[name] && d.Before(recentFrom) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("roll-up stopped early: %w", err)
			}
			next := time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc)
			if err := s.rollupDay(c.ID, tz, statsDay{name: name, start: d.UTC(), end: next.UTC()}); err != nil {
				return err
			}
			run.add("days", 1)
		}
	}
	if _, ok := run.detail["days"]; !ok {
		run.set("days", 0)
	}
	return nil
}

// rollupDay replaces one clinic day's roll-up in one transaction.
func (s *Service) rollupDay(clinic, tz string, d statsDay) error {
	if err := store.RollupDay(s.app, clinic, d.name, tz, d.start, d.end); err != nil {
		return fmt.Errorf("failed to roll up %s of clinic %s: %w", d.name, clinic, err)
	}
	return nil
}

// markStatsDirty drops the roll-up marker of the day a changed or deleted message belongs
// to, when that day is older than the ones every roll-up recomputes anyway, so the day is
// counted live until the next roll-up rebuilds it. Runs after the change committed.
func (s *Service) markStatsDirty(app core.App, rec *core.Record) {
	created := rec.GetDateTime("created").Time()
	if created.IsZero() || created.After(time.Now().Add(-(statsRecentDays-1)*24*time.Hour)) {
		return
	}
	var c clinicInfo
	err := app.DB().NewQuery("SELECT id, timezone, retention_days FROM clinics WHERE id = {:id}").
		Bind(dbx.Params{"id": rec.GetString("clinic")}).One(&c)
	if err != nil {
		return // the clinic is gone; cleanup prunes its statistics
	}
	if err := store.MarkStatsDayDirty(app, c.ID, created.In(c.location()).Format(time.DateOnly)); err != nil {
		app.Logger().Warn("failed to mark a statistics day for recount", "message", rec.Id, "error", err)
	}
}

// pruneStats drops a clinic's roll-up before cutoffDay, whose messages are gone, and the
// marker of cutoffDay itself, which is now partly deleted.
func (s *Service) pruneStats(clinic, cutoffDay string) error {
	return store.PruneStats(s.app, clinic, cutoffDay)
}
