package providers

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestRouter(t *testing.T) {
	r := NewRouter()
	r.Register("mock", &Mock{})
	if err := r.SetRoute(ChannelSMS, Route{Primary: "twilio"}); err == nil {
		t.Fatalf("expected an error routing to an unregistered provider")
	}
	if err := r.SetRoute(ChannelSMS, Route{Primary: "mock"}); err != nil {
		t.Fatal(err)
	}
	name, p, err := r.For(ChannelSMS)
	if err != nil || name != "mock" || p == nil {
		t.Fatalf("expected mock, got %q %v %v", name, p, err)
	}
	if _, _, err := r.For(ChannelWhatsApp); err == nil {
		t.Fatalf("expected an error for an unrouted channel")
	}
	defer func() {
		if recover() == nil {
			t.Fatalf("expected a panic on a duplicate registration")
		}
	}()
	r.Register("mock", &Mock{})
}

func TestSettledRoute(t *testing.T) {
	now := time.Unix(0, 0)
	r := NewRouter()
	r.now = func() time.Time { return now }
	r.FailureThreshold, r.Cooldown = 2, time.Minute
	r.Register("a", &Mock{})
	r.Register("b", &Mock{})
	if err := r.SetRoute(ChannelSMS, Route{Primary: "a", Fallback: "b"}); err != nil {
		t.Fatal(err)
	}
	if err := r.SetRoute(ChannelWhatsApp, Route{Primary: "a"}); err != nil {
		t.Fatal(err)
	}
	scenarios := []struct {
		name    string
		step    func()
		channel string
		want    string
		ok      bool
	}{
		{"a closed breaker settles on the primary", nil, ChannelSMS, "a", true},
		{"an unrouted channel is not settled", nil, ChannelEmail, "", false},
		{"an open breaker with a fallback is not settled", func() { r.Report("a", ErrRetryable); r.Report("a", ErrRetryable) }, ChannelSMS, "", false},
		{"an open breaker without a fallback stays on the primary", nil, ChannelWhatsApp, "a", true},
		{"a half-open breaker is not settled, and asking takes no probe", func() { now = now.Add(2 * time.Minute) }, ChannelSMS, "", false},
		{"the probe is still there for For", nil, "", "", false},
		{"a successful probe settles on the primary again", func() { r.Report("a", nil) }, ChannelSMS, "a", true},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			if s.step != nil {
				s.step()
			}
			if s.channel == "" {
				if name, _, err := r.For(ChannelSMS); err != nil || name != "a" {
					t.Fatalf("expected the probe to go to a, got %q %v", name, err)
				}
				return
			}
			name, ok := r.Settled(s.channel)
			if name != s.want || ok != s.ok {
				t.Fatalf("expected %q %v, got %q %v", s.want, s.ok, name, ok)
			}
		})
	}
}

func TestErrorClasses(t *testing.T) {
	scenarios := []struct {
		err  error
		want error
	}{
		{&Error{Provider: "x", Class: ErrPermanent, Code: "21211"}, ErrPermanent},
		{&Error{Provider: "x", Class: ErrRetryable, HTTPStatus: 429}, ErrRetryable},
		{fmt.Errorf("wrapped: %w", &Error{Provider: "x", Class: ErrRetryable}), ErrRetryable},
		{errors.New("unclassified"), ErrUnknown},
		{&Error{Provider: "x", Class: ErrUnknown, Err: context.DeadlineExceeded}, ErrUnknown},
	}
	for _, s := range scenarios {
		if got := ClassOf(s.err); got != s.want {
			t.Fatalf("%v: expected %v, got %v", s.err, s.want, got)
		}
	}
	e := &Error{Provider: "x", Class: ErrUnknown, Err: context.DeadlineExceeded}
	if !errors.Is(e, context.DeadlineExceeded) {
		t.Fatalf("the cause must stay reachable")
	}
}

func TestMockOutcomes(t *testing.T) {
	reports := make(chan StatusUpdate, 4)
	m := &Mock{Report: func(u StatusUpdate) { reports <- u }, DeliverAfter: 1}
	defer m.Close()
	ctx := context.Background()
	r, err := m.Send(ctx, &Message{ID: "m1", Channel: ChannelSMS, To: "+966501234567", Segments: 2})
	if err != nil || r.Status != StatusSent || r.Segments != 2 {
		t.Fatalf("expected an accepted send, got %v %v", r, err)
	}
	if u := <-reports; u.MessageID != "m1" || u.Status != StatusDelivered {
		t.Fatalf("expected a delivered report for m1, got %+v", u)
	}
	if u, err := m.FetchStatus(ctx, r.ProviderMessageID); err != nil || u.Status != StatusDelivered || u.MessageID != "m1" {
		t.Fatalf("expected delivered, got %+v %v", u, err)
	}
	if _, err := m.Send(ctx, &Message{ID: "m2", To: MockNumberPermanent}); ClassOf(err) != ErrPermanent {
		t.Fatalf("expected permanent, got %v", err)
	}
	if _, err := m.Send(ctx, &Message{ID: "m3", To: "whatsapp:" + MockNumberRetryable}); ClassOf(err) != ErrRetryable {
		t.Fatalf("expected retryable, got %v", err)
	}
	if _, err := m.Send(ctx, &Message{ID: "m4", To: MockNumberFlaky}); ClassOf(err) != ErrRetryable {
		t.Fatalf("expected the first flaky attempt to fail, got %v", err)
	}
	if _, err := m.Send(ctx, &Message{ID: "m4", To: MockNumberFlaky}); err != nil {
		t.Fatalf("expected the second flaky attempt to pass, got %v", err)
	}
	if _, err := m.Send(ctx, &Message{ID: "m5", To: MockNumberUnknown}); ClassOf(err) != ErrUnknown {
		t.Fatalf("expected unknown, got %v", err)
	}
}
