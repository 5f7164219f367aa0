package hooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"clinicmsg/hooks"
	"clinicmsg/providers/providertest"
	"clinicmsg/reliability"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
)

// The provider fault suite: the real dispatcher and the real vendor clients against the
// fake vendors, with faults injected in front of them. Whatever the fault, every message
// must end delivered or failed with a recorded reason, never use more attempts than the
// limit, never reach the patient twice, and never wait longer than its backoff allows once
// the provider is back. The figures go to docs/reliability-latest.json ("faults").

// chaos stands in front of a fake vendor: it answers a share of the sends with a scripted
// fault instead of passing them on, and it can refuse connections for a while (its listener
// closed, its connections dropped) and come back on the same port. It counts the send
// requests per recipient and the faults it injected.
type chaos struct {
	t      testing.TB
	addr   string
	proxy  *httputil.ReverseProxy
	mu     sync.Mutex
	srv    *http.Server
	rate   float64
	fault  providertest.Reply
	perTo  map[string]int
	faults atomic.Int64
	down   atomic.Bool
}

func newChaos(t testing.TB, target string) *chaos {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	c := &chaos{t: t, proxy: httputil.NewSingleHostReverseProxy(u), perTo: map[string]int{}}
	c.proxy.ErrorLog = log.New(io.Discard, "", 0) // a send canceled by its timeout is expected here
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.addr = ln.Addr().String()
	c.serve(ln)
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.srv != nil {
			c.srv.Close()
		}
	})
	return c
}

func (c *chaos) URL() string { return "http://" + c.addr }

func (c *chaos) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(c.handle)}
	c.mu.Lock()
	c.srv = srv
	c.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// setFaults answers rate of the sends with r from now on.
func (c *chaos) setFaults(rate float64, r providertest.Reply) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rate, c.fault = rate, r
}

// refuse closes the port for d: every connection attempt is refused, open ones are cut.
// It returns when the port is open again.
func (c *chaos) refuse(d time.Duration) {
	c.mu.Lock()
	srv := c.srv
	c.srv = nil
	c.mu.Unlock()
	c.down.Store(true)
	_ = srv.Close()
	// The outage itself: the port stays closed for d of real time, as the senders' backoff
	// (real timers in the dispatcher) is what the scenario measures against it.
	time.Sleep(d)
	var ln net.Listener
	var err error
	poll(2*time.Second, func() bool { ln, err = net.Listen("tcp", c.addr); return err == nil })
	if err != nil {
		c.t.Errorf("failed to reopen %s: %v", c.addr, err)
		return
	}
	c.down.Store(false)
	c.serve(ln)
}

func (c *chaos) handle(w http.ResponseWriter, r *http.Request) {
	send := r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/Messages.json")
	if send {
		body, _ := readForm(r)
		c.mu.Lock()
		c.perTo[body.Get("To")]++
		inject := c.rate > 0 && rand.Float64() < c.rate
		fault := c.fault
		c.mu.Unlock()
		if inject {
			c.faults.Add(1)
			for k, vs := range fault.Header {
				for _, v := range vs {
					w.Header().Add(k, v)
				}
			}
			ct := fault.ContentType
			if ct == "" {
				ct = "application/json; charset=utf-8"
			}
			w.Header().Set("Content-Type", ct)
			w.WriteHeader(fault.Status)
			_, _ = w.Write([]byte(fault.Body))
			return
		}
	}
	c.proxy.ServeHTTP(w, r)
}

// readForm reads a POST form and puts the body back for the proxy.
func readForm(r *http.Request) (url.Values, error) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	r.ContentLength = int64(len(raw))
	return url.ParseQuery(string(raw))
}

func (c *chaos) requestsTo(to string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.perTo[to]
}

// faultEnv is one scenario: an appliance sending SMS through chaos in front of a fake Twilio
// (and optionally a Unifonic fallback), delivery reports on.
type faultEnv struct {
	*env
	fake  *providertest.Twilio
	uni   *providertest.Unifonic
	chaos *chaos
	max   int
	ids   []string
	tos   map[string]string // message id -> number
	seq   int
}

func newFaultEnv(t *testing.T, fallback bool, opts ...envOption) *faultEnv {
	t.Helper()
	fake := providertest.NewTwilio(t)
	fake.SetAutoCallbacks(30 * time.Millisecond)
	ch := newChaos(t, fake.URL)
	all := []envOption{withTwilio(fake), func(c *hooks.Config) { c.TwilioAPIURL = ch.URL() }}
	var uni *providertest.Unifonic
	if fallback {
		uni = providertest.NewUnifonic(t)
		uni.SetAutoDLR(30*time.Millisecond, "")
		all = append(all, withUnifonic(uni), func(c *hooks.Config) { c.SMSFallbackProvider = "unifonic" })
	}
	all = append(all, opts...)
	max := 3
	all = append(all, func(c *hooks.Config) {
		if c.MaxAttempts > 0 {
			max = c.MaxAttempts
		}
	})
	e := newEnv(t, all...)
	return &faultEnv{env: e, fake: fake, uni: uni, chaos: ch, max: max, tos: map[string]string{}}
}

// send creates n messages to numbers of their own.
func (f *faultEnv) send(n int) {
	f.t.Helper()
	for range n {
		f.seq++
		to := fmt.Sprintf("+9665011%05d", f.seq)
		res := f.do("POST", "/api/collections/messages/records", "appA", map[string]any{"channel": "sms", "to": to, "body": fmt.Sprintf("Fault suite %d", f.seq)})
		must(f.t, res.Status == 200, "create: %s", res.Raw)
		f.ids = append(f.ids, res.str("id"))
		f.tos[res.str("id")] = to
	}
}

// settle waits until no message is queued, sending or waiting for a receipt.
func (f *faultEnv) settle(within time.Duration) {
	f.t.Helper()
	// It returns either way: a scenario may leave messages "sent" for the status poll, and
	// verify names any message that did not settle.
	poll(within, func() bool {
		n, err := f.app.CountRecords("messages", dbx.NewExp("status IN ('scheduled','queued','sending','sent')"))
		return err == nil && n == 0
	})
}

// outcome is what a scenario measured.
type outcome struct {
	Messages   int            `json:"messages"`
	ByStatus   map[string]int `json:"by_status"`
	Reasons    map[string]int `json:"failure_reasons"`
	Faults     int64          `json:"faults_injected"`
	MaxAttempt int            `json:"max_attempts_used"`
	Duplicates int            `json:"duplicates"`
	Requests   int            `json:"send_requests"`
	LateMS     int64          `json:"worst_wait_beyond_backoff_ms"`
	NeededPoll int            `json:"needed_status_poll,omitempty"`
}

// verify checks the contract for every message of the scenario and returns its figures.
func (f *faultEnv) verify(t *testing.T) outcome {
	t.Helper()
	o := outcome{Messages: len(f.ids), ByStatus: map[string]int{}, Reasons: map[string]int{}, Faults: f.chaos.faults.Load()}
	accepted := map[string]int{}
	for _, m := range f.fake.Messages() {
		accepted[m.To]++
	}
	if f.uni != nil {
		for _, m := range f.uni.Messages() {
			accepted["+"+m.Recipient]++
		}
	}
	for _, id := range f.ids {
		rec := f.message(id)
		st := rec.GetString("status")
		o.ByStatus[st]++
		o.MaxAttempt = max(o.MaxAttempt, rec.GetInt("attempts"))
		o.Requests += f.chaos.requestsTo(f.tos[id])
		switch st {
		case "delivered":
			must(t, accepted[f.tos[id]] >= 1, "message %s is delivered but no provider accepted it", id)
		case "failed", "undelivered":
			reason := rec.GetString("status_reason")
			o.Reasons[reason]++
			must(t, reason != "" && (rec.GetString("error_code") != "" || rec.GetString("error_message") != ""),
				"message %s failed without a recorded reason: %q %q %q", id, reason, rec.GetString("error_code"), rec.GetString("error_message"))
		default:
			t.Errorf("message %s ended %s, not delivered or failed (log %v)", id, st, f.logEvents(id))
		}
		must(t, rec.GetInt("attempts") <= f.max, "message %s used %d attempts, the limit is %d", id, rec.GetInt("attempts"), f.max)
		if n := accepted[f.tos[id]]; n > 1 {
			o.Duplicates += n - 1
		}
	}
	must(t, o.Duplicates == 0, "%d messages reached a provider more than once", o.Duplicates)
	return o
}

// lateness is how much later than its scheduled retry (next_attempt_at of its last
// retry_scheduled row) each message was next sent, worst case, counting only retries due
// after since.
func (f *faultEnv) lateness(t *testing.T, since time.Time) time.Duration {
	t.Helper()
	var worst time.Duration
	for _, id := range f.ids {
		logs, err := f.app.FindRecordsByFilter("message_logs", "message = {:m}", "created", 0, 0, dbx.Params{"m": id})
		must(t, err == nil, "%v", err)
		var due time.Time
		for _, l := range logs {
			switch l.GetString("event") {
			case "retry_scheduled":
				var d struct {
					Next string `json:"next_attempt_at"`
				}
				_ = json.Unmarshal([]byte(l.GetString("detail")), &d)
				due, _ = time.Parse("2006-01-02 15:04:05.000Z", d.Next)
			case "sending":
				if !due.IsZero() && due.After(since) {
					worst = max(worst, l.GetDateTime("created").Time().Sub(due))
				}
				due = time.Time{}
			}
		}
	}
	return worst
}

// faultFigures collects the scenarios' figures for docs/reliability-latest.json.
var faultFigures = struct {
	sync.Mutex
	m map[string]any
}{m: map[string]any{}}

func recordFault(t *testing.T, name string, o outcome) {
	faultFigures.Lock()
	defer faultFigures.Unlock()
	faultFigures.m[name] = o
	t.Logf("%s: %+v", name, o)
}

func TestProviderFaults(t *testing.T) {
	n := 60
	outage := 3 * time.Second // stands for 30 seconds, with the backoff scaled alike
	if reliability.Soak() {
		n, outage = 400, 30*time.Second
	}
	passed, failed := 0, 0
	run := func(name string, f func(t *testing.T)) {
		if t.Run(name, f) {
			passed++
		} else {
			failed++
		}
	}

	run("30% HTTP 500", func(t *testing.T) {
		f := newFaultEnv(t, false)
		f.chaos.setFaults(0.3, providertest.TwilioServerError())
		f.send(n)
		f.settle(30 * time.Second)
		o := f.verify(t)
		for reason := range o.Reasons {
			must(t, reason == "attempts_exhausted", "a 500 may only exhaust attempts, got %q", reason)
		}
		must(t, o.Faults > 0, "no fault was injected")
		late := f.lateness(t, time.Time{})
		o.LateMS = late.Milliseconds()
		must(t, late < 500*time.Millisecond, "a retry waited %v beyond its backoff", late)
		recordFault(t, "http_500_30pct", o)
	})

	run("HTML 503 from an edge proxy", func(t *testing.T) {
		f := newFaultEnv(t, false)
		f.chaos.setFaults(0.3, providertest.HTMLUnavailable())
		f.send(n)
		f.settle(30 * time.Second)
		o := f.verify(t)
		for reason := range o.Reasons {
			must(t, reason == "attempts_exhausted", "a 503 may only exhaust attempts, got %q", reason)
		}
		late := f.lateness(t, time.Time{})
		o.LateMS = late.Milliseconds()
		must(t, late < 500*time.Millisecond, "a retry waited %v beyond its backoff", late)
		recordFault(t, "html_503_30pct", o)
	})

	run("429 bursts", func(t *testing.T) {
		f := newFaultEnv(t, false)
		f.fake.ReplyNext(25, providertest.TwilioError(20429))
		f.send(n / 2)
		// The second burst starts once the provider has answered the first one out and taken
		// a message again.
		waitFor(t, 10*time.Second, "a send accepted after the first burst of 429s", func() bool { return len(sendsTo(f.fake)) > 25 })
		f.fake.ReplyNext(25, providertest.TwilioError(20429))
		f.send(n / 2)
		f.settle(60 * time.Second)
		o := f.verify(t)
		o.Faults = 50
		must(t, o.ByStatus["delivered"] == len(f.ids), "a 429 must never fail a message: %v", o.ByStatus)
		must(t, o.MaxAttempt == 1, "a 429 must not use an attempt, got %d", o.MaxAttempt)
		recordFault(t, "http_429_bursts", o)
	})

	run("hangs past the timeout", func(t *testing.T) {
		f := newFaultEnv(t, false, func(c *hooks.Config) { c.SendTimeout = 300 * time.Millisecond })
		for range 10 {
			f.fake.ReplyNext(1, providertest.Reply{Hang: true, Accept: true}) // the vendor took it; the answer is lost
			f.fake.ReplyNext(1, providertest.Reply{Hang: true})               // the vendor never took it
		}
		f.send(n / 2)
		f.settle(30 * time.Second)
		// A delivery report that came while the send was still in doubt found no message with
		// that sid (see TestCallbackBeforeTheSendOutcomeIsKept); the status poll settles them.
		waiting := mustFind(t, f.env, "status = 'sent'")
		backdateSent(t, f.env, waiting, 3*time.Minute)
		if len(waiting) > 0 {
			f.runJob(hooks.JobUpdateStatuses)
		}
		o := f.verify(t)
		o.Faults, o.NeededPoll = 20, len(waiting)
		recordFault(t, "hangs_past_timeout", o)
	})

	run("connection refused, then recovery", func(t *testing.T) {
		backoff := outage / 6
		f := newFaultEnv(t, false, func(c *hooks.Config) {
			c.RetryBackoff = backoff // attempts at 0, 1, 3, 7 and 15 backoffs
			c.MaxAttempts = 5
		})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); f.chaos.refuse(outage) }()
		start := time.Now()
		for time.Since(start) < outage*2/3 {
			f.send(n / 20)
			// Creates spread over the outage in real time: their retries come due at
			// different moments of it, which is what the scenario measures.
			time.Sleep(outage / 20)
		}
		wg.Wait()
		back := time.Now()
		f.send(n / 10)
		f.settle(outage*12 + 10*time.Second)
		o := f.verify(t)
		must(t, o.ByStatus["delivered"] == len(f.ids), "every message must get through once the provider is back: %v", o.ByStatus)
		late := f.lateness(t, back)
		refused, err := f.app.CountRecords("message_logs", dbx.NewExp("event = 'retry_scheduled'"))
		must(t, err == nil, "%v", err)
		o.LateMS, o.Faults = late.Milliseconds(), refused // each a send refused at connect
		// The dispatcher claims due rows on every sweep (50ms here) and when woken.
		must(t, late < 500*time.Millisecond, "a message waited %v beyond its backoff after the provider came back", late)
		recordFault(t, "connection_refused_window", o)
	})

	run("primary down, fallback up", func(t *testing.T) {
		f := newFaultEnv(t, true, func(c *hooks.Config) {
			c.FailoverThreshold = 3
			c.FailoverCooldown = 300 * time.Millisecond
		})
		down := providertest.TwilioServerError()
		f.fake.SetOutage(&down)
		f.send(n)
		f.settle(30 * time.Second)
		o := f.verify(t)
		o.Faults = int64(o.Requests) // every request that reached the primary got its outage 500
		recordFault(t, "primary_down_fallback_up", o)
		byProvider := map[string]int{}
		for _, id := range f.ids {
			byProvider[f.message(id).GetString("provider")]++
		}
		must(t, byProvider["unifonic"] >= len(f.ids)*8/10, "expected the fallback to carry the traffic, got %v", byProvider)
	})

	faultFigures.Lock()
	figures := faultFigures.m
	faultFigures.Unlock()
	var injected int64
	for _, v := range figures {
		if o, ok := v.(outcome); ok {
			injected += o.Faults
		}
	}
	figures["faults_injected_total"] = injected
	figures["checks_passed"], figures["checks_failed"] = passed, failed
	if err := reliability.Record("faults", figures); err != nil {
		t.Error(err)
	}
	t.Logf("faults: %d passed, %d failed", passed, failed)
}

// backdateSent moves sent_at back by d on the given messages: it stands for the status
// poll's minimum age (2 minutes) passing, which a unit test does not wait for.
func backdateSent(t *testing.T, e *env, recs []*core.Record, d time.Duration) {
	t.Helper()
	for _, r := range recs {
		_, err := e.app.DB().NewQuery("UPDATE messages SET sent_at = {:at} WHERE id = {:id}").
			Bind(dbx.Params{"at": r.GetDateTime("sent_at").Time().Add(-d).UTC().Format("2006-01-02 15:04:05.000Z"), "id": r.Id}).Execute()
		must(t, err == nil, "%v", err)
	}
}

// TestCallbackBeforeTheSendOutcomeIsKept: a send hangs past the timeout although Twilio took
// the message, and its delivery report arrives while the outcome is still in doubt. The
// webhook finds no message with that sid yet and acknowledges the report without applying
// it; reconciliation then finds the message at Twilio with its current status, so the
// message still ends delivered, without waiting for the status poll.
func TestCallbackBeforeTheSendOutcomeIsKept(t *testing.T) {
	f := newFaultEnv(t, false, func(c *hooks.Config) { c.SendTimeout = 400 * time.Millisecond })
	f.fake.ReplyNext(1, providertest.Reply{Hang: true, Accept: true})
	f.send(1)
	var rec *core.Record
	poll(5*time.Second, func() bool { rec = f.message(f.ids[0]); return rec.GetString("status") == "delivered" })
	must(t, rec.GetString("status") == "delivered",
		"the delivery report came before the send was reconciled and was dropped: the message is %s (log %v)", rec.GetString("status"), f.logEvents(rec.Id))
}

// TestWebhookRetriedAfterAFailureIsApplied: a status callback whose change could not be
// stored is answered 500 so that Twilio retries it; the retry carries the same
// I-Twilio-Idempotency-Token and must be applied, not dropped as a duplicate.
func TestWebhookRetriedAfterAFailureIsApplied(t *testing.T) {
	f := newFaultEnv(t, false)
	f.fake.SetAutoCallbacks(0)
	f.send(1)
	rec := f.waitStatus(f.ids[0], "sent", 5*time.Second)
	// The storage refuses the change once (a full disk, a locked database), whichever way
	// clinicmsg writes it.
	_, err := f.app.DB().NewQuery(`CREATE TRIGGER test_refuse_delivered BEFORE UPDATE OF status ON messages
		WHEN NEW.status = 'delivered' BEGIN SELECT RAISE(ABORT, 'simulated storage failure'); END`).Execute()
	must(t, err == nil, "%v", err)
	params, ok := f.fake.StatusCallbackParams(rec.GetString("provider_message_id"), "delivered", 0)
	must(t, ok, "unknown sid")
	hook := f.srv.URL + "/api/clinicmsg/webhooks/twilio/status"
	post := func() int {
		req, err := providertest.SignedStatusCallback(hook, params, f.fake.AuthToken)
		must(t, err == nil, "%v", err)
		req.Header.Set("I-Twilio-Idempotency-Token", "retry-token-1")
		res, err := http.DefaultClient.Do(req.WithContext(context.Background()))
		must(t, err == nil, "%v", err)
		res.Body.Close()
		return res.StatusCode
	}
	first := post()
	must(t, first >= 500, "expected a 5xx while the change cannot be stored, got %d (message %s)", first, f.message(rec.Id).GetString("status"))
	_, err = f.app.DB().NewQuery("DROP TRIGGER test_refuse_delivered").Execute()
	must(t, err == nil, "%v", err)
	code := post()
	got := f.message(rec.Id).GetString("status")
	must(t, code == 204 && got == "delivered", "the retried callback was answered %d and the message is %s: the retry was dropped as a duplicate", code, got)
}
