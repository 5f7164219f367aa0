package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"clinicmsg/providers/providertest"
)

// holdingTwilio is a Twilio fake that answers nothing for an hour: with one worker
// (CLINICMSG_WORKERS=1) the appliance holds one send and the rest of the queue stays
// queued, so B1, B1b and B2 measure accepting messages, not sending them.
func holdingTwilio() *providertest.Twilio {
	f := providertest.NewTwilio(nil)
	f.SetLatency(time.Hour)
	return f
}

// acceptingChild starts the appliance for an accept-only scenario.
func (r *runner) acceptingChild(name string, prepare func(string) error) (*appliance, *providertest.Twilio, error) {
	f := holdingTwilio()
	addr, err := freeAddr()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	a, err := r.child(name, addr, prepare, twilioEnv(f, f.URL, addr, 1)...)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return a, f, nil
}

// b1 is REST create: POST /api/collections/messages/records as a clinic's app, every
// message through clinicmsg's create hooks (phone normalisation, template rendering,
// preferences, the duplicate guard, the audit row), against the same payload created in
// bench_plain, which has no hooks and a public create rule; same token, same concurrency.
func (r *runner) b1() error {
	a, f, err := r.acceptingChild("B1", nil)
	if err != nil {
		return err
	}
	defer f.Close()
	n, conc := r.o.b1Messages, r.o.b1Conc
	c := &client{base: a.base, hc: newHTTPClient(conc)}
	msgs := make([][]byte, n)
	plains := make([][]byte, n)
	for i := range n {
		msgs[i] = mustJSON(messageItem(i))
		plains[i] = mustJSON(plainItem(i))
	}
	base, subj, err := paired(2, n, conc, r.o.phase, a.cpuTime,
		func(i int) (int, error) {
			return 1, expect(c, "POST", "/api/collections/"+plainCollection+"/records", r.fx.appToken, plains[i], 200, "")
		},
		func(i int) (int, error) {
			return 1, expect(c, "POST", "/api/collections/messages/records", r.fx.appToken, msgs[i], 200, `"status":"queued"`)
		})
	f.Close() // releases the held send, so the appliance stops at once
	if err := r.finish("B1", a); err != nil {
		return err
	}
	if err != nil {
		return err
	}
	res := Result{
		Name: "B1", Title: fmt.Sprintf("REST create of messages (phone, template, preferences, duplicate guard, audit row), c=%d", conc),
		Value: subj.rate(), Unit: "msg/s", Baseline: base.rate(), Ratio: subj.rate() / base.rate(),
		BaselineOf: fmt.Sprintf("bare PocketBase create in %s (no hooks, public create rule, same payload and token), c=%d: p50 %.1f ms, p99 %.1f ms",
			plainCollection, conc, base.pct(50), base.pct(99)),
		Target: "≥ 0.8 of bare create, p99 ≤ 50 ms",
		P50ms:  subj.pct(50), P95ms: subj.pct(95), P99ms: subj.pct(99), N: subj.items, RSSMB: r.rss["B1"], Seconds: subj.elapsed.Seconds(),
	}
	cpuOf(&res, subj.cpu, subj.elapsed, subj.items)
	res.judge(res.Ratio >= 0.8 && res.P99ms <= 50)
	res.note("appliance CPU: %.0f µs per message vs %.0f µs per bare record", res.CPUPerItemUs, float64(base.cpu.Microseconds())/float64(max(base.items, 1)))
	res.note("messages by status after the run: %s", statusCounts(a.dir))
	r.add(res)
	return nil
}

// expect sends body and checks the status and, if want is not empty, that the answer
// contains want.
func expect(c *client, method, path, token string, body []byte, status int, want string) error {
	got, raw, err := c.do(method, path, token, "application/json", body)
	if err != nil {
		return err
	}
	if got != status || (want != "" && !bytes.Contains(raw, []byte(want))) {
		return fmt.Errorf("%s %s: expected %d with %s, got %d: %.300s", method, path, status, want, got, raw)
	}
	return nil
}

// variant is one B1b configuration: messages per request and concurrent clients.
type variant struct{ size, conc int }

func parseVariants(s string) ([]variant, error) {
	var out []variant
	for _, p := range strings.Split(s, ",") {
		n, c, ok := strings.Cut(strings.TrimSpace(p), "@")
		size, err1 := strconv.Atoi(n)
		conc, err2 := strconv.Atoi(c)
		if !ok || err1 != nil || err2 != nil || size < 1 || size > 1000 || conc < 1 {
			return nil, fmt.Errorf("%q is not a list of size@concurrency (size 1–1000), e.g. 100@16", s)
		}
		out = append(out, variant{size, conc})
	}
	return out, nil
}

// b1b is POST /api/clinicmsg/send: the same messages, one object per request or arrays,
// against PocketBase's own bulk path (/api/batch of creates in bench_plain; a plain
// create for one message per request).
func (r *runner) b1b() error {
	variants, err := parseVariants(r.o.b1bVariants)
	if err != nil {
		return err
	}
	a, f, err := r.acceptingChild("B1b", nil)
	if err != nil {
		return err
	}
	defer f.Close()
	hc := newHTTPClient(64)
	c := &client{base: a.base, hc: hc}
	next := 0 // every message of the child goes to its own number
	var rows []Result
	for _, v := range variants {
		total := max(r.o.b1bMessages, v.size*v.conc*2)
		ops := (total + v.size - 1) / v.size
		total = ops * v.size
		first := next
		next += total
		sends := make([][]byte, ops)
		batches := make([][]byte, ops)
		for op := range ops {
			if v.size == 1 {
				sends[op] = mustJSON(messageItem(first + op))
				batches[op] = mustJSON(plainItem(first + op))
				continue
			}
			items := make([]map[string]any, v.size)
			reqs := make([]map[string]any, v.size)
			for k := range v.size {
				i := first + op*v.size + k
				items[k] = messageItem(i)
				reqs[k] = map[string]any{"method": "POST", "url": "/api/collections/" + plainCollection + "/records", "body": plainItem(i)}
			}
			sends[op] = mustJSON(items)
			batches[op] = mustJSON(map[string]any{"requests": reqs})
		}
		r.logf("B1b: %d per request at c=%d, %d messages", v.size, v.conc, total)
		rounds := 2
		if v.size*v.conc >= 5000 {
			rounds = 1 // one request per client is already thousands of messages
		}
		base, subj, err := paired(rounds, ops, v.conc, r.o.phase, a.cpuTime,
			func(i int) (int, error) {
				if v.size == 1 {
					return 1, expect(c, "POST", "/api/collections/"+plainCollection+"/records", r.fx.appToken, batches[i], 200, "")
				}
				return v.size, expect(c, "POST", "/api/batch", r.fx.appToken, batches[i], 200, "")
			},
			func(i int) (int, error) {
				if v.size == 1 {
					return 1, expect(c, "POST", "/api/clinicmsg/send", r.fx.appToken, sends[i], 200, `"status":"queued"`)
				}
				status, raw, err := c.do("POST", "/api/clinicmsg/send", r.fx.appToken, "application/json", sends[i])
				if err != nil {
					return 0, err
				}
				var ans struct {
					Accepted int `json:"accepted"`
				}
				if status != 200 || json.Unmarshal(raw, &ans) != nil || ans.Accepted != v.size {
					return 0, fmt.Errorf("POST /api/clinicmsg/send: expected 200 with %d accepted, got %d: %.300s", v.size, status, raw)
				}
				return v.size, nil
			})
		if err != nil {
			f.Close()
			r.finish("B1b", a)
			return err
		}
		what := fmt.Sprintf("arrays of %d", v.size)
		baseWhat := fmt.Sprintf("PocketBase /api/batch of %d creates in %s", v.size, plainCollection)
		if v.size == 1 {
			what, baseWhat = "one message per request", "bare PocketBase create in "+plainCollection
		}
		res := Result{
			Name:  fmt.Sprintf("B1b/%d@%d", v.size, v.conc),
			Title: fmt.Sprintf("POST /api/clinicmsg/send, %s, c=%d (p50/p95/p99 per request)", what, v.conc),
			Value: subj.rate(), Unit: "msg/s", Baseline: base.rate(), Ratio: subj.rate() / base.rate(),
			BaselineOf: fmt.Sprintf("%s, same token and concurrency: p50 %.1f ms, p99 %.1f ms per request", baseWhat, base.pct(50), base.pct(99)),
			P50ms:      subj.pct(50), P95ms: subj.pct(95), P99ms: subj.pct(99), N: subj.items, Seconds: subj.elapsed.Seconds(),
		}
		cpuOf(&res, subj.cpu, subj.elapsed, subj.items)
		if base.items > 0 {
			// The floor the platform sets: PocketBase's own create of the same payload, with
			// none of clinicmsg's checks, costs this much of the appliance's CPU.
			res.note("appliance CPU per message: %.0f µs; baseline (%s) %.0f µs",
				res.CPUPerItemUs, baseWhat, float64(base.cpu.Microseconds())/float64(base.items))
		}
		if v.conc == 16 {
			res.Target = "≥ 8,000 msg/s, p99 ≤ 10 ms"
			res.judge(res.Value >= 8000 && res.P99ms <= 10)
			if v.size > 5 {
				res.note("with %d messages per request at c=16, a p99 of 10 ms needs ≥ %s msg/s (Little's law); the p99 part of the target is reachable only with a few messages per request",
					v.size, groupThousands(strconv.Itoa(16*v.size*100)))
			}
		}
		rows = append(rows, res)
	}
	f.Close()
	if err := r.finish("B1b", a); err != nil {
		return err
	}
	counts := statusCounts(a.dir)
	for _, res := range rows {
		res.RSSMB = r.rss["B1b"]
		res.note("messages by status after all variants: %s", counts)
		r.add(res)
	}
	return nil
}
