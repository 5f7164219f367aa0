// Package hooks binds clinicmsg to a PocketBase app: create-time checks and rendering on
// messages, the durable outbox dispatcher, delivery-status intake, routes and jobs.
// main.go and the tests call the same Register, so what is tested is what runs.
package hooks

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the appliance's settings. Zero values get their defaults in Register.
type Config struct {
	SMSProvider         string // twilio|unifonic|mock (default mock)
	WhatsAppProvider    string // twilio|mock (default mock)
	SMSFallbackProvider string

	TwilioAccountSID          string
	TwilioAuthToken           string
	TwilioFromNumber          string
	TwilioWhatsAppNumber      string
	TwilioMessagingServiceSID string
	TwilioAPIURL              string

	UnifonicAppSID   string
	UnifonicSenderID string
	UnifonicAPIURL   string

	// Send rates in segments per second; 0 means no limit on our side (the provider queues).
	TwilioMPS   float64
	UnifonicMPS float64
	// Consecutive retryable failures that switch SMS to the fallback (default 5), and how
	// long before the primary is probed again (default 30s).
	FailoverThreshold int
	FailoverCooldown  time.Duration

	// AppWebhookURL receives the clinic's app events (patient replies, appointment answers),
	// signed with AppWebhookSecret.
	AppWebhookURL    string
	AppWebhookSecret string

	PublicURL     string // base URL providers call back on, e.g. https://msg.clinic.example
	WebhookSecret string
	// MetricsToken lets a Prometheus scraper read /metrics with "Authorization: Bearer
	// <token>"; empty means only superusers may.
	MetricsToken string

	MaxAttempts int // default 3
	// DuplicateWindow: the same template (or text) to the same patient within it is skipped
	// as a duplicate; default 10m, negative turns the guard off.
	DuplicateWindow time.Duration
	RetentionDays   int // default 90
	DefaultRegion   string

	// Dispatcher tuning; defaults suit a small VM.
	Workers       int           // sends in flight; 0 (default): learned from the provider
	ClaimBatch    int           // rows claimed per transaction, default 100
	Lease         time.Duration // how long a claimed row is ours, default 2m
	SendTimeout   time.Duration // one provider call, default 30s
	SweepInterval time.Duration // default 5s
	RetryBackoff  time.Duration // first retry delay, doubled per attempt, default 30s
	ShutdownGrace time.Duration // how long in-flight sends may finish on shutdown, default 8s

	// Campaign fan-out: recipients per transaction (default 500) and how often running
	// campaigns' counters are refreshed (default 1s).
	CampaignBatch    int
	CampaignInterval time.Duration

	// MockDeliverAfter is how long the mock waits before reporting delivery, default 1s.
	MockDeliverAfter time.Duration
}

// ConfigFromEnv reads the settings named in the design (the original spec's names).
func ConfigFromEnv() (Config, error) {
	c := Config{
		SMSProvider:               os.Getenv("SMS_PROVIDER"),
		WhatsAppProvider:          os.Getenv("WHATSAPP_PROVIDER"),
		SMSFallbackProvider:       os.Getenv("SMS_FALLBACK_PROVIDER"),
		TwilioAccountSID:          os.Getenv("TWILIO_ACCOUNT_SID"),
		TwilioAuthToken:           os.Getenv("TWILIO_AUTH_TOKEN"),
		TwilioFromNumber:          os.Getenv("TWILIO_FROM_NUMBER"),
		TwilioWhatsAppNumber:      os.Getenv("TWILIO_WHATSAPP_NUMBER"),
		TwilioMessagingServiceSID: os.Getenv("TWILIO_MESSAGING_SERVICE_SID"),
		TwilioAPIURL:              os.Getenv("TWILIO_API_URL"),
		UnifonicAppSID:            os.Getenv("UNIFONIC_APP_SID"),
		UnifonicSenderID:          os.Getenv("UNIFONIC_SENDER_ID"),
		UnifonicAPIURL:            os.Getenv("UNIFONIC_API_URL"),
		PublicURL:                 strings.TrimRight(os.Getenv("CLINICMSG_PUBLIC_URL"), "/"),
		WebhookSecret:             os.Getenv("CLINICMSG_WEBHOOK_SECRET"),
		MetricsToken:              os.Getenv("CLINICMSG_METRICS_TOKEN"),
		DefaultRegion:             os.Getenv("CLINICMSG_DEFAULT_REGION"),
		AppWebhookURL:             os.Getenv("CLINICMSG_APP_WEBHOOK_URL"),
		AppWebhookSecret:          os.Getenv("CLINICMSG_APP_WEBHOOK_SECRET"),
	}
	var err error
	if c.MaxAttempts, err = envInt("CLINICMSG_MAX_ATTEMPTS"); err != nil {
		return c, err
	}
	if c.RetentionDays, err = envInt("CLINICMSG_RETENTION_DAYS"); err != nil {
		return c, err
	}
	if c.Workers, err = envInt("CLINICMSG_WORKERS"); err != nil {
		return c, err
	}
	if c.MockDeliverAfter, err = envDuration("CLINICMSG_MOCK_DELIVER_AFTER"); err != nil {
		return c, err
	}
	if c.DuplicateWindow, err = envDuration("CLINICMSG_DUPLICATE_WINDOW"); err != nil {
		return c, err
	}
	if c.TwilioMPS, err = envFloat("TWILIO_MPS"); err != nil {
		return c, err
	}
	if c.UnifonicMPS, err = envFloat("UNIFONIC_MPS"); err != nil {
		return c, err
	}
	return c, nil
}

func envInt(name string) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s must be a non-negative integer, got %q", name, v)
	}
	return n, nil
}

func envFloat(name string) (float64, error) {
	v := os.Getenv(name)
	if v == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("%s must be a non-negative number, got %q", name, v)
	}
	return f, nil
}

func envDuration(name string) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s must be a duration such as 500ms, got %q", name, v)
	}
	return d, nil
}

func (c *Config) setDefaults() {
	if c.SMSProvider == "" {
		c.SMSProvider = "mock"
	}
	if c.WhatsAppProvider == "" {
		c.WhatsAppProvider = "mock"
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.RetentionDays <= 0 {
		c.RetentionDays = 90
	}
	if c.DefaultRegion == "" {
		c.DefaultRegion = "SA"
	}
	// Workers 0 (CLINICMSG_WORKERS unset): the dispatcher learns how many sends the
	// provider takes at once (dispatch.Concurrency).
	c.Workers = max(c.Workers, 0)
	if c.ClaimBatch <= 0 {
		c.ClaimBatch = 100
	}
	if c.Lease <= 0 {
		c.Lease = 2 * time.Minute
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 30 * time.Second
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = 5 * time.Second
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 30 * time.Second
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 8 * time.Second
	}
	if c.MockDeliverAfter <= 0 {
		c.MockDeliverAfter = time.Second
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 10 * time.Minute
	}
	if c.CampaignBatch <= 0 {
		c.CampaignBatch = 500
	}
	if c.CampaignInterval <= 0 {
		c.CampaignInterval = time.Second
	}
	if c.FailoverThreshold <= 0 {
		c.FailoverThreshold = 5
	}
	if c.FailoverCooldown <= 0 {
		c.FailoverCooldown = 30 * time.Second
	}
}
