package bench

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"clinicmsg/providers/providertest"
)

// signedCallback is one prepared Twilio status callback: its form body and headers.
type signedCallback struct {
	body, signature, token string
}

// b5 is status-webhook ingestion: signed "delivered" callbacks, as Twilio posts them, for
// n messages already sent (stored with raw SQL before the appliance starts), c at once;
// clinicmsg answers each after its change is committed. The baseline is the bare
// PocketBase equivalent: a PATCH of one field of a bench_plain record (find + save) with
// the same concurrency.
func (r *runner) b5() error {
	n, conc := r.o.b5Webhooks, r.o.b5Conc
	f := providertest.NewTwilio(nil)
	defer f.Close()
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	prepare := func(dir string) error {
		if r.o.b5History > 0 {
			r.logf("B5: seeding %d older messages", r.o.b5History+r.o.b5History/10)
			if err := seedStats(dir, r.fx.clinicID, r.o.b5History); err != nil {
				return err
			}
		}
		return seedSent(dir, r.fx.clinicID, n)
	}
	a, err := r.child("B5", addr, prepare, twilioEnv(f, f.URL, addr, 32)...)
	if err != nil {
		return err
	}
	hc := newHTTPClient(conc)
	c := &client{base: a.base, hc: hc}
	cbURL := a.base + statusPath
	calls := make([]signedCallback, n)
	for i := range n {
		p := url.Values{
			"AccountSid": {f.AccountSID}, "ApiVersion": {"2010-04-01"}, "From": {twilioFrom},
			"MessageSid": {twilioSid(i)}, "SmsSid": {twilioSid(i)}, "MessageStatus": {"delivered"}, "SmsStatus": {"delivered"},
			"To": {phoneE164(i)}, "RawDlrDoneDate": {time.Now().UTC().Format("0601021504")},
		}
		calls[i] = signedCallback{body: p.Encode(), signature: providertest.TwilioSignature(f.AuthToken, cbURL, p), token: fmt.Sprintf("%032x", i+1)}
	}
	patch := []byte(`{"status":"delivered"}`)
	base, subj, err := paired(2, n, conc, r.o.phase, a.cpuTime,
		func(i int) (int, error) {
			return 1, expect(c, "PATCH", "/api/collections/"+plainCollection+"/records/"+plainID(i), "", patch, 200, "")
		},
		func(i int) (int, error) {
			req, err := http.NewRequest(http.MethodPost, cbURL, strings.NewReader(calls[i].body))
			if err != nil {
				return 0, err
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
			req.Header.Set("User-Agent", "TwilioProxy/1.1")
			req.Header.Set("X-Twilio-Signature", calls[i].signature)
			req.Header.Set("I-Twilio-Idempotency-Token", calls[i].token)
			res, err := hc.Do(req)
			if err != nil {
				return 0, err
			}
			raw, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusNoContent {
				return 0, fmt.Errorf("status callback: expected 204, got %d: %.300s", res.StatusCode, raw)
			}
			return 1, nil
		})
	if stopErr := r.finish("B5", a); err == nil {
		err = stopErr
	}
	if err != nil {
		return err
	}
	// The seeded sids (twilioSid) start with zeros; older messages' sids are random.
	delivered, err := countRows(a.dir, "messages", "status = 'delivered' AND provider_message_id LIKE 'SM0000000000000000%'")
	if err != nil {
		return err
	}
	logged, err := countRows(a.dir, "message_logs", "status = 'delivered'")
	if err != nil {
		return err
	}
	res := Result{
		Name:  "B5",
		Title: fmt.Sprintf("signed Twilio status callbacks (delivered) for sent messages, c=%d, answered after commit", conc),
		Value: subj.rate(), Unit: "webhooks/s", Baseline: base.rate(), Ratio: subj.rate() / base.rate(),
		BaselineOf: fmt.Sprintf("bare PocketBase PATCH of one field of a %s record (find + save), c=%d: p50 %.1f ms, p99 %.1f ms", plainCollection, conc, base.pct(50), base.pct(99)),
		Target:     "≥ 3,000 webhooks/s, p99 ≤ 150 ms",
		P50ms:      subj.pct(50), P95ms: subj.pct(95), P99ms: subj.pct(99), N: subj.items, RSSMB: r.rss["B5"], Seconds: subj.elapsed.Seconds(),
	}
	cpuOf(&res, subj.cpu, subj.elapsed, subj.items)
	res.judge(res.Value >= 3000 && res.P99ms <= 150 && delivered == subj.items)
	res.note("after the run: %d messages delivered and %d delivered audit rows for %d callbacks posted", delivered, logged, subj.items)
	if r.o.b5History > 0 {
		res.note("the table also held %d older messages (--b5-history)", r.o.b5History+r.o.b5History/10)
	}
	r.add(res)
	return nil
}
