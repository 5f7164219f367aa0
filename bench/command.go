// Package bench is `clinicmsg bench`: it measures the appliance on the machine it will run
// on. It starts the same binary as a child process on a scratch data folder (so that the
// child's peak RSS and CPU time can be read from /proc), puts a wire-faithful Twilio fake
// on loopback in front of it, drives it over HTTP as a clinic's apps and Twilio would, and
// prints one table: each scenario beside a baseline measured in the same run, so that a
// shared or slow machine shows up in both.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// options are the command's flags.
type options struct {
	quick   bool
	json    bool
	only    []string
	workdir string
	keep    bool
	profile string

	latency, callbackDelay string
	callbackWorkers        int

	b1Messages, b1Conc int
	b1bVariants        string
	b1bMessages        int
	b2Sizes            string
	b3Messages         int
	b3InFlight         int
	b3Create           string
	b4Messages         int
	b4InFlight         int
	b4Latency          string
	b5Webhooks, b5Conc int
	b5History          int
	b6Messages         int
	b6Requests         int

	// --peer: clinicmsg side by side with Kannel (peer.go).
	peer               bool
	peerMessages       int
	peerRounds         int
	peerKannelLogLevel int

	// Time limits, so that a slow appliance (or a busy machine) still ends the run in a
	// few minutes: each load phase of B1, B1b and B5, and the waits of B2, B3 and B4.
	phase                           time.Duration
	b2Timeout, b3Timeout, b4Timeout time.Duration
}

// applyQuick sets the sizes of `--quick` (every scenario runs, in seconds) where no flag
// set them.
func (o *options) applyQuick(cmd *cobra.Command) {
	set := func(name string, apply func()) {
		if !cmd.Flags().Changed(name) {
			apply()
		}
	}
	set("b1-messages", func() { o.b1Messages = 200 })
	set("b1b", func() { o.b1bVariants = "1@16,50@4" })
	set("b1b-messages", func() { o.b1bMessages = 400 })
	set("b2-recipients", func() { o.b2Sizes = "1000" })
	set("b3-messages", func() { o.b3Messages = 500 })
	set("b4-messages", func() { o.b4Messages = 1000 })
	set("b5-webhooks", func() { o.b5Webhooks = 500 })
	set("b6-messages", func() { o.b6Messages = 10000 })
	set("b6-requests", func() { o.b6Requests = 3 })
	set("phase", func() { o.phase = time.Second })
	set("b2-timeout", func() { o.b2Timeout = 30 * time.Second })
	set("b3-timeout", func() { o.b3Timeout = 30 * time.Second })
	set("b4-timeout", func() { o.b4Timeout = 30 * time.Second })
}

// NewCommand returns the `bench` command.
func NewCommand() *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure this machine: throughput, latency and memory of clinicmsg against same-run baselines",
		Long: `Measure clinicmsg on this machine. The bench starts this binary as a separate process on
a scratch data folder, with a Twilio fake on loopback (nothing reaches a real provider: the
clinicmsg and vendor variables of this environment are not passed on), and runs:

  B1   REST create of messages vs a bare PocketBase create (c=16)
  B1b  POST /api/clinicmsg/send, one message or arrays, vs PocketBase's /api/batch
  B2   campaign fan-out (10k and 100k recipients) vs raw batched INSERTs
  B3   end to end, queued -> delivered, 256 in flight, vs the latency bound
  B4   send rate, 5 ms provider, 1,024 in flight, vs a bare client to the same fake
  B5   signed status webhooks (c=64) vs a bare PocketBase update
  B6   GET /api/clinicmsg/stats over 1,000,000 messages vs PocketBase counting them

and prints one table (or, with --json, one JSON object). Ratios compare each scenario with
its baseline measured in the same run. The default run takes under five minutes on two
cores and about 1 GB of free disk in the work folder (--workdir). It does not touch this
appliance's data folder (--dir) beyond opening it, as every clinicmsg command does.`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.peer {
				return runPeer(cmd.Context(), o, cmd.OutOrStdout(), os.Stderr, strings.Join(os.Args[1:], " "))
			}
			if o.quick {
				o.applyQuick(cmd)
			}
			// Progress goes to stderr (PocketBase silences cobra's error writer), so that
			// stdout holds only the table or the JSON.
			return run(cmd.Context(), o, cmd.OutOrStdout(), os.Stderr, strings.Join(os.Args[1:], " "))
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.quick, "quick", false, "small sizes: every scenario in a few seconds (what make test runs)")
	f.BoolVar(&o.json, "json", false, "print one JSON object instead of the table")
	f.StringSliceVar(&o.only, "only", nil, "run only these scenarios, e.g. --only B3,B5 (B1, B1b, B2, B3, B4, B5, B6)")
	f.StringVar(&o.workdir, "workdir", "", "where the scratch data folders go (default: the system temp folder)")
	f.BoolVar(&o.keep, "keep", false, "keep the scratch data folders and appliance logs")
	f.StringVar(&o.profile, "profile", "", "write a CPU profile of the appliance under each scenario to this folder (<scenario>.pprof)")
	f.StringVar(&o.latency, "latency", "50ms-200ms", "provider latency for B3: a uniform range or a fixed duration")
	f.StringVar(&o.callbackDelay, "callback-delay", "200ms-1s", "delay from Twilio accepting a message to its delivered callback (B3)")
	f.IntVar(&o.callbackWorkers, "callback-workers", 256, "status callbacks posted at once at most (B3)")
	f.IntVar(&o.b1Messages, "b1-messages", 10000, "B1: messages (and bare records) created")
	f.IntVar(&o.b1Conc, "b1-concurrency", 16, "B1: concurrent clients")
	f.StringVar(&o.b1bVariants, "b1b", "1@16,100@16,100@64", "B1b: messages per request @ concurrent clients, comma-separated (e.g. add 1000@16)")
	f.IntVar(&o.b1bMessages, "b1b-messages", 10000, "B1b: messages per variant (at least two requests per client)")
	f.StringVar(&o.b2Sizes, "b2-recipients", "10000,100000", "B2: campaign sizes, comma-separated")
	f.IntVar(&o.b3Messages, "b3-messages", 20000, "B3: messages carried end to end")
	f.IntVar(&o.b3InFlight, "b3-inflight", 256, "B3: sends in flight (CLINICMSG_WORKERS); 0 leaves it unset, so the appliance learns it")
	f.StringVar(&o.b3Create, "b3-create", "seed", "B3: seed (the messages stored before the appliance starts) or api (created through /api/clinicmsg/send while it sends)")
	f.IntVar(&o.b4Messages, "b4-messages", 20000, "B4: messages sent")
	f.IntVar(&o.b4InFlight, "b4-inflight", 1024, "B4: sends in flight (CLINICMSG_WORKERS)")
	f.StringVar(&o.b4Latency, "b4-latency", "5ms", "B4: provider latency")
	f.IntVar(&o.b5Webhooks, "b5-webhooks", 20000, "B5: status callbacks posted")
	f.IntVar(&o.b5Conc, "b5-concurrency", 64, "B5: concurrent callbacks")
	f.IntVar(&o.b5History, "b5-history", 0, "B5: older messages in the table besides the ones reported on (a clinic keeps 90 days)")
	f.IntVar(&o.b6Messages, "b6-messages", 1_000_000, "B6: messages in the clinic's year")
	f.IntVar(&o.b6Requests, "b6-requests", 20, "B6: timed requests per range")
	f.DurationVar(&o.phase, "phase", 2500*time.Millisecond, "B1, B1b, B5: longest load phase (each side runs two); the message counts are upper bounds")
	f.DurationVar(&o.b2Timeout, "b2-timeout", 20*time.Second, "B2: longest wait for one campaign's fan-out (beyond it the time is projected and the target not met)")
	f.DurationVar(&o.b3Timeout, "b3-timeout", 30*time.Second, "B3: longest wait for every delivery")
	f.DurationVar(&o.b4Timeout, "b4-timeout", 25*time.Second, "B4: longest wait for every send")
	f.BoolVar(&o.peer, "peer", false, "instead of the scenarios: clinicmsg side by side with Kannel (Debian's kannel and kannel-extras), alternating rounds")
	f.IntVar(&o.peerMessages, "peer-messages", 20000, "--peer: single-message requests per system and round (c=16)")
	f.IntVar(&o.peerRounds, "peer-rounds", 3, "--peer: rounds of clinicmsg then Kannel, each on fresh data")
	f.IntVar(&o.peerKannelLogLevel, "peer-kannel-log-level", 0, "--peer: log-level of Kannel's log files (0, debug: Kannel's default, as Debian's kannel.conf leaves it; 1 info)")
	return cmd
}

// scenarios in the order they run.
var scenarioNames = []string{"B1", "B1b", "B2", "B3", "B4", "B5", "B6"}

// runner holds one bench run.
type runner struct {
	o      *options
	bin    string
	work   string
	fx     *fixture
	log    io.Writer
	report Report
	rss    map[string]float64 // peak RSS in MB, by scenario

	latency, callbackDelay, b4Latency span
}

func run(ctx context.Context, o *options, stdout, stderr io.Writer, command string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	started := time.Now()
	r := &runner{o: o, log: stderr, rss: map[string]float64{}}
	var err error
	if r.latency, err = parseSpan(o.latency); err != nil {
		return fmt.Errorf("--latency: %w", err)
	}
	if r.callbackDelay, err = parseSpan(o.callbackDelay); err != nil {
		return fmt.Errorf("--callback-delay: %w", err)
	}
	if r.b4Latency, err = parseSpan(o.b4Latency); err != nil {
		return fmt.Errorf("--b4-latency: %w", err)
	}
	selected := scenarioNames
	if len(o.only) > 0 {
		selected = nil
		for _, name := range o.only {
			i := slices.IndexFunc(scenarioNames, func(s string) bool { return strings.EqualFold(s, strings.TrimSpace(name)) })
			if i < 0 {
				return fmt.Errorf("--only: unknown scenario %q (known: %s)", name, strings.Join(scenarioNames, ", "))
			}
			selected = append(selected, scenarioNames[i])
		}
	}

	if r.bin, err = os.Executable(); err != nil {
		return fmt.Errorf("failed to find this binary: %w", err)
	}
	if r.bin, err = filepath.EvalSymlinks(r.bin); err != nil {
		return err
	}
	if st, err := os.Stat(r.bin); err == nil {
		r.report.BinaryBytes = st.Size()
	}
	if o.profile != "" {
		if o.profile, err = filepath.Abs(o.profile); err != nil {
			return err
		}
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			return err
		}
	}
	if r.work, err = os.MkdirTemp(o.workdir, "clinicmsg-bench-"); err != nil {
		return fmt.Errorf("failed to create the work folder: %w", err)
	}
	if o.keep {
		r.logf("work folder (kept): %s", r.work)
	} else {
		defer os.RemoveAll(r.work)
	}

	r.report.Machine = machineInfo()
	r.report.Command = "clinicmsg " + command
	r.report.Quick = o.quick
	r.logf("setting up the template data folder")
	if r.fx, err = setUp(ctx, r.bin, r.work); err != nil {
		return err
	}

	steps := map[string]func() error{"B1": r.b1, "B1b": r.b1b, "B2": r.b2, "B3": r.b3, "B4": r.b4, "B5": r.b5, "B6": r.b6}
	var failed []string
	for _, name := range selected {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.logf("%s: running", name)
		t0 := time.Now()
		if err := steps[name](); err != nil {
			failed = append(failed, name)
			r.logf("%s: FAILED: %v", name, err)
			res := Result{Name: name, Title: "failed to run", Target: "runs"}
			res.note("error: %v", err)
			res.judge(false)
			r.add(res)
			continue
		}
		r.logf("%s: done in %v", name, time.Since(t0).Round(100*time.Millisecond))
	}
	if slices.Contains(selected, "B2") || slices.Contains(selected, "B3") {
		peak := max(r.rss["B2"], r.rss["B3"])
		res := Result{Name: "RSS", Title: "peak RSS of the appliance process through B2 and B3 (VmHWM)", Value: peak, Unit: "MB",
			Target: "≤ 150 MB", RSSMB: peak}
		res.judge(peak > 0 && peak <= 150)
		for _, n := range scenarioNames {
			if v, ok := r.rss[n]; ok {
				res.note("%s: %.0f MB", n, v)
			}
		}
		r.add(res)
	}
	r.report.Machine.LoadEnd = loadAverage()
	r.report.Seconds = time.Since(started).Seconds()
	for _, v := range r.rss {
		r.report.PeakRSSMB = max(r.report.PeakRSSMB, v)
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r.report); err != nil {
			return err
		}
	} else {
		printTable(stdout, &r.report)
	}
	if len(failed) > 0 {
		return fmt.Errorf("scenarios failed to run: %s", strings.Join(failed, ", "))
	}
	return nil
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.log, "bench %s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (r *runner) add(res Result) {
	res.Ratio = roundTo(res.Ratio, 3)
	res.Value, res.Baseline = roundTo(res.Value, 2), roundTo(res.Baseline, 2)
	res.P50ms, res.P95ms, res.P99ms = roundTo(res.P50ms, 2), roundTo(res.P95ms, 2), roundTo(res.P99ms, 2)
	res.RSSMB, res.Seconds = roundTo(res.RSSMB, 1), roundTo(res.Seconds, 3)
	r.report.Scenarios = append(r.report.Scenarios, res)
}

// child copies the template data folder for scenario name, lets prepare seed it while no
// appliance runs, and starts an appliance on it at addr (a free port when empty).
func (r *runner) child(name, addr string, prepare func(dir string) error, env ...string) (*appliance, error) {
	dir := filepath.Join(r.work, name)
	if err := copyDir(r.fx.dir, dir); err != nil {
		return nil, fmt.Errorf("failed to copy the template data folder: %w", err)
	}
	if prepare != nil {
		if err := prepare(dir); err != nil {
			return nil, err
		}
	}
	profile := ""
	if r.o.profile != "" {
		profile = filepath.Join(r.o.profile, name+".pprof")
	}
	return startAppliance(r.bin, dir, addr, filepath.Join(r.work, name+".log"), profile, env...)
}

// finish records the child's peak RSS for scenario name and stops it.
func (r *runner) finish(name string, a *appliance) error {
	r.rss[name] = max(r.rss[name], float64(a.peakRSS())/(1<<20))
	if err := a.stop(); err != nil {
		return err
	}
	return nil
}

// cpuOf fills a result's CPU figures from the child's CPU time over a phase.
func cpuOf(res *Result, cpu, elapsed time.Duration, items int) {
	if items > 0 {
		res.CPUPerItemUs = roundTo(float64(cpu.Microseconds())/float64(items), 1)
	}
	if elapsed > 0 {
		res.CPUCores = roundTo(cpu.Seconds()/elapsed.Seconds(), 2)
	}
}

func roundTo(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if v >= 0 {
		return float64(int64(v*p+0.5)) / p
	}
	return -float64(int64(-v*p+0.5)) / p
}

// parseInts reads "10000,100000".
func parseInts(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a list of positive numbers", s)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}
