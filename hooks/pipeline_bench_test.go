package hooks_test

import (
	"fmt"
	"testing"
	"time"

	"clinicmsg/hooks"
)

// BenchmarkLifecycle measures messages carried from created to delivered on the mock
// provider (no network), in-process: the appliance's own cost per message.
// Run: go test -run '^$' -bench Lifecycle -benchtime 1x ./hooks/ (N messages per op).
func BenchmarkLifecycle(b *testing.B) {
	const n = 5000
	for range b.N {
		b.StopTimer()
		e := newEnv(b, func(c *hooks.Config) {
			c.Workers, c.ClaimBatch = 256, 256
			c.MockDeliverAfter = 50 * time.Millisecond
		})
		e.svc.Dispatcher.Stop()
		if err := e.seedQueued(n); err != nil {
			b.Fatal(err)
		}
		d := hooks.NewDispatcherForBench(e.svc)
		b.StartTimer()
		start := time.Now()
		d.Start()
		waitFor(b, 5*time.Minute, fmt.Sprintf("the %d messages delivered", n), func() bool {
			var delivered int
			if err := e.app.DB().NewQuery("SELECT COUNT(*) FROM messages WHERE status = 'delivered'").Row(&delivered); err != nil {
				b.Fatal(err)
			}
			return delivered >= n
		})
		el := time.Since(start)
		b.StopTimer()
		d.Stop()
		b.ReportMetric(float64(n)/el.Seconds(), "msg/s")
		e.close()
	}
}

// BenchmarkSendBatch measures POST /api/clinicmsg/send with arrays of 1,000 messages,
// in-process over loopback: the create path's cost per message.
func BenchmarkSendBatch(b *testing.B) {
	e := newEnv(b)
	e.svc.Dispatcher.Stop()
	e.save("templates", map[string]any{"code": "reminder", "channel": "any", "category": "reminder", "active": true, "body_en": "Hello {{name}}, see you {{when}}"})
	batch := make([]map[string]any, 1000)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		for j := range batch {
			batch[j] = map[string]any{"channel": "sms", "to": fmt.Sprintf("05%d%07d", 4+i%2, (i*1000+j)%10_000_000), "template": "reminder",
				"context": map[string]any{"name": "Sara", "when": "tomorrow"}, "patient_id": fmt.Sprintf("P%d", i*1000+j)}
		}
		res := e.do("POST", "/api/clinicmsg/send", "appA", batch)
		if res.Status != 200 || res.Body["accepted"] != 1000.0 {
			b.Fatalf("send: %d %.300s", res.Status, res.Raw)
		}
	}
	b.ReportMetric(float64(b.N*1000)/time.Since(start).Seconds(), "msg/s")
}
