package hooks_test

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
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

// BenchmarkSendSingle measures POST /api/clinicmsg/send with one message per request from
// 16 clients at once, in-process over loopback (the clients' CPU is in the figure): the
// create path as apps use it, with less of the machine's noise than clinicmsg bench B1b.
// BENCH_PREFERENCES=1 gives every recipient a preference first. BENCH_RATE=300 paces the
// clients to 300 messages a second in all, with the dispatcher sending through the mock
// (an app's steady traffic rather than a burst). It reports the answers' p50 and p99 too.
// Run: go test -run '^$' -bench SendSingle -benchtime 1x ./hooks/
func BenchmarkSendSingle(b *testing.B) {
	const n, clients = 6000, 16
	rate, _ := strconv.Atoi(os.Getenv("BENCH_RATE"))
	for range b.N {
		b.StopTimer()
		e := newEnv(b)
		if rate <= 0 {
			e.svc.Dispatcher.Stop()
		}
		to := func(i int64) string { return fmt.Sprintf("0504%06d", i) }
		if os.Getenv("BENCH_PREFERENCES") != "" {
			for i := range int64(n) {
				e.save("preferences", map[string]any{"clinic": e.clinicA.Id, "phone": to(i), "sms": true, "language": "en"})
			}
		}
		var pace <-chan time.Time
		if rate > 0 {
			ticker := time.NewTicker(time.Second / time.Duration(rate))
			pace = ticker.C
			defer ticker.Stop()
		}
		var next atomic.Int64
		var mu sync.Mutex
		took := make([]time.Duration, 0, n)
		cpu0, start := processCPU(), time.Now()
		b.StartTimer()
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < n; i = next.Add(1) - 1 {
					if pace != nil {
						<-pace
					}
					sent := time.Now()
					res := e.do("POST", "/api/clinicmsg/send", "appA", map[string]any{"channel": "sms", "to": to(i), "body": "Dear Sara, your appointment is on 1 Dec at 10:00."})
					if res.Status != 200 {
						b.Errorf("send: %d %.300s", res.Status, res.Raw)
						return
					}
					mu.Lock()
					took = append(took, time.Since(sent))
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/n, "cpu-µs/msg")
		b.ReportMetric(n/time.Since(start).Seconds(), "msg/s")
		slices.Sort(took)
		if len(took) > 0 {
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
		}
		e.close()
	}
}

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
