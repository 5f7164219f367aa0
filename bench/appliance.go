package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"clinicmsg/internal/loopback"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat CPU times (100 on every Linux
// architecture Go supports).
const clockTicks = 100

// appliance is one clinicmsg child process (the same binary as the bench) serving a data
// folder on loopback, so that its memory and CPU are its own and can be read from /proc.
type appliance struct {
	bin    string
	dir    string
	addr   string // 127.0.0.1:port
	base   string // http://127.0.0.1:port
	cmd    *exec.Cmd
	log    *os.File
	exited chan error
}

// applianceEnv is the environment of a child: the bench's own, minus every clinicmsg and
// vendor setting (a clinic's VM may hold real Twilio credentials: the bench must never
// reach a real provider), plus env.
func applianceEnv(env []string) []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "CLINICMSG_"), strings.HasPrefix(name, "TWILIO_"),
			strings.HasPrefix(name, "UNIFONIC_"), strings.HasPrefix(name, "SMS_"),
			strings.HasPrefix(name, "WHATSAPP_"):
			continue
		}
		out = append(out, kv)
	}
	out = append(out, "SMS_PROVIDER=mock", "WHATSAPP_PROVIDER=mock")
	return append(out, env...)
}

// freeAddr returns a loopback address with a port nobody listens on right now.
func freeAddr() (string, error) {
	return loopback.FreeAddr()
}

// runCLI runs the binary with args (a one-off command such as `superuser upsert`) and
// returns its combined output.
func runCLI(ctx context.Context, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = applianceEnv(nil)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// startAppliance serves dir on addr (a free port when empty) with env added to the
// child's environment, and waits until it answers /api/health. With profile set, the
// child writes a CPU profile of its whole run there (CLINICMSG_CPUPROFILE).
func startAppliance(bin, dir, addr, logPath, profile string, env ...string) (*appliance, error) {
	if addr == "" {
		var err error
		if addr, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("failed to create the appliance log: %w", err)
	}
	a := &appliance{bin: bin, dir: dir, addr: addr, base: "http://" + addr, log: logf, exited: make(chan error, 1)}
	if profile != "" {
		env = append(env, "CLINICMSG_CPUPROFILE="+profile)
	}
	a.cmd = exec.Command(bin, "serve", "--http", addr, "--dir", dir)
	a.cmd.Env = applianceEnv(env)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	if err := a.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("failed to start the appliance: %w", err)
	}
	go func() { a.exited <- a.cmd.Wait() }()
	if err := a.waitHealthy(60 * time.Second); err != nil {
		a.kill()
		return nil, fmt.Errorf("%w\n%s", err, a.logTail(20))
	}
	return a, nil
}

func (a *appliance) waitHealthy(within time.Duration) error {
	deadline := time.Now().Add(within)
	hc := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		select {
		case err := <-a.exited:
			a.exited <- err
			return fmt.Errorf("the appliance exited while starting: %v", err)
		default:
		}
		// Only a child that printed its banner holds the port; before that, a health answer
		// could come from another process on the address.
		if b, _ := os.ReadFile(a.log.Name()); !bytes.Contains(b, []byte(loopback.StartedBanner)) {
			time.Sleep(25 * time.Millisecond)
			continue
		}
		res, err := hc.Get(a.base + "/api/health")
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("the appliance did not answer /api/health within %v", within)
}

// procStatus reads one "Name: value kB" line of /proc/<pid>/status, in bytes.
func (a *appliance) procStatus(field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", a.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("failed to read the appliance's status: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			break
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("failed to parse %s: %w", field, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, a.cmd.Process.Pid)
}

// peakRSS is the child's peak resident set size so far (VmHWM).
func (a *appliance) peakRSS() int64 {
	n, _ := a.procStatus("VmHWM")
	return n
}

// cpuTime is the CPU time (user + system) the child has used so far.
func (a *appliance) cpuTime() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", a.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; the fields after its ")" are fixed.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks
}

// stop asks the child to shut down (SIGTERM, as systemd does) and waits for it; a child
// that does not exit within 30 s is killed.
func (a *appliance) stop() error {
	defer a.log.Close()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("failed to stop the appliance: %w", err)
	}
	select {
	case <-a.exited:
		return nil
	case <-time.After(30 * time.Second):
		a.kill()
		return errors.New("the appliance did not exit within 30s of SIGTERM; killed")
	}
}

func (a *appliance) kill() {
	_ = a.cmd.Process.Kill()
	<-a.exited
	a.exited <- nil
}

// logTail returns the last n lines the child wrote.
func (a *appliance) logTail(n int) string {
	b, err := os.ReadFile(a.log.Name())
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// copyDir copies the regular files of a stopped appliance's data folder (recursively),
// so that every scenario starts from the same set-up.
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}
