package hooks

import "time"

// SendObserver sees every provider call the dispatcher makes (metrics plug in here).
type SendObserver func(provider, channel string, took time.Duration, err error)

// ObserveSends adds an observer; call it before the app serves.
func (s *Service) ObserveSends(o SendObserver) {
	s.sendObservers = append(s.sendObservers, o)
}

func (s *Service) observeSend(provider, channel string, took time.Duration, err error) {
	for _, o := range s.sendObservers {
		o(provider, channel, took, err)
	}
}

// WebhookObserver sees the result of every delivery-report request (metrics plug in here).
type WebhookObserver func(provider, result string)

// ObserveWebhooks adds an observer; call it before the app serves.
func (s *Service) ObserveWebhooks(o WebhookObserver) {
	s.webhookObservers = append(s.webhookObservers, o)
}

func (s *Service) countWebhook(provider, result string) {
	for _, o := range s.webhookObservers {
		o(provider, result)
	}
}
