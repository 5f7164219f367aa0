package bench

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"
)

// b2 is campaign fan-out: the time from POST of a campaign of n recipients to all its
// messages queued (the campaign's cursor reaching its total), against inserting the same
// rows (each message and its audit row) with raw SQL in 1,000-row transactions into a
// fresh PocketBase data folder with clinicmsg's schema, in this process. Each size runs
// on its own appliance, fresh from the template like the baseline's folder. The
// appliance's provider holds its one send (CLINICMSG_WORKERS=1), so this measures the
// fan-out only, not the dispatcher draining the queue at the same time.
func (r *runner) b2() error {
	sizes, err := parseInts(r.o.b2Sizes)
	if err != nil {
		return fmt.Errorf("--b2-recipients: %w", err)
	}
	for _, n := range sizes {
		res, err := r.b2campaign(n)
		if err != nil {
			return err
		}
		r.add(res)
	}
	return nil
}

func (r *runner) b2campaign(n int) (Result, error) {
	label := fmt.Sprintf("%dk", n/1000)
	if n%1000 != 0 {
		label = fmt.Sprint(n)
	}
	name := "B2-" + label
	r.logf("B2: baseline, raw INSERT of %d messages and their audit rows", n)
	raw, err := rawInsert(filepath.Join(r.work, name+"-raw"), r.fx.clinicID, n, false)
	if err != nil {
		return Result{}, err
	}
	// For comparison, the messages alone (skipped for big campaigns to keep the run short).
	var rawMsgs time.Duration
	if n <= 20_000 {
		if rawMsgs, err = rawInsert(filepath.Join(r.work, name+"-rawmsg"), r.fx.clinicID, n, true); err != nil {
			return Result{}, err
		}
	}

	recipients := make([]map[string]any, n)
	for i := range n {
		recipients[i] = map[string]any{"to": phoneLocal(i), "patient_id": patientID(i), "context": map[string]any{"patient_name": "Sara"}}
	}
	body := mustJSON(map[string]any{
		"name": fmt.Sprintf("bench %d", n), "channel": "sms", "template": templateCode, "category": "reminder",
		"context": map[string]any{"date": "1 Dec", "time": "10:00"}, "recipients": recipients,
	})

	a, f, err := r.acceptingChild(name, nil)
	if err != nil {
		return Result{}, err
	}
	defer f.Close()
	stop := func() error {
		f.Close() // releases the held send, so the appliance stops at once
		err := r.finish(name, a)
		r.rss["B2"] = max(r.rss["B2"], r.rss[name])
		delete(r.rss, name)
		return err
	}
	db, closeDB, err := openData(a.dir)
	if err != nil {
		stop()
		return Result{}, err
	}
	defer closeDB()
	c := &client{base: a.base, hc: newHTTPClient(2)}

	r.logf("B2: campaign of %d recipients (%.1f MB request)", n, float64(len(body))/(1<<20))
	cpu0 := a.cpuTime()
	start := time.Now()
	status, ans, err := c.do("POST", "/api/collections/campaigns/records?fields=id", r.fx.appToken, "application/json", body)
	var camp struct {
		ID string `json:"id"`
	}
	if err != nil || status != 200 || json.Unmarshal(ans, &camp) != nil {
		stop()
		return Result{}, fmt.Errorf("failed to create a campaign: %d %v %.300s", status, err, ans)
	}
	created := time.Since(start)
	// The record carries the whole recipient list, so every API read of it loads megabytes;
	// the two counters are read from the database file instead, at no cost to the appliance.
	deadline := start.Add(r.o.b2Timeout)
	var cursor, total int
	for {
		err := db.QueryRow(`SELECT "cursor", total FROM campaigns WHERE id = ?`, camp.ID).Scan(&cursor, &total)
		if (err == nil && total > 0 && cursor >= total) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	measured := time.Since(start)
	cpu := a.cpuTime() - cpu0
	closeDB()
	if err := stop(); err != nil {
		return Result{}, err
	}
	queued := min(cursor, n)
	if queued == 0 {
		return Result{}, fmt.Errorf("campaign of %d: nothing queued after %v", n, measured.Round(time.Second))
	}
	elapsed := measured
	projected := queued < n
	if projected {
		// The bench stopped waiting: the time is projected from the rate so far.
		elapsed = time.Duration(float64(measured) * float64(n) / float64(queued))
	}
	res := Result{
		Name:  "B2/" + label,
		Title: fmt.Sprintf("campaign fan-out, %d recipients: POST to all messages queued (cursor = total)", n),
		Value: elapsed.Seconds(), Unit: "s", Baseline: raw.Seconds(), Ratio: raw.Seconds() / elapsed.Seconds(),
		BaselineOf: fmt.Sprintf("raw INSERT of the same %d messages and their audit rows, 1,000 per transaction, fresh data folder, in the bench process: %.0f msg/s",
			n, float64(n)/raw.Seconds()),
		N: n, RSSMB: r.rss["B2"], Seconds: measured.Seconds(),
	}
	cpuOf(&res, cpu, measured, queued)
	res.note("%.0f messages/s queued; the create request itself took %v", float64(queued)/measured.Seconds(), created.Round(time.Millisecond))
	if projected {
		res.note("PROJECTED: %d of %d queued when the bench stopped waiting (--b2-timeout %v); the time shown is extrapolated", queued, n, r.o.b2Timeout)
	}
	if rawMsgs > 0 {
		res.note("raw INSERT of the messages alone, without audit rows: %.2f s (%.0f msg/s)", rawMsgs.Seconds(), float64(n)/rawMsgs.Seconds())
	}
	res.note("messages by status after the run: %s", statusCounts(a.dir))
	if n >= 100_000 {
		res.Target = "100k queued ≤ 6 s, ≥ 0.65 of raw inserts"
		res.judge(!projected && res.Value <= 6 && res.Ratio >= 0.65)
	} else {
		res.Target = "≥ 0.65 of raw inserts"
		res.judge(!projected && res.Ratio >= 0.65)
	}
	return res, nil
}
