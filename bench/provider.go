package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
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
func twilioEnv(f *providertest.Twilio, apiURL, addr string, workers int) []string {
	return []string{
		"SMS_PROVIDER=twilio",
		"TWILIO_ACCOUNT_SID=" + f.AccountSID,
		"TWILIO_AUTH_TOKEN=" + f.AuthToken,
		"TWILIO_FROM_NUMBER=" + twilioFrom,
		"TWILIO_API_URL=" + apiURL,
		"CLINICMSG_PUBLIC_URL=http://" + addr,
		fmt.Sprintf("CLINICMSG_WORKERS=%d", workers),
	}
}

// statusPath is where clinicmsg takes Twilio's status callbacks.
const statusPath = "/api/clinicmsg/webhooks/twilio/status"

// carrier stands between the appliance and the Twilio fake, as the network and the
// handset do: it passes every request through, and for each message Twilio accepts it
// posts a signed "delivered" status callback to the appliance after a delay drawn from
// delay, retrying a callback that is not acknowledged.
type carrier struct {
	fake        *providertest.Twilio
	srv         *httptest.Server
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
	// firstSend is when the first request reached Twilio.
	firstSend time.Time
	why       map[string]int // failed attempts by answer or error
}

// newCarrier starts the pass-through proxy and workers posting callbacks.
func newCarrier(fake *providertest.Twilio, callbackBase string, delay span, workers int) (*carrier, error) {
	target, err := url.Parse(fake.URL)
	if err != nil {
		return nil, err
	}
	c := &carrier{
		fake:        fake,
		callbackURL: callbackBase + statusPath,
		delay:       delay,
		hc:          newHTTPClient(workers),
		queue:       make(chan string, 1<<16),
		ackAt:       map[string]time.Time{},
		why:         map[string]int{},
	}
	proxy := &httputil.ReverseProxy{
		Rewrite:        func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport:      newHTTPClient(2048).Transport,
		ModifyResponse: c.onResponse,
		// Requests cut off when an appliance stops are expected; say nothing about them.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c.mu.Lock()
		if c.firstSend.IsZero() {
			c.firstSend = time.Now()
		}
		c.mu.Unlock()
		proxy.ServeHTTP(w, req)
	}))
	for range workers {
		c.wg.Add(1)
		go c.post()
	}
	return c, nil
}

// onResponse schedules the delivery report of each message Twilio accepted.
func (c *carrier) onResponse(res *http.Response) error {
	if res.Request.Method != http.MethodPost || res.StatusCode != http.StatusCreated || !strings.HasSuffix(res.Request.URL.Path, "/Messages.json") {
		return nil
	}
	raw, err := io.ReadAll(res.Body)
	res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	var m struct {
		Sid string `json:"sid"`
	}
	if json.Unmarshal(raw, &m) != nil || m.Sid == "" {
		return nil
	}
	c.pending.Add(1)
	time.AfterFunc(c.delay.draw(), func() { c.queue <- m.Sid })
	return nil
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

// close stops the proxy after every scheduled callback was posted (or waits at most
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
	c.srv.Close()
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
