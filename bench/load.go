package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// newHTTPClient is the load generator's client: keep-alive connections for every worker,
// so that the bench measures the appliance, not TCP handshakes.
func newHTTPClient(conns int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = conns * 2
	t.MaxIdleConnsPerHost = conns * 2
	t.DisableCompression = true
	t.ForceAttemptHTTP2 = false
	return &http.Client{Transport: t, Timeout: 2 * time.Minute}
}

// mustJSON encodes a request body the bench built itself.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// client speaks to one appliance over HTTP, knowing only its public API.
type client struct {
	base string
	hc   *http.Client
}

// do sends one request and returns the status and body. body may be nil.
func (c *client) do(method, path, token, contentType string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	return res.StatusCode, raw, err
}

// call sends in as JSON, expects status want and decodes the answer into out (if not nil).
func (c *client) call(method, path, token string, in any, want int, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	status, raw, err := c.do(method, path, token, "application/json", body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if status != want {
		return fmt.Errorf("%s %s: expected %d, got %d: %.500s", method, path, want, status, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

// phase is what a closed-loop load phase measured: operations, wall time and each
// operation's latency.
type phase struct {
	ops     int // operations (requests)
	items   int // items carried (messages; equal to ops unless requests carry several)
	elapsed time.Duration
	lat     []time.Duration
	cpu     time.Duration // the appliance's CPU time over the phase
}

func (r *phase) add(o phase) {
	r.ops += o.ops
	r.items += o.items
	r.elapsed += o.elapsed
	r.cpu += o.cpu
	r.lat = append(r.lat, o.lat...)
}

// rate is items per second.
func (r phase) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.items) / r.elapsed.Seconds()
}

// pct returns the p-th percentile (0–100) of the latencies in milliseconds.
func (r phase) pct(p float64) float64 {
	return percentile(r.lat, p)
}

func percentile(lat []time.Duration, p float64) float64 {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return float64(s[i]) / float64(time.Millisecond)
}

// load runs up to ops operations on conc workers (a closed loop: each worker issues its
// next request when the last one is answered), and starts no new one after budget (zero:
// no limit), so that a slow appliance still ends the run in time. op(i) performs
// operation i and returns how many items it carried. The first error stops the phase.
func load(ops, conc int, budget time.Duration, op func(i int) (int, error)) (phase, error) {
	if ops <= 0 {
		return phase{}, nil
	}
	conc = max(1, min(conc, ops))
	var (
		next     atomic.Int64
		items    atomic.Int64
		failed   atomic.Bool
		firstErr error
		once     sync.Once
		wg       sync.WaitGroup
	)
	lats := make([][]time.Duration, conc)
	start := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, ops/conc+1)
			for !failed.Load() {
				if budget > 0 && time.Since(start) > budget {
					break
				}
				i := int(next.Add(1) - 1)
				if i >= ops {
					break
				}
				t0 := time.Now()
				n, err := op(i)
				mine = append(mine, time.Since(t0))
				if err != nil {
					once.Do(func() { firstErr = err })
					failed.Store(true)
					break
				}
				items.Add(int64(n))
			}
			lats[w] = mine
		}()
	}
	wg.Wait()
	r := phase{items: int(items.Load()), elapsed: time.Since(start)}
	for _, l := range lats {
		r.lat = append(r.lat, l...)
	}
	r.ops = len(r.lat)
	return r, firstErr
}

// paired runs a baseline and a subject in alternating phases (baseline, subject,
// baseline, subject, …), so that load from elsewhere on a shared machine falls on both.
// Each side gets up to ops operations in total, at most budget per phase; cpu reads the
// appliance's CPU time.
func paired(rounds, ops, conc int, budget time.Duration, cpu func() time.Duration, baseline, subject func(i int) (int, error)) (base, subj phase, err error) {
	rounds = max(1, min(rounds, ops))
	per := ops / rounds
	for r := range rounds {
		from, n := r*per, per
		if r == rounds-1 {
			n = ops - from
		}
		c0 := cpu()
		b, err := load(n, conc, budget, func(i int) (int, error) { return baseline(from + i) })
		if err != nil {
			return base, subj, fmt.Errorf("baseline: %w", err)
		}
		c1 := cpu()
		b.cpu = c1 - c0
		base.add(b)
		s, err := load(n, conc, budget, func(i int) (int, error) { return subject(from + i) })
		if err != nil {
			return base, subj, err
		}
		s.cpu = cpu() - c1
		subj.add(s)
	}
	return base, subj, nil
}
