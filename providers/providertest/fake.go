// Package providertest runs wire-faithful fakes of the Twilio and Unifonic HTTP APIs on
// loopback, so the real vendor clients (twilio-go, the Unifonic adapter) are tested and
// benchmarked without an account. Each fake is scriptable per test: added latency, outages,
// hangs, connection resets and per-number replies, and it records every request it gets.
//
// The fakes import nothing from clinicmsg: they speak the vendors' wire formats only, so
// any package (providers' own tests included) can use them without an import cycle.
package providertest

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"
)

// Request is one request a fake received, as it arrived on the wire.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Form   url.Values // the urlencoded body of a POST, empty otherwise
	Header http.Header
	At     time.Time
}

// Reply is a scripted answer that replaces the fake's normal one.
type Reply struct {
	Status      int    // HTTP status; 200 when zero
	ContentType string // default application/json
	Body        string
	Header      http.Header
	// Hang answers nothing until the client gives up (its timeout) or the fake closes; the
	// connection is then dropped, as a stuck vendor or proxy would.
	Hang bool
	// Reset drops the connection after the whole request was read, without an answer.
	Reset bool
	// Accept stores the message as accepted before a Hang or Reset, so a later status
	// lookup or list finds it: the "vendor did the work but the answer was lost" case.
	Accept bool
}

// HTMLUnavailable is the 503 an edge proxy or load balancer answers with: an HTML body that
// no vendor SDK can decode as an API error.
func HTMLUnavailable() Reply {
	return Reply{
		Status:      http.StatusServiceUnavailable,
		ContentType: "text/html; charset=utf-8",
		Body:        "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n",
	}
}

// script is the scripting and recording shared by the fakes. Its exported methods are
// promoted to each fake.
type script struct {
	mu       sync.Mutex
	latency  func() time.Duration
	next     []Reply
	outage   *Reply
	numbers  map[string]Reply
	requests []Request
	limit    int

	closed    chan struct{}
	closeOnce sync.Once
	bg        sync.WaitGroup
	ctx       context.Context // canceled on close, for background work
	cancel    context.CancelFunc
}

func newScript() *script {
	ctx, cancel := context.WithCancel(context.Background())
	return &script{closed: make(chan struct{}), numbers: map[string]Reply{}, ctx: ctx, cancel: cancel}
}

// SetLatency adds a fixed delay before every answer; zero removes it.
func (s *script) SetLatency(d time.Duration) {
	if d <= 0 {
		s.SetLatencyFunc(nil)
		return
	}
	s.SetLatencyFunc(func() time.Duration { return d })
}

// SetLatencyFunc draws the delay before each answer from f (a distribution); nil removes it.
func (s *script) SetLatencyFunc(f func() time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = f
}

// ReplyNext makes the next n send requests (message creates) answer with r.
func (s *script) ReplyNext(n int, r Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.next = append(s.next, r)
	}
}

// ReplyToNumber makes every send to number answer with r. The number is matched on its
// digits, so "+9665...", "9665..." and "whatsapp:+9665..." are the same.
func (s *script) ReplyToNumber(number string, r Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.numbers[digits(number)] = r
}

// SetOutage makes every request, whatever its endpoint, answer with *r; nil ends the outage.
func (s *script) SetOutage(r *Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r == nil {
		s.outage = nil
		return
	}
	c := *r
	s.outage = &c
}

// SetHistoryLimit keeps only the last n recorded requests and stored messages (0: keep
// all), so that a long benchmark does not grow without bound.
func (s *script) SetHistoryLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = n
	s.trimLocked()
}

// Requests returns a copy of every request received so far, oldest first.
func (s *script) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	copy(out, s.requests)
	return out
}

func (s *script) trimLocked() {
	if s.limit > 0 && len(s.requests) > s.limit {
		s.requests = append(s.requests[:0:0], s.requests[len(s.requests)-s.limit:]...)
	}
}

// record parses the request's form and stores a copy of it.
func (s *script) record(r *http.Request) Request {
	_ = r.ParseForm()
	req := Request{
		Method: r.Method,
		Path:   r.URL.Path,
		Query:  r.URL.Query(),
		Form:   r.PostForm,
		Header: r.Header.Clone(),
		At:     time.Now().UTC(),
	}
	if req.Form == nil {
		req.Form = url.Values{}
	}
	s.mu.Lock()
	s.requests = append(s.requests, req)
	if s.limit > 0 && len(s.requests) > 2*s.limit {
		s.trimLocked()
	}
	s.mu.Unlock()
	return req
}

// intercept applies latency and any scripted reply. It reports whether it answered (or
// dropped) the request; when it did not, the fake answers normally. accept, if not nil, is
// called before a Hang or Reset whose Reply says Accept.
func (s *script) intercept(w http.ResponseWriter, r *http.Request, send bool, number string, accept func()) bool {
	s.mu.Lock()
	latency := s.latency
	s.mu.Unlock()
	if latency != nil {
		if d := latency(); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				panic(http.ErrAbortHandler)
			case <-s.closed:
				t.Stop()
				panic(http.ErrAbortHandler)
			}
		}
	}

	s.mu.Lock()
	var rep *Reply
	switch {
	case s.outage != nil:
		c := *s.outage
		rep = &c
	case send && len(s.next) > 0:
		c := s.next[0]
		s.next = s.next[1:]
		rep = &c
	case send && number != "":
		if c, ok := s.numbers[digits(number)]; ok {
			rep = &c
		}
	}
	s.mu.Unlock()
	if rep == nil {
		return false
	}

	if (rep.Hang || rep.Reset) && rep.Accept && accept != nil {
		accept()
	}
	switch {
	case rep.Hang:
		select {
		case <-r.Context().Done():
		case <-s.closed:
		}
		panic(http.ErrAbortHandler)
	case rep.Reset:
		panic(http.ErrAbortHandler)
	}
	for k, vs := range rep.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	ct := rep.ContentType
	if ct == "" {
		ct = "application/json; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	status := rep.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(rep.Body))
	return true
}

// goBackground runs f until it returns or the fake closes (f should watch s.ctx).
func (s *script) goBackground(f func()) {
	select {
	case <-s.closed:
		return
	default:
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		f()
	}()
}

// sleep waits d or until the fake closes; it reports whether the full time passed.
func (s *script) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.closed:
		return false
	}
}

// shutdown releases hung handlers and background work; the caller then closes the server.
func (s *script) shutdown() {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.cancel()
	})
	s.bg.Wait()
}

// digits keeps the digits of a phone number, dropping "+", "whatsapp:", spaces and dashes.
func digits(number string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, number)
}

// maskNumber hides all but the country code and last two digits, as the vendors do in
// error texts and as clinicmsg's logs require.
func maskNumber(number string) string {
	d := digits(number)
	if len(d) <= 5 {
		return strings.Repeat("X", len(d))
	}
	return "+" + d[:3] + strings.Repeat("X", len(d)-5) + d[len(d)-2:]
}

// smsSegments estimates how many segments a body is sent as: GSM-7 for plain ASCII (with
// the escape characters counting twice), UCS-2 otherwise.
func smsSegments(body string) int {
	gsm := true
	for _, r := range body {
		if r > unicode.MaxASCII || r == '`' {
			gsm = false
			break
		}
	}
	units, single, multi := 0, 160, 153
	if gsm {
		for _, r := range body {
			units++
			if strings.ContainsRune("^{}\\[~]|", r) {
				units++
			}
		}
	} else {
		single, multi = 70, 67
		for _, r := range body {
			units++
			if r > 0xFFFF {
				units++
			}
		}
	}
	if units <= single {
		return 1
	}
	return (units + multi - 1) / multi
}
