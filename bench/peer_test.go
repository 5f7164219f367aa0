package bench

import (
	"bytes"
	"strings"
	"testing"
)

func TestFakesmscDelivery(t *testing.T) {
	scenarios := []struct {
		name string
		line string
		want bool
	}{
		{"a message to a patient", "2026-12-02 21:04:44 [29647] [0] DEBUG: Got message 7: <13013 0501000006 text Dear Sara, your appointment>", true},
		{"the last message, logged at info", "2026-12-02 21:04:44 [29647] [0] INFO: Got message 1: <13013 0501000000 text hello world>", true},
		{"the reply to the start-up message", "2026-12-02 21:04:44 [29647] [0] DEBUG: Got message 2: <13013 000 text No service specified>", false},
		{"another log line", "2026-12-02 21:04:44 [29647] [0] INFO: fakesmsc: sent message 1", false},
		{"a cut line", "2026-12-02 21:04:44 [29647] [0] DEBUG: Got message 3: <13013>", false},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			if got := fakesmscDelivery(s.line); got != s.want {
				t.Fatalf("expected %v, got %v", s.want, got)
			}
		})
	}
}

func TestFakesmscCounter(t *testing.T) {
	out := strings.Join([]string{
		"INFO: fakesmsc starting",
		"DEBUG: Got message 1: <13013 000 text No service specified>",
		"DEBUG: Got message 2: <13013 0501000000 text Dear Sara>",
		"DEBUG: Got message 3: <13013 0501000001 text Dear Sara>",
	}, "\n") + "\n"
	var c fakesmscCounter
	var log bytes.Buffer
	c.read(strings.NewReader(out), &log)
	if got := c.delivered.Load(); got != 2 {
		t.Fatalf("expected 2 deliveries, got %d", got)
	}
	if !c.mo.Load() {
		t.Fatalf("expected the start-up reply to be seen")
	}
	if log.String() != out {
		t.Fatalf("expected the log to hold fakesmsc's output, got %q", log.String())
	}
}

func TestSpreadOf(t *testing.T) {
	scenarios := []struct {
		name string
		in   []float64
		want spread
	}{
		{"none", nil, spread{}},
		{"one", []float64{4}, spread{4, 4, 4}},
		{"odd", []float64{9, 1, 5}, spread{5, 1, 9}},
		{"even", []float64{4, 1, 2, 10}, spread{3, 1, 10}},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			if got := spreadOf(s.in); got != s.want {
				t.Fatalf("expected %v, got %v", s.want, got)
			}
		})
	}
}

func TestPeerRows(t *testing.T) {
	cm := []peerSample{
		{Accepted: 900, FinalRate: 800, CPUPerMsgUs: 500, P99ms: 40},
		{Accepted: 1100, FinalRate: 700, CPUPerMsgUs: 450, P99ms: 30},
		{Accepted: 1000, FinalRate: 900, CPUPerMsgUs: 480, P99ms: 50},
	}
	kn := []peerSample{
		{Accepted: 2000, FinalRate: 800, CPUPerMsgUs: 200, P99ms: 10},
		{Accepted: 1000, FinalRate: 700, CPUPerMsgUs: 240, P99ms: 12},
		{Accepted: 1000, FinalRate: 900, CPUPerMsgUs: 260, P99ms: 11},
	}
	rows := map[string]peerRow{}
	for _, r := range peerRows(cm, kn) {
		rows[r.Metric] = r
	}
	scenarios := []struct {
		metric string
		median float64
		ratio  float64
		met    *bool
	}{
		{"accepted/s", 1000, 1.0, ptr(true)},
		{"all-final rate", 800, 1.0, ptr(true)},
		{"CPU per message", 480, 2.0, ptr(true)},
		{"accept p99", 40, 3.64, nil},
	}
	for _, s := range scenarios {
		t.Run(s.metric, func(t *testing.T) {
			r, ok := rows[s.metric]
			if !ok {
				t.Fatalf("expected a row for %s", s.metric)
			}
			if r.Clinicmsg.Median != s.median || r.Ratio != s.ratio {
				t.Fatalf("expected median %v and ratio %v, got %v and %v", s.median, s.ratio, r.Clinicmsg.Median, r.Ratio)
			}
			if (r.Met == nil) != (s.met == nil) || (r.Met != nil && *r.Met != *s.met) {
				t.Fatalf("expected met %v, got %v", s.met, r.Met)
			}
		})
	}
	worse := peerRows([]peerSample{{CPUPerMsgUs: 481}}, []peerSample{{CPUPerMsgUs: 240}})
	for _, r := range worse {
		if r.Metric == "CPU per message" && (r.Met == nil || *r.Met) {
			t.Fatalf("expected 481 µs against 240 µs not to meet ≤ 2×, got ratio %v", r.Ratio)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestKannelConfig(t *testing.T) {
	conf := kannelConfig("/w/k", kannelPorts{admin: 1, smsbox: 2, smsc: 3, sendsms: 4}, 1)
	for _, want := range []string{
		"admin-port = 1\n", "smsbox-port = 2\n", "smsc = fake\n", "port = 3\n", "sendsms-port = 4\n",
		"store-type = file\n", `store-location = "/w/k/kannel.store"`, "log-level = 1\n",
	} {
		if !strings.Contains(conf, want) {
			t.Fatalf("expected the configuration to hold %q:\n%s", want, conf)
		}
	}
}

func TestPeerWithoutKannel(t *testing.T) {
	saved := kannelBearerbox
	kannelBearerbox = "/nonexistent/bearerbox"
	defer func() { kannelBearerbox = saved }()
	var out bytes.Buffer
	if err := runPeer(t.Context(), &options{peer: true, peerMessages: 100, peerRounds: 1}, &out, &out, "bench --peer"); err != nil {
		t.Fatalf("expected no error without Kannel, got %v", err)
	}
	if want := "Kannel is not installed; run as root to install it, or apt-get install kannel\n"; out.String() != want {
		t.Fatalf("expected %q, got %q", want, out.String())
	}
}
