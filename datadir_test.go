package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestCheckDataDir(t *testing.T) {
	existing := t.TempDir()
	missing := filepath.Join(existing, "pb_dta")
	scenarios := []struct {
		name     string
		dir      string
		defaults []string
		create   bool
		wantErr  error
	}{
		{name: "an existing folder", dir: existing},
		{name: "a missing folder", dir: missing, defaults: []string{"pb_data"}, wantErr: errNoDataDir},
		{name: "a missing folder with --init", dir: missing, create: true},
		{name: "the default folder", dir: missing, defaults: []string{"pb_data", missing + "/"}},
		{name: "a file", dir: filepath.Join(existing, "file")},
	}
	if err := os.WriteFile(filepath.Join(existing, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			if err := checkDataDir(s.dir, s.defaults, s.create); !errors.Is(err, s.wantErr) {
				t.Fatalf("expected %v, got %v", s.wantErr, err)
			}
		})
	}
}

func TestInitRequested(t *testing.T) {
	scenarios := []struct {
		name string
		args []string
		env  string
		want bool
	}{
		{name: "no flag", args: []string{"serve", "--http", "127.0.0.1:8090", "--dir", "x"}},
		{name: "the flag among others", args: []string{"serve", "--http", "127.0.0.1:8090", "--init", "--dir", "x"}, want: true},
		{name: "the flag last", args: []string{"serve", "--dir", "x", "--init"}, want: true},
		{name: "the flag off", args: []string{"serve", "--init=false"}},
		{name: "the environment", args: []string{"serve"}, env: "1", want: true},
		{name: "the environment off", args: []string{"serve"}, env: "0"},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			t.Setenv(initEnv, s.env)
			if got := initRequested(s.args); got != s.want {
				t.Fatalf("expected %v, got %v", s.want, got)
			}
		})
	}
}

func TestBannerBaseURL(t *testing.T) {
	scenarios := []struct {
		name      string
		addr      string
		httpsAddr string
		domains   []string
		want      string
	}{
		{name: "http", addr: "127.0.0.1:8090", want: "http://127.0.0.1:8090"},
		{name: "all interfaces", addr: "0.0.0.0:8090", want: "http://0.0.0.0:8090"},
		{name: "https address", addr: "0.0.0.0:443", httpsAddr: "0.0.0.0:443", want: "https://0.0.0.0:443"},
		{name: "domain", addr: "0.0.0.0:443", domains: []string{"msg.clinic.example"}, want: "https://msg.clinic.example"},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			if got := bannerBaseURL(s.addr, s.httpsAddr, s.domains); got != s.want {
				t.Fatalf("expected %q, got %q", s.want, got)
			}
		})
	}
}
