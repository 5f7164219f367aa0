package bench

import (
	"context"
	"fmt"
	"net/url"
	"time"
)

// b6 is GET /api/clinicmsg/stats over a clinic's year of n messages (plus a tenth as many
// of another clinic's), seeded with raw SQL before the appliance starts and rolled up
// once with `clinicmsg jobs run rollup-message-stats`, as the cron job would have done.
// Requests are sequential, as a dashboard makes them. The baseline is PocketBase counting
// the same year of the clinic's messages itself: a list request for them (totalItems).
func (r *runner) b6() error {
	n, k := r.o.b6Messages, r.o.b6Requests
	var seeded, rolled time.Duration
	prepare := func(dir string) error {
		r.logf("B6: seeding %d messages", n+n/10)
		t0 := time.Now()
		if err := seedStats(dir, r.fx.clinicID, n); err != nil {
			return err
		}
		seeded = time.Since(t0)
		r.logf("B6: rolling up (clinicmsg jobs run rollup-message-stats)")
		t0 = time.Now()
		if _, err := runCLI(context.Background(), r.bin, "jobs", "run", "rollup-message-stats", "--dir", dir); err != nil {
			return err
		}
		rolled = time.Since(t0)
		return nil
	}
	a, err := r.child("B6", "", prepare)
	if err != nil {
		return err
	}
	c := &client{base: a.base, hc: newHTTPClient(2)}
	timeRequests := func(path string, k int) (phase, error) {
		if err := c.call("GET", path, r.fx.appToken, nil, 200, nil); err != nil { // warm
			return phase{}, err
		}
		return load(k, 1, 0, func(int) (int, error) { return 1, c.call("GET", path, r.fx.appToken, nil, 200, nil) })
	}
	var total struct {
		Total int `json:"total"`
	}
	if err := c.call("GET", "/api/clinicmsg/stats?days=366", r.fx.appToken, nil, 200, &total); err != nil {
		r.finish("B6", a)
		return err
	}
	cpu0 := a.cpuTime()
	year, err := timeRequests("/api/clinicmsg/stats?days=366", k)
	cpu := a.cpuTime() - cpu0
	var month, week, base phase
	if err == nil {
		month, err = timeRequests("/api/clinicmsg/stats?days=30", k)
	}
	if err == nil {
		week, err = timeRequests("/api/clinicmsg/stats?days=7", k)
	}
	if err == nil {
		filter := url.QueryEscape(fmt.Sprintf("created >= '%s'", since(time.Now().Add(-366*24*time.Hour))))
		base, err = timeRequests("/api/collections/messages/records?perPage=1&fields=id&filter="+filter, max(3, k/4))
	}
	// The staff dashboard's message list over the same year: its first page, a page half a
	// year back (the cursor the list follows when a clinic scrolls), and the first page of
	// failed messages, each as the dashboard asks for it (51 rows, newest first, no count).
	var lists []phase
	listPaths := []string{"", "(created < '" + since(time.Now().Add(-183*24*time.Hour)) + "')", "(status = 'failed')"}
	for _, f := range listPaths {
		if err != nil {
			break
		}
		q := "/api/collections/messages/records?page=1&perPage=51&sort=-created,-id&skipTotal=1"
		if f != "" {
			q += "&filter=" + url.QueryEscape(f)
		}
		var p phase
		p, err = timeRequests(q, k)
		lists = append(lists, p)
	}
	if stopErr := r.finish("B6", a); err == nil {
		err = stopErr
	}
	if err != nil {
		return err
	}
	value, baseline := year.pct(50), base.pct(50)
	res := Result{
		Name:  "B6",
		Title: fmt.Sprintf("GET /api/clinicmsg/stats?days=366 over %d messages (median of %d sequential requests)", total.Total, k),
		Value: value, Unit: "ms", Baseline: baseline, Ratio: baseline / value,
		BaselineOf: "PocketBase counting the same year of the clinic's messages: GET /api/collections/messages/records?perPage=1 filtered by created (median, ms)",
		Target:     "≤ 300 ms",
		P50ms:      year.pct(50), P95ms: year.pct(95), P99ms: year.pct(99), N: total.Total, RSSMB: r.rss["B6"], Seconds: year.elapsed.Seconds(),
	}
	cpuOf(&res, cpu, year.elapsed, year.ops)
	res.CPUPerItemUs = roundTo(float64(cpu.Microseconds())/float64(max(year.ops, 1)), 0)
	res.judge(value <= 300)
	res.note("days=30: median %.1f ms; days=7: median %.1f ms", month.pct(50), week.pct(50))
	res.note("seeding %d messages took %v; the first rollup-message-stats %v (CPU µs/item here is per request)", n+n/10, seeded.Round(100*time.Millisecond), rolled.Round(100*time.Millisecond))
	r.add(res)

	// The slowest of the list's three pages, by median.
	worst := 0.0
	for _, p := range lists {
		worst = max(worst, p.pct(50))
	}
	list := Result{
		Name:  "B6-list",
		Title: fmt.Sprintf("the staff dashboard's message list over %d messages: 51 rows newest first, no count (median of %d sequential requests per page)", total.Total, k),
		Value: worst, Unit: "ms", Baseline: baseline, Ratio: baseline / max(worst, 0.001),
		BaselineOf: res.BaselineOf,
		Target:     "≤ 200 ms",
		P50ms:      lists[0].pct(50), P95ms: lists[0].pct(95), P99ms: lists[0].pct(99), N: total.Total, RSSMB: r.rss["B6"],
	}
	list.judge(worst <= 200)
	list.note("first page: median %.1f ms, p99 %.1f ms; half a year back (cursor): median %.1f ms; failed only: median %.1f ms",
		lists[0].pct(50), lists[0].pct(99), lists[1].pct(50), lists[2].pct(50))
	r.add(list)
	return nil
}
