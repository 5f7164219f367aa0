package hooks

import (
	"database/sql"
	"errors"
	"fmt"
	"time"

	"clinicmsg/internal/compose"
	"clinicmsg/internal/store"
	"clinicmsg/providers"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"
)

// auditKey holds, on a record being created over HTTP, who asked for it. It is custom data
// on the record, never a field, so clients cannot set it.
const auditKey = "@clinicmsg.audit"

type audit struct {
	IP        string
	UserAgent string
	User      string
}

// onMessageCreate checks, normalises and renders a message before it is inserted, decides
// its first status, and writes the first audit row in the same transaction. It runs for
// every create through PocketBase: REST, admin UI and Go.
func (s *Service) onMessageCreate(e *core.RecordEvent) error {
	first, err := s.prepareMessage(e.App, e.Record, nil)
	if err != nil {
		return err
	}
	// The insert and its first audit row commit together.
	return saveWith(e, func(tx core.App) error {
		first.Message = e.Record.Id
		return store.WriteLog(tx, first)
	})
}

// prepareMessage is the create-time work on a new message: it runs the create checks
// (compose) on rec, decides its first status, and returns the first audit row. seen, when
// set, holds what a bulk request preloaded and the messages accepted earlier in it, which
// the database cannot see yet.
func (s *Service) prepareMessage(app core.App, rec *core.Record, seen *batchSeen) (store.Entry, error) {
	clinic, err := s.checkAddress(app, rec, seen)
	if err != nil {
		return store.Entry{}, err
	}
	return s.prepareAddressed(app, rec, clinic, seen)
}

// checkAddress is the first part of prepareMessage: the clinic, the channel and the
// normalised recipient, which a bulk create needs for all its messages before it looks
// up their preferences at once.
func (s *Service) checkAddress(app core.App, rec *core.Record, seen *batchSeen) (*core.Record, error) {
	return s.rules.Address(rec, createLookups{s: s, app: app, seen: seen})
}

// prepareAddressed is the rest of prepareMessage, for a message that passed checkAddress.
func (s *Service) prepareAddressed(app core.App, rec, clinic *core.Record, seen *batchSeen) (store.Entry, error) {
	d, err := s.rules.Prepare(rec, clinic, createLookups{s: s, app: app, seen: seen})
	if err != nil {
		return store.Entry{}, err
	}
	store.Initial(rec, d.Status, d.Reason)
	var who audit
	if a, ok := rec.GetRaw(auditKey).(audit); ok {
		who = a
	}
	if who.User != "" {
		d.Detail["user"] = who.User
	}
	return store.Entry{Message: rec.Id, Event: "created", Status: d.Status, Detail: d.Detail, IP: who.IP, UserAgent: who.UserAgent}, nil
}

// clinicOf is the clinic a record names, or a 400 naming clinic.
func (s *Service) clinicOf(app core.App, id string) (*core.Record, error) {
	return compose.Clinic(id, createLookups{s: s, app: app})
}

// createLookups answers the create checks' reads (compose.Lookups): from what a bulk
// request preloaded (seen) when it holds the answer, else from the database, one message
// at a time.
type createLookups struct {
	s    *Service
	app  core.App
	seen *batchSeen
}

var _ compose.Lookups = createLookups{}

func (l createLookups) Clinic(id string) (*core.Record, error) {
	clinic, err := l.s.clinicCache.get(l.app, id)
	if err != nil {
		return nil, compose.ErrNoSuchClinic
	}
	return clinic, nil
}

func (l createLookups) Template(clinicID, code string) (*core.Record, error) {
	return l.s.findTemplate(l.app, clinicID, code)
}

func (l createLookups) Preferences(clinicID, patientID, channel, to string) ([]*core.Record, error) {
	if prefs, found := l.seen.preferences(clinicID, patientID, channel, to); found {
		return prefs, nil
	}
	return findPreferences(l.app, clinicID, patientID, channel, to)
}

func (l createLookups) KeyOwner(clinicID, key string) (string, error) {
	if l.seen != nil {
		// A bulk create checks the database for all its keys at once, when it inserts.
		return l.seen.keyOwner(clinicID, key), nil
	}
	existing, err := store.FindOne(l.app, "messages", "clinic = {:c} AND idempotency_key = {:k} AND idempotency_key != ''", dbx.Params{"c": clinicID, "k": key})
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return existing.Id, nil
}

func (l createLookups) CampaignClinic(id string) (string, error) {
	if l.seen != nil {
		if clinic, ok := l.seen.campaigns[id]; ok {
			return clinic, nil
		}
	}
	clinic := "" // not found stays "": an unknown campaign is refused for each message naming it
	err := l.app.DB().Select("clinic").From("campaigns").Where(dbx.HashExp{"id": id}).Limit(1).Row(&clinic)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	if l.seen != nil {
		l.seen.campaigns[id] = clinic
	}
	return clinic, nil
}

func (l createLookups) Duplicate(rec *core.Record) (*compose.Previous, error) {
	if id := l.seen.duplicateOf(rec); id != "" {
		return &compose.Previous{ID: id, SameRequest: true}, nil
	}
	window := l.s.cfg.DuplicateWindow
	if window <= 0 {
		return nil, nil
	}
	if prev, loaded := l.seen.recentDuplicate(rec); loaded {
		if prev == nil {
			return nil, nil
		}
		return &compose.Previous{ID: prev.ID, Created: prev.Created.Time()}, nil
	}
	since := store.FormatTime(time.Now().UTC().Add(-window))
	same := "template = {:tpl} AND (template != '' OR body = {:body}) AND channel = {:ch} AND created >= {:since} AND status NOT IN ('failed','undelivered','canceled','skipped')"
	params := dbx.Params{"c": rec.GetString("clinic"), "to": rec.GetString("to"), "p": rec.GetString("patient_id"),
		"tpl": rec.GetString("template"), "body": rec.GetString("body"), "ch": rec.GetString("channel"), "since": since}
	// By number, and by patient: one statement, each branch on its own index.
	q := "SELECT id, created FROM messages WHERE clinic = {:c} AND [[to]] = {:to} AND " + same
	if rec.GetString("patient_id") != "" {
		q += " UNION ALL SELECT id, created FROM messages WHERE clinic = {:c} AND patient_id = {:p} AND patient_id != '' AND " + same
	}
	var prev struct {
		ID      string         `db:"id"`
		Created types.DateTime `db:"created"`
	}
	err := l.app.DB().NewQuery(q + " LIMIT 1").Bind(params).One(&prev)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to look for a duplicate: %w", err)
	}
	return &compose.Previous{ID: prev.ID, Created: prev.Created.Time()}, nil
}

func (l createLookups) Accepted(rec *core.Record) {
	l.seen.add(rec)
}

// findTemplate returns the clinic's own template with code, else the shared one, else nil.
func (s *Service) findTemplate(app core.App, clinicID, code string) (*core.Record, error) {
	return s.templateCache.get(clinicID+"\x00"+code, func() (*core.Record, error) {
		return findTemplate(app, clinicID, code)
	})
}

func findTemplate(app core.App, clinicID, code string) (*core.Record, error) {
	recs, err := app.FindRecordsByFilter("templates", "code = {:code} && (clinic = {:c} || clinic = '')", "", 2, 0, dbx.Params{"code": code, "c": clinicID})
	if err != nil {
		return nil, fmt.Errorf("failed to look up template: %w", err)
	}
	var shared *core.Record
	for _, r := range recs {
		if r.GetString("clinic") == clinicID {
			return r, nil
		}
		shared = r
	}
	return shared, nil
}

// findPreferences returns every preference of the clinic that matches a message: the
// patient's own by patient id (first, when there is one) and each by the phone number or
// email address the message goes to. A family's shared phone may carry several.
func findPreferences(app core.App, clinicID, patientID, channel, to string) ([]*core.Record, error) {
	contact := "phone = {:to} AND phone != ''"
	if channel == providers.ChannelEmail {
		contact = "email = {:to} AND email != ''"
	}
	where := "clinic = {:c} AND (" + contact + ")"
	if patientID != "" {
		where = "clinic = {:c} AND ((patient_id = {:p} AND patient_id != '') OR (" + contact + "))"
	}
	var recs []*core.Record
	err := app.RecordQuery("preferences").AndWhere(dbx.NewExp(where, dbx.Params{"c": clinicID, "p": patientID, "to": to})).
		OrderBy("(patient_id = {:p}) DESC").Limit(50).All(&recs)
	if err != nil {
		return nil, fmt.Errorf("failed to look up preferences: %w", err)
	}
	return recs, nil
}

// findPreference returns the patient's own preferences (by patient id), else the first
// that matches the address, else nil: the one whose language a message takes.
func findPreference(app core.App, clinicID, patientID, channel, to string) (*core.Record, error) {
	recs, err := findPreferences(app, clinicID, patientID, channel, to)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	return recs[0], nil
}

// store.Entry is one row of a message's audit trail.
func nowUTC() time.Time { return time.Now().UTC() }

// saveWith runs the rest of a create hook chain (PocketBase's insert) and then also, in the
// same transaction, so that both commit or neither does. e.App is put back afterwards:
// PocketBase announces the create (realtime) with it, and the transaction is over by then.
func saveWith(e *core.RecordEvent, also func(tx core.App) error) error {
	orig := e.App
	defer func() { e.App = orig }()
	return orig.RunInTransaction(func(tx core.App) error {
		e.App = tx
		if err := e.Next(); err != nil {
			return err
		}
		return also(tx)
	})
}
