package bench

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"clinicmsg/providers/providertest"
)

// span is a uniform distribution of durations, [lo, hi]; lo == hi is a fixed value.
type span struct{ lo, hi time.Duration }

// parseSpan reads "50ms-200ms" (uniform) or "5ms" (fixed).
func parseSpan(s string) (span, error) {
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		hi = lo
	}
	a, err := time.ParseDuration(strings.TrimSpace(lo))
	if err != nil {
		return span{}, fmt.Errorf("%q is not a duration or a range such as 50ms-200ms", s)
	}
	b, err := time.ParseDuration(strings.TrimSpace(hi))
	if err != nil || b < a || a < 0 {
		return span{}, fmt.Errorf("%q is not a duration or a range such as 50ms-200ms", s)
	}
	return span{a, b}, nil
}

func (s span) draw() time.Duration {
	if s.hi <= s.lo {
		return s.lo
	}
	return s.lo + rand.N(s.hi-s.lo+1)
}

func (s span) mean() time.Duration { return (s.lo + s.hi) / 2 }

func (s span) String() string {
	if s.hi <= s.lo {
		return s.lo.String()
	}
	return s.lo.String() + "–" + s.hi.String()
}

// twilioEnv configures a child to send SMS through Twilio at apiURL and to have Twilio
// call it back at its own address.
// twilioEnv is the appliance's environment for the fake Twilio; workers 0 leaves
// CLINICMSG_WORKERS unset, so the appliance learns how many sends to keep in flight.
func twilioEnv(f *providertest.Twilio, apiURL, addr string, workers int) []string {
	env := []string{
		"SMS_PROVIDER=twilio",
		"TWILIO_ACCOUNT_SID=" + f.AccountSID,
		"TWILIO_AUTH_TOKEN=" + f.AuthToken,
		"TWILIO_FROM_NUMBER=" + twilioFrom,
		"TWILIO_API_URL=" + apiURL,
		"CLINICMSG_PUBLIC_URL=http://" + addr,
	}
	if workers > 0 {
		env = append(env, fmt.Sprintf("CLINICMSG_WORKERS=%d", workers))
	}
	return env
}

// statusPath is where clinicmsg takes Twilio's status callbacks.
const statusPath = "/api/clinicmsg/webhooks/twilio/status"

// carrier plays the network and the handset for the Twilio fake: for each message Twilio
// accepts it posts a signed "delivered" status callback to the appliance after a delay
// drawn from delay, retrying a callback that is not acknowledged. It hears of accepted
// messages from the fake itself (OnCreated): a proxy in front of the fake doubled the bench
// process's HTTP work per send, CPU taken from the appliance on a small machine.
type carrier struct {
	fake        *providertest.Twilio
	callbackURL string
	delay       span
	hc          *http.Client

	queue   chan string
	wg      sync.WaitGroup
	pending sync.WaitGroup

	halted  atomic.Bool  // the appliance is stopping: post nothing more
	acked   atomic.Int64 // callbacks the appliance acknowledged (2xx)
	failed  atomic.Int64 // callback attempts that were not acknowledged
	mu      sync.Mutex
	ackAt   map[string]time.Time // by the message's To
	lastAck time.Time
	// firstSend is when the first message's request reached Twilio.
	firstSend time.Time
	why       map[string]int // failed attempts by answer or error
}

// newCarrier starts the workers posting callbacks for the messages fake accepts.
func newCarrier(fake *providertest.Twilio, callbackBase string, delay span, workers int) *carrier {
	c := &carrier{
		fake:        fake,
		callbackURL: callbackBase + statusPath,
		delay:       delay,
		hc:          newHTTPClient(workers),
		queue:       make(chan string, 1<<16),
		ackAt:       map[string]time.Time{},
		why:         map[string]int{},
	}
	fake.OnCreated(c.accepted)
	for range workers {
		c.wg.Add(1)
		go c.post()
	}
	return c
}

// accepted schedules the delivery report of a message Twilio accepted.
func (c *carrier) accepted(sid string, arrived time.Time) {
	c.mu.Lock()
	if c.firstSend.IsZero() || arrived.Before(c.firstSend) {
		c.firstSend = arrived
	}
	c.mu.Unlock()
	c.pending.Add(1)
	time.AfterFunc(c.delay.draw(), func() { c.queue <- sid })
}

func (c *carrier) post() {
	defer c.wg.Done()
	for sid := range c.queue {
		c.deliver(sid)
		c.pending.Done()
	}
}

// deliver posts the "delivered" callback of sid, as Twilio would sign it; a callback that
// is not acknowledged is tried again, up to five times.
func (c *carrier) deliver(sid string) {
	params, ok := c.fake.StatusCallbackParams(sid, "delivered", 0)
	if !ok {
		c.failed.Add(1)
		return
	}
	for attempt := range 5 {
		if c.halted.Load() {
			return
		}
		req, err := providertest.SignedStatusCallback(c.callbackURL, params, c.fake.AuthToken)
		if err != nil {
			c.failed.Add(1)
			return
		}
		res, err := c.hc.Do(req)
		why := ""
		if err != nil {
			why = err.Error()
			if i := strings.LastIndex(why, ": "); i >= 0 {
				why = why[i+2:]
			}
		} else {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			why = res.Status
			if res.StatusCode/100 == 2 {
				now := time.Now()
				c.acked.Add(1)
				c.mu.Lock()
				c.ackAt[params.Get("To")] = now
				if now.After(c.lastAck) {
					c.lastAck = now
				}
				c.mu.Unlock()
				return
			}
		}
		c.failed.Add(1)
		c.mu.Lock()
		c.why[why]++
		c.mu.Unlock()
		time.Sleep(time.Duration(100*(attempt+1)) * time.Millisecond)
	}
}

// halt stops posting callbacks (the appliance is about to stop); those not yet posted
// are dropped.
func (c *carrier) halt() { c.halted.Store(true) }

// close stops the workers after every scheduled callback was posted (or waits at most
// grace for them).
func (c *carrier) close(grace time.Duration) {
	done := make(chan struct{})
	go func() { c.pending.Wait(); close(done) }()
	select {
	case <-done:
		close(c.queue)
		c.wg.Wait()
	case <-time.After(grace):
		// Callbacks still scheduled are dropped with the process.
	}
	c.fake.OnCreated(nil)
}

// sendTwilio is one Twilio Messages create as a bare client makes it: B4's baseline.
func sendTwilio(hc *http.Client, f *providertest.Twilio, to string) error {
	form := url.Values{"To": {to}, "From": {twilioFrom}, "Body": {renderedBody}}
	req, err := http.NewRequest(http.MethodPost, f.URL+"/2010-04-01/Accounts/"+f.AccountSID+"/Messages.json", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.SetBasicAuth(f.AccountSID, f.AuthToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	io.Copy(io.Discard, res.Body)
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("twilio fake answered %d", res.StatusCode)
	}
	return nil
}
