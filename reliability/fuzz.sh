#!/usr/bin/env bash
# `make fuzz`: runs every fuzz target of clinicmsg for FUZZTIME each (default 20s), prints
# each target's executions and "N passed, N failed", and records the executions in
# docs/reliability-latest.json ("fuzz"). A failing input is kept by the go command under
# the package's testdata/fuzz/, where `make test` will run it from then on.
set -uo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" CLINICMSG_RECORD_FIGURES=1
fuzztime="${1:-20s}"
targets=(
	internal/compose:FuzzNormalizePhone internal/compose:FuzzRender hooks:FuzzParseRecipients
	providers:FuzzSegments providers:FuzzTwilioStatusWebhook providers:FuzzTwilioInboundWebhook providers:FuzzUnifonicDLRWebhook
	intents:FuzzNormalize
)
passed=0 failed=0 total=0 figures=""
for t in "${targets[@]}"; do
	pkg="${t%%:*}" name="${t#*:}"
	out="$(go test -count=1 -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "./$pkg/" 2>&1)"
	rc=$?
	execs="$(grep -o 'execs: [0-9]*' <<<"$out" | tail -1 | awk '{print $2}')"
	execs="${execs:-0}"
	total=$((total + execs))
	if [ $rc -eq 0 ]; then
		passed=$((passed + 1)) result=ok
	else
		failed=$((failed + 1)) result=FAIL
		echo "$out" | tail -30
	fi
	printf '%-28s %-10s %4s  %12s executions in %s\n' "$name" "$pkg" "$result" "$execs" "$fuzztime"
	figures="${figures}${figures:+,}\"${name}\":{\"package\":\"${pkg}\",\"executions\":${execs},\"result\":\"${result}\"}"
done
figures="{\"fuzztime\":\"${fuzztime}\",\"targets\":{${figures}},\"executions_total\":${total},\"checks_passed\":${passed},\"checks_failed\":${failed}}"
CLINICMSG_FUZZ_FIGURES="$figures" go test -count=1 -run '^TestRecordFuzzFigures$' ./reliability/ >/dev/null || echo "failed to record the fuzz figures"
echo "fuzz: ${total} executions; ${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
