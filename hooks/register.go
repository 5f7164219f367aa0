package hooks

import (
	"fmt"
	"net/mail"
	"time"

	"golang.org/x/sync/semaphore"

	"clinicmsg/internal/compose"
	"clinicmsg/internal/dispatch"
	"clinicmsg/internal/store"
	"clinicmsg/providers"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/hook"
	"github.com/pocketbase/pocketbase/tools/mailer"
)

// Service is clinicmsg bound to one PocketBase app.
type Service struct {
	app        core.App
	cfg        Config
	Router     *providers.Router
	Dispatcher *dispatch.Dispatcher
	Campaigns  *Campaigns
	AppEvents  *AppEvents
	mock       *providers.Mock
	// The vendors' webhook parsers, by provider name: the webhook handlers know no
	// vendor type.
	statusParsers  map[string]providers.StatusWebhookParser
	inboundParsers map[string]providers.InboundParser
	webhookIDs     *recentSet
	opsState       *opsState
	writer         *store.Writer
	store          *store.Store
	rules          *compose.Rules
	clinicCache    *clinicCache
	templateCache  *templateCache
	authCache      *authCache
	// creating bounds the messages being checked and stored across requests at once
	// (creatingMax of them).
	creating    *semaphore.Weighted
	creatingMax int64

	sendObservers    []SendObserver
	webhookObservers []WebhookObserver
}

// Register binds every hook, route and background worker of clinicmsg to app. The
// dispatcher starts when the app serves (not for CLI commands such as migrate); tests may
// call Service.Dispatcher.Start themselves.
func Register(app core.App, cfg Config) (*Service, error) {
	cfg.setDefaults()
	if cfg.AppWebhookURL != "" && cfg.AppWebhookSecret == "" {
		return nil, fmt.Errorf("CLINICMSG_APP_WEBHOOK_SECRET is required with CLINICMSG_APP_WEBHOOK_URL: the app checks each event's signature with it")
	}
	s := &Service{app: app, cfg: cfg, webhookIDs: newRecentSet(10000)}
	if err := s.buildRouter(); err != nil {
		return nil, err
	}
	s.writer = store.NewWriter(app, 256, 2*time.Millisecond)
	s.store = store.New(app)
	s.rules = &compose.Rules{Channels: store.Channels, Categories: store.Categories, DefaultRegion: cfg.DefaultRegion, ChannelProblem: s.channelProblem}
	s.clinicCache = newClinicCache(5 * time.Second)
	s.templateCache = newTemplateCache(5 * time.Second)
	s.authCache = newAuthCache(5 * time.Second)
	s.creating, s.creatingMax = semaphore.NewWeighted(maxCreating), maxCreating
	s.authCache.bind(app)
	s.Dispatcher = s.newDispatcher()
	s.Campaigns = newCampaigns(s)
	s.AppEvents = newAppEvents(s)

	app.OnRecordCreate("clinics").BindFunc(s.onClinicSave)
	app.OnRecordUpdate("clinics").BindFunc(s.onClinicSave)
	app.OnRecordDelete("clinics").BindFunc(s.onClinicDelete)
	app.OnRecordCreateRequest("clinics").BindFunc(s.onClinicWriteRequest)
	app.OnRecordUpdateRequest("clinics").BindFunc(s.onClinicWriteRequest)
	app.OnRecordValidate("users").BindFunc(s.onUserValidate)
	app.OnRecordAfterUpdateSuccess("clinics").BindFunc(func(e *core.RecordEvent) error {
		s.clinicCache.forget(e.Record.Id)
		return e.Next()
	})
	clearTemplates := func(e *core.RecordEvent) error {
		s.templateCache.clear()
		return e.Next()
	}
	app.OnRecordCreate("templates").BindFunc(s.onTemplateSave)
	app.OnRecordUpdate("templates").BindFunc(s.onTemplateSave)
	app.OnRecordAfterCreateSuccess("templates").BindFunc(clearTemplates)
	app.OnRecordAfterUpdateSuccess("templates").BindFunc(clearTemplates)
	app.OnRecordAfterDeleteSuccess("templates").BindFunc(clearTemplates)
	app.OnRecordCreate("preferences").BindFunc(s.onPreferenceSave)
	app.OnRecordUpdate("preferences").BindFunc(s.onPreferenceSave)
	app.OnRecordCreate("preferences").BindFunc(s.onPreferenceSaved)
	app.OnRecordUpdate("preferences").BindFunc(s.onPreferenceSaved)
	app.OnRecordCreateRequest().BindFunc(answerStorageFailures)
	app.OnRecordUpdateRequest().BindFunc(answerStorageFailures)
	app.OnRecordCreateRequest(clinicScoped...).BindFunc(s.onScopedCreateRequest)
	readable := append([]string{"clinics"}, clinicScoped...)
	app.OnRecordCreateRequest(readable...).BindFunc(s.onReadableCreateRequest)
	app.OnRecordUpdateRequest(readable...).BindFunc(s.onReadableCreateRequest)
	app.OnRecordCreate("messages").BindFunc(s.onMessageCreate)
	app.OnRecordCreate("campaigns").BindFunc(s.onCampaignCreate)
	app.OnRecordUpdateRequest("campaigns").BindFunc(s.onCampaignUpdateRequest)
	app.OnRecordUpdate("campaigns").BindFunc(s.onCampaignUpdate)
	app.OnRecordAfterCreateSuccess("campaigns").BindFunc(func(e *core.RecordEvent) error {
		s.Campaigns.Wake()
		return e.Next()
	})
	app.OnRecordAfterCreateSuccess("messages").BindFunc(func(e *core.RecordEvent) error {
		// Announce the create (realtime) before the dispatcher can announce its first
		// update, so that subscribers see them in order.
		err := e.Next()
		if e.Record.GetString("status") == providers.StatusQueued {
			s.Dispatcher.Wake()
		}
		return err
	})

	s.bindOps()

	app.OnServe().BindFunc(func(se *core.ServeEvent) error {
		s.registerRoutes(se)
		s.writer.Start()
		s.Dispatcher.Start()
		s.Campaigns.Start()
		s.AppEvents.Start()
		return se.Next()
	})

	// Stop before PocketBase closes the database (its own handler runs in e.Next).
	app.OnTerminate().Bind(&hook.Handler[*core.TerminateEvent]{
		Func: func(e *core.TerminateEvent) error {
			s.Stop()
			return e.Next()
		},
		Priority: -100,
	})
	return s, nil
}

// Stop stops the dispatcher (in-flight sends finish or are written back) and drops pending
// mock delivery reports.
func (s *Service) Stop() {
	// Each stop is bounded by the grace period: a pass that hangs cannot hold the shutdown
	// (its context has ended; the rows it holds are settled by the next start).
	s.Campaigns.Stop(s.cfg.ShutdownGrace)
	s.AppEvents.Stop(s.cfg.ShutdownGrace)
	s.Dispatcher.Stop()
	if s.mock != nil {
		s.mock.Close()
	}
	s.writer.Stop()
}

func (s *Service) buildRouter() error {
	r := providers.NewRouter()
	r.FailureThreshold, r.Cooldown = s.cfg.FailoverThreshold, s.cfg.FailoverCooldown
	s.mock = &providers.Mock{
		DeliverAfter: s.cfg.MockDeliverAfter,
		Logger:       s.app.Logger(),
		Report: func(u providers.StatusUpdate) {
			if _, err := s.Dispatcher.ApplyStatus(u, "mock", "mock_dlr"); err != nil {
				s.app.Logger().Warn("failed to apply mock delivery report", "message", u.MessageID, "error", err)
			}
		},
	}
	r.Register("mock", s.mock)
	r.Register("email", &providers.Email{
		NewMailer:    func() providers.Mailer { return appMailer{s.app} },
		Unconfigured: s.emailUnconfigured,
		From: func() mail.Address {
			meta := s.app.Settings().Meta
			return mail.Address{Name: meta.SenderName, Address: meta.SenderAddress}
		},
	})
	for _, name := range []string{s.cfg.SMSProvider, s.cfg.WhatsAppProvider, s.cfg.SMSFallbackProvider} {
		if name == "" || name == "mock" {
			continue
		}
		if _, ok := r.Provider(name); ok {
			continue
		}
		p, err := s.vendorProvider(name)
		if err != nil {
			return err
		}
		r.Register(name, p)
	}
	if s.cfg.TwilioMPS > 0 {
		r.SetRate("twilio", s.cfg.TwilioMPS)
	}
	if s.cfg.UnifonicMPS > 0 {
		r.SetRate("unifonic", s.cfg.UnifonicMPS)
	}
	if err := r.SetRoute(providers.ChannelSMS, providers.Route{Primary: s.cfg.SMSProvider, Fallback: s.cfg.SMSFallbackProvider}); err != nil {
		return err
	}
	if err := r.SetRoute(providers.ChannelWhatsApp, providers.Route{Primary: s.cfg.WhatsAppProvider}); err != nil {
		return err
	}
	if err := r.SetRoute(providers.ChannelEmail, providers.Route{Primary: "email"}); err != nil {
		return err
	}
	s.Router = r
	return nil
}

// vendorProvider builds a real vendor's adapter from the settings.
func (s *Service) vendorProvider(name string) (providers.Provider, error) {
	switch name {
	case "twilio":
		callback := ""
		if s.cfg.PublicURL != "" {
			callback = s.cfg.PublicURL + twilioStatusPath
		}
		p, err := providers.NewTwilio(providers.TwilioOptions{
			AccountSID:          s.cfg.TwilioAccountSID,
			AuthToken:           s.cfg.TwilioAuthToken,
			FromNumber:          s.cfg.TwilioFromNumber,
			WhatsAppNumber:      s.cfg.TwilioWhatsAppNumber,
			MessagingServiceSID: s.cfg.TwilioMessagingServiceSID,
			BaseURL:             s.cfg.TwilioAPIURL,
			StatusCallbackURL:   callback,
		})
		if err != nil {
			return nil, fmt.Errorf("failed to configure twilio (TWILIO_* settings): %w", err)
		}
		s.addParsers("twilio", p)
		return p, nil
	case "unifonic":
		callback := ""
		if s.cfg.PublicURL != "" && s.cfg.WebhookSecret != "" {
			callback = s.cfg.PublicURL + unifonicDLRPrefix + s.cfg.WebhookSecret
		}
		p, err := providers.NewUnifonic(providers.UnifonicOptions{
			AppSID:            s.cfg.UnifonicAppSID,
			SenderID:          s.cfg.UnifonicSenderID,
			BaseURL:           s.cfg.UnifonicAPIURL,
			StatusCallbackURL: callback,
		})
		if err != nil {
			return nil, fmt.Errorf("failed to configure unifonic (UNIFONIC_* settings): %w", err)
		}
		s.addParsers("unifonic", p)
		return p, nil
	}
	return nil, fmt.Errorf("provider %q is not available; use twilio, unifonic or mock", name)
}

// newDispatcher builds the send pipeline from the settings.
func (s *Service) newDispatcher() *dispatch.Dispatcher {
	c := s.cfg
	return dispatch.New(s.app, s.store, s.writer, s.Router, dispatch.Config{
		Workers: c.Workers, Rate: c.TwilioMPS + c.UnifonicMPS, ClaimBatch: c.ClaimBatch, Lease: c.Lease, SendTimeout: c.SendTimeout,
		SweepInterval: c.SweepInterval, ShutdownGrace: c.ShutdownGrace, MaxAttempts: c.MaxAttempts,
		RetryBackoff: c.RetryBackoff,
	}, dispatchEnv{s})
}

// ApplyStatus applies a provider's status report to its message (see dispatch).
func (s *Service) ApplyStatus(u providers.StatusUpdate, provider, source string) (bool, error) {
	return s.Dispatcher.ApplyStatus(u, provider, source)
}

// emailUnconfigured says what email lacks on this appliance, or "" when SMTP is set up.
func (s *Service) emailUnconfigured() string {
	if !s.app.Settings().SMTP.Enabled {
		return "email is not set up: a superuser enables SMTP in the admin UI (Settings → Mail settings)"
	}
	return ""
}

// channelProblem says why a channel cannot carry messages on this appliance, or "".
func (s *Service) channelProblem(channel string) string {
	if channel == providers.ChannelEmail {
		return s.emailUnconfigured()
	}
	return ""
}

// addParsers keeps the webhook parsers provider p implements.
func (s *Service) addParsers(name string, p providers.Provider) {
	if s.statusParsers == nil {
		s.statusParsers, s.inboundParsers = map[string]providers.StatusWebhookParser{}, map[string]providers.InboundParser{}
	}
	if sp, ok := p.(providers.StatusWebhookParser); ok {
		s.statusParsers[name] = sp
	}
	if ip, ok := p.(providers.InboundParser); ok {
		s.inboundParsers[name] = ip
	}
}

// appMailer sends the email channel with the appliance's mail settings (PocketBase's SMTP
// or sendmail client, made anew per send so a changed setting applies at once).
type appMailer struct{ app core.App }

func (m appMailer) SendMail(x *providers.Mail) error {
	return m.app.NewMailClient().Send(&mailer.Message{From: x.From, To: []mail.Address{x.To}, Subject: x.Subject,
		Text: x.Text, HTML: x.HTML, Headers: x.Headers})
}
