package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"clinicmsg/providers/providertest"
)

// TestBenchQuick builds clinicmsg (outside the temp folder, as PocketBase would take a
// binary under it for `go run`) and runs `clinicmsg bench --quick --json`: every scenario
// must run, the output must be one JSON report, and no message may be lost or sent twice.
// It checks no performance target: `make test` runs it on whatever machine it is given.
func TestBenchQuick(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin", "test", "clinicmsg-bench")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = root
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("failed to build: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--dir", t.TempDir(), "bench", "--quick", "--json", "--workdir", t.TempDir())
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("clinicmsg bench --quick --json: %v\n%s", err, stderr.String())
	}
	t.Logf("clinicmsg bench --quick took %v", time.Since(start).Round(time.Second))

	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("expected one JSON report, got %v:\n%s", err, stdout.String())
	}
	if rep.Lost != 0 || rep.Duplicates != 0 {
		t.Fatalf("expected nothing lost or duplicated, got lost %d, duplicated %d\n%s", rep.Lost, rep.Duplicates, stdout.String())
	}
	seen := map[string]bool{}
	for _, s := range rep.Scenarios {
		if s.Value <= 0 {
			t.Fatalf("expected a value for %s, got %+v", s.Name, s)
		}
		group, _, _ := strings.Cut(s.Name, "/")
		seen[group] = true
	}
	for _, name := range []string{"B1", "B1b", "B2", "B3", "B4", "B5", "B6", "RSS"} {
		if !seen[name] {
			t.Fatalf("expected scenario %s in the report, got %v", name, seen)
		}
	}
	if rep.Machine.NumCPU == 0 || rep.BinaryBytes == 0 || rep.PeakRSSMB == 0 {
		t.Fatalf("expected the machine, binary size and peak RSS, got %+v, %d, %v", rep.Machine, rep.BinaryBytes, rep.PeakRSSMB)
	}
}

func TestParseSpan(t *testing.T) {
	scenarios := []struct {
		in      string
		want    span
		wantErr bool
	}{
		{"50ms-200ms", span{50 * time.Millisecond, 200 * time.Millisecond}, false},
		{"5ms", span{5 * time.Millisecond, 5 * time.Millisecond}, false},
		{"200ms - 1s", span{200 * time.Millisecond, time.Second}, false},
		{"1s-200ms", span{}, true},
		{"fast", span{}, true},
	}
	for _, s := range scenarios {
		t.Run(s.in, func(t *testing.T) {
			got, err := parseSpan(s.in)
			if (err != nil) != s.wantErr || got != s.want {
				t.Fatalf("expected %v (error %v), got %v (%v)", s.want, s.wantErr, got, err)
			}
			for range 100 {
				if d := got.draw(); d < got.lo || d > got.hi {
					t.Fatalf("expected a draw within %v, got %v", got, d)
				}
			}
		})
	}
}

func TestParseVariants(t *testing.T) {
	scenarios := []struct {
		in      string
		want    []variant
		wantErr bool
	}{
		{"1@16,100@64", []variant{{1, 16}, {100, 64}}, false},
		{"1000@16", []variant{{1000, 16}}, false},
		{"1001@16", nil, true},
		{"100", nil, true},
	}
	for _, s := range scenarios {
		t.Run(s.in, func(t *testing.T) {
			got, err := parseVariants(s.in)
			if (err != nil) != s.wantErr || len(got) != len(s.want) {
				t.Fatalf("expected %v (error %v), got %v (%v)", s.want, s.wantErr, got, err)
			}
			for i := range got {
				if got[i] != s.want[i] {
					t.Fatalf("expected %v, got %v", s.want, got)
				}
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	lat := []time.Duration{5 * time.Millisecond, time.Millisecond, 3 * time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond}
	scenarios := []struct {
		p    float64
		want float64
	}{{0, 1}, {50, 3}, {100, 5}}
	for _, s := range scenarios {
		if got := percentile(lat, s.p); got != s.want {
			t.Fatalf("expected p%v = %v ms, got %v", s.p, s.want, got)
		}
	}
}

func TestAudit(t *testing.T) {
	rows := []messageRow{
		{To: phoneE164(0), Status: "delivered"},
		{To: phoneE164(1), Status: "sent"},
		{To: phoneE164(2), Status: "queued"},
		{To: phoneE164(3), Status: "skipped"},
		{To: phoneE164(4), Status: "sent"},
	}
	fake := []providertest.TwilioMessage{{To: phoneE164(0)}, {To: phoneE164(1)}, {To: phoneE164(1)}}
	scenarios := []struct {
		name                           string
		accepted                       int
		wantLost, wantDup, wantPending int
	}{
		{"sent without reaching the provider", 5, 1, 1, 1},
		{"accepted but never stored", 7, 3, 1, 1},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			lost, dups, pending := audit(rows, fake, s.accepted)
			if lost != s.wantLost || dups != s.wantDup || pending != s.wantPending {
				t.Fatalf("expected lost %d, duplicated %d, pending %d, got %d, %d, %d", s.wantLost, s.wantDup, s.wantPending, lost, dups, pending)
			}
		})
	}
	if got := phoneIndex(phoneE164(1234567)); got != 1234567 {
		t.Fatalf("expected phone index 1234567, got %d", got)
	}
}
