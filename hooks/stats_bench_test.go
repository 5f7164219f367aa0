package hooks_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"clinicmsg/hooks"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"
)

// BenchmarkStats1M answers GET /api/clinicmsg/stats over real HTTP for a clinic holding one
// million messages spread over the last year (plus 100,000 of another clinic's, which must
// not be counted). It logs the seed, the first answer before any roll-up (every day counted
// live) and the roll-up itself, then times the answer as it is served once
// rollup-message-stats has run. Benchmarks run only with -bench: `make bench`.
func BenchmarkStats1M(b *testing.B) {
	e := newEnv(b).quiet()

	end := time.Now().UTC()
	start := time.Now()
	seedMessages(b, e.app, e.clinicA.Id, 1_000_000, 365*24*time.Hour, end, 1)
	seedMessages(b, e.app, e.clinicB.Id, 100_000, 365*24*time.Hour, end, 2)
	b.Logf("seeded 1,100,000 messages in %v", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	cold := e.do("GET", "/api/clinicmsg/stats?days=366", "staffA", nil)
	if cold.Status != http.StatusOK {
		b.Fatalf("expected 200, got %d: %s", cold.Status, cold.Raw)
	}
	b.Logf("days=366 before any roll-up (366 days counted live): %v, total %v", time.Since(start).Round(time.Millisecond), cold.Body["total"])

	start = time.Now()
	res := e.runJob(hooks.JobRollupStats)
	b.Logf("first rollup-message-stats (a year of both clinics): %v, %v days", time.Since(start).Round(time.Millisecond), res.Detail["days"])
	start = time.Now()
	e.runJob(hooks.JobRollupStats)
	b.Logf("steady rollup-message-stats (the last 3 days of both clinics): %v", time.Since(start).Round(time.Millisecond))

	for _, days := range []int{7, 30, 366} {
		b.Run(fmt.Sprintf("days=%d", days), func(b *testing.B) {
			path := fmt.Sprintf("/api/clinicmsg/stats?days=%d", days)
			res := e.do("GET", path, "staffA", nil)
			if res.Status != http.StatusOK {
				b.Fatalf("expected 200, got %d: %s", res.Status, res.Raw)
			}
			b.Logf("days=%d: total %v", days, res.Body["total"])
			for b.Loop() {
				if res := e.do("GET", path, "staffA", nil); res.Status != http.StatusOK {
					b.Fatalf("expected 200, got %d", res.Status)
				}
			}
		})
	}
}

// seedMessages inserts n synthetic messages of one clinic, created evenly over span before
// end, with raw batched INSERTs (the record API would take minutes). The mix is plausible
// for a clinic: mostly SMS, mostly delivered, a few failures with vendor codes, retries.
func seedMessages(tb testing.TB, app core.App, clinic string, n int, span time.Duration, end time.Time, seed uint64) {
	tb.Helper()
	db := app.NonconcurrentDB().(*dbx.DB).DB()
	rng := rand.New(rand.NewPCG(seed, 42))
	const cols = `clinic, channel, "to", body, status, status_reason, provider, provider_message_id, attempts,
		error_code, encoding, segments, cost, currency, sent_at, delivered_at, read_at, created, updated`
	q := "INSERT INTO messages (" + cols + ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
	const perTx = 50_000
	step := span / time.Duration(n)
	t0 := end.Add(-span)
	for done := 0; done < n; {
		tx, err := db.Begin()
		if err != nil {
			tb.Fatal(err)
		}
		stmt, err := tx.Prepare(q)
		if err != nil {
			tb.Fatal(err)
		}
		for i := 0; i < perTx && done < n; i, done = i+1, done+1 {
			created := t0.Add(time.Duration(done) * step)
			m := synthMessage(rng, created)
			_, err := stmt.Exec(clinic, m.channel, "+9665"+fmt.Sprintf("%08d", rng.IntN(1e8)), "Your appointment is tomorrow at 10:00.",
				m.status, m.reason, m.provider, m.providerID, m.attempts, m.errorCode, m.encoding, 1, m.cost, m.currency,
				m.sentAt, m.deliveredAt, m.readAt, fmtTime(created), fmtTime(created))
			if err != nil {
				tb.Fatal(err)
			}
		}
		stmt.Close()
		if err := tx.Commit(); err != nil {
			tb.Fatal(err)
		}
	}
}

type synth struct {
	channel, status, reason, provider, providerID, errorCode, encoding, currency string
	attempts                                                                     int
	cost                                                                         float64
	sentAt, deliveredAt, readAt                                                  string
}

func synthMessage(rng *rand.Rand, created time.Time) synth {
	m := synth{channel: "sms", provider: "twilio", encoding: "gsm7", currency: "USD", attempts: 1}
	switch r := rng.IntN(100); {
	case r < 20:
		m.channel, m.provider = "whatsapp", "twilio"
	case r < 30:
		m.channel, m.provider, m.encoding, m.currency = "email", "email", "", ""
	case r < 45:
		m.provider, m.currency = "unifonic", "SAR"
	}
	if rng.IntN(10) == 0 {
		m.attempts = 2 + rng.IntN(2)
	}
	sent := created.Add(time.Duration(200+rng.IntN(5000)) * time.Millisecond)
	delivered := sent.Add(time.Duration(500+rng.IntN(20000)) * time.Millisecond)
	switch r := rng.IntN(100); {
	case r < 70:
		m.status = "delivered"
	case r < 75:
		m.status = "read"
		if m.channel != "whatsapp" {
			m.status = "delivered"
		}
	case r < 82:
		m.status = "sent"
	case r < 87:
		m.status, m.reason, m.errorCode = "failed", "permanent", []string{"21211", "21614", "30007"}[rng.IntN(3)]
	case r < 90:
		m.status, m.reason, m.errorCode = "failed", "attempts_exhausted", "30001"
		m.attempts = 3
	case r < 93:
		m.status, m.errorCode = "undelivered", []string{"30003", "30005"}[rng.IntN(2)]
	case r < 97:
		m.status, m.reason, m.provider, m.currency, m.attempts = "skipped", "opted_out", "", "", 0
	case r < 98:
		m.status, m.provider, m.currency, m.attempts = "canceled", "", "", 0
	default:
		m.status, m.provider, m.currency, m.attempts = "queued", "", "", 0
	}
	switch m.status {
	case "sent", "delivered", "read", "undelivered":
		m.sentAt = fmtTime(sent)
		m.providerID = fmt.Sprintf("SM%032x", rng.Uint64())
		if m.currency != "" {
			m.cost = float64(5+rng.IntN(5)) / 100
		}
	}
	switch m.status {
	case "delivered":
		m.deliveredAt = fmtTime(delivered)
	case "read":
		m.deliveredAt = fmtTime(delivered)
		m.readAt = fmtTime(delivered.Add(time.Minute))
	}
	return m
}

func fmtTime(t time.Time) string { return t.UTC().Format(types.DefaultDateLayout) }
