package hooks

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"clinicmsg/internal/store"
	"clinicmsg/providers"

	"github.com/pocketbase/pocketbase/core"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics is clinicmsg's Prometheus instrumentation. It has a registry of its own (never
// the global one), so that two apps in one process, as in the tests, count separately.
type metrics struct {
	reg     *prometheus.Registry
	handler http.Handler

	created     *prometheus.CounterVec
	sent        *prometheus.CounterVec
	delivered   *prometheus.CounterVec
	read        *prometheus.CounterVec
	failed      *prometheus.CounterVec
	retries     *prometheus.CounterVec
	sendSeconds *prometheus.HistogramVec
	webhooks    *prometheus.CounterVec
	jobRuns     *prometheus.CounterVec
	jobSeconds  *prometheus.GaugeVec
	jobSuccess  *prometheus.GaugeVec
}

func newMetrics(s *Service) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.created = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "clinicmsg_messages_created_total",
		Help: "Messages created, by channel and the status they started in (queued, scheduled, skipped).",
	}, []string{"channel", "status"})
	m.sent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "clinicmsg_messages_sent_total",
		Help: "Messages a provider accepted (first time sent_at was set).",
	}, []string{"channel", "provider"})
	m.delivered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "clinicmsg_messages_delivered_total",
		Help: "Messages reported delivered (or read, which implies delivered).",
	}, []string{"channel", "provider"})
	m.read = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "clinicmsg_messages_read_total",
		Help: "Messages reported read (WhatsApp).",
	}, []string{"channel", "provider"})
	m.failed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "clinicmsg_messages_failed_total",
		Help: "Messages that ended failed or undelivered, by that status.",
	}, []string{"channel", "provider", "status"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "clinicmsg_message_retries_total",
		Help: "Messages queued again: kind=backoff after a retryable failure, kind=requeue for a failed message retried by hand or by the retry job.",
	}, []string{"channel", "provider", "kind"})
	m.sendSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "clinicmsg_send_duration_seconds",
		Help:    "Duration of one provider call, by provider, channel and result (ok, retryable, permanent, unknown).",
		Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
	}, []string{"provider", "channel", "result"})
	m.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "clinicmsg_webhook_requests_total",
		Help: "Provider callbacks received, by provider and result.",
	}, []string{"provider", "result"})
	m.jobRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "clinicmsg_job_runs_total",
		Help: "Maintenance job runs by job and outcome (ok, failed, panicked, skipped = refused because a run was in progress).",
	}, []string{"job", "outcome"})
	m.jobSeconds = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "clinicmsg_job_last_duration_seconds",
		Help: "Duration of each job's last finished run.",
	}, []string{"job"})
	m.jobSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "clinicmsg_job_last_success_timestamp_seconds",
		Help: "Unix time each job last finished ok; alert when it falls behind the schedule.",
	}, []string{"job"})

	m.reg.MustRegister(m.created, m.sent, m.delivered, m.read, m.failed, m.retries, m.sendSeconds,
		m.webhooks, m.jobRuns, m.jobSeconds, m.jobSuccess,
		&scrapeCollector{s: s},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return m
}

// observeSend times every provider call (Service.ObserveSends).
func (m *metrics) observeSend(provider, channel string, took time.Duration, err error) {
	result := "ok"
	switch providers.ClassOf(err) {
	case nil:
	case providers.ErrRetryable:
		result = "retryable"
	case providers.ErrPermanent:
		result = "permanent"
	default:
		result = "unknown"
	}
	m.sendSeconds.WithLabelValues(provider, channel, result).Observe(took.Seconds())
}

func (m *metrics) messageCreated(r *core.Record) {
	m.created.WithLabelValues(r.GetString("channel"), r.GetString("status")).Inc()
}

// messageUpdated counts the transitions one committed save made. The timestamps are set
// once each, so they count sends and deliveries exactly once whichever path (send result,
// webhook, poll, reconciliation) got there first. A status change of the store says what
// it changed on the event's context (store.MovedBy); any other save is compared with the
// record as it was loaded.
func (m *metrics) messageUpdated(e *core.RecordEvent) {
	r := e.Record
	moved, ok := store.MovedBy(e.Context)
	if !ok {
		old := r.Original()
		moved = store.Moved{
			From:      old.GetString("status"),
			To:        r.GetString("status"),
			Sent:      old.GetDateTime("sent_at").IsZero() && !r.GetDateTime("sent_at").IsZero(),
			Delivered: old.GetDateTime("delivered_at").IsZero() && !r.GetDateTime("delivered_at").IsZero(),
			Read:      old.GetDateTime("read_at").IsZero() && !r.GetDateTime("read_at").IsZero(),
		}
	}
	channel, provider := r.GetString("channel"), r.GetString("provider")
	if moved.Sent {
		m.sent.WithLabelValues(channel, provider).Inc()
	}
	if moved.Delivered {
		m.delivered.WithLabelValues(channel, provider).Inc()
	}
	if moved.Read {
		m.read.WithLabelValues(channel, provider).Inc()
	}
	was, now := moved.From, moved.To
	if was == now {
		return
	}
	switch now {
	case providers.StatusFailed, providers.StatusUndelivered:
		m.failed.WithLabelValues(channel, provider, now).Inc()
	case providers.StatusQueued:
		switch was {
		case providers.StatusSending:
			m.retries.WithLabelValues(channel, provider, "backoff").Inc()
		case providers.StatusFailed:
			m.retries.WithLabelValues(channel, provider, "requeue").Inc()
		}
	}
}

// countWebhook counts one provider callback (Service.ObserveWebhooks); the webhook
// handlers report results such as "applied", "duplicate", "unknown_message" or
// "bad_signature".
func (m *metrics) countWebhook(provider, result string) {
	m.webhooks.WithLabelValues(provider, result).Inc()
}

// scrapeCollector reads the outbox when Prometheus scrapes, so the gauges are never stale
// and cost nothing between scrapes; the channel health comes from the health cache, so a
// scrape never calls a vendor.
type scrapeCollector struct{ s *Service }

var (
	outboxDepthDesc = prometheus.NewDesc("clinicmsg_outbox_depth",
		"Messages in the outbox by state: due (queued, due now), waiting (queued for a later retry), sending (claimed), scheduled.", []string{"state"}, nil)
	outboxAgeDesc = prometheus.NewDesc("clinicmsg_outbox_oldest_due_age_seconds",
		"How long the oldest due message has waited past its due time; grows when sending stalls.", nil, nil)
	channelHealthDesc = prometheus.NewDesc("clinicmsg_channel_health",
		"Last known health of each channel's primary provider: 2 healthy, 1 degraded, 0 down.", []string{"channel", "provider"}, nil)
)

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- outboxDepthDesc
	ch <- outboxAgeDesc
	ch <- channelHealthDesc
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	ob, err := c.s.outbox(c.s.app, "")
	if err != nil {
		c.s.app.Logger().Warn("failed to read the outbox for metrics", "error", err)
		ch <- prometheus.NewInvalidMetric(outboxDepthDesc, err)
	} else {
		for state, n := range map[string]int{"due": ob.Due, "waiting": ob.Depth - ob.Due, "sending": ob.Sending, "scheduled": ob.Scheduled} {
			ch <- prometheus.MustNewConstMetric(outboxDepthDesc, prometheus.GaugeValue, float64(n), state)
		}
		ch <- prometheus.MustNewConstMetric(outboxAgeDesc, prometheus.GaugeValue, ob.OldestDueAgeSeconds)
	}
	if o := c.s.ops(); o != nil {
		for channel, h := range o.health.lastKnown() {
			ch <- prometheus.MustNewConstMetric(channelHealthDesc, prometheus.GaugeValue, float64(healthLevel[h.Status]), channel, h.Provider)
		}
	}
}

// handleMetrics serves GET /metrics to a superuser or to a scraper that presents
// CLINICMSG_METRICS_TOKEN as a bearer token; anyone else gets 401.
func (s *Service) handleMetrics(e *core.RequestEvent) error {
	if !e.HasSuperuserAuth() && !s.validMetricsToken(e.Request) {
		return e.UnauthorizedError("The request requires the metrics token or superuser authorization.", errors.New("no metrics token"))
	}
	o := s.ops()
	if o == nil {
		return e.InternalServerError("Metrics are not set up.", nil)
	}
	o.metrics.handler.ServeHTTP(e.Response, e.Request)
	return nil
}

func (s *Service) validMetricsToken(r *http.Request) bool {
	if s.cfg.MetricsToken == "" {
		return false
	}
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "Bearer ") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(h[7:]), []byte(s.cfg.MetricsToken)) == 1
}
