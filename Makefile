# The go command fetches the toolchain go.mod names (go1.27.3) through the module proxy.
export GOTOOLCHAIN := auto

BIN ?= ./clinicmsg
HTTP ?= 127.0.0.1:8090

.PHONY: run build release image test vet browser screenshots bench bench-stats bench-peer fuzz soak

build:
	go build -o $(BIN) .

run: build
	@echo "clinicmsg: serving on http://$(HTTP) with data in ./pb_data and the mock provider."
	@echo "Create the first superuser (admin UI at http://$(HTTP)/_/):"
	@echo "    $(BIN) superuser upsert you@clinic.example 'a-long-password'"
	@echo "or open the installer link printed below."
	$(BIN) serve --http $(HTTP) --dir ./pb_data

# Release binaries: static (CGO_ENABLED=0; PocketBase's SQLite is modernc's pure Go), for
# each of RELEASE_ARCHS on Linux, in dist/ with SHA256SUMS. `--version` prints VERSION,
# COMMIT and DATE; DATE is the commit's time, so that the same commit builds the same bytes.
# The Dockerfile runs this target for one architecture, passing all three (it has no .git).
RELEASE_ARCHS ?= amd64 arm64
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
DATE ?= $(shell TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo unknown)
LDFLAGS = -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)

release:
	rm -rf dist && mkdir -p dist
	@for arch in $(RELEASE_ARCHS); do \
		echo "make: building dist/clinicmsg-linux-$$arch"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch go build -trimpath -ldflags "$(LDFLAGS)" \
			-o dist/clinicmsg-linux-$$arch . || exit 1; \
	done
	cd dist && sha256sum clinicmsg-linux-* > SHA256SUMS
	@cat dist/SHA256SUMS

# The container image (Dockerfile), built where a container engine runs; on a machine
# without one (or with its daemon stopped) `make test` says the image was not built.
IMAGE ?= clinicmsg:dev
image:
	@engine=$$(command -v docker || command -v podman || true); \
	if [ -z "$$engine" ]; then \
		echo "make: no container engine (docker or podman) here: the image was not built"; \
	elif ! $$engine info >/dev/null 2>&1; then \
		echo "make: $$engine is installed but not running: the image was not built"; \
	else \
		echo "make: building the image $(IMAGE) with $$engine"; \
		$$engine build -t $(IMAGE) . || exit 1; \
	fi

# The main package's binary tests run the release binary of this machine's architecture,
# so that what is shipped is what was tested.
HOST_ARCH ?= $(shell go env GOARCH)

test: browser release
	gofmt -l . | (! grep .) || (echo "gofmt: the files above need formatting"; exit 1)
	go vet ./...
	CLINICMSG_BIN=$(CURDIR)/dist/clinicmsg-linux-$(HOST_ARCH) go test -count=1 -timeout 15m ./...
	@# The reliability suites' own tallies (figures in bin/reliability-latest.json).
	@[ ! -f bin/reliability-latest.json ] || awk -F'[":, ]+' '/^    "[a-z_]+": \{/{s=$$2} /"checks_failed"/{f=$$3} /"checks_passed"/{if (s!="") printf "%s: %s passed, %s failed\n", s, $$3, f}' bin/reliability-latest.json
	@$(MAKE) --no-print-directory image

# The staff dashboard's browser tests drive Debian's Chromium (DejaVu has the Arabic glyphs
# of its right-to-left screens), and the docs' test runs their curl commands; install them
# when missing, as root or through sudo.
browser:
	@command -v chromium >/dev/null 2>&1 && command -v curl >/dev/null 2>&1 || { \
		echo "make: installing Debian's chromium and curl for the browser and docs tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core curl >/dev/null; }

# `make test` writes the dashboard's screenshots to bin/screenshots; this refreshes the ones
# the docs show.
screenshots: browser
	CLINICMSG_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots go test -count=1 -run 'TestBrowserDashboard' .

# Benchmarks (docs/BENCHMARKS.md). `make bench` builds the binary and runs `clinicmsg bench`
# (every scenario against its same-run baseline, a few minutes on 2 cores; BENCH_FLAGS adds
# flags, e.g. BENCH_FLAGS='--only B3,B5 --json'). `make bench-stats` is the Go benchmark of
# GET /api/clinicmsg/stats over a million messages (about two minutes, most of it seeding).
# `make test` runs neither; it runs `clinicmsg bench --quick` as a smoke test.
BENCH_FLAGS ?=

bench: build
	$(BIN) bench $(BENCH_FLAGS)

bench-stats:
	go test -run '^$$' -bench 'BenchmarkStats1M' -benchmem -count=1 -timeout 30m -v ./hooks/

# `make bench-peer` runs `clinicmsg bench --peer` through bench/peer.sh: clinicmsg side by side
# with Debian's Kannel (installed by the script when run as root), three alternating rounds of
# 20,000 messages, a few minutes. BENCH_PEER_FLAGS adds flags, e.g. '--peer-messages 2000'.
BENCH_PEER_FLAGS ?=

bench-peer: build
	BIN=$(BIN) ./bench/peer.sh $(BENCH_PEER_FLAGS)

# Reliability (docs/RELIABILITY.md). `make fuzz` runs each fuzz target for FUZZTIME (default
# 20s; about 5 minutes in all); `make soak` runs the crash, blackout, disk-full, isolation
# and provider-fault suites in their long form (about 12 minutes). Both print "N passed,
# N failed"; `make test` runs the seed corpora and the short form of the suites.
FUZZTIME ?= 20s

fuzz:
	./reliability/fuzz.sh $(FUZZTIME)

soak:
	./reliability/soak.sh
