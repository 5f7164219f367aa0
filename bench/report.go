package bench

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// Result is one row of the report: a scenario's figure, its same-run baseline and the
// ratio between them (always "higher is better": value/baseline for rates,
// baseline/value for latencies), and whether it meets its target.
type Result struct {
	Name     string  `json:"name"`
	Title    string  `json:"title"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	Baseline float64 `json:"baseline"`
	// BaselineOf says what the baseline measured, in the same unit.
	BaselineOf string  `json:"baseline_of"`
	Ratio      float64 `json:"ratio"`
	Target     string  `json:"target"`
	// Met is null for rows with no target (informational).
	Met   *bool   `json:"met"`
	P50ms float64 `json:"p50_ms"`
	P95ms float64 `json:"p95_ms"`
	P99ms float64 `json:"p99_ms"`
	N     int     `json:"n"`
	// RSSMB is the peak RSS (VmHWM) of the appliance process that ran the scenario.
	RSSMB float64 `json:"rss_mb"`
	// CPUPerItem is the appliance's CPU time (user+system) per item in microseconds over
	// the measured phase; CPUCores the cores it kept busy on average.
	CPUPerItemUs float64 `json:"cpu_us_per_item"`
	CPUCores     float64 `json:"cpu_cores"`
	// BenchCPUPerItemUs is the bench process's own CPU time per item over the same phase
	// (the fake provider, its callbacks, the load): on a small machine it shares the cores
	// with the appliance, and together they bound the rate.
	BenchCPUPerItemUs float64  `json:"bench_cpu_us_per_item,omitempty"`
	Seconds           float64  `json:"seconds"`
	Notes             []string `json:"notes,omitempty"`
}

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (r *Result) judge(ok bool) { r.Met = &ok }

// shareOfCores notes what the appliance and the bench process together spend per item, and
// the rate the machine's cores allow at that cost.
func (r *Result) shareOfCores(bench time.Duration, items int) {
	if items <= 0 || r.CPUPerItemUs <= 0 {
		return
	}
	r.BenchCPUPerItemUs = roundTo(float64(bench.Microseconds())/float64(items), 1)
	both := r.CPUPerItemUs + r.BenchCPUPerItemUs
	r.note("CPU per item: appliance %.0f µs + bench process (fake provider, callbacks) %.0f µs = %.0f µs; %d cores allow at most %.0f %s at that cost",
		r.CPUPerItemUs, r.BenchCPUPerItemUs, both, runtime.NumCPU(), float64(runtime.NumCPU())*1e6/both, r.Unit)
}

// selfCPU is the CPU time (user + system) the bench process has used so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Machine is where and when the run happened.
type Machine struct {
	NumCPU     int       `json:"nproc"`
	CPUModel   string    `json:"cpu_model"`
	MemTotalMB int       `json:"mem_total_mb"`
	Kernel     string    `json:"kernel"`
	GoVersion  string    `json:"go"`
	OSArch     string    `json:"os_arch"`
	PocketBase string    `json:"pocketbase"`
	Revision   string    `json:"revision,omitempty"`
	Started    time.Time `json:"started"`
	// LoadStart and LoadEnd are the 1-minute load averages when the run started and ended:
	// on a shared machine, the other work running beside the bench.
	LoadStart float64 `json:"load_start"`
	LoadEnd   float64 `json:"load_end"`
}

// Report is the whole run, as --json prints it.
type Report struct {
	Machine     Machine  `json:"machine"`
	Command     string   `json:"command"`
	Scenarios   []Result `json:"scenarios"`
	Lost        int      `json:"lost"`
	Duplicates  int      `json:"duplicates"`
	PeakRSSMB   float64  `json:"peak_rss_mb"`
	BinaryBytes int64    `json:"binary_bytes"`
	Seconds     float64  `json:"seconds"`
	Quick       bool     `json:"quick"`
}

func machineInfo() Machine {
	m := Machine{
		NumCPU:    runtime.NumCPU(),
		GoVersion: runtime.Version(),
		OSArch:    runtime.GOOS + "/" + runtime.GOARCH,
		Started:   time.Now().UTC().Truncate(time.Second),
		LoadStart: loadAverage(),
	}
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	if kb, err := strconv.Atoi(strings.Fields(procField("/proc/meminfo", "MemTotal") + " 0")[0]); err == nil {
		m.MemTotalMB = kb >> 10
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/pocketbase/pocketbase" {
				m.PocketBase = d.Version
			}
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				m.Revision = s.Value
			case "vcs.modified":
				if s.Value == "true" && m.Revision != "" {
					m.Revision += "+modified"
				}
			}
		}
	}
	return m
}

// procField returns the value of the first "name: value" line of a /proc file.
func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// printTable writes the report as one table with the notes below it.
func printTable(w io.Writer, r *Report) {
	m := r.Machine
	fmt.Fprintf(w, "clinicmsg bench  %s  (%s)\n", m.Started.Format("2006-01-02 15:04 UTC"), r.Command)
	fmt.Fprintf(w, "machine: %d CPU (%s), %d MB RAM, %s, %s, PocketBase %s; load average %.2f at start, %.2f at end\n",
		m.NumCPU, m.CPUModel, m.MemTotalMB, m.OSArch, m.GoVersion, m.PocketBase, m.LoadStart, m.LoadEnd)
	fmt.Fprintf(w, "binary: %.1f MB; appliance peak RSS over the run: %.0f MB; run time %s\n\n",
		float64(r.BinaryBytes)/(1<<20), r.PeakRSSMB, (time.Duration(r.Seconds) * time.Second).String())

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tvalue\tunit\tbaseline\tratio\tp50 ms\tp95 ms\tp99 ms\tRSS MB\tCPU µs/item\ttarget\tmet\t")
	for _, s := range r.Scenarios {
		met := "—"
		if s.Met != nil {
			met = "yes"
			if !*s.Met {
				met = "NO"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			s.Name, num(s.Value), s.Unit, num(s.Baseline), ratio(s.Ratio), ms(s.P50ms), ms(s.P95ms), ms(s.P99ms),
			num(s.RSSMB), num(s.CPUPerItemUs), s.Target, met)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nlost: %d   duplicated: %d\n", r.Lost, r.Duplicates)
	for _, s := range r.Scenarios {
		fmt.Fprintf(w, "\n%s  %s\n", s.Name, s.Title)
		if s.BaselineOf != "" {
			fmt.Fprintf(w, "    baseline: %s\n", s.BaselineOf)
		}
		for _, n := range s.Notes {
			fmt.Fprintf(w, "    %s\n", n)
		}
	}
}

func num(v float64) string {
	switch {
	case v == 0:
		return "—"
	case math.Abs(v) >= 100:
		return groupThousands(strconv.FormatFloat(v, 'f', 0, 64))
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func ms(v float64) string {
	if v == 0 {
		return "—"
	}
	if v >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func ratio(v float64) string {
	if v == 0 {
		return "—"
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func groupThousands(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
