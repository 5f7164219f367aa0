package bench

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"clinicmsg/providers/providertest"
)

// phoneIndex is the bench number i of an E.164 phone (phoneE164), or -1.
func phoneIndex(to string) int {
	if len(to) < 7 {
		return -1
	}
	i, err := strconv.Atoi(to[len(to)-7:])
	if err != nil {
		return -1
	}
	return i
}

// audit compares what the appliance stored with what the fake Twilio received. Every
// message has its own number, so a second request for one number is a duplicate. A
// message is lost when the appliance answered for it but did not store it, or when it
// says the provider took it (sent, delivered, read, undelivered) and the provider never
// got it. Messages still queued or sending when the bench stopped waiting are pending:
// late, not lost.
func audit(rows []messageRow, fake []providertest.TwilioMessage, accepted int) (lost, dups, pending int) {
	seen := make(map[string]int, len(fake))
	for _, m := range fake {
		seen[m.To]++
	}
	for _, n := range seen {
		dups += max(0, n-1)
	}
	for _, r := range rows {
		switch r.Status {
		case "queued", "sending", "scheduled":
			pending++
		case "sent", "delivered", "read", "undelivered":
			if seen[r.To] == 0 {
				lost++
			}
		}
	}
	lost += max(0, accepted-len(rows))
	return lost, dups, pending
}

// b3 is the pipeline end to end: n messages go out through inflight workers to Twilio
// answering after the --latency distribution, and Twilio posts a signed "delivered"
// callback after --callback-delay; a message counts when its callback is acknowledged
// (clinicmsg answers after the commit). By default (--b3-create seed) the n messages are
// stored with raw SQL before the appliance starts, as a burst that is due at once: this
// measures the sending pipeline (claims, provider calls, results, status callbacks) with
// nothing else competing. With --b3-create api a clinic's app creates them through
// /api/clinicmsg/send (arrays of 1,000, two at a time) while the appliance sends. The rate
// is compared with the latency bound, inflight / mean provider latency: what any sender
// holding that many requests open could do.
func (r *runner) b3() error {
	n, inflight := r.o.b3Messages, r.o.b3InFlight
	viaAPI := r.o.b3Create == "api"
	if !viaAPI && r.o.b3Create != "seed" {
		return fmt.Errorf("--b3-create is seed or api, not %q", r.o.b3Create)
	}
	f := providertest.NewTwilio(nil)
	defer f.Close()
	f.SetLatencyFunc(r.latency.draw)
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	car := newCarrier(f, "http://"+addr, r.callbackDelay, r.o.callbackWorkers)
	var prepare func(string) error
	if !viaAPI {
		prepare = func(dir string) error { return seedQueued(dir, r.fx.clinicID, n) }
	}
	a, err := r.child("B3", addr, prepare, twilioEnv(f, f.URL, addr, inflight)...)
	if err != nil {
		car.close(0)
		return err
	}
	stop := func() error {
		car.halt()
		err := r.finish("B3", a)
		car.close(5 * time.Second)
		return err
	}

	cpu0, self0 := a.cpuTime(), selfCPU()
	start := time.Now()
	created := phase{items: n}
	if viaAPI {
		if created, err = r.b3create(a, n); err != nil {
			stop()
			return err
		}
	}
	deadline := start.Add(r.o.b3Timeout)
	for car.acked.Load() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cpu, self := a.cpuTime()-cpu0, selfCPU()-self0
	car.mu.Lock()
	first, last := car.firstSend, car.lastAck
	acks := make([]time.Time, 0, len(car.ackAt))
	for _, at := range car.ackAt {
		acks = append(acks, at)
	}
	car.mu.Unlock()
	acked := int(car.acked.Load())
	if err := stop(); err != nil {
		return err
	}

	rows, err := readMessages(a.dir)
	if err != nil {
		return err
	}
	lost, dups, pending := audit(rows, f.Messages(), created.items)
	r.report.Lost += lost
	r.report.Duplicates += dups
	// created → delivered as stored; a seeded message became due when the sending began.
	var latency []time.Duration
	notDelivered := 0
	for _, row := range rows {
		if row.Status != "delivered" {
			notDelivered++
			continue
		}
		from := row.Created
		if !viaAPI && from.Before(first) {
			from = first
		}
		latency = append(latency, row.DeliveredAt.Sub(from))
	}

	// The rate runs from the first create (api) or the first send (seed) to the last
	// acknowledged delivery.
	begin := start
	if !viaAPI && !first.IsZero() {
		begin = first
	}
	elapsed := last.Sub(begin)
	if acked < n || elapsed <= 0 {
		elapsed = time.Since(begin)
	}
	rate := float64(acked) / elapsed.Seconds()
	// Unset (0), the appliance learns its sends in flight, up to 1,024.
	slots, slotsLabel := inflight, fmt.Sprintf("%d in flight", inflight)
	if inflight == 0 {
		slots, slotsLabel = 1024, "sends in flight learned (CLINICMSG_WORKERS unset, at most 1,024)"
	}
	bound := float64(slots) / r.latency.mean().Seconds()
	how := "stored as a burst before the appliance starts"
	if viaAPI {
		how = "created by the app through /api/clinicmsg/send while the appliance sends"
	}
	res := Result{
		Name:  "B3",
		Title: fmt.Sprintf("end to end, queued → delivered, %d messages %s, %s, provider %s, delivered callback %s after accept", n, how, slotsLabel, r.latency, r.callbackDelay),
		Value: rate, Unit: "msg/s", Baseline: bound, Ratio: rate / bound,
		BaselineOf: fmt.Sprintf("the latency bound: %d in flight / %v mean provider latency", slots, r.latency.mean()),
		Target:     "≥ 1,500 msg/s and ≥ 0.75 of the latency bound; 0 lost, 0 duplicated",
		P50ms:      percentile(latency, 50), P95ms: percentile(latency, 95), P99ms: percentile(latency, 99),
		N: n, RSSMB: r.rss["B3"], Seconds: elapsed.Seconds(),
	}
	if viaAPI {
		res.Name, res.Title = "B3/api", strings.Replace(res.Title, "queued → delivered", "created → delivered", 1)
	}
	cpuOf(&res, cpu, elapsed, acked)
	res.shareOfCores(self, acked)
	res.judge(rate >= 1500 && res.Ratio >= 0.75 && lost == 0 && dups == 0 && notDelivered == 0)
	if acked < n {
		res.note("INCOMPLETE: %d of %d delivered when the bench stopped waiting (--b3-timeout %v); %d still queued or sending; the rate is over the wait", acked, n, r.o.b3Timeout, pending)
	}
	if viaAPI {
		res.note("percentiles: delivered_at − created as stored; created by the app: %d in %v (%.0f msg/s)", created.items, created.elapsed.Round(time.Millisecond), created.rate())
	} else {
		res.note("percentiles: delivered_at − the start of the burst (every message was due then): the burst drains in order")
	}
	if len(acks) > 10 {
		slices.SortFunc(acks, func(x, y time.Time) int { return x.Compare(y) })
		lo, hi := acks[len(acks)/10], acks[len(acks)*9/10]
		if d := hi.Sub(lo); d > 0 {
			res.note("steady state (10th to 90th percentile of deliveries): %.0f msg/s", float64(len(acks)*8/10)/d.Seconds())
		}
	}
	res.note("delivered %d of %d; callbacks acknowledged %d, refused or failed attempts %d %v; lost %d, duplicated %d",
		len(latency), n, acked, car.failed.Load(), car.why, lost, dups)
	if notDelivered > 0 {
		res.note("NOT delivered at the end: %d (%s)", notDelivered, statusCounts(a.dir))
	}
	r.add(res)
	return nil
}

// b3create creates B3's messages through /api/clinicmsg/send, as a clinic's app would.
func (r *runner) b3create(a *appliance, n int) (phase, error) {
	c := &client{base: a.base, hc: newHTTPClient(4)}
	const per = 1000
	ops := (n + per - 1) / per
	bodies := make([][]byte, ops)
	for op := range ops {
		items := make([]map[string]any, 0, per)
		for i := op * per; i < min((op+1)*per, n); i++ {
			items = append(items, messageItem(i))
		}
		bodies[op] = mustJSON(items)
	}
	return load(ops, 2, 0, func(op int) (int, error) {
		from, to := op*per, min((op+1)*per, n)
		status, raw, err := c.do("POST", "/api/clinicmsg/send", r.fx.appToken, "application/json", bodies[op])
		if err != nil {
			return 0, err
		}
		var ans struct {
			Accepted int `json:"accepted"`
		}
		if status != 200 || json.Unmarshal(raw, &ans) != nil || ans.Accepted != to-from {
			return 0, fmt.Errorf("POST /api/clinicmsg/send: expected 200 with %d accepted, got %d: %.300s", to-from, status, raw)
		}
		return to - from, nil
	})
}

// b4 is the send rate: n messages already queued (stored with raw SQL before the
// appliance starts, so nothing else competes), inflight workers, a provider answering in
// --b4-latency, counted at the fake. The baseline is a bare HTTP client in this process
// sending the same n messages to an identical fake with the same concurrency: what this
// machine can push through the fake at all.
func (r *runner) b4() error {
	n, inflight := r.o.b4Messages, r.o.b4InFlight
	bf := providertest.NewTwilio(nil)
	bf.SetLatencyFunc(r.b4Latency.draw)
	hc := newHTTPClient(inflight)
	r.logf("B4: baseline, a bare client sending up to %d to the fake at c=%d", n, inflight)
	base, err := load(n, inflight, 2*r.o.phase, func(i int) (int, error) { return 1, sendTwilio(hc, bf, phoneE164(i)) })
	bf.Close()
	hc.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}

	f := providertest.NewTwilio(nil)
	defer f.Close()
	var hits atomic.Int64
	f.SetLatencyFunc(func() time.Duration { hits.Add(1); return r.b4Latency.draw() })
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	r.logf("B4: %d messages queued, %d in flight", n, inflight)
	started := time.Now()
	a, err := r.child("B4", addr, func(dir string) error { return seedQueued(dir, r.fx.clinicID, n) }, twilioEnv(f, f.URL, addr, inflight)...)
	if err != nil {
		return err
	}
	cpu0, self0, hits0 := a.cpuTime(), selfCPU(), hits.Load()
	deadline := started.Add(r.o.b4Timeout)
	for hits.Load() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cpu, self, sendsInWindow := a.cpuTime()-cpu0, selfCPU()-self0, hits.Load()-hits0
	// The appliance then records each result; wait until every message says "sent".
	c := &client{base: a.base, hc: newHTTPClient(2)}
	var sentAll time.Duration
	for recorded := time.Now().Add(30 * time.Second); time.Now().Before(recorded); {
		var page struct {
			TotalItems int `json:"totalItems"`
		}
		if err := c.call("GET", "/api/collections/messages/records?perPage=1&fields=id&filter=(status='sent')", r.fx.suToken, nil, 200, &page); err != nil {
			r.finish("B4", a)
			return err
		}
		if page.TotalItems >= n {
			sentAll = time.Since(started)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := r.finish("B4", a); err != nil {
		return err
	}
	msgs := f.Messages()
	if len(msgs) < 2 {
		return fmt.Errorf("the fake received %d messages of %d", len(msgs), n)
	}
	first, last := msgs[0].DateCreated, msgs[0].DateCreated
	for _, m := range msgs {
		if m.DateCreated.Before(first) {
			first = m.DateCreated
		}
		if m.DateCreated.After(last) {
			last = m.DateCreated
		}
	}
	rate := float64(len(msgs)-1) / last.Sub(first).Seconds()
	rows, err := readMessages(a.dir)
	if err != nil {
		return err
	}
	lost, dups, pending := audit(rows, msgs, n)
	r.report.Lost += lost
	r.report.Duplicates += dups

	res := Result{
		Name:  "B4",
		Title: fmt.Sprintf("send rate at the fake Twilio, %d queued, provider %s, %d in flight", n, r.b4Latency, inflight),
		Value: rate, Unit: "sends/s", Baseline: base.rate(), Ratio: rate / base.rate(),
		BaselineOf: fmt.Sprintf("a bare HTTP client in the bench process sending %d messages to an identical fake at c=%d (p99 %.1f ms)", base.items, inflight, base.pct(99)),
		Target:     "≥ 8,000 sends/s",
		N:          n, RSSMB: r.rss["B4"], Seconds: last.Sub(first).Seconds(),
	}
	if sendsInWindow > 0 {
		res.CPUPerItemUs = roundTo(float64(cpu.Microseconds())/float64(sendsInWindow), 1)
		res.CPUCores = roundTo(cpu.Seconds()/last.Sub(first).Seconds(), 2)
		res.shareOfCores(self, int(sendsInWindow))
	}
	res.judge(rate >= 8000)
	if pending > 0 {
		res.note("INCOMPLETE: %d messages still pending when the bench stopped waiting (--b4-timeout %v)", pending, r.o.b4Timeout)
	}
	res.note("first to last request at the fake: %v for %d sends; lost %d, duplicated %d", last.Sub(first).Round(time.Millisecond), len(msgs), lost, dups)
	if sentAll > 0 {
		res.note("all %d recorded as sent %v after the appliance was started (%.0f msg/s including start-up)", n, sentAll.Round(time.Millisecond), float64(n)/sentAll.Seconds())
	} else {
		res.note("NOT all recorded as sent before the deadline: %s", statusCounts(a.dir))
	}
	r.add(res)
	return nil
}
