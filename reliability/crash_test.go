package reliability

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"clinicmsg/providers/providertest"
)

// How the crash suite tells our messages apart at the fake Twilio: every message of a run
// goes to its own phone number (campaign recipients +96655…, REST singles +96656…, restart
// probes +96658…), so the fake's To is the message's identity. Bodies carry the canary word
// and, for singles, their number, so that a leaked body is found in the logs.

const (
	twilioFrom  = "+15005550006"
	sendsPath   = "/Messages.json"
	statusPath  = "/api/clinicmsg/webhooks/twilio/status"
	campaignMsg = "Kestrel campaign: your flu shot is due this week. Reply STOP to opt out."
)

// finalStatuses are the statuses nothing more happens to.
var finalStatuses = map[string]bool{"delivered": true, "read": true, "failed": true, "undelivered": true, "canceled": true, "skipped": true}

func isSend(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, sendsPath)
}

// twilioEnv is the environment that sends SMS through the fake (by way of sendsProxy) and
// has status callbacks come back through callbackProxy.
func twilioEnv(fake *providertest.Twilio, apiURL, publicURL string) []string {
	return []string{
		"SMS_PROVIDER=twilio",
		"TWILIO_ACCOUNT_SID=" + fake.AccountSID,
		"TWILIO_AUTH_TOKEN=" + fake.AuthToken,
		"TWILIO_FROM_NUMBER=" + twilioFrom,
		"TWILIO_API_URL=" + apiURL,
		"CLINICMSG_PUBLIC_URL=" + publicURL,
	}
}

// single is one message created over REST by the clinic's app, which retries a create
// whose answer it did not get, with the same idempotency key, as an app should.
type single struct {
	Key, To, Body string
	ID            string
	Acked         bool // answered 2xx
	Conflict      bool // answered 409: an earlier try was stored but its answer was lost
	Tries         int
	Err           string
}

var conflictID = regexp.MustCompile(`message ([a-z0-9]{15})`)

// create posts s until it is stored (2xx, or 409 for an earlier try) or stop closes.
func (s *single) create(c *client, token string, stop <-chan struct{}) {
	for {
		s.Tries++
		st, raw, err := c.do("POST", "/api/collections/messages/records", token, map[string]any{
			"channel": "sms", "to": s.To, "body": s.Body, "idempotency_key": s.Key})
		switch {
		case err == nil && st == 200:
			var m struct{ ID string }
			_ = json.Unmarshal(raw, &m)
			s.ID, s.Acked = m.ID, true
			return
		case err == nil && st == 409:
			if m := conflictID.FindSubmatch(raw); m != nil {
				s.ID = string(m[1])
			}
			s.Conflict = true
			return
		case err == nil && st >= 400 && st < 500:
			s.Err = fmt.Sprintf("HTTP %d: %.200s", st, raw)
			return
		}
		select {
		case <-stop:
			s.Err = "gave up at the end of the run"
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// killEvent is what the suite saw when it killed the process.
type killEvent struct {
	N                  int     `json:"n"`
	AfterMS            int64   `json:"after_start_ms"`
	FanOut             bool    `json:"during_fan_out"`
	CampaignCursor     int     `json:"campaign_cursor"`
	SendsInFlight      int64   `json:"sends_in_flight"`
	CallbacksActive    bool    `json:"during_webhook_intake"`
	AcceptedByTwilio   int     `json:"accepted_by_twilio_so_far"`
	DownMS             int64   `json:"down_ms"`
	RestartToHealthyMS float64 `json:"restart_to_healthy_ms"`
	RestartToCreateMS  float64 `json:"restart_to_first_create_ms"`
	// RestartToSendingMS is how long after the previous restart the first send went out
	// again (kills during sends only): the restart first reconciles every orphaned send.
	RestartToSendingMS int64 `json:"previous_restart_to_sending_ms,omitempty"`
}

// TestCrashRecovery kills clinicmsg with SIGKILL at random moments while a campaign fans
// out, messages are sent and status callbacks come in, restarting it on the same data
// folder each time. At the end every message must be final, none missing, and the fake
// Twilio must have seen each at most once, except where reconciliation was impossible.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	c := newChecks(t, "crash")
	kills, recipients, singles := 5, 5000, 300
	if Soak() {
		kills, recipients, singles = 20, 20000, 3000
	}
	invalid := []string{"12345", "0112345678", "not a number"}

	fake := providertest.NewTwilio(t)
	fake.SetLatencyFunc(func() time.Duration { return time.Duration(30+rand.IntN(150)) * time.Millisecond })
	fake.SetAutoCallbacks(300 * time.Millisecond)
	sends := newProxy(t, fake.URL, isSend)
	a := newAppliance(t, "")
	callbacks := newProxy(t, "http://"+a.addr, nil)
	a.env = append(twilioEnv(fake, sends.URL, callbacks.URL), "CLINICMSG_DUPLICATE_WINDOW=-1ns")
	a.startHealthy()
	started := time.Now()

	su, app, sec := a.appClinic("Crash Clinic", fake.AuthToken)

	// The campaign: one message per valid recipient, a few invalid ones skipped.
	var list []any
	valid := map[string]bool{}
	for i := range recipients {
		n := fmt.Sprintf("+96655%07d", 1000000+i)
		list = append(list, n)
		valid[n] = true
		sec.phone(n)
	}
	for _, n := range invalid {
		list = append(list, n)
	}
	camp := a.api.must(t, "POST", "/api/collections/campaigns/records", app, map[string]any{
		"name": "flu shots", "channel": "sms", "body": campaignMsg, "recipients": list}, 200)
	campID := camp["id"].(string)
	c.check(camp["status"] == "running", "expected the campaign to start running, got %v", camp["status"])

	// Singles over REST, from the start to a little after the last kill.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	all := make([]*single, singles)
	var next atomic.Int64
	pace := 40 * time.Millisecond
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= singles {
					return
				}
				to := fmt.Sprintf("+96656%07d", 1000000+i)
				s := &single{Key: fmt.Sprintf("single-%d", i), To: to, Body: fmt.Sprintf("Kestrel single %d: your results are ready.", i)}
				sec.phone(to)
				all[i] = s
				s.create(a.api, app, stop)
				time.Sleep(pace) // the load: creates paced in real time across the kills
			}
		}()
	}

	// The kills.
	var events []killEvent
	var probes []*single
	cursorOf := func() int {
		st, raw, err := a.api.do("GET", "/api/collections/campaigns/records/"+campID+"?fields=cursor", app, nil)
		if err != nil || st != 200 {
			return -1
		}
		var v struct{ Cursor int }
		_ = json.Unmarshal(raw, &v)
		return v.Cursor
	}
	total := recipients + len(invalid)
	lastStart := started
	for k := 1; k <= kills; k++ {
		var resumed time.Duration // from the restart to the first send in flight
		switch {
		case k == 1:
			// During the fan-out: as soon as the first batch is committed.
			poll(20*time.Second, 10*time.Millisecond, func() bool { return cursorOf() > 0 })
		case k == kills:
			// During webhook intake, once most of the campaign is out.
			start := time.Now()
			poll(60*time.Second, 50*time.Millisecond, func() bool { return len(fake.Messages()) >= recipients*8/10 })
			poll(60*time.Second-time.Since(start), 2*time.Millisecond, func() bool { return callbacks.activeWithin(20 * time.Millisecond) })
		default:
			// During sends: once the fan-out is done and sending has resumed after the restart,
			// at a random moment with sends in flight.
			deadline := time.Now().Add(60 * time.Second)
			poll(time.Until(deadline), 50*time.Millisecond, func() bool { cur := cursorOf(); return cur < 0 || cur >= total })
			sending := func() bool { return sends.inflight.Load() > 0 }
			poll(time.Until(deadline), 2*time.Millisecond, sending)
			resumed = time.Since(lastStart)
			// A random moment of the sending: the kill must not pick a quiet one.
			time.Sleep(time.Duration(200+rand.IntN(1800)) * time.Millisecond)
			poll(time.Until(deadline), 2*time.Millisecond, sending)
		}
		cur := cursorOf()
		ev := killEvent{N: k, AfterMS: time.Since(lastStart).Milliseconds(), CampaignCursor: cur,
			FanOut: cur >= 0 && cur < total, SendsInFlight: sends.inflight.Load(), CallbacksActive: callbacks.activeWithin(50 * time.Millisecond),
			AcceptedByTwilio: len(fake.Messages()), RestartToSendingMS: resumed.Milliseconds()}
		a.kill()
		down := time.Duration(rand.IntN(700)) * time.Millisecond
		time.Sleep(down) // the process stays dead for a random while, as after a crash
		ev.DownMS = down.Milliseconds()

		// Restart on the same folder; how soon does it take a create again?
		probe := &single{Key: fmt.Sprintf("probe-%d", k), To: fmt.Sprintf("+96658%07d", 1000000+k), Body: fmt.Sprintf("Kestrel probe %d after a restart.", k)}
		sec.phone(probe.To)
		restart := time.Now()
		a.start()
		lastStart = restart
		healthy := make(chan time.Duration, 1)
		go func() {
			up := poll(30*time.Second, 5*time.Millisecond, func() bool {
				st, _, err := a.api.do("GET", "/api/health", "", nil)
				return err == nil && st == 200
			})
			if !up {
				healthy <- -1
				return
			}
			healthy <- time.Since(restart)
		}()
		probe.create(a.api, app, stop)
		ev.RestartToCreateMS = float64(time.Since(restart).Microseconds()) / 1000
		ev.RestartToHealthyMS = float64((<-healthy).Microseconds()) / 1000
		probes = append(probes, probe)
		c.check(probe.Acked, "kill %d: the probe create after the restart was not acknowledged: %+v", k, probe)
		c.check(ev.RestartToCreateMS <= 2000, "kill %d: creates were accepted %.0f ms after the restart, more than 2s", k, ev.RestartToCreateMS)
		events = append(events, ev)
		t.Logf("kill %d: %+v", k, ev)
	}
	wg.Wait()
	close(stop)

	// Settle: everything final, or sent and waiting for a callback that was lost.
	settleDeadline := time.Now().Add(4 * time.Minute)
	if Soak() {
		settleDeadline = time.Now().Add(15 * time.Minute)
	}
	pending := -1
	poll(time.Until(settleDeadline), 500*time.Millisecond, func() bool {
		pending = a.api.count(t, su, "messages", "status='scheduled'||status='queued'||status='sending'")
		fanned := a.api.must(t, "GET", "/api/collections/campaigns/records/"+campID, su, nil, 200)
		return pending == 0 && int(fanned["cursor"].(float64)) >= total && !callbacks.activeWithin(3*time.Second)
	})
	c.check(pending == 0, "%d messages were still queued or sending after the settle time", pending)

	// Messages whose delivery callback was lost while clinicmsg was down wait in "sent".
	stragglers, recovered, recoveredBy := recoverStragglers(t, c, a, su, fake, callbacks, 300*time.Millisecond)

	// Every message is final.
	msgs := a.api.records(t, su, "messages", "", "id,to,status,status_reason,campaign,idempotency_key,provider_message_id,attempts")
	byStatus := map[string]int{}
	byID := map[string]map[string]any{}
	campaignTo := map[string]int{}
	for _, m := range msgs {
		st := m["status"].(string)
		byStatus[st]++
		byID[m["id"].(string)] = m
		if m["campaign"] == campID {
			campaignTo[m["to"].(string)]++
		}
	}
	notFinal := 0
	for st, n := range byStatus {
		if !finalStatuses[st] {
			notFinal += n
		}
	}
	c.check(notFinal == 0, "%d messages are not final: %v", notFinal, byStatus)
	c.check(byStatus["delivered"] == len(msgs), "expected every message delivered, got %v", byStatus)

	// None is missing: every acknowledged create has its row; the campaign has exactly one
	// message per valid recipient and none for the invalid ones.
	lost, acked, conflicts, errs := 0, 0, 0, 0
	for _, s := range append(append([]*single{}, all...), probes...) {
		if s == nil {
			continue
		}
		if s.Err != "" {
			errs++
			t.Errorf("single %s: %s", s.Key, s.Err)
		}
		if s.Acked {
			acked++
		}
		if s.Conflict {
			conflicts++
		}
		if (s.Acked || s.Conflict) && byID[s.ID] == nil {
			lost++
			t.Errorf("message %s (%s) was acknowledged but has no row", s.ID, s.Key)
		}
	}
	c.check(errs == 0, "%d REST creates were refused", errs)
	c.check(lost == 0, "%d acknowledged messages are missing", lost)
	missingRecipients, doubled := 0, 0
	for n := range valid {
		switch campaignTo[n] {
		case 0:
			missingRecipients++
		case 1:
		default:
			doubled++
		}
	}
	c.check(missingRecipients == 0 && doubled == 0 && len(campaignTo) == len(valid),
		"campaign: %d recipients without a message, %d with more than one, %d numbers in all (want %d)", missingRecipients, doubled, len(campaignTo), len(valid))
	// The campaign runner refreshes a campaign every second; a straggler refreshed by hand
	// just above can end it a moment after the last check.
	var campDone map[string]any
	poll(10*time.Second, 200*time.Millisecond, func() bool {
		campDone = a.api.must(t, "GET", "/api/collections/campaigns/records/"+campID, su, nil, 200)
		return campDone["status"] == "done"
	})
	var result struct{ Skipped []any }
	raw, _ := json.Marshal(campDone["result"])
	_ = json.Unmarshal(raw, &result)
	c.check(len(result.Skipped) == len(invalid), "expected the %d invalid recipients skipped with a reason, got %d", len(invalid), len(result.Skipped))
	c.check(campDone["status"] == "done", "expected the campaign done, got %v", campDone["status"])

	// The fake saw each message at most once.
	atTwilio := map[string][]string{}
	for _, m := range fake.Messages() {
		atTwilio[m.To] = append(atTwilio[m.To], m.Sid)
	}
	duplicates, never, wrongSid := 0, 0, 0
	causes := map[string]int{}
	for _, m := range msgs {
		to := m["to"].(string)
		sids := atTwilio[to]
		if len(sids) == 0 {
			never++
			t.Errorf("message %s (%s) was never accepted by Twilio", m["id"], m["status"])
			continue
		}
		if len(sids) > 1 {
			duplicates += len(sids) - 1
			causes[duplicateCause(t, a, su, m["id"].(string))] += len(sids) - 1
		}
		if !contains(sids, m["provider_message_id"].(string)) {
			wrongSid++
			t.Errorf("message %s records sid %v, not one Twilio has for its number", m["id"], m["provider_message_id"])
		}
	}
	c.check(never == 0, "%d messages never reached Twilio", never)
	c.check(wrongSid == 0, "%d messages record a sid Twilio does not have for their number", wrongSid)
	var inFlight int64
	for _, ev := range events {
		inFlight += ev.SendsInFlight
	}
	c.check(int64(duplicates) <= inFlight, "%d duplicates, more than the %d sends in flight at the kills", duplicates, inFlight)
	c.check(len(causes) == 0 || causes["reconciliation impossible"] == duplicates, "duplicates with a cause other than an impossible reconciliation: %v", causes)

	// Kills covered every phase.
	var fanOut, during, intake int
	var maxRestart, maxHealthy float64
	var maxResume int64
	for _, ev := range events {
		if ev.FanOut {
			fanOut++
		}
		if ev.SendsInFlight > 0 {
			during++
		}
		if ev.CallbacksActive {
			intake++
		}
		maxRestart = max(maxRestart, ev.RestartToCreateMS)
		maxHealthy = max(maxHealthy, ev.RestartToHealthyMS)
		maxResume = max(maxResume, ev.RestartToSendingMS)
	}
	c.check(len(events) >= 5, "expected at least 5 kills, got %d", len(events))
	c.check(fanOut > 0 && during > 0 && intake > 0, "expected kills during fan-out (%d), sends (%d) and webhook intake (%d)", fanOut, during, intake)

	// A clean stop, then the data files.
	took, err := a.stop(15 * time.Second)
	c.check(err == nil, "final stop: %v (%v)", err, took)
	dataCheck := integrityCheck(t, filepath.Join(a.dir, "data.db"))
	auxCheck := integrityCheck(t, filepath.Join(a.dir, "auxiliary.db"))
	c.check(dataCheck == "ok" && auxCheck == "ok", "integrity_check: data.db %q, auxiliary.db %q", dataCheck, auxCheck)
	scanned, leaks := scanLogs(t, c, a, sec)

	c.record(map[string]any{
		"kills": len(events), "kills_during_fan_out": fanOut, "kills_during_sends": during, "kills_during_webhook_intake": intake,
		"kill_events": events, "max_restart_to_first_create_ms": maxRestart, "max_restart_to_healthy_ms": maxHealthy,
		"max_restart_to_sending_ms": maxResume,
		"campaign_recipients":       recipients, "campaign_invalid_recipients": len(invalid),
		"rest_singles": singles, "rest_acknowledged": acked, "rest_answer_lost_then_409": conflicts, "restart_probes": len(probes),
		"messages": len(msgs), "messages_by_status": byStatus, "messages_lost": lost,
		"accepted_by_twilio": len(fake.Messages()), "twilio_send_requests": sends.served.Load() + sends.failed.Load(),
		"duplicates": duplicates, "duplicate_causes": causes, "sends_in_flight_at_kills": inFlight,
		"callbacks_lost_while_down": callbacks.failed.Load(), "callbacks_applied": callbacks.served.Load(),
		"stuck_in_sent_after_settle": stragglers, "recovered_by": recoveredBy, "recovered": recovered,
		"integrity_check": dataCheck, "log_bytes_scanned": scanned, "log_leaks": len(leaks),
		"duration_s": int(time.Since(started).Seconds()),
	})
}

// waitCallbacksLanded waits, up to 10s, until every status callback the fake owes has
// landed. The fake acts a message out in steps a step apart ("sent", then its outcome), and
// sets the outcome just before posting the last callback; so once no message at the fake is
// still "sent" and no callback has come for two steps, none is on its way.
func waitCallbacksLanded(fake *providertest.Twilio, callbacks *proxy, step time.Duration) bool {
	return poll(10*time.Second, 20*time.Millisecond, func() bool {
		for _, m := range fake.Messages() {
			if m.Status == "sent" {
				return false
			}
		}
		return !callbacks.activeWithin(2 * step)
	})
}

// recoverStragglers brings messages left "sent" (their delivery callback came while
// clinicmsg was down, and Twilio does not retry it) to their final status: in the soak, by
// the product's own status poll once they are old enough for it; in the short run, by the
// refresh route, which asks Twilio the same question at once.
func recoverStragglers(t testing.TB, c *checks, a *appliance, su string, fake *providertest.Twilio, callbacks *proxy, step time.Duration) (stragglers, recovered int, by string) {
	t.Helper()
	waitCallbacksLanded(fake, callbacks, step) // callbacks still on their way land first
	left := a.api.records(t, su, "messages", "status='sent'", "id,sent_at")
	if len(left) == 0 {
		return 0, 0, "none needed"
	}
	if Soak() {
		by = "update-message-statuses (clinicmsg jobs run, beside the server)"
		// The poll's 2-minute minimum age runs on the child process's clock, which no test
		// can move: it is waited out.
		time.Sleep(pollMinAgeWait(left))
		out, err := a.command("jobs", "run", "update-message-statuses").CombinedOutput()
		c.check(err == nil, "the status poll failed: %v: %s", err, out)
		t.Logf("status poll: %s", out)
	} else {
		by = "POST /api/clinicmsg/messages/{id}/refresh"
		var mu sync.Mutex
		var wg sync.WaitGroup
		work := make(chan string)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for id := range work {
					st, raw, err := a.api.do("POST", "/api/clinicmsg/messages/"+id+"/refresh", su, nil)
					mu.Lock()
					c.check(err == nil && st == 200, "refresh %s: %d %v %.200s", id, st, err, raw)
					mu.Unlock()
				}
			}()
		}
		for _, m := range left {
			work <- m["id"].(string)
		}
		close(work)
		wg.Wait()
	}
	return len(left), len(left) - a.api.count(t, su, "messages", "status='sent'"), by
}

// newestSentAt is the latest sent_at of msgs.
func newestSentAt(msgs []map[string]any) time.Time {
	var newest time.Time
	for _, m := range msgs {
		if at, err := time.Parse("2006-01-02 15:04:05.000Z", fmt.Sprint(m["sent_at"])); err == nil && at.After(newest) {
			newest = at
		}
	}
	return newest
}

// pollMinAgeWait is how long to wait until every message given (by sent_at) is old enough
// for update-message-statuses, which leaves messages younger than 2 minutes to their webhook.
func pollMinAgeWait(msgs []map[string]any) time.Duration {
	return max(time.Until(newestSentAt(msgs).Add(2*time.Minute+5*time.Second)), 0)
}

// duplicateCause reads a doubly sent message's audit trail for why it was sent again.
func duplicateCause(t testing.TB, a *appliance, token, id string) string {
	logs := a.api.records(t, token, "message_logs", "message='"+id+"'", "event,detail")
	var events []string
	for _, l := range logs {
		d, _ := json.Marshal(l["detail"])
		events = append(events, fmt.Sprintf("%s %s", l["event"], d))
		if l["event"] == "lease_expired" || l["event"] == "in_doubt" {
			det, _ := l["detail"].(map[string]any)
			switch det["reconciled"] {
			case "failed", "unsupported":
				return "reconciliation impossible"
			}
		}
	}
	sort.Strings(events)
	return "sent twice although reconcilable: " + strings.Join(events, " | ")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestGracefulStopDuringBusySend sends SIGTERM while a batch of slow sends is in flight:
// clinicmsg must exit within 10 seconds, and after a restart every message must be
// delivered exactly once, with no lease left to expire.
func TestGracefulStopDuringBusySend(t *testing.T) {
	t.Parallel()
	c := newChecks(t, "sigterm")
	n := 150
	if Soak() {
		n = 1000
	}
	fake := providertest.NewTwilio(t)
	fake.SetLatency(1500 * time.Millisecond)
	fake.SetAutoCallbacks(100 * time.Millisecond)
	sends := newProxy(t, fake.URL, isSend)
	a := newAppliance(t, "")
	callbacks := newProxy(t, "http://"+a.addr, nil)
	a.env = append(twilioEnv(fake, sends.URL, callbacks.URL), "CLINICMSG_DUPLICATE_WINDOW=-1ns")
	a.startHealthy()
	su, app, sec := a.appClinic("Term Clinic", fake.AuthToken)

	var items []any
	for i := range n {
		to := fmt.Sprintf("+96657%07d", 1000000+i)
		sec.phone(to)
		items = append(items, map[string]any{"channel": "sms", "to": to, "body": fmt.Sprintf("Kestrel term %d", i), "idempotency_key": fmt.Sprint("term-", i)})
	}
	// One bulk send: every message is durable when it answers.
	res := a.api.must(t, "POST", "/api/clinicmsg/send", app, items, 200)
	c.check(res["accepted"] == float64(n), "expected %d messages accepted, got %v accepted, %v rejected", n, res["accepted"], res["rejected"])

	poll(20*time.Second, 5*time.Millisecond, func() bool { return sends.inflight.Load() >= 16 })
	inFlight := sends.inflight.Load()
	c.check(inFlight >= 16, "expected a busy send (16+ in flight) before SIGTERM, got %d", inFlight)
	t.Logf("%v: %d in flight, SIGTERM", time.Now().Format(time.StampMilli), inFlight)
	took, err := a.stop(12 * time.Second)
	c.check(err == nil && took <= 10*time.Second, "SIGTERM: exited after %v with %v; expected a clean exit within 10s", took, err)
	acceptedAtStop := len(fake.Messages())

	a.startHealthy()
	t.Logf("%v: restarted", time.Now().Format(time.StampMilli))
	poll(time.Minute, 300*time.Millisecond, func() bool { return a.api.count(t, su, "messages", "status='queued'||status='sending'") == 0 })
	waitCallbacksLanded(fake, callbacks, 100*time.Millisecond) // the last callbacks
	// Sends that finished during the shutdown grace had their callbacks come while the HTTP
	// server was already closed.
	t.Logf("%v: settled", time.Now().Format(time.StampMilli))
	fake.SetLatency(0)
	stragglers, recovered, recoveredBy := recoverStragglers(t, c, a, su, fake, callbacks, 100*time.Millisecond)
	t.Logf("%v: recovered", time.Now().Format(time.StampMilli))
	msgs := a.api.records(t, su, "messages", "", "id,to,status")
	perTo := map[string]int{}
	for _, m := range fake.Messages() {
		perTo[m.To]++
	}
	lost, dups, notDelivered := 0, 0, 0
	byStatus := map[string]int{}
	for _, m := range msgs {
		byStatus[m["status"].(string)]++
		if m["status"] != "delivered" {
			notDelivered++
			if notDelivered <= 3 {
				t.Logf("not delivered: %v, trail: %v", m, a.api.records(t, su, "message_logs", "message='"+m["id"].(string)+"'", "event,status,detail,created"))
			}
		}
		switch k := perTo[m["to"].(string)]; {
		case k == 0:
			lost++
		case k > 1:
			dups += k - 1
		}
	}
	expired := a.api.count(t, su, "message_logs", "event='lease_expired'")
	c.check(len(msgs) == n, "expected %d messages, found %d", n, len(msgs))
	c.check(lost == 0 && dups == 0, "expected every message at Twilio exactly once: %d never, %d duplicates", lost, dups)
	c.check(notDelivered == 0, "%d messages not delivered: %v", notDelivered, byStatus)
	c.check(expired == 0, "a graceful stop must write back every send: %d leases expired after the restart", expired)
	took2, err := a.stop(15 * time.Second)
	c.check(err == nil, "final stop: %v (%v)", err, took2)
	scanned, leaks := scanLogs(t, c, a, sec)
	c.record(map[string]any{
		"messages": n, "sends_in_flight_at_sigterm": inFlight, "exit_after_sigterm_ms": took.Milliseconds(),
		"accepted_by_twilio_at_stop": acceptedAtStop, "messages_by_status": byStatus, "lost": lost,
		"stuck_in_sent_after_restart": stragglers, "recovered": recovered, "recovered_by": recoveredBy, "duplicates": dups, "leases_expired_after_restart": expired,
		"log_bytes_scanned": scanned, "log_leaks": len(leaks),
	})
}
