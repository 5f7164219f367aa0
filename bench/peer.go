package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"
)

// `clinicmsg bench --peer` puts the appliance beside Kannel, the open-source SMS gateway a
// clinic's IT would otherwise install: each as installed, taking the same single-message
// requests and handing them to a fake carrier. clinicmsg runs with no settings (its mock
// provider, which reports delivery a second after the send); Kannel is Debian's 1.4.5
// (bearerbox with its file store, smsbox, and fakesmsc from kannel-extras as the carrier).
// The two alternate, A B A B A B, each round on fresh data.

// Where Debian puts Kannel (packages kannel and kannel-extras).
var (
	kannelBearerbox = "/usr/sbin/bearerbox"
	kannelSmsbox    = "/usr/sbin/smsbox"
	kannelFakesmsc  = "/usr/lib/kannel/test/fakesmsc"
)

const (
	// peerConc is the concurrency of both sides' load.
	peerConc = 16
	// peerText is every message's text: one GSM-7 segment, as a clinic's reminder is.
	peerText = "Dear Sara, your appointment at Al Noor Clinic is on 1 Dec at 10:00. Reply 1 to confirm, 2 to cancel."
	// peerFinalWait bounds the wait for every message to reach its final status, and
	// peerStall the time with no new final message before the wait gives up.
	peerFinalWait = 5 * time.Minute
	peerStall     = 30 * time.Second
	// peerFirstNumber is the first recipient (0501000000): every message goes to its own
	// number, none of them one of the mock provider's test numbers (+96650000000x).
	peerFirstNumber = 1_000_000
	// moSender is the sender of the one mobile-originated message fakesmsc sends at start:
	// the reply to it proves bearerbox, smsbox and fakesmsc are connected, and is not
	// counted as a delivery.
	moSender = "000"
)

// peerSample is what one side measured in one round.
type peerSample struct {
	Accepted    float64 `json:"accepted_per_s"`     // N / the load phase
	P50ms       float64 `json:"accept_p50_ms"`      // per request
	P99ms       float64 `json:"accept_p99_ms"`      //
	FinalS      float64 `json:"all_final_s"`        // from the first request until all N are final
	FinalRate   float64 `json:"all_final_per_s"`    // N / FinalS
	CPUPerMsgUs float64 `json:"cpu_us_per_message"` // the daemons' user+system CPU from the first request to all final, / N
	RSSMB       float64 `json:"peak_rss_mb"`        // VmHWM, summed over the daemons
	Notes       string  `json:"notes,omitempty"`
}

// peerMetric is one row of the side-by-side table.
type peerMetric struct {
	name, unit string
	value      func(peerSample) float64
	// target, when set, judges the ratio clinicmsg/Kannel of the medians.
	target string
	met    func(ratio float64) bool
}

var peerMetrics = []peerMetric{
	{name: "accepted/s", unit: "msg/s", value: func(s peerSample) float64 { return s.Accepted },
		target: "≥ 1.0×", met: func(r float64) bool { return r >= 1.0 }},
	{name: "accept p50", unit: "ms", value: func(s peerSample) float64 { return s.P50ms }},
	{name: "accept p99", unit: "ms", value: func(s peerSample) float64 { return s.P99ms }},
	{name: "all final after", unit: "s", value: func(s peerSample) float64 { return s.FinalS }},
	{name: "all-final rate", unit: "msg/s", value: func(s peerSample) float64 { return s.FinalRate },
		target: "≥ 1.0×", met: func(r float64) bool { return r >= 1.0 }},
	{name: "CPU per message", unit: "µs", value: func(s peerSample) float64 { return s.CPUPerMsgUs },
		target: "≤ 2×", met: func(r float64) bool { return r <= 2.0 }},
	{name: "peak RSS", unit: "MB", value: func(s peerSample) float64 { return s.RSSMB }},
}

// spread is the median, minimum and maximum of one metric over the rounds.
type spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func spreadOf(v []float64) spread {
	if len(v) == 0 {
		return spread{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{Median: m, Min: s[0], Max: s[len(s)-1]}
}

// peerRow is one metric over all rounds, for both sides.
type peerRow struct {
	Metric    string  `json:"metric"`
	Unit      string  `json:"unit"`
	Clinicmsg spread  `json:"clinicmsg"`
	Kannel    spread  `json:"kannel"`
	Ratio     float64 `json:"ratio"` // clinicmsg median / Kannel median
	Target    string  `json:"target,omitempty"`
	Met       *bool   `json:"met,omitempty"`
}

// peerRows aggregates the rounds into the table.
func peerRows(cm, kn []peerSample) []peerRow {
	var rows []peerRow
	for _, m := range peerMetrics {
		var a, b []float64
		for _, s := range cm {
			a = append(a, m.value(s))
		}
		for _, s := range kn {
			b = append(b, m.value(s))
		}
		row := peerRow{Metric: m.name, Unit: m.unit, Clinicmsg: spreadOf(a), Kannel: spreadOf(b), Target: m.target}
		if row.Kannel.Median > 0 {
			ratio := row.Clinicmsg.Median / row.Kannel.Median
			row.Ratio = roundTo(ratio, 2)
			if m.met != nil && ratio > 0 {
				ok := m.met(ratio) // judged before rounding: 2.004× is not ≤ 2×
				row.Met = &ok
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// PeerReport is a `--peer` run, as --json prints it.
type PeerReport struct {
	Machine   Machine      `json:"machine"`
	Command   string       `json:"command"`
	Kannel    string       `json:"kannel"`
	Messages  int          `json:"messages"`
	Conc      int          `json:"concurrency"`
	Rounds    int          `json:"rounds"`
	Clinicmsg []peerSample `json:"clinicmsg_rounds"`
	KannelRun []peerSample `json:"kannel_rounds"`
	Rows      []peerRow    `json:"rows"`
	Seconds   float64      `json:"seconds"`
}

// kannelMissing says what is missing of Kannel, or "" when bearerbox, smsbox and fakesmsc
// are all there.
func kannelMissing() string {
	for _, p := range []string{kannelBearerbox, kannelSmsbox} {
		if _, err := os.Stat(p); err != nil {
			return "Kannel is not installed; run as root to install it, or apt-get install kannel"
		}
	}
	if _, err := os.Stat(kannelFakesmsc); err != nil {
		return "Kannel's fakesmsc is not installed (" + kannelFakesmsc + "); apt-get install kannel-extras"
	}
	return ""
}

// runPeer is `clinicmsg bench --peer`.
func runPeer(ctx context.Context, o *options, stdout, stderr io.Writer, command string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if msg := kannelMissing(); msg != "" {
		fmt.Fprintln(stdout, msg)
		return nil
	}
	if o.peerMessages < peerConc || o.peerRounds < 1 {
		return fmt.Errorf("--peer-messages must be at least %d and --peer-rounds at least 1", peerConc)
	}
	started := time.Now()
	r := &runner{o: o, log: stderr}
	var err error
	if r.bin, err = os.Executable(); err != nil {
		return fmt.Errorf("failed to find this binary: %w", err)
	}
	if r.bin, err = filepath.EvalSymlinks(r.bin); err != nil {
		return err
	}
	if r.work, err = os.MkdirTemp(o.workdir, "clinicmsg-peer-"); err != nil {
		return fmt.Errorf("failed to create the work folder: %w", err)
	}
	if o.keep {
		r.logf("work folder (kept): %s", r.work)
	} else {
		defer os.RemoveAll(r.work)
	}
	rep := PeerReport{Machine: machineInfo(), Command: "clinicmsg " + command, Kannel: kannelVersion(),
		Messages: o.peerMessages, Conc: peerConc, Rounds: o.peerRounds}
	for round := 1; round <= o.peerRounds; round++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.logf("round %d/%d: clinicmsg, %d messages at c=%d", round, o.peerRounds, o.peerMessages, peerConc)
		s, err := r.peerClinicmsg(ctx, round)
		if err != nil {
			return fmt.Errorf("round %d, clinicmsg: %w", round, err)
		}
		r.logf("round %d/%d: clinicmsg %.0f accepted/s, all delivered after %.1f s, %.0f µs CPU per message",
			round, o.peerRounds, s.Accepted, s.FinalS, s.CPUPerMsgUs)
		rep.Clinicmsg = append(rep.Clinicmsg, s)

		r.logf("round %d/%d: Kannel, %d messages at c=%d", round, o.peerRounds, o.peerMessages, peerConc)
		if s, err = r.peerKannel(ctx, round); err != nil {
			return fmt.Errorf("round %d, Kannel: %w", round, err)
		}
		r.logf("round %d/%d: Kannel %.0f accepted/s, all at fakesmsc after %.1f s, %.0f µs CPU per message",
			round, o.peerRounds, s.Accepted, s.FinalS, s.CPUPerMsgUs)
		rep.KannelRun = append(rep.KannelRun, s)
	}
	rep.Rows = peerRows(rep.Clinicmsg, rep.KannelRun)
	rep.Machine.LoadEnd = loadAverage()
	rep.Seconds = roundTo(time.Since(started).Seconds(), 1)
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printPeer(stdout, &rep)
	return nil
}

// kannelVersion is Debian's version of the kannel package, or what bearerbox says.
func kannelVersion() string {
	if out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "kannel").Output(); err == nil && len(out) > 0 {
		return "Kannel " + string(out) + " (Debian)"
	}
	return "Kannel"
}

// measure runs the load of one side: N single-message requests at c=16 by send(i), then
// polls final() every poll until it counts all N final, reading the daemons' CPU time
// before the first request and once all are final.
func measure(n int, cpu func() time.Duration, send func(i int) error, poll time.Duration, final func() (int, error)) (peerSample, error) {
	c0 := cpu()
	t0 := time.Now()
	ph, err := load(n, peerConc, 0, func(i int) (int, error) { return 1, send(i) })
	if err != nil {
		return peerSample{}, err
	}
	last, lastAt := -1, time.Now()
	for {
		got, err := final()
		if err != nil {
			return peerSample{}, err
		}
		if got >= n {
			break
		}
		if got != last {
			last, lastAt = got, time.Now()
		}
		if time.Since(lastAt) > peerStall || time.Since(t0) > peerFinalWait {
			return peerSample{}, fmt.Errorf("%d of %d messages final after %v, none more for %v",
				got, n, time.Since(t0).Round(time.Second), time.Since(lastAt).Round(time.Second))
		}
		time.Sleep(poll)
	}
	finalAfter := time.Since(t0)
	used := cpu() - c0
	return peerSample{
		Accepted: roundTo(ph.rate(), 1), P50ms: roundTo(ph.pct(50), 2), P99ms: roundTo(ph.pct(99), 2),
		FinalS: roundTo(finalAfter.Seconds(), 2), FinalRate: roundTo(float64(n)/finalAfter.Seconds(), 1),
		CPUPerMsgUs: roundTo(float64(used.Microseconds())/float64(n), 1),
	}, nil
}

// peerClinicmsg is one clinicmsg round: a fresh data folder with no settings, a superuser
// (`clinicmsg superuser upsert`), a clinic and an app user made through the REST API as
// the README shows, then N × POST /api/clinicmsg/send with one message each, until the
// mock provider has reported every one delivered.
func (r *runner) peerClinicmsg(ctx context.Context, round int) (peerSample, error) {
	name := fmt.Sprintf("clinicmsg-%d", round)
	dir := filepath.Join(r.work, name)
	if _, err := runCLI(ctx, r.bin, "superuser", "upsert", superuserEmail, superuserPassword, "--dir", dir); err != nil {
		return peerSample{}, fmt.Errorf("failed to create the superuser: %w", err)
	}
	profile := ""
	if r.o.profile != "" {
		profile = filepath.Join(r.o.profile, name+".pprof")
	}
	a, err := startAppliance(r.bin, dir, "", filepath.Join(r.work, name+".log"), profile)
	if err != nil {
		return peerSample{}, err
	}
	defer func() {
		if !r.o.keep {
			os.RemoveAll(dir)
		}
	}()
	s, err := r.peerClinicmsgLoad(a)
	s.RSSMB = roundTo(float64(a.peakRSS())/(1<<20), 1)
	if stopErr := a.stop(); err == nil && stopErr != nil {
		err = stopErr
	}
	if err != nil {
		return s, fmt.Errorf("%w\n%s", err, a.logTail(20))
	}
	return s, nil
}

func (r *runner) peerClinicmsgLoad(a *appliance) (peerSample, error) {
	c := &client{base: a.base, hc: newHTTPClient(peerConc)}
	var auth struct {
		Token string `json:"token"`
	}
	if err := c.call("POST", "/api/collections/_superusers/auth-with-password", "", map[string]any{"identity": superuserEmail, "password": superuserPassword}, 200, &auth); err != nil {
		return peerSample{}, err
	}
	su := auth.Token
	var rec struct {
		ID string `json:"id"`
	}
	if err := c.call("POST", "/api/collections/clinics/records", su, map[string]any{"name": "Al Noor Clinic"}, 200, &rec); err != nil {
		return peerSample{}, err
	}
	if err := c.call("POST", "/api/collections/users/records", su, map[string]any{
		"email": appUserEmail, "password": appUserPassword, "passwordConfirm": appUserPassword, "clinic": rec.ID, "role": "app",
	}, 200, nil); err != nil {
		return peerSample{}, err
	}
	if err := c.call("POST", "/api/collections/users/auth-with-password", "", map[string]any{"identity": appUserEmail, "password": appUserPassword}, 200, &auth); err != nil {
		return peerSample{}, err
	}
	app := auth.Token

	n := r.o.peerMessages
	bodies := make([][]byte, n)
	for i := range n {
		bodies[i] = mustJSON(map[string]any{"channel": "sms", "to": phoneLocal(peerFirstNumber + i), "body": peerText})
	}
	delivered := func() (int, error) {
		var page struct {
			TotalItems int `json:"totalItems"`
		}
		err := c.call("GET", "/api/collections/messages/records?perPage=1&filter="+url.QueryEscape("status='delivered'"), su, nil, 200, &page)
		return page.TotalItems, err
	}
	s, err := measure(n, a.cpuTime,
		func(i int) error {
			return expect(c, "POST", "/api/clinicmsg/send", app, bodies[i], 200, `"status":"queued"`)
		},
		100*time.Millisecond, delivered)
	if err != nil {
		return s, fmt.Errorf("%w (messages by status: %s)", err, statusCounts(a.dir))
	}
	s.Notes = "delivered counted with GET /api/collections/messages/records?filter=status='delivered' every 100 ms (its CPU is in the figure)"
	return s, nil
}

// kannelPorts are the loopback ports of one Kannel instance.
type kannelPorts struct{ admin, smsbox, smsc, sendsms int }

// kannelConfig is the configuration of one round: Kannel's own SMS example (gw/smskannel.conf:
// a fake SMSC, an smsbox, a sendsms user) on free loopback ports, with the file store and
// a log file per box as Debian's kannel.conf has. logLevel is the log files' level (0
// debug, Kannel's default and what Debian's kannel.conf leaves; 1 info; 2 warning).
func kannelConfig(dir string, p kannelPorts, logLevel int) string {
	return fmt.Sprintf(`group = core
admin-port = %d
admin-password = bench
smsbox-port = %d
box-deny-ip = "*.*.*.*"
box-allow-ip = "127.0.0.1"
log-file = "%s"
log-level = %d
store-type = file
store-location = "%s"

group = smsc
smsc = fake
smsc-id = FAKE
port = %d
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
sendsms-port = %d
global-sender = 13013
log-file = "%s"
log-level = %d

group = sendsms-user
username = bench
password = bench

group = sms-service
keyword = default
text = "No service specified"
`, p.admin, p.smsbox, filepath.Join(dir, "bearerbox.log"), logLevel, filepath.Join(dir, "kannel.store"),
		p.smsc, p.sendsms, filepath.Join(dir, "smsbox.log"), logLevel)
}

// freePorts returns n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	for tries := 0; len(ports) < n && tries < 20*n; tries++ {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		_, p, _ := net.SplitHostPort(addr)
		port, err := strconv.Atoi(p)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(ports, port) {
			ports = append(ports, port)
		}
	}
	if len(ports) < n {
		return nil, errors.New("failed to find free loopback ports")
	}
	return ports, nil
}

// daemon is one Kannel process; its CPU time and peak RSS are read from /proc as the
// appliance's are.
type daemon struct {
	name   string
	cmd    *exec.Cmd
	exited chan error
}

func startDaemon(name, logPath string, stderr io.Writer, bin string, args ...string) (*daemon, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	d := &daemon{name: name, cmd: exec.Command(bin, args...), exited: make(chan error, 1)}
	d.cmd.Stdout = logf
	d.cmd.Stderr = logf
	if stderr != nil {
		d.cmd.Stderr = stderr
	}
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("failed to start %s: %w", name, err)
	}
	go func() {
		err := d.cmd.Wait()
		logf.Close()
		d.exited <- err
	}()
	return d, nil
}

func (d *daemon) proc() *appliance { return &appliance{cmd: d.cmd} }

// stop sends SIGTERM (Kannel's orderly shutdown) and kills the process after 15 s.
func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

// fakesmscDelivery reports whether a line fakesmsc printed is a message it received from
// bearerbox ("... Got message 12: <13013 0501234567 text Dear Sara, ...>") to a number
// other than moSender's (the reply to the start-up message).
func fakesmscDelivery(line string) bool {
	_, rest, ok := strings.Cut(line, "Got message ")
	if !ok {
		return false
	}
	_, msg, ok := strings.Cut(rest, ": <")
	if !ok {
		return false
	}
	f := strings.Fields(msg)
	return len(f) >= 3 && f[1] != moSender
}

// fakesmscCounter counts the deliveries in fakesmsc's output as it is written, and copies
// the output to a log.
type fakesmscCounter struct {
	delivered atomic.Int64
	mo        atomic.Bool // the reply to the start-up message came back
}

func (f *fakesmscCounter) read(rd io.Reader, log io.Writer) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(log, line)
		switch {
		case fakesmscDelivery(line):
			f.delivered.Add(1)
		case strings.Contains(line, "Got message "):
			f.mo.Store(true)
		}
	}
	io.Copy(io.Discard, rd)
}

// peerKannel is one Kannel round: a fresh folder with its configuration and file store;
// bearerbox and smsbox started as Debian's init script starts them (-v 4), then fakesmsc
// connected to the fake SMSC, sending one message whose reply says all three are
// connected; then N × GET /cgi-bin/sendsms until fakesmsc has received all N.
func (r *runner) peerKannel(ctx context.Context, round int) (peerSample, error) {
	dir := filepath.Join(r.work, fmt.Sprintf("kannel-%d", round))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return peerSample{}, err
	}
	defer func() {
		if !r.o.keep {
			os.RemoveAll(dir)
		}
	}()
	ps, err := freePorts(4)
	if err != nil {
		return peerSample{}, err
	}
	p := kannelPorts{admin: ps[0], smsbox: ps[1], smsc: ps[2], sendsms: ps[3]}
	conf := filepath.Join(dir, "kannel.conf")
	if err := os.WriteFile(conf, []byte(kannelConfig(dir, p, r.o.peerKannelLogLevel)), 0o644); err != nil {
		return peerSample{}, err
	}

	var daemons []*daemon
	defer func() {
		for _, d := range slices.Backward(daemons) {
			d.stop()
		}
	}()
	bb, err := startDaemon("bearerbox", filepath.Join(dir, "bearerbox.out"), nil, kannelBearerbox, "-v", "4", conf)
	if err != nil {
		return peerSample{}, err
	}
	daemons = append(daemons, bb)
	admin := fmt.Sprintf("http://127.0.0.1:%d/status.txt?password=bench", p.admin)
	if err := waitFor(30*time.Second, bb, func() bool { return httpOK(admin) }); err != nil {
		return peerSample{}, fmt.Errorf("bearerbox: %w", err)
	}

	sb, err := startDaemon("smsbox", filepath.Join(dir, "smsbox.out"), nil, kannelSmsbox, "-v", "4", conf)
	if err != nil {
		return peerSample{}, err
	}
	daemons = append(daemons, sb)
	sendsms := fmt.Sprintf("127.0.0.1:%d", p.sendsms)
	if err := waitFor(30*time.Second, sb, func() bool { return tcpOpen(sendsms) }); err != nil {
		return peerSample{}, fmt.Errorf("smsbox: %w", err)
	}
	fakeLog, err := os.Create(filepath.Join(dir, "fakesmsc.log"))
	if err != nil {
		return peerSample{}, err
	}
	defer fakeLog.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return peerSample{}, err
	}
	counter := &fakesmscCounter{}
	readDone := make(chan struct{})
	go func() { counter.read(pr, fakeLog); pr.Close(); close(readDone) }()
	// One mobile-originated message, then fakesmsc only receives (its -m 0 exits at once).
	fake, err := startDaemon("fakesmsc", filepath.Join(dir, "fakesmsc.out"), pw, kannelFakesmsc,
		"-H", "127.0.0.1", "-r", strconv.Itoa(p.smsc), "-m", "1", "-i", "0", moSender+" 13013 text hello")
	pw.Close()
	if err != nil {
		return peerSample{}, err
	}
	// Stopped after bearerbox (listed first, stopped last): it exits when bearerbox closes.
	daemons = append([]*daemon{fake}, daemons...)
	if err := waitFor(30*time.Second, fake, counter.mo.Load); err != nil {
		return peerSample{}, fmt.Errorf("the start-up message did not come back to fakesmsc: %w", err)
	}

	n := r.o.peerMessages
	hc := newHTTPClient(peerConc)
	urls := make([]string, n)
	for i := range n {
		q := url.Values{"username": {"bench"}, "password": {"bench"}, "to": {phoneLocal(peerFirstNumber + i)}, "text": {peerText}}
		urls[i] = fmt.Sprintf("http://127.0.0.1:%d/cgi-bin/sendsms?%s", p.sendsms, q.Encode())
	}
	cpu := func() time.Duration { return bb.proc().cpuTime() + sb.proc().cpuTime() }
	fakeCPU0 := fake.proc().cpuTime()
	s, err := measure(n, cpu,
		func(i int) error {
			res, err := hc.Get(urls[i])
			if err != nil {
				return err
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil {
				return err
			}
			// "0: Accepted for delivery", or "3: Queued for later delivery" (stored, the SMSC
			// busy): both are 202 and in the store.
			if res.StatusCode != http.StatusAccepted {
				return fmt.Errorf("sendsms: expected 202, got %d: %.200s", res.StatusCode, body)
			}
			return nil
		},
		5*time.Millisecond, func() (int, error) { return int(counter.delivered.Load()), nil })
	if err != nil {
		return s, fmt.Errorf("%w (fakesmsc received %d)", err, counter.delivered.Load())
	}
	fakeCPU := fake.proc().cpuTime() - fakeCPU0
	s.RSSMB = roundTo(float64(bb.proc().peakRSS()+sb.proc().peakRSS())/(1<<20), 1)
	s.Notes = fmt.Sprintf("bearerbox %.1f MB + smsbox %.1f MB peak RSS; fakesmsc (not counted) %.0f µs CPU per message",
		float64(bb.proc().peakRSS())/(1<<20), float64(sb.proc().peakRSS())/(1<<20), float64(fakeCPU.Microseconds())/float64(n))
	for _, d := range slices.Backward(daemons) {
		d.stop()
	}
	daemons = nil
	<-readDone
	if got := counter.delivered.Load(); got != int64(n) {
		return s, fmt.Errorf("fakesmsc received %d messages for %d requests", got, n)
	}
	return s, nil
}

// waitFor polls ready until it is true, d exits, or within passes.
func waitFor(within time.Duration, d *daemon, ready func() bool) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		select {
		case err := <-d.exited:
			d.exited <- err
			return fmt.Errorf("%s exited: %v", d.name, err)
		default:
		}
		if ready() {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready within %v", within)
}

func tcpOpen(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func httpOK(u string) bool {
	hc := &http.Client{Timeout: 2 * time.Second}
	res, err := hc.Get(u)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// printPeer prints the side-by-side table.
func printPeer(w io.Writer, rep *PeerReport) {
	m := rep.Machine
	fmt.Fprintf(w, "clinicmsg bench --peer  %s  (%s)\n", m.Started.Format("2006-01-02 15:04 UTC"), rep.Command)
	fmt.Fprintf(w, "machine: %d CPU (%s), %d MB RAM, %s, %s, PocketBase %s; load average %.2f at start, %.2f at end\n",
		m.NumCPU, m.CPUModel, m.MemTotalMB, m.OSArch, m.GoVersion, m.PocketBase, m.LoadStart, m.LoadEnd)
	fmt.Fprintf(w, "clinicmsg (no settings, mock provider) vs %s: bearerbox (store-type = file) + smsbox + fakesmsc\n", rep.Kannel)
	fmt.Fprintf(w, "%s single-message requests at c=%d per system and round; %d rounds alternating clinicmsg, Kannel; run time %s\n\n",
		groupThousands(strconv.Itoa(rep.Messages)), rep.Conc, rep.Rounds, (time.Duration(rep.Seconds) * time.Second).String())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\tunit\tclinicmsg median [min..max]\tKannel median [min..max]\tclinicmsg/Kannel\ttarget\tmet\t")
	for _, row := range rep.Rows {
		met := "—"
		if row.Met != nil {
			met = "yes"
			if !*row.Met {
				met = "NO"
			}
		}
		target := row.Target
		if target == "" {
			target = "—"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", row.Metric, row.Unit, spreadText(row.Clinicmsg), spreadText(row.Kannel),
			ratio(row.Ratio), target, met)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for i := range rep.Clinicmsg {
		printPeerSample(w, i+1, "clinicmsg", rep.Clinicmsg[i])
		if i < len(rep.KannelRun) {
			printPeerSample(w, i+1, "Kannel", rep.KannelRun[i])
		}
	}
}

func printPeerSample(w io.Writer, round int, side string, s peerSample) {
	fmt.Fprintf(w, "round %d  %-9s  %s accepted/s, p50 %s ms, p99 %s ms, all final after %s s (%s msg/s), %s µs CPU/message, peak RSS %s MB\n",
		round, side, num(s.Accepted), ms(s.P50ms), ms(s.P99ms), num(s.FinalS), num(s.FinalRate), num(s.CPUPerMsgUs), num(s.RSSMB))
	if s.Notes != "" {
		fmt.Fprintf(w, "    %s\n", s.Notes)
	}
}

func spreadText(s spread) string {
	return fmt.Sprintf("%s [%s..%s]", num(s.Median), num(s.Min), num(s.Max))
}
