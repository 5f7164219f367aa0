package providers

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net"
	"net/mail"
	"net/textproto"
	"os/exec"
	"strings"
)

// Mail is one email as the appliance sends it.
type Mail struct {
	From    mail.Address
	To      mail.Address
	Subject string
	Text    string
	HTML    string
	Headers map[string]string
}

// Mailer sends one email: the appliance hands over its mail settings' client (PocketBase's
// SMTP or sendmail) behind this one method, so the adapter knows no mail library.
type Mailer interface {
	SendMail(m *Mail) error
}

// Email sends the email channel through the appliance's mailer (PocketBase's SMTP settings).
type Email struct {
	// NewMailer returns the mailer to use for one send, so that changed SMTP settings apply
	// without a restart.
	NewMailer func() Mailer
	// From returns the sender address (the admin UI's "sender" settings).
	From func() mail.Address
	// Domain names the Message-ID domain; default "clinicmsg.local".
	Domain string
	// Unconfigured says what is missing for email to be sent ("" when it is set up). Nil:
	// always set up.
	Unconfigured func() string
}

var (
	_ Provider = (*Email)(nil)
	_ Checker  = (*Email)(nil)
)

// Check reports ErrNotConfigured while the mail settings are missing.
func (p *Email) Check(context.Context) error {
	if p.Unconfigured != nil {
		if what := p.Unconfigured(); what != "" {
			return fmt.Errorf("%s: %w", what, ErrNotConfigured)
		}
	}
	return nil
}

// Send mails one message. SMTP 4xx replies and refused connections are retryable, 5xx
// replies permanent; anything else may have reached the server, so it is unknown.
func (p *Email) Send(ctx context.Context, m *Message) (*Receipt, error) {
	if m.Channel != ChannelEmail {
		return nil, &Error{Provider: "email", Class: ErrPermanent, Message: "the email provider only sends the email channel"}
	}
	if p.Unconfigured != nil {
		// Without a mail server the send can only fail, the same way, every time.
		if what := p.Unconfigured(); what != "" {
			return nil, &Error{Provider: "email", Class: ErrPermanent, Code: "not_configured", Message: what, Err: ErrNotConfigured}
		}
	}
	domain := p.Domain
	if domain == "" {
		domain = "clinicmsg.local"
	}
	msgID := "<" + m.ID + "@" + domain + ">"
	body := html.EscapeString(m.Body)
	body = strings.ReplaceAll(body, "\n", "<br>\n")
	dir := ""
	if m.Language == "ar" {
		dir = ` dir="rtl"`
	}
	msg := &Mail{
		From:    p.From(),
		To:      mail.Address{Address: m.To},
		Subject: m.Subject,
		Text:    m.Body,
		HTML:    "<div" + dir + ">" + body + "</div>",
		Headers: map[string]string{"Message-ID": msgID},
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Provider: "email", Class: ErrRetryable, Message: "not sent: shutting down", Err: err}
	}
	if err := p.NewMailer().SendMail(msg); err != nil {
		return nil, classifyMailError(err)
	}
	return &Receipt{ProviderMessageID: msgID, Status: StatusSent, Segments: 1}, nil
}

func classifyMailError(err error) error {
	e := &Error{Provider: "email", Class: ErrUnknown, Err: fmt.Errorf("failed to send email: %w", err)}
	var tp *textproto.Error
	var opErr *net.OpError
	switch {
	case errors.As(err, &tp):
		e.Code = fmt.Sprint(tp.Code)
		e.Message = tp.Msg
		if tp.Code >= 500 {
			e.Class = ErrPermanent
		} else if tp.Code >= 400 {
			e.Class = ErrRetryable
		}
	case errors.Is(err, exec.ErrNotFound), strings.Contains(err.Error(), "sendmail executable"):
		// PocketBase falls back to a local sendmail when SMTP is off; none is installed.
		e.Class = ErrPermanent
		e.Code = "no_mail_transport"
		e.Message = "no mail transport: enable SMTP in the admin UI settings"
	case errors.As(err, &opErr) && opErr.Op == "dial":
		e.Class = ErrRetryable
	}
	return e
}
