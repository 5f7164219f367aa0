package hooks_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"clinicmsg/hooks"
	"clinicmsg/providers"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const metricsToken = "scrape-token-0123456789"

func withMetricsToken(c *hooks.Config) { c.MetricsToken = metricsToken }

// scrape reads /metrics with the given Authorization header.
func (e *env) scrape(auth string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+"/metrics", nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

func TestMetricsNeedTheTokenOrASuperuser(t *testing.T) {
	e := newEnv(t, withMetricsToken).quiet()
	scenarios := []struct {
		name   string
		auth   string
		status int
	}{
		{"nobody", "", 401},
		{"wrong token", "Bearer not-the-token", 401},
		{"token without Bearer", metricsToken, 401},
		{"token prefix", "Bearer " + metricsToken[:10], 401},
		{"clinic admin", e.tokens["adminA"], 401},
		{"superuser", e.tokens["superuser"], 200},
		{"token", "Bearer " + metricsToken, 200},
		{"token, lower-case scheme", "bearer " + metricsToken, 200},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			status, body := e.scrape(s.auth)
			must(t, status == s.status, "expected %d, got %d: %.200s", s.status, status, body)
			if status == 200 {
				must(t, strings.Contains(body, "clinicmsg_outbox_depth"), "expected the exposition format, got %.200s", body)
			} else {
				must(t, !strings.Contains(body, "clinicmsg_"), "a refused scrape must not leak metrics")
			}
		})
	}

	// Without a configured token only a superuser may scrape.
	e2 := newEnv(t).quiet()
	status, _ := e2.scrape("Bearer ")
	must(t, status == 401, "an empty token must not match an unset one, got %d", status)
}

// TestMetricsCountWhatWasSent: the counters parsed from /metrics match what the mock was
// asked to do.
func TestMetricsCountWhatWasSent(t *testing.T) {
	e := newEnv(t, withMetricsToken)
	var ids []string
	for i, to := range []string{"0501234567", "0501234568", "0501234569", providers.MockNumberPermanent, providers.MockNumberFlaky, providers.MockNumberUndelivered} {
		res := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "sms", "to": to, "body": fmt.Sprintf("Reminder %d", i)})
		must(t, res.Status == 200, "create: %s", res.Raw)
		ids = append(ids, res.str("id"))
	}
	wa := e.do("POST", "/api/collections/messages/records", "staffA", map[string]any{"channel": "whatsapp", "to": "0501234567", "body": "Your results are ready"})
	must(t, wa.Status == 200, "create: %s", wa.Raw)
	ids = append(ids, wa.str("id"))
	for _, id := range ids {
		e.waitFinal(id, 10*time.Second)
	}
	e.svc.CountWebhook("twilio", "applied")
	e.svc.CountWebhook("twilio", "applied")
	e.svc.CountWebhook("unifonic", "forbidden")
	e.runJob(hooks.JobCheckHealth)

	status, body := e.scrape("Bearer " + metricsToken)
	must(t, status == 200, "scrape: %d", status)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	must(t, err == nil, "the exposition must parse: %v", err)

	scenarios := []struct {
		family string
		labels map[string]string
		want   float64
	}{
		{"clinicmsg_messages_created_total", map[string]string{"channel": "sms", "status": "queued"}, 6},
		{"clinicmsg_messages_created_total", map[string]string{"channel": "whatsapp", "status": "queued"}, 1},
		{"clinicmsg_messages_sent_total", map[string]string{"channel": "sms", "provider": "mock"}, 5},
		{"clinicmsg_messages_sent_total", map[string]string{"channel": "whatsapp", "provider": "mock"}, 1},
		{"clinicmsg_messages_delivered_total", map[string]string{"channel": "sms", "provider": "mock"}, 4},
		{"clinicmsg_messages_failed_total", map[string]string{"channel": "sms", "provider": "mock", "status": "failed"}, 1},
		{"clinicmsg_messages_failed_total", map[string]string{"channel": "sms", "provider": "mock", "status": "undelivered"}, 1},
		{"clinicmsg_message_retries_total", map[string]string{"channel": "sms", "provider": "mock", "kind": "backoff"}, 1},
		{"clinicmsg_send_duration_seconds", map[string]string{"provider": "mock", "channel": "sms", "result": "ok"}, 5},
		{"clinicmsg_send_duration_seconds", map[string]string{"provider": "mock", "channel": "sms", "result": "retryable"}, 1},
		{"clinicmsg_send_duration_seconds", map[string]string{"provider": "mock", "channel": "sms", "result": "permanent"}, 1},
		{"clinicmsg_webhook_requests_total", map[string]string{"provider": "twilio", "result": "applied"}, 2},
		{"clinicmsg_webhook_requests_total", map[string]string{"provider": "unifonic", "result": "forbidden"}, 1},
		{"clinicmsg_job_runs_total", map[string]string{"job": hooks.JobCheckHealth, "outcome": "ok"}, 1},
		{"clinicmsg_outbox_depth", map[string]string{"state": "due"}, 0},
		{"clinicmsg_outbox_oldest_due_age_seconds", nil, 0},
		{"clinicmsg_channel_health", map[string]string{"channel": "sms", "provider": "mock"}, 2},
	}
	for _, s := range scenarios {
		t.Run(fmt.Sprintf("%s%v", s.family, s.labels), func(t *testing.T) {
			got, ok := sample(families[s.family], s.labels)
			must(t, ok, "no %s%v in:\n%s", s.family, s.labels, grep(body, s.family))
			must(t, got == s.want, "expected %v, got %v", s.want, got)
		})
	}
	must(t, families["go_goroutines"] != nil && families["process_resident_memory_bytes"] != nil, "expected the Go and process collectors")
	must(t, !strings.Contains(body, "0501234567") && !strings.Contains(body, "Reminder"), "metrics must carry no phone numbers or bodies")
}

// sample returns the value of the metric in f whose labels include want: a counter's or
// gauge's value, a histogram's sample count.
func sample(f *dto.MetricFamily, want map[string]string) (float64, bool) {
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func grep(body, prefix string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
