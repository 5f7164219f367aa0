# The go command fetches the toolchain go.mod names (go1.27.3) through the module proxy.
export GOTOOLCHAIN := auto

BIN ?= ./clinicmsg
HTTP ?= 127.0.0.1:8090

.PHONY: run build test vet bench bench-stats fuzz soak

build:
	go build -o $(BIN) .

run: build
	@echo "clinicmsg: serving on http://$(HTTP) with data in ./pb_data and the mock provider."
	@echo "Create the first superuser (admin UI at http://$(HTTP)/_/):"
	@echo "    $(BIN) superuser upsert you@clinic.example 'a-long-password'"
	@echo "or open the installer link printed below."
	$(BIN) serve --http $(HTTP) --dir ./pb_data

test:
	gofmt -l . | (! grep .) || (echo "gofmt: the files above need formatting"; exit 1)
	go vet ./...
	go test -count=1 -timeout 15m ./...
	@# The reliability suites' own tallies (figures in bin/reliability-latest.json).
	@[ ! -f bin/reliability-latest.json ] || awk -F'[":, ]+' '/^    "[a-z_]+": \{/{s=$$2} /"checks_failed"/{f=$$3} /"checks_passed"/{if (s!="") printf "%s: %s passed, %s failed\n", s, $$3, f}' bin/reliability-latest.json

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

# Reliability (docs/RELIABILITY.md). `make fuzz` runs each fuzz target for FUZZTIME (default
# 20s; about 5 minutes in all); `make soak` runs the crash, blackout, disk-full, isolation
# and provider-fault suites in their long form (about 12 minutes). Both print "N passed,
# N failed"; `make test` runs the seed corpora and the short form of the suites.
FUZZTIME ?= 20s

fuzz:
	./reliability/fuzz.sh $(FUZZTIME)

soak:
	./reliability/soak.sh
