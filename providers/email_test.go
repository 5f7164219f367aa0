package providers_test

import (
	"context"
	"errors"
	"net/mail"
	"os/exec"
	"testing"

	"clinicmsg/providers"
)

type failingMailer struct{ err error }

func (m failingMailer) SendMail(*providers.Mail) error { return m.err }

// TestEmailUnconfigured: an email that can never be delivered as things are set up (no
// SMTP, no mail transport) is a permanent failure with a stable code, never an unknown
// outcome that is retried; the check reports ErrNotConfigured.
func TestEmailUnconfigured(t *testing.T) {
	msg := &providers.Message{ID: "m1", Channel: providers.ChannelEmail, To: "sara@example.com", Subject: "Hi", Body: "Hello"}
	from := func() mail.Address { return mail.Address{Address: "clinic@example.com"} }
	scenarios := []struct {
		name string
		p    *providers.Email
		code string
	}{
		{"smtp off", &providers.Email{NewMailer: func() providers.Mailer { return failingMailer{} }, From: from, Unconfigured: func() string { return "set up SMTP" }}, "not_configured"},
		{"no sendmail", &providers.Email{NewMailer: func() providers.Mailer {
			return failingMailer{errors.New("failed to locate a sendmail executable path")}
		}, From: from}, "no_mail_transport"},
		{"no executable", &providers.Email{NewMailer: func() providers.Mailer { return failingMailer{exec.ErrNotFound} }, From: from}, "no_mail_transport"},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			_, err := s.p.Send(context.Background(), msg)
			pe, ok := providers.AsError(err)
			if !ok || !errors.Is(err, providers.ErrPermanent) || pe.Code != s.code {
				t.Fatalf("expected a permanent error coded %s, got %v", s.code, err)
			}
		})
	}
	off := &providers.Email{Unconfigured: func() string { return "set up SMTP" }}
	if err := off.Check(context.Background()); !errors.Is(err, providers.ErrNotConfigured) {
		t.Fatalf("expected the check to report ErrNotConfigured, got %v", err)
	}
}
