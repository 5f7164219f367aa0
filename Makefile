# The go command fetches the toolchain go.mod names (go1.27.3) through the module proxy.
export GOTOOLCHAIN := auto

BIN ?= ./clinicmsg
HTTP ?= 127.0.0.1:8090

.PHONY: run build test vet bench

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

# Benchmarks (docs/BENCHMARKS.md): GET /api/clinicmsg/stats over a million messages. Takes
# about two minutes, most of it seeding; `make test` never runs it.
bench:
	go test -run '^$$' -bench 'BenchmarkStats1M' -benchmem -count=1 -timeout 30m -v ./hooks/
